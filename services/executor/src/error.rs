//! The executor's error type: every failure an RPC handler or the runner meets, turned
//! into a `tonic::Status` through the shared error-code table at the edge, where a
//! database or internal error is logged, once.

use cudly_common::{ApiError, ErrorCode};

/// A failure of the executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// An error with a precise code for the caller (invalid input, not found, conflict,
    /// gone, permission denied, unavailable).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// A database error; mapped to UNAVAILABLE or INTERNAL (detail logged) at the edge.
    #[error("database error while {context}")]
    Db {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A broken invariant (corrupt row, impossible state); logged, answered INTERNAL.
    #[error("internal error: {0}")]
    Internal(String),
    /// The sweeper's fencing token is lower than the highest seen for its task.
    #[error("stale fencing token for task {task}")]
    StaleFencing { task: String },
}

impl From<cudly_vocabulary::FieldError> for ExecutorError {
    fn from(error: cudly_vocabulary::FieldError) -> Self {
        ExecutorError::Api(error.into())
    }
}

/// The result of executor operations.
pub type ExecutorResult<T> = Result<T, ExecutorError>;

impl ExecutorError {
    /// Returns a database error raised while doing `context`.
    pub fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Db { context, source }
    }

    /// Returns true when the database could not be reached (as opposed to a refused query).
    pub fn is_unavailable(&self) -> bool {
        match self {
            ExecutorError::Db { source, .. } => cudly_common::db::is_unavailable(source),
            ExecutorError::Api(error) => error.code == ErrorCode::Unavailable,
            ExecutorError::Internal(_) | ExecutorError::StaleFencing { .. } => false,
        }
    }

    /// Returns true when the schema is not migrated yet (start-up).
    pub fn is_missing_schema(&self) -> bool {
        match self {
            ExecutorError::Db { source, .. } => source
                .as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| code == "42P01" || code == "3F000"),
            _ => false,
        }
    }

    /// Returns the error as the API reports it; database and internal details are
    /// logged here and replaced by a generic message.
    pub fn into_api_error(self) -> ApiError {
        match self {
            ExecutorError::Api(error) => error,
            ExecutorError::Db { context, source } => cudly_common::grpc::db_error(context, source),
            ExecutorError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::internal()
            }
            ExecutorError::StaleFencing { task } => ApiError::new(
                ErrorCode::StaleFencingToken,
                format!("stale fencing token for task {task}"),
            ),
        }
    }
}

impl From<ExecutorError> for tonic::Status {
    fn from(error: ExecutorError) -> Self {
        error.into_api_error().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_fencing_token_is_aborted_with_its_own_code() {
        let status: tonic::Status = ExecutorError::StaleFencing {
            task: "recover_stranded".to_owned(),
        }
        .into();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert_eq!(
            ApiError::from_status(&status).code,
            ErrorCode::StaleFencingToken
        );
    }
}
