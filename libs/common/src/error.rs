//! The one error-code table of the system.
//!
//! Each [`ErrorCode`] maps to exactly one gRPC code and one HTTP status. Services turn
//! their errors into [`ApiError`] and then into a [`tonic::Status`] whose details carry
//! the precise code and the extra fields (`dependents`, `mismatches`, `status`), so the
//! gateway can rebuild the exact REST error from the status alone.

use cudly_proto::common::v1 as pb;
use serde::Serialize;
use tonic::Code;

/// The error codes of the REST contract (docs/design/API.md, Conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    MethodNotAllowed,
    AlreadyExists,
    Conflict,
    Gone,
    /// Well-formed but refused by a rule about its content: an item that cannot be
    /// priced, a spend limit.
    Unprocessable,
    /// A fenced call (sweeper → executor/planner) carried a token lower than one
    /// already seen for its task: the caller's lock was taken over.
    StaleFencingToken,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A client passed a rate limit (failed authentications, token routes); the reply
    /// says when to come back (`Retry-After`).
    TooManyRequests,
    Internal,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
}

/// One row of the table: code, its wire name, gRPC code and HTTP status.
struct Row {
    code: ErrorCode,
    name: &'static str,
    grpc: Code,
    http: u16,
}

#[rustfmt::skip]
const TABLE: &[Row] = &[
    Row { code: ErrorCode::InvalidArgument, name: "invalid_argument", grpc: Code::InvalidArgument, http: 400 },
    Row { code: ErrorCode::Unauthenticated, name: "unauthenticated", grpc: Code::Unauthenticated, http: 401 },
    Row { code: ErrorCode::PermissionDenied, name: "permission_denied", grpc: Code::PermissionDenied, http: 403 },
    Row { code: ErrorCode::NotFound, name: "not_found", grpc: Code::NotFound, http: 404 },
    Row { code: ErrorCode::MethodNotAllowed, name: "method_not_allowed", grpc: Code::Unimplemented, http: 405 },
    Row { code: ErrorCode::AlreadyExists, name: "already_exists", grpc: Code::AlreadyExists, http: 409 },
    Row { code: ErrorCode::Conflict, name: "conflict", grpc: Code::FailedPrecondition, http: 409 },
    Row { code: ErrorCode::Gone, name: "gone", grpc: Code::FailedPrecondition, http: 410 },
    Row { code: ErrorCode::Unprocessable, name: "unprocessable", grpc: Code::FailedPrecondition, http: 422 },
    Row { code: ErrorCode::StaleFencingToken, name: "stale_fencing_token", grpc: Code::Aborted, http: 409 },
    Row { code: ErrorCode::PayloadTooLarge, name: "payload_too_large", grpc: Code::ResourceExhausted, http: 413 },
    Row { code: ErrorCode::UnsupportedMediaType, name: "unsupported_media_type", grpc: Code::InvalidArgument, http: 415 },
    Row { code: ErrorCode::TooManyRequests, name: "too_many_requests", grpc: Code::ResourceExhausted, http: 429 },
    Row { code: ErrorCode::Internal, name: "internal", grpc: Code::Internal, http: 500 },
    Row { code: ErrorCode::Unimplemented, name: "unimplemented", grpc: Code::Unimplemented, http: 501 },
    Row { code: ErrorCode::Unavailable, name: "unavailable", grpc: Code::Unavailable, http: 503 },
    Row { code: ErrorCode::DeadlineExceeded, name: "deadline_exceeded", grpc: Code::DeadlineExceeded, http: 504 },
];

