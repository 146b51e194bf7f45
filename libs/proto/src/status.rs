//! Carries a [`ErrorDetail`] in a `tonic::Status` so the gateway can rebuild the exact
//! REST error.
//!
//! The details bytes (`grpc-status-details-bin`) hold a standard `google.rpc.Status` whose
//! `details` contain one `google.protobuf.Any` of type [`ERROR_DETAIL_TYPE_URL`], so
//! generic tools (grpcurl, tonic-types) can still read them.

use prost::Message;
use prost::bytes::Bytes;

use crate::common::v1::ErrorDetail;

/// The `Any` type URL of [`ErrorDetail`].
pub const ERROR_DETAIL_TYPE_URL: &str = "type.googleapis.com/cudly.common.v1.ErrorDetail";

/// Wire-compatible copy of `google.rpc.Status` (not part of prost-types).
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// Returns a status with the given code whose message is `detail.message` and whose
/// details carry `detail`.
pub fn with_error_detail(code: tonic::Code, detail: &ErrorDetail) -> tonic::Status {
    let rpc_status = RpcStatus {
        code: code as i32,
        message: detail.message.clone(),
        details: vec![prost_types::Any {
            type_url: ERROR_DETAIL_TYPE_URL.to_owned(),
            value: detail.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(
        code,
        detail.message.clone(),
        Bytes::from(rpc_status.encode_to_vec()),
    )
}

/// Returns the [`ErrorDetail`] carried by a status, if any (none for a status built
/// without one, e.g. by tonic itself on a transport error).
pub fn error_detail(status: &tonic::Status) -> Option<ErrorDetail> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    let rpc_status = RpcStatus::decode(details).ok()?;
    rpc_status
        .details
        .iter()
        .find(|any| any.type_url == ERROR_DETAIL_TYPE_URL)
        .and_then(|any| ErrorDetail::decode(any.value.as_slice()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::v1::NamedRef;

    #[test]
    fn error_detail_round_trips_through_status() {
        let detail = ErrorDetail {
            code: "conflict".to_owned(),
            message: "account is used as a bastion".to_owned(),
            dependents: vec![NamedRef {
                id: "6f1c0000-0000-4000-8000-000000000000".to_owned(),
                name: "Prod-US".to_owned(),
            }],
            status: Some("pending".to_owned()),
            ..Default::default()
        };
        let status = with_error_detail(tonic::Code::FailedPrecondition, &detail);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(status.message(), "account is used as a bastion");
        assert_eq!(error_detail(&status), Some(detail));
    }

    #[test]
    fn status_without_details_has_no_error_detail() {
        let status = tonic::Status::unavailable("connection refused");
        assert_eq!(error_detail(&status), None);
        let garbage = tonic::Status::with_details(
            tonic::Code::Internal,
            "x",
            Bytes::from_static(&[0xff, 0xff, 0xff]),
        );
        assert_eq!(error_detail(&garbage), None);
    }
}
