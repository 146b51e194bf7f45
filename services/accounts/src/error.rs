//! The errors of the accounts service and their mapping to the shared error table.

use cudly_common::ApiError;
use cudly_common::error::NamedRef;

use crate::crypto::CryptoError;

pub type AccountsResult<T> = Result<T, AccountsError>;

/// Everything an accounts operation can fail with. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// A bad value of one input field (400, the field named).
    #[error("{field}: {problem}")]
    InvalidField { field: String, problem: String },
    /// A bad input not about one field, or with a fixed message (400).
    #[error("{message}")]
    Invalid {
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    NotFound(String),
    /// The same (provider, external_id) exists (409).
    #[error("{0}")]
    AlreadyExists(String),
    /// The account is the bastion of other accounts (409, naming them).
    #[error("account is the bastion of other accounts")]
    BastionInUse { dependents: Vec<NamedRef> },
    /// The account's state forbids the call (FAILED_PRECONDITION, HTTP 409): disabled,
    /// no credentials, provider not supported yet.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A dependency (AWS) failed; the message is sanitised (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("database error in {context}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// Stored credentials cannot be opened (wrong key, tampered row): internal.
    #[error("credentials of account {account_id} ({credential_type}): {source}")]
    Crypto {
        account_id: uuid::Uuid,
        credential_type: &'static str,
        source: CryptoError,
    },
    /// A bug or a row that breaks the schema's promises; the detail is logged only.
    #[error("{0}")]
    Internal(String),
}

impl AccountsError {
    /// An error about one field; the message names it and never repeats its value.
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// A 400 with a fixed message that still names its field in the details.
    pub fn invalid_with_field(message: impl Into<String>, field: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn database(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { context, source }
    }

    /// Returns the error as the shared API error; internal details are logged here.
    pub fn into_api_error(self) -> ApiError {
        match self {
            AccountsError::InvalidField { field, problem } => {
                ApiError::invalid_field(&field, problem)
            }
            AccountsError::Invalid { message, field } => {
                let mut error = ApiError::invalid(message);
                error.field = field;
                error
            }
            AccountsError::NotFound(message) => ApiError::not_found(message),
            AccountsError::AlreadyExists(message) => ApiError::already_exists(message),
            AccountsError::BastionInUse { dependents } => {
                let names: Vec<&str> = dependents
                    .iter()
                    .map(|dependent| dependent.name.as_str())
                    .collect();
                ApiError::conflict(format!(
                    "account is the bastion of other accounts: {}",
                    names.join(", ")
                ))
                .with_dependents(dependents)
            }
            AccountsError::FailedPrecondition(message) => ApiError::conflict(message),
            AccountsError::Unavailable(message) => ApiError::unavailable(message),
            // Logs, and tells an unreachable database (503) from a refused query (500).
            AccountsError::Database { context, source } => {
                cudly_common::grpc::db_error(context, source)
            }
            AccountsError::Crypto {
                account_id,
                credential_type,
                source,
            } => {
                tracing::error!(%account_id, credential_type, error = %source, "stored credentials cannot be opened");
                ApiError::internal()
            }
            AccountsError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<AccountsError> for ApiError {
    fn from(error: AccountsError) -> Self {
        error.into_api_error()
    }
}

impl From<AccountsError> for tonic::Status {
    fn from(error: AccountsError) -> Self {
        error.into_api_error().into()
    }
}