impl ErrorCode {
    fn row(self) -> &'static Row {
        TABLE
            .iter()
            .find(|row| row.code == self)
            .expect("every error code has a row in the table")
    }

    /// Returns the code's wire name, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// Returns the gRPC code this error travels with.
    pub fn grpc_code(self) -> Code {
        self.row().grpc
    }

    /// Returns the HTTP status the gateway answers with.
    pub fn http_status(self) -> u16 {
        self.row().http
    }

    /// Returns the code named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        TABLE
            .iter()
            .find(|row| row.name == name)
            .map(|row| row.code)
    }

    /// Returns the code a bare gRPC status maps to when it carries no details (a
    /// transport error, or a status from a component outside this system).
    pub fn from_grpc(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
            Code::Unauthenticated => ErrorCode::Unauthenticated,
            Code::PermissionDenied => ErrorCode::PermissionDenied,
            Code::NotFound => ErrorCode::NotFound,
            Code::AlreadyExists => ErrorCode::AlreadyExists,
            Code::FailedPrecondition | Code::Aborted => ErrorCode::Conflict,
            Code::ResourceExhausted => ErrorCode::PayloadTooLarge,
            Code::Unimplemented => ErrorCode::Unimplemented,
            Code::Unavailable => ErrorCode::Unavailable,
            Code::DeadlineExceeded | Code::Cancelled => ErrorCode::DeadlineExceeded,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => ErrorCode::Internal,
        }
    }
}

/// An account named in an error (bastion dependents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedRef {
    pub id: String,
    pub name: String,
}

/// An account whose provider does not match a plan's providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountMismatch {
    pub id: String,
    pub name: String,
    pub provider: String,
}

/// An error as every service reports it and the gateway renders it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub dependents: Vec<NamedRef>,
    pub mismatches: Vec<AccountMismatch>,
    /// Current status of the object, for "not pending" conflicts.
    pub status: Option<String>,
    /// The input field an invalid-argument error is about.
    pub field: Option<String>,
    /// The recommendation index an unpriceable-item error is about.
    pub item: Option<u32>,
    /// The spend limit that refused an execution.
    pub spend: Option<SpendRefusal>,
}

/// Which spend limit refused an execution, and by how much (REST `limit` (the amount),
/// `limit_name`, `committed`, `requested`; the amounts in USD).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendRefusal {
    /// The limit's name, e.g. `max_window_commitment`.
    pub limit: String,
    /// The limit's amount.
    pub amount: f64,
    /// What is already committed under it.
    pub committed: f64,
    /// What the refused execution would add.
    pub requested: f64,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            dependents: Vec::new(),
            mismatches: Vec::new(),
            status: None,
            field: None,
            item: None,
            spend: None,
        }
    }

    /// A 422 about one recommendation of a request (by its index).
    pub fn unprocessable_item(item: u32, message: impl Into<String>) -> Self {
        let mut error = Self::new(ErrorCode::Unprocessable, message);
        error.item = Some(item);
        error
    }

    /// A 422 spend-limit refusal.
    pub fn spend_limit(spend: SpendRefusal) -> Self {
        let message = format!(
            "spend limit {} of {:.2} USD would be exceeded: {:.2} committed, {:.2} requested",
            spend.limit, spend.amount, spend.committed, spend.requested
        );
        let mut error = Self::new(ErrorCode::Unprocessable, message);
        error.spend = Some(spend);
        error
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// An invalid-argument error about one field; the message names the field.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        let mut error = Self::new(ErrorCode::InvalidArgument, format!("{field}: {problem}"));
        error.field = Some(field.to_owned());
        error
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AlreadyExists, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// An internal error. The message stays generic: the detail belongs in the log.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal server error")
    }

    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    pub fn with_dependents(mut self, dependents: Vec<NamedRef>) -> Self {
        self.dependents = dependents;
        self
    }

    pub fn with_mismatches(mut self, mismatches: Vec<AccountMismatch>) -> Self {
        self.mismatches = mismatches;
        self
    }

    /// Returns the HTTP status of this error.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// Returns the REST error body: `{"error": ..., plus the rule's extra fields}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), self.message.clone().into());
        if !self.dependents.is_empty() {
            body.insert("dependents".into(), serde_json::json!(self.dependents));
        }
        if !self.mismatches.is_empty() {
            body.insert("mismatches".into(), serde_json::json!(self.mismatches));
        }
        if let Some(status) = &self.status {
            body.insert("status".into(), status.clone().into());
        }
        if let Some(field) = &self.field {
            body.insert("field".into(), field.clone().into());
        }
        if let Some(item) = self.item {
            body.insert("item".into(), item.into());
        }
        if let Some(spend) = &self.spend {
            body.insert("limit".into(), serde_json::json!(spend.amount));
            body.insert("limit_name".into(), spend.limit.clone().into());
            body.insert("committed".into(), serde_json::json!(spend.committed));
            body.insert("requested".into(), serde_json::json!(spend.requested));
        }
        serde_json::Value::Object(body)
    }

    /// Builds the error back from a gRPC status, reading the details when present.
    pub fn from_status(status: &tonic::Status) -> Self {
        match cudly_proto::status::error_detail(status) {
            Some(detail) if !detail.code.is_empty() => Self::from_detail(detail, status),
            _ => Self::new(ErrorCode::from_grpc(status.code()), status.message()),
        }
    }

    fn from_detail(detail: pb::ErrorDetail, status: &tonic::Status) -> Self {
        let code =
            ErrorCode::from_name(&detail.code).unwrap_or(ErrorCode::from_grpc(status.code()));
        Self {
            code,
            message: detail.message,
            dependents: detail
                .dependents
                .into_iter()
                .map(|d| NamedRef {
                    id: d.id,
                    name: d.name,
                })
                .collect(),
            mismatches: detail
                .mismatches
                .into_iter()
                .map(|m| AccountMismatch {
                    id: m.id,
                    name: m.name,
                    provider: m.provider,
                })
                .collect(),
            status: detail.status,
            field: detail.field,
            item: detail.item,
            spend: detail.spend.map(|spend| SpendRefusal {
                limit: spend.limit,
                amount: spend.amount,
                committed: spend.committed,
                requested: spend.requested,
            }),
        }
    }

    fn to_detail(&self) -> pb::ErrorDetail {
        pb::ErrorDetail {
            code: self.code.as_str().to_owned(),
            message: self.message.clone(),
            dependents: self
                .dependents
                .iter()
                .map(|d| pb::NamedRef {
                    id: d.id.clone(),
                    name: d.name.clone(),
                })
                .collect(),
            mismatches: self
                .mismatches
                .iter()
                .map(|m| pb::AccountMismatch {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    provider: m.provider.clone(),
                })
                .collect(),
            status: self.status.clone(),
            field: self.field.clone(),
            item: self.item,
            spend: self.spend.as_ref().map(|spend| pb::SpendRefusal {
                limit: spend.limit.clone(),
                amount: spend.amount,
                committed: spend.committed,
                requested: spend.requested,
            }),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        cudly_proto::status::with_error_detail(error.code.grpc_code(), &error.to_detail())
    }
}

