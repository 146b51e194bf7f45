//! Generated gRPC contracts of CUDly-rs (prost messages, tonic clients and servers) for
//! the packages `cudly.{common,audit,accounts,planner,executor,sweeper}.v1`, the encoded file
//! descriptor set for gRPC reflection, helpers that carry a structured
//! [`common::v1::ErrorDetail`] in a `tonic::Status`, and the one home of the
//! conversions every gRPC edge needs ([`convert`]: times, ids, recommendations).
//!
//! The `.proto` sources live in `protos/cudly/<package>/v1/` at the workspace root and
//! are compiled by `build.rs` with protox, so no system `protoc` is needed.

pub mod convert;
mod redact;
pub mod status;

/// The encoded `google.protobuf.FileDescriptorSet` of every CUDly proto and its imports,
/// for `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cudly_descriptor");

/// Types shared by every service: recommendations, fencing tokens, error details.
pub mod common {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("cudly.common.v1");
    }
}

/// The audit trail each service keeps of its changes, and how the gateway reads it.
pub mod audit {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("cudly.audit.v1");
    }
}

/// The accounts service: cloud accounts, credentials, session credentials.
pub mod accounts {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("cudly.accounts.v1");
    }
}

/// The planner service: plans, bindings, standing recommendations, due plans.
pub mod planner {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("cudly.planner.v1");
    }
}

/// The executor service: executions, approvals, purchases, sweeper hooks.
pub mod executor {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("cudly.executor.v1");
    }
}

/// The sweeper service: periodic task runs.
pub mod sweeper {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("cudly.sweeper.v1");
    }
}
