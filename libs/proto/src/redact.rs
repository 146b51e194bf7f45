//! Hand-written `Debug` for the messages that carry a secret or a token (their derived
//! `Debug` is skipped in `build.rs`), so that logging a request or reply with `{:?}` never
//! prints a credential, an approval token or a full idempotency token.

use std::fmt;

use crate::accounts::v1::{Credentials, ResolveCredentialsResponse};
use crate::executor::v1::resolve_purchase_attempt_request::{Resolution, Target};
use crate::executor::v1::{
    ApproveExecutionRequest, CancelExecutionRequest, CreateExecutionResponse,
    PreviewApprovalRequest, ResolvePurchaseAttemptRequest,
};
use crate::planner::v1::StartExecutionResponse;

const REDACTED: &str = "[redacted]";

/// Formats a present secret as `[redacted]` and an absent one as `None`.
struct RedactedOption(bool);

impl fmt::Debug for RedactedOption {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 {
            write!(formatter, "Some({REDACTED})")
        } else {
            formatter.write_str("None")
        }
    }
}

/// Formats a string as `[redacted]` (or `""` when empty, which is worth seeing).
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            formatter.write_str("\"\"")
        } else {
            formatter.write_str(REDACTED)
        }
    }
}

/// Formats an idempotency token masked: its first 8 characters and `...`.
struct MaskedToken<'a>(&'a str);

impl fmt::Debug for MaskedToken<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(8).collect();
        write!(formatter, "\"{prefix}...\"")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.fields.keys().collect();
        keys.sort();
        formatter
            .debug_struct("Credentials")
            .field("r#type", &self.r#type)
            .field("field_keys", &keys)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ResolveCredentialsResponse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ResolveCredentialsResponse")
            .field("access_key_id", &Redacted(&self.access_key_id))
            .field("secret_access_key", &Redacted(&self.secret_access_key))
            .field("session_token", &Redacted(&self.session_token))
            .field("expiration", &self.expiration)
            .field("external_id", &self.external_id)
            .field("provider", &self.provider)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl fmt::Debug for CreateExecutionResponse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CreateExecutionResponse")
            .field("execution", &self.execution)
            .field(
                "approval_token",
                &RedactedOption(self.approval_token.is_some()),
            )
            .field("created", &self.created)
            .finish()
    }
}

impl fmt::Debug for StartExecutionResponse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StartExecutionResponse")
            .field("execution", &self.execution)
            .field(
                "approval_token",
                &RedactedOption(self.approval_token.is_some()),
            )
            .field("created", &self.created)
            .finish()
    }
}

impl fmt::Debug for ApproveExecutionRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ApproveExecutionRequest")
            .field("id", &self.id)
            .field("token", &RedactedOption(self.token.is_some()))
            .field("actor", &self.actor)
            .field("actor_key_id", &self.actor_key_id)
            .finish()
    }
}

impl fmt::Debug for CancelExecutionRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CancelExecutionRequest")
            .field("id", &self.id)
            .field("token", &RedactedOption(self.token.is_some()))
            .field("actor", &self.actor)
            .field("actor_key_id", &self.actor_key_id)
            .finish()
    }
}

impl fmt::Debug for PreviewApprovalRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PreviewApprovalRequest")
            .field("id", &self.id)
            .field("token", &Redacted(&self.token))
            .finish()
    }
}

impl fmt::Debug for ResolvePurchaseAttemptRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ResolvePurchaseAttemptRequest")
            .field("target", &self.target)
            .field("resolution", &self.resolution)
            .field("actor", &self.actor)
            .finish()
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::IdempotencyToken(token) => formatter
                .debug_tuple("IdempotencyToken")
                .field(&MaskedToken(token))
                .finish(),
            Target::Item(item) => formatter.debug_tuple("Item").field(item).finish(),
        }
    }
}

impl fmt::Debug for Resolution {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolution::Bought(bought) => formatter.debug_tuple("Bought").field(bought).finish(),
            Resolution::NotBought(not_bought) => formatter
                .debug_tuple("NotBought")
                .field(not_bought)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn credentials_debug_shows_keys_not_values() {
        let credentials = Credentials {
            r#type: "aws_access_keys".to_owned(),
            fields: HashMap::from([
                (
                    "access_key_id".to_owned(),
                    "AKIAIOSFODNN7EXAMPLE".to_owned(),
                ),
                ("secret_access_key".to_owned(), SECRET.to_owned()),
            ]),
        };
        let text = format!("{credentials:?}");
        assert!(text.contains("secret_access_key"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
    }

    #[test]
    fn resolved_credentials_debug_redacts_secrets() {
        let response = ResolveCredentialsResponse {
            access_key_id: "ASIAEXAMPLEKEYID".to_owned(),
            secret_access_key: SECRET.to_owned(),
            session_token: "FwoGZXIvYXdzEXAMPLESESSION".to_owned(),
            external_id: "123456789012".to_owned(),
            ..Default::default()
        };
        let text = format!("{response:?}");
        assert!(text.contains("123456789012"), "{text}");
        for secret in ["ASIAEXAMPLEKEYID", SECRET, "FwoGZXIvYXdzEXAMPLESESSION"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn approval_tokens_never_appear_in_debug() {
        let texts = [
            format!(
                "{:?}",
                CreateExecutionResponse {
                    approval_token: Some(TOKEN.to_owned()),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                StartExecutionResponse {
                    approval_token: Some(TOKEN.to_owned()),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                ApproveExecutionRequest {
                    token: Some(TOKEN.to_owned()),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                CancelExecutionRequest {
                    token: Some(TOKEN.to_owned()),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                PreviewApprovalRequest {
                    id: "x".to_owned(),
                    token: TOKEN.to_owned(),
                }
            ),
        ];
        for text in texts {
            assert!(!text.contains(TOKEN), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
    }

    #[test]
    fn idempotency_token_is_masked_in_debug() {
        let request = ResolvePurchaseAttemptRequest {
            target: Some(Target::IdempotencyToken(TOKEN.to_owned())),
            resolution: Some(Resolution::NotBought(Default::default())),
            actor: "key:ops".to_owned(),
            actor_key_id: None,
        };
        let text = format!("{request:?}");
        assert!(!text.contains(TOKEN), "{text}");
        assert!(text.contains("01234567..."), "{text}");
    }
}