impl From<cudly_vocabulary::FieldError> for ApiError {
    /// A broken vocabulary rule is a 400 naming its field.
    fn from(error: cudly_vocabulary::FieldError) -> Self {
        Self::invalid_field(&error.field, error.problem)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_exactly_one_row() {
        for row in TABLE {
            assert_eq!(
                TABLE.iter().filter(|other| other.code == row.code).count(),
                1
            );
            assert_eq!(ErrorCode::from_name(row.name), Some(row.code));
        }
    }

    #[test]
    fn status_details_carry_the_precise_code_and_extra_fields() {
        let error = ApiError::conflict("account is used as a bastion")
            .with_dependents(vec![NamedRef {
                id: "a".into(),
                name: "prod".into(),
            }])
            .with_status("approved");
        let status: tonic::Status = error.clone().into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let back = ApiError::from_status(&status);
        assert_eq!(back, error);
        assert_eq!(back.http_status(), 409);
        assert_eq!(back.to_json()["dependents"][0]["name"], "prod");
        assert_eq!(back.to_json()["status"], "approved");
    }

    #[test]
    fn gone_and_conflict_share_a_grpc_code_but_keep_their_http_status() {
        let gone: tonic::Status = ApiError::new(ErrorCode::Gone, "approval token expired").into();
        assert_eq!(ApiError::from_status(&gone).http_status(), 410);
    }

    #[test]
    fn a_status_without_details_maps_by_its_grpc_code() {
        let status = tonic::Status::unavailable("connection refused");
        let error = ApiError::from_status(&status);
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert_eq!(error.http_status(), 503);
    }

    #[test]
    fn invalid_field_names_the_field() {
        let error = ApiError::invalid_field(
            "aws_role_arn",
            "must look like arn:aws:iam::<12 digits>:role/<name>",
        );
        assert!(error.message.starts_with("aws_role_arn: "));
        assert_eq!(error.to_json()["field"], "aws_role_arn");
    }
}
