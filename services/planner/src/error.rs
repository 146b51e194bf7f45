//! The planner's error type: every failure of an operation, turned into a
//! `tonic::Status` through the shared error-code table at the edge, where a database
//! error is logged, once.

use cudly_common::{ApiError, ErrorCode};

/// Everything a planner operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// A rule of the API: bad input, not found, conflict.
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
    /// A database error; UNAVAILABLE or INTERNAL at the edge, the detail logged there.
    #[error("database error while {context}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A broken invariant (a row the schema should not allow); logged, answered
    /// INTERNAL.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The result of a planner operation.
pub type PlannerResult<T> = Result<T, PlannerError>;

impl From<cudly_vocabulary::FieldError> for PlannerError {
    fn from(error: cudly_vocabulary::FieldError) -> Self {
        PlannerError::Api(error.into())
    }
}

impl PlannerError {
    /// Returns the error as the API reports it; database and internal details are
    /// logged here and replaced by a generic message.
    pub fn into_api_error(self) -> ApiError {
        match self {
            PlannerError::Api(error) => error,
            PlannerError::AccountsUnavailable | PlannerError::ExecutorUnavailable => {
                ApiError::unavailable(self.to_string())
            }
            PlannerError::StaleFencingToken { .. } => {
                ApiError::new(ErrorCode::StaleFencingToken, self.to_string())
            }
            PlannerError::Database { context, source } => {
                cudly_common::grpc::db_error(context, source)
            }
            PlannerError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<PlannerError> for tonic::Status {
    fn from(error: PlannerError) -> Self {
        error.into_api_error().into()
    }
}

/// Returns a mapper of database errors raised while doing `context`.
pub fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> PlannerError {
    move |source| PlannerError::Database { context, source }
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
        let error = ApiError::from_status(&status);
        assert_eq!(error.code, ErrorCode::StaleFencingToken);
        assert!(error.message.contains("fire_due_plans"));
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
