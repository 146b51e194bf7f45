use redis::RedisError;

/// The error type for every fallible operation of this crate.
///
/// Messages never include the Redis URL, since it may hold a password.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The Redis URL could not be parsed.
    #[error("invalid redis url")]
    InvalidUrl {
        #[source]
        source: RedisError,
    },
    /// The CA file a `rediss://` server is checked against could not be read.
    #[error("cannot read the redis tls ca {path}: {problem}")]
    TlsCa { path: String, problem: String },
    /// Redis could not be reached, or did not answer in time.
    #[error("redis unavailable")]
    Unavailable {
        #[source]
        source: RedisError,
    },
    /// Redis answered a command with an error.
    #[error("redis command failed")]
    Command {
        #[source]
        source: RedisError,
    },
    /// A Redis command did not answer before its deadline.
    #[error("redis did not answer in time")]
    Timeout,
    /// The fencing token source failed.
    #[error("fencing token unavailable")]
    Fencing {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The requested TTL is outside the accepted range.
    #[error("invalid lock ttl: {reason}")]
    InvalidTtl { reason: &'static str },
}

/// The result alias of this crate.
pub type LockResult<T> = Result<T, LockError>;

impl LockError {
    /// Returns a [`LockError::Fencing`] wrapping the error of a fencing token source.
    pub fn fencing(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Fencing {
            source: source.into(),
        }
    }

    /// Returns true when the error means Redis could not be reached or did not answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout)
    }

    /// Classifies a Redis error: connection and IO failures are `Unavailable`, the
    /// rest are `Command`.
    pub(crate) fn from_redis(source: RedisError) -> Self {
        if source.is_io_error()
            || source.is_connection_refusal()
            || source.is_connection_dropped()
            || source.is_timeout()
        {
            Self::Unavailable { source }
        } else {
            Self::Command { source }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_error_keeps_its_source() {
        let error = LockError::fencing("sequence missing");
        assert_eq!(error.to_string(), "fencing token unavailable");
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(source.to_string(), "sequence missing");
    }

    #[test]
    fn io_errors_are_classified_as_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = LockError::from_redis(RedisError::from(io));
        assert!(error.is_unavailable());
        assert_eq!(error.to_string(), "redis unavailable");
    }

    #[test]
    fn server_errors_are_classified_as_command_failures() {
        let source = RedisError::from((redis::ErrorKind::Client, "bad reply"));
        let error = LockError::from_redis(source);
        assert!(matches!(error, LockError::Command { .. }));
        assert!(!error.is_unavailable());
    }
}
