//! Errors of the sandbox itself (as opposed to the AWS errors it emulates, see
//! [`crate::protocol::AwsError`]).

use std::path::PathBuf;

/// Errors raised while configuring, starting or persisting the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serialize state: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("invalid account: {0}")]
    InvalidAccount(String),
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    #[error("invalid behaviour: {0}")]
    InvalidBehaviour(String),
    #[error("invalid price: {0}")]
    InvalidPrice(String),
    /// A Cost Explorer recommendation seed the sandbox cannot answer with.
    #[error("invalid recommendation: {0}")]
    InvalidRecommendation(String),
    /// A price update naming a service or offering the sandbox does not know.
    #[error("unknown offering: {0}")]
    UnknownOffering(String),
}

/// Result alias of this crate.
pub type SandboxResult<T> = Result<T, SandboxError>;
