//! Shared building blocks of every CUDly-rs service: the error-code table that maps
//! one code to both a gRPC code and an HTTP status, configuration loading, idempotency
//! rules and tokens, database set-up, metrics and internal gRPC plumbing.

pub mod audit;
pub mod caller_policy;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod grpc_limits;
pub mod idempotency;
pub mod metrics;
pub mod names;
pub mod server;
pub mod tls;

pub use error::{ApiError, ErrorCode, SpendRefusal};
