//! The planner's error type and its mapping to gRPC statuses through the shared
//! error-code table.

use cudly_common::ApiError;
use cudly_common::grpc::db_error;
use cudly_proto::common::v1::ErrorDetail;

/// The ErrorDetail code of a refused fencing token.
pub const STALE_FENCING_TOKEN: &str = "stale_fencing_token";

/// Everything a planner operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// A rule of the API: bad input, not found, conflict, the database down.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The accounts service could not answer (down, timed out, refused the call).
    #[error("accounts service unavailable")]
    AccountsUnavailable,
    /// The executor service could not answer (down, timed out, not implemented yet).
    #[error("executor service unavailable")]
    ExecutorUnavailable,
    /// The sweeper's fencing token is lower than one already seen for its task.
    #[error("stale fencing token for task {task}: {presented} is older than {highest}")]
    StaleFencingToken {
        task: String,
        presented: i64,
        highest: i64,
    },
}

impl From<cudly_vocabulary::FieldError> for PlannerError {
    fn from(error: cudly_vocabulary::FieldError) -> Self {
        PlannerError::Api(error.into())
    }
}

/// The result of a planner operation.
pub type PlannerResult<T> = Result<T, PlannerError>;

impl PlannerError {
    /// Returns the error as the API reports it (the stale-token case has its own code
    /// outside the table and is built in [`From<PlannerError> for tonic::Status`]).
    pub fn to_api_error(&self) -> ApiError {
        match self {
            PlannerError::Api(error) => error.clone(),
            PlannerError::AccountsUnavailable => {
                ApiError::unavailable("accounts service unavailable")
            }
            PlannerError::ExecutorUnavailable => {
                ApiError::unavailable("executor service unavailable")
            }
            PlannerError::StaleFencingToken { .. } => ApiError::conflict(self.to_string()),
        }
    }
}

impl From<PlannerError> for tonic::Status {
    fn from(error: PlannerError) -> Self {
        match error {
            PlannerError::StaleFencingToken { .. } => {
                let detail = ErrorDetail {
                    code: STALE_FENCING_TOKEN.to_owned(),
                    message: error.to_string(),
                    ..ErrorDetail::default()
                };
                cudly_proto::status::with_error_detail(tonic::Code::Aborted, &detail)
            }
            other => other.to_api_error().into(),
        }
    }
}

/// Returns a mapper of database errors for `context` (logged there, never shown).
pub fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> PlannerError {
    move |error| PlannerError::Api(db_error(context, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_fencing_token_is_aborted_with_its_own_code() {
        let status: tonic::Status = PlannerError::StaleFencingToken {
            task: "fire_due_plans".into(),
            presented: 4,
            highest: 7,
        }
        .into();
        assert_eq!(status.code(), tonic::Code::Aborted);
        let detail = cudly_proto::status::error_detail(&status).unwrap();
        assert_eq!(detail.code, STALE_FENCING_TOKEN);
        assert!(detail.message.contains("fire_due_plans"));
    }

    #[test]
    fn unavailable_dependencies_are_named_by_role() {
        let status: tonic::Status = PlannerError::AccountsUnavailable.into();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let back = ApiError::from_status(&status);
        assert_eq!(back.message, "accounts service unavailable");
        assert_eq!(back.http_status(), 503);
        let status: tonic::Status = PlannerError::ExecutorUnavailable.into();
        assert_eq!(
            ApiError::from_status(&status).message,
            "executor service unavailable"
        );
    }
}
