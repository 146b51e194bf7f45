//! The one mapping from errors to HTTP responses.
//!
//! Handlers return [`HttpResult`]; every error, whether raised here, rebuilt from a
//! backend's `tonic::Status` ([`grpc_error`]) or produced by an extractor, becomes a
//! response through [`error_response`]: the status comes from the shared error-code
//! table and the body is `ApiError::to_json()`. A 500 answers only
//! "internal server error"; its detail goes to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cudly_common::{ApiError, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

/// The result of a handler.
pub type HttpResult<T> = Result<T, HttpError>;

/// A failure of the gateway's own work (its API key store), before it becomes an
/// [`ApiError`] at the edge, where a database error is logged, once.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A rule of the API: conflict, not found, unavailable.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A database error; 503 when Postgres cannot be reached, else 500.
    #[error("database error while {context}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A row the schema should not allow; logged, answered 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// Returns a database error raised while doing `context`.
    pub fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { context, source }
    }
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::Api(error) => error,
            GatewayError::Database { context, source } => {
                cudly_common::grpc::db_error(context, source)
            }
            GatewayError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<GatewayError> for HttpError {
    fn from(error: GatewayError) -> Self {
        Self(error.into())
    }
}

/// An [`ApiError`] on its way to becoming an HTTP response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(transparent)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<tonic::Status> for HttpError {
    /// Rebuilds the precise error from the status details; prefer [`grpc_error`], which
    /// also names the backend when it cannot be reached.
    fn from(status: tonic::Status) -> Self {
        Self(ApiError::from_status(&status))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

/// Returns the HTTP response of `error`: the status from the error-code table and the
/// JSON body `{"error": ..., plus the rule's extra fields}`.
///
/// Internal errors (500) never show their message: it is logged here and the body says
/// only "internal server error".
pub fn error_response(error: ApiError) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if status == StatusCode::INTERNAL_SERVER_ERROR {
        if error.message != ApiError::internal().message {
            tracing::error!(detail = %error.message, code = error.code.as_str(), "internal error");
        }
        ApiError::internal().to_json()
    } else {
        error.to_json()
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Returns the HTTP error for a failed call to the backend named `service` (e.g.
/// `"accounts"`).
///
/// A status carrying error details (every error a CUDly service returns) is rebuilt
/// exactly through `ApiError::from_status`. A bare transport failure names the backend
/// by role, as docs/design/API.md asks: "accounts service unavailable" (503) or "accounts service
/// timed out" (504).
pub fn grpc_error(service: &str, status: tonic::Status) -> HttpError {
    if status.details().is_empty() {
        match status.code() {
            tonic::Code::Unavailable => {
                tracing::warn!(service, detail = %status.message(), "backend unavailable");
                return HttpError(ApiError::unavailable(format!(
                    "{service} service unavailable"
                )));
            }
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                tracing::warn!(service, detail = %status.message(), "backend call timed out");
                return HttpError(ApiError::new(
                    ErrorCode::DeadlineExceeded,
                    format!("{service} service timed out"),
                ));
            }
            _ => {}
        }
    }
    let error = ApiError::from_status(&status);
    if error.code == ErrorCode::Internal {
        tracing::error!(service, detail = %error.message, "backend internal error");
    }
    HttpError(error)
}

/// The error body of every non-2xx answer, for the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong; "internal server error" for a 500.
    pub error: String,
    /// The accounts that depend on the object (deleting a bastion account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependents: Option<Vec<serde_json::Value>>,
    /// Accounts whose provider does not match (binding accounts to a plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatches: Option<Vec<serde_json::Value>>,
    /// The current status of the object (an execution that is not pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The input field an invalid-argument error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Returns the generic message of an HTTP status for error responses produced outside
/// the handlers (the router's 405, a panic), in the house style: lowercase.
pub(crate) fn generic_message(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "not found".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "expected a json body (content-type: application/json)".to_owned()
        }
        StatusCode::INTERNAL_SERVER_ERROR => "internal server error".to_owned(),
        other => other
            .canonical_reason()
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| format!("http status {}", other.as_u16())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn an_internal_error_never_shows_its_detail() {
        let mut error = ApiError::internal();
        error.message = "relation api_keys does not exist".to_owned();
        let response = error_response(error);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body_json(response).await,
            serde_json::json!({"error": "internal server error"})
        );
    }

    #[tokio::test]
    async fn a_conflict_keeps_its_extra_fields() {
        let response =
            error_response(ApiError::conflict("execution is not pending").with_status("approved"));
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = body_json(response).await;
        assert_eq!(body["status"], "approved");
    }

    #[test]
    fn a_bare_transport_failure_names_the_backend() {
        let error = grpc_error("accounts", tonic::Status::unavailable("tcp connect error"));
        assert_eq!(error.0.message, "accounts service unavailable");
        assert_eq!(error.0.http_status(), 503);
    }

    #[test]
    fn a_status_with_details_is_rebuilt_exactly() {
        let original = ApiError::new(ErrorCode::Gone, "approval token expired");
        let error = grpc_error("executor", tonic::Status::from(original.clone()));
        assert_eq!(error.0, original);
        assert_eq!(error.0.http_status(), 410);
    }
}
