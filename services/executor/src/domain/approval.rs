//! Approval tokens (docs/design/DOMAIN.md "Executions"): 32 random bytes in hex, shown once, stored
//! as SHA-256, compared in constant time, valid until approval_expires_at.

use chrono::{DateTime, Utc};
use cudly_common::{ApiError, ErrorCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::status::ExecutionStatus;

/// A freshly generated approval token. `Debug` never shows it.
pub struct ApprovalToken {
    token: String,
    hash: [u8; 32],
}

impl std::fmt::Debug for ApprovalToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ApprovalToken([redacted])")
    }
}

impl ApprovalToken {
    /// Returns a new random token.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        let token = hex::encode(bytes);
        let hash = hash_token(&token);
        Self { token, hash }
    }

    /// The token itself, for the one creation reply that shows it.
    pub fn reveal(&self) -> &str {
        &self.token
    }

    /// The SHA-256 stored on the row.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
}

/// Returns the SHA-256 of a presented token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// Returns true when `presented` hashes to `stored_hash`, in constant time.
pub fn token_matches(presented: &str, stored_hash: Option<&[u8]>) -> bool {
    let Some(stored) = stored_hash else {
        return false;
    };
    let presented_hash = hash_token(presented);
    bool::from(presented_hash.as_slice().ct_eq(stored))
}

/// What an approve, cancel or preview sees of a root.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalView<'a> {
    pub status: ExecutionStatus,
    pub token_hash: Option<&'a [u8]>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Returns true when the approval window of a pending root has passed.
pub fn is_expired(view: &ApprovalView<'_>, now: DateTime<Utc>) -> bool {
    view.status == ExecutionStatus::Expired
        || (view.status == ExecutionStatus::Pending
            && view.expires_at.is_some_and(|expires_at| expires_at <= now))
}

/// Checks an approve or cancel request: a presented token must match (403), the
/// approval window must be open (410), the root must be pending (409 with `status`).
/// Without a token the caller is an admin, whose authority the gateway checked.
pub fn check_decision(
    view: &ApprovalView<'_>,
    presented: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if let Some(token) = presented
        && !token_matches(token, view.token_hash)
    {
        return Err(ApiError::permission_denied("wrong approval token"));
    }
    if is_expired(view, now) {
        return Err(ApiError::new(ErrorCode::Gone, "approval token expired"));
    }
    if view.status != ExecutionStatus::Pending {
        return Err(ApiError::conflict(format!(
            "execution is not pending (it is {})",
            view.status
        ))
        .with_status(view.status.as_str()));
    }
    Ok(())
}

/// Checks a preview: the token must match (403) and be unexpired (410). Returns
/// whether a POST would approve (the root is pending).
pub fn check_preview(
    view: &ApprovalView<'_>,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    if !token_matches(presented, view.token_hash) {
        return Err(ApiError::permission_denied("wrong approval token"));
    }
    if is_expired(view, now) {
        return Err(ApiError::new(ErrorCode::Gone, "approval token expired"));
    }
    Ok(view.status == ExecutionStatus::Pending)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn pending(token: &ApprovalToken, expires_in: TimeDelta) -> (Vec<u8>, DateTime<Utc>) {
        (token.hash().to_vec(), Utc::now() + expires_in)
    }

    #[test]
    fn tokens_are_64_hex_chars_and_unique() {
        let first = ApprovalToken::generate();
        let second = ApprovalToken::generate();
        assert_eq!(first.reveal().len(), 64);
        assert!(first.reveal().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(first.reveal(), second.reveal());
        assert!(!format!("{first:?}").contains(first.reveal()));
    }

    #[test]
    fn the_right_token_approves_a_pending_root() {
        let token = ApprovalToken::generate();
        let (hash, expires_at) = pending(&token, TimeDelta::days(7));
        let view = ApprovalView {
            status: ExecutionStatus::Pending,
            token_hash: Some(&hash),
            expires_at: Some(expires_at),
        };
        assert!(check_decision(&view, Some(token.reveal()), Utc::now()).is_ok());
        assert!(check_decision(&view, None, Utc::now()).is_ok());
    }

    #[test]
    fn a_wrong_token_is_forbidden_before_anything_else_is_said() {
        let token = ApprovalToken::generate();
        let (hash, expires_at) = pending(&token, TimeDelta::days(-1));
        let view = ApprovalView {
            status: ExecutionStatus::Approved,
            token_hash: Some(&hash),
            expires_at: Some(expires_at),
        };
        let error = check_decision(&view, Some(&"0".repeat(64)), Utc::now()).unwrap_err();
        assert_eq!(error.http_status(), 403);
        assert_eq!(error.status, None);
    }

    #[test]
    fn an_expired_token_is_gone() {
        let token = ApprovalToken::generate();
        let (hash, expires_at) = pending(&token, TimeDelta::seconds(-1));
        let view = ApprovalView {
            status: ExecutionStatus::Pending,
            token_hash: Some(&hash),
            expires_at: Some(expires_at),
        };
        let error = check_decision(&view, Some(token.reveal()), Utc::now()).unwrap_err();
        assert_eq!(error.http_status(), 410);
        assert_eq!(
            check_preview(&view, token.reveal(), Utc::now())
                .unwrap_err()
                .http_status(),
            410
        );
    }

    #[test]
    fn a_root_that_is_not_pending_is_a_conflict_naming_its_status() {
        let token = ApprovalToken::generate();
        let (hash, expires_at) = pending(&token, TimeDelta::days(7));
        let view = ApprovalView {
            status: ExecutionStatus::Approved,
            token_hash: Some(&hash),
            expires_at: Some(expires_at),
        };
        let error = check_decision(&view, Some(token.reveal()), Utc::now()).unwrap_err();
        assert_eq!(error.http_status(), 409);
        assert_eq!(error.status.as_deref(), Some("approved"));
        assert!(!check_preview(&view, token.reveal(), Utc::now()).unwrap());
    }

    #[test]
    fn a_root_without_a_token_accepts_no_token() {
        let view = ApprovalView {
            status: ExecutionStatus::Approved,
            token_hash: None,
            expires_at: None,
        };
        assert_eq!(
            check_decision(&view, Some("anything"), Utc::now())
                .unwrap_err()
                .http_status(),
            403
        );
    }
}
