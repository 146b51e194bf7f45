//! The sweeper's error type: why a run could not act or be recorded. Its text is what
//! `sweep_runs.error` stores, so it never holds a URL, a token or a database message.

use cudly_common::{ApiError, ErrorCode};

/// A failure of the sweeper.
#[derive(Debug, thiserror::Error)]
pub enum SweeperError {
    /// Redis (the task locks) failed.
    #[error("lock: {0}")]
    Lock(#[from] cudly_lock::LockError),
    /// Postgres failed while doing `context`.
    #[error("database error while {context}: {}", cudly_common::db::error_kind(.source))]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A call to the executor or the planner failed.
    #[error("{call}: {error}")]
    Call { call: &'static str, error: ApiError },
}

/// The result of sweeper operations.
pub type SweeperResult<T> = Result<T, SweeperError>;

impl SweeperError {
    /// Returns a database error raised while doing `context`.
    pub fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { context, source }
    }

    /// Returns the error as the API reports it (RunTask). The detail is logged here,
    /// once.
    pub fn into_api_error(self) -> ApiError {
        match self {
            SweeperError::Database { context, source } => {
                cudly_common::grpc::db_error(context, source)
            }
            SweeperError::Lock(error) => {
                tracing::warn!(%error, "redis unavailable");
                ApiError::unavailable("redis unavailable")
            }
            SweeperError::Call { call, error } => {
                tracing::warn!(call, error = %error, "a call of the sweeper failed");
                error
            }
        }
    }
}

/// Returns true when a service refused the sweeper's fencing token as older than one
/// it has seen: another sweeper holds the task now. Recognised by its code in the
/// shared table, never by a message or by the bare gRPC code.
pub fn is_stale_fencing(status: &tonic::Status) -> bool {
    ApiError::from_status(status).code == ErrorCode::StaleFencingToken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stale_fencing_code_means_the_lock_was_lost() {
        let stale: tonic::Status =
            ApiError::new(ErrorCode::StaleFencingToken, "stale fencing token").into();
        assert!(is_stale_fencing(&stale));
        assert_eq!(stale.code(), tonic::Code::Aborted);
        // Another ABORTED (a transaction conflict, a proxy) is not a lost lock.
        assert!(!is_stale_fencing(&tonic::Status::aborted("conflict")));
        let conflict: tonic::Status = ApiError::conflict("stale fencing token").into();
        assert!(!is_stale_fencing(&conflict));
    }
}
