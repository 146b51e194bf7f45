//! Identity: which account a request belongs to, from the access key id of its SigV4
//! credential scope. Signatures are not verified; the key id is enough to attribute a
//! call, which is all the system under test depends on.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protocol::AwsError;
use crate::state::SandboxState;

/// Session credentials handed out by STS.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub account_id: String,
    /// The ARN GetCallerIdentity reports for the session.
    pub arn: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("arn", &self.arn)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Who signed a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Principal {
    pub account_id: String,
    pub arn: String,
    pub user_id: String,
    pub access_key_id: String,
    /// Whether the key is a long-lived one (GetSessionToken refuses session keys).
    pub long_lived: bool,
}

/// Resolves the account of `access_key_id`, refusing unknown, disabled and expired
/// keys the way AWS does.
pub(crate) fn authenticate(
    state: &SandboxState,
    access_key_id: &str,
    session_token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Principal, AwsError> {
    if let Some((account_id, key)) = state.long_lived_key(access_key_id) {
        if key.disabled {
            return Err(AwsError::invalid_client_token_id());
        }
        return Ok(Principal {
            account_id: account_id.to_string(),
            arn: user_arn(account_id),
            user_id: stable_id("AIDA", access_key_id),
            access_key_id: access_key_id.to_string(),
            long_lived: true,
        });
    }
    let Some(session) = state.sessions.get(access_key_id) else {
        return Err(AwsError::invalid_client_token_id());
    };
    if session_token.is_some_and(|token| token != session.session_token) {
        return Err(AwsError::invalid_client_token_id());
    }
    if session.expires_at <= now {
        return Err(AwsError::expired_token());
    }
    Ok(Principal {
        account_id: session.account_id.clone(),
        arn: session.arn.clone(),
        user_id: session.user_id.clone(),
        access_key_id: access_key_id.to_string(),
        long_lived: false,
    })
}

/// The ARN of the IAM user that owns an account's long-lived keys.
pub(crate) fn user_arn(account_id: &str) -> String {
    format!("arn:aws:iam::{account_id}:user/sandbox")
}

/// Returns `prefix` followed by 17 characters derived from `seed`, the shape of IAM
/// unique ids (`AIDA...`, `AROA...`).
pub(crate) fn stable_id(prefix: &str, seed: &str) -> String {
    let digest = hex::encode_upper(Sha256::digest(seed.as_bytes()));
    format!("{prefix}{}", &digest[..17])
}

/// Creates session credentials for `account_id` that expire after `seconds`.
pub(crate) fn new_session(
    account_id: &str,
    arn: String,
    user_id: String,
    seconds: u64,
    now: DateTime<Utc>,
) -> Session {
    let mut rng = rand::rng();
    let key_suffix: String = (0..16)
        .map(|_| {
            let index = rng.random_range(0..36u8);
            char::from(if index < 10 {
                b'0' + index
            } else {
                b'A' + index - 10
            })
        })
        .collect();
    let secret: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let token: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(120)
        .map(char::from)
        .collect();
    let lifetime = chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000));
    Session {
        access_key_id: format!("ASIA{key_suffix}"),
        secret_access_key: secret,
        session_token: format!("SANDBOX{token}"),
        account_id: account_id.to_string(),
        arn,
        user_id,
        expires_at: now + lifetime,
    }
}

/// The parts of a role ARN `arn:aws:iam::ACCOUNT:role/[PATH/]NAME`.
pub(crate) fn parse_role_arn(role_arn: &str) -> Option<(String, String)> {
    let rest = role_arn.strip_prefix("arn:aws:iam::")?;
    let (account_id, resource) = rest.split_once(':')?;
    let role_path = resource.strip_prefix("role/")?;
    let role_name = role_path.rsplit('/').next()?;
    if account_id.is_empty() || role_name.is_empty() {
        return None;
    }
    Some((account_id.to_string(), role_name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_with_paths_name_the_last_segment() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/service/Purchaser"),
            Some(("123456789012".into(), "Purchaser".into()))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/x"), None);
    }

    #[test]
    fn session_keys_look_like_aws_session_keys() {
        let session = new_session("1", "arn".into(), "id".into(), 60, Utc::now());
        assert!(session.access_key_id.starts_with("ASIA"));
        assert_eq!(session.access_key_id.len(), 20);
        assert_eq!(session.secret_access_key.len(), 40);
    }
}
