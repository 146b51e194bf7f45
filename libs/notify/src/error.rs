//! The error type of the notification library. Messages never hold a target URL, a
//! secret or a token: a caller may log them or answer with them.

use cudly_common::config::ConfigError;
use cudly_common::{ApiError, ErrorCode};

use crate::crypto::CryptoError;

/// A failure of a notification operation (channels, outbox, dispatcher).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// An error with a precise code for the caller: an invalid channel, a taken name, a
    /// refused target.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// A database error; UNAVAILABLE or INTERNAL (detail logged) at the edge.
    #[error("database error while {context}")]
    Db {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A stored secret that does not decrypt with the configured keys.
    #[error("notification secrets: {0}")]
    Crypto(#[from] CryptoError),
    /// A stored row the library cannot read back (unknown kind, broken payload).
    #[error("corrupt notification row: {0}")]
    Corrupt(String),
    /// The HTTP client could not be built (TLS set-up).
    #[error("notification http client: {0}")]
    HttpClient(String),
    /// A setting the sender cannot work with (the SMTP relay's).
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// The result of notification operations.
pub type NotifyResult<T> = Result<T, NotifyError>;

impl NotifyError {
    /// Returns a database error raised while doing `context`.
    pub fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Db { context, source }
    }

    /// Returns true when the database could not be reached.
    pub fn is_unavailable(&self) -> bool {
        match self {
            NotifyError::Db { source, .. } => cudly_common::db::is_unavailable(source),
            NotifyError::Api(error) => error.code == ErrorCode::Unavailable,
            NotifyError::Crypto(_)
            | NotifyError::Corrupt(_)
            | NotifyError::HttpClient(_)
            | NotifyError::Config(_) => false,
        }
    }

    /// Returns true when the notification tables or their schema do not exist yet: the
    /// service's loops start before its migrations have run.
    pub fn is_missing_schema(&self) -> bool {
        match self {
            NotifyError::Db { source, .. } => source
                .as_database_error()
                .and_then(|database| database.code())
                .is_some_and(|code| code == "42P01" || code == "3F000"),
            _ => false,
        }
    }

    /// Returns the error's text for a log line: a database error with its kind (never
    /// a connection detail).
    pub fn log_text(&self) -> String {
        match self {
            NotifyError::Db { context, source } => {
                format!(
                    "database error while {context}: {}",
                    cudly_common::db::error_kind(source)
                )
            }
            other => other.to_string(),
        }
    }

    /// Returns the error as the API reports it; database and internal details are logged
    /// here and replaced by a generic message.
    pub fn into_api_error(self) -> ApiError {
        match self {
            NotifyError::Api(error) => error,
            NotifyError::Db { context, source } => cudly_common::grpc::db_error(context, source),
            other => {
                tracing::error!(error = %other, "notification error");
                ApiError::internal()
            }
        }
    }
}
