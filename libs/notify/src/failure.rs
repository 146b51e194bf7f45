//! Why a delivery failed, as stored in `last_error`, shown by `GET /api/notifications`
//! and logged. The one home of that text: every variant's message is built from
//! status codes and error kinds only, never from a URL (a webhook's path or query may
//! hold its token), a receiver's reply, or another library's error message.

use std::time::Duration;

use crate::crypto::CryptoError;
use crate::target::TargetError;

/// A failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryFailure {
    #[error("the receiver answered http {code}")]
    Status {
        code: u16,
        /// The receiver's `Retry-After`, in seconds (429, 503).
        retry_after: Option<u64>,
    },
    #[error("the receiver answered a redirect (http {0}), which is not followed")]
    Redirect(u16),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Target(TargetError),
    #[error("connection failed{}", io_kind_suffix(.0))]
    Connect(Option<std::io::ErrorKind>),
    #[error("the request failed")]
    Request,
    #[error("the smtp server refused the message (code {code})")]
    SmtpRefused { code: String, permanent: bool },
    #[error("the smtp exchange failed")]
    Smtp,
    #[error("an email recipient is not a valid address")]
    BadRecipient,
    #[error("email is not configured on this server")]
    EmailUnavailable,
    #[error("{0}")]
    Secrets(CryptoError),
    #[error("the channel was deleted")]
    ChannelDeleted,
    #[error("the event is missing")]
    EventMissing,
    #[error("the stored channel or event cannot be read")]
    Corrupt,
    #[error("gave up after {0} attempts")]
    GaveUp(u32),
}

fn io_kind_suffix(kind: &Option<std::io::ErrorKind>) -> String {
    kind.map(|kind| format!(": {kind}")).unwrap_or_default()
}

impl DeliveryFailure {
    /// Returns true when trying again cannot help: the delivery fails at once.
    pub fn is_permanent(&self) -> bool {
        match self {
            DeliveryFailure::SmtpRefused { permanent, .. } => *permanent,
            DeliveryFailure::BadRecipient
            | DeliveryFailure::ChannelDeleted
            | DeliveryFailure::EventMissing
            | DeliveryFailure::Corrupt
            | DeliveryFailure::GaveUp(_) => true,
            DeliveryFailure::Status { .. }
            | DeliveryFailure::Redirect(_)
            | DeliveryFailure::Timeout
            | DeliveryFailure::Target(_)
            | DeliveryFailure::Connect(_)
            | DeliveryFailure::Request
            | DeliveryFailure::Smtp
            | DeliveryFailure::EmailUnavailable
            | DeliveryFailure::Secrets(_) => false,
        }
    }

    /// Returns true when the failure says something about the channel (its receiver,
    /// its target, its secrets), so it counts towards marking the channel failing.
    pub fn counts_against_channel(&self) -> bool {
        !matches!(
            self,
            DeliveryFailure::ChannelDeleted | DeliveryFailure::EventMissing
        )
    }

    /// Returns how long the receiver asked to be left alone, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryFailure::Status {
                retry_after: Some(seconds),
                ..
            } => Some(Duration::from_secs(*seconds)),
            _ => None,
        }
    }

    /// Classifies an HTTP client error by its kind and source types only.
    pub(crate) fn from_http(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            return DeliveryFailure::Timeout;
        }
        if let Some(target) = find_source::<TargetError>(error) {
            return DeliveryFailure::Target(*target);
        }
        if error.is_connect() {
            return DeliveryFailure::Connect(
                find_source::<std::io::Error>(error).map(std::io::Error::kind),
            );
        }
        DeliveryFailure::Request
    }
}

/// Returns the first error of type `T` in `error`'s source chain.
fn find_source<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = error.source();
    while let Some(source) = current {
        if let Some(found) = source.downcast_ref::<T>() {
            return Some(found);
        }
        current = source.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_codes_and_kinds_only() {
        assert_eq!(
            DeliveryFailure::Status {
                code: 500,
                retry_after: None
            }
            .to_string(),
            "the receiver answered http 500"
        );
        assert_eq!(
            DeliveryFailure::Connect(Some(std::io::ErrorKind::ConnectionRefused)).to_string(),
            "connection failed: connection refused"
        );
        assert_eq!(
            DeliveryFailure::Connect(None).to_string(),
            "connection failed"
        );
        assert_eq!(
            DeliveryFailure::Target(TargetError::Forbidden).to_string(),
            TargetError::Forbidden.to_string()
        );
    }

    #[test]
    fn only_hopeless_failures_are_permanent() {
        assert!(DeliveryFailure::ChannelDeleted.is_permanent());
        assert!(
            DeliveryFailure::SmtpRefused {
                code: "550".to_owned(),
                permanent: true
            }
            .is_permanent()
        );
        assert!(!DeliveryFailure::Timeout.is_permanent());
        assert!(
            !DeliveryFailure::Status {
                code: 410,
                retry_after: None
            }
            .is_permanent()
        );
        assert_eq!(
            DeliveryFailure::Status {
                code: 429,
                retry_after: Some(30)
            }
            .retry_after(),
            Some(Duration::from_secs(30))
        );
    }
}
