//! Idempotency (docs/design/DOMAIN.md "Idempotency"): the shape of the keys a client
//! sends and of the request hash that goes with them, and the deterministic tokens a
//! purchase carries.
//!
//! Every purchase of item `i` in a lineage carries `sha256("<lineage key>:<i>")` so that
//! any re-drive or retry of the same lineage presents the same token to the cloud.

use sha2::{Digest, Sha256};

use crate::ApiError;

/// The HTTP header that makes an execution creation idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Longest Idempotency-Key or creation key accepted.
pub const MAX_KEY_CHARS: usize = 255;

/// Checks an Idempotency-Key or creation key: 1 to 255 printable ASCII characters, no
/// spaces. The error names `field` and never repeats the key.
pub fn check_key(field: &str, key: &str) -> Result<(), ApiError> {
    let well_formed =
        !key.is_empty() && key.len() <= MAX_KEY_CHARS && key.bytes().all(|b| b.is_ascii_graphic());
    if !well_formed {
        return Err(ApiError::invalid_field(
            field,
            format!("must be 1 to {MAX_KEY_CHARS} printable ascii characters"),
        ));
    }
    Ok(())
}

/// Checks the hash of the request an Idempotency-Key came with: 64 lowercase hex
/// characters (SHA-256), required with the key.
pub fn check_request_hash(hash: Option<&str>) -> Result<&str, ApiError> {
    match hash {
        Some(hash)
            if hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hash)
        }
        Some(_) => Err(ApiError::invalid_field(
            "request_hash",
            "must be 64 lowercase hex characters",
        )),
        None => Err(ApiError::invalid_field(
            "request_hash",
            "is required with idempotency_key",
        )),
    }
}

/// Tag key under which the token is stored on commitments that can carry tags.
pub const TAG_KEY: &str = "cudly-idempotency-token";

/// Number of hex characters of the token kept in a reservation id.
const RESERVATION_TOKEN_CHARS: usize = 40;

/// Returns the lowercase hex SHA-256 of `"<lineage_key>:<index>"` (64 characters).
pub fn derive_token(lineage_key: &str, index: u32) -> String {
    let digest = Sha256::digest(format!("{lineage_key}:{index}").as_bytes());
    hex::encode(digest)
}

/// Returns `<prefix><first 40 hex of token>`, keeping only `[A-Za-z0-9-]`, the shape
/// every AWS reservation-id field accepts.
pub fn reservation_id(prefix: &str, token: &str) -> String {
    let token_part: String = token.chars().take(RESERVATION_TOKEN_CHARS).collect();
    format!("{prefix}{token_part}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// Returns the token as logs may show it: its first 8 characters and `...`.
pub fn mask_token(token: &str) -> String {
    let head: String = token.chars().take(8).collect();
    format!("{head}...")
}

/// Returns the lineage key of a child execution: `"<root key>:<account uuid>"`.
pub fn child_lineage_key(root_key: &str, account_id: &str) -> String {
    format!("{root_key}:{account_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const FIRST: &str = "9094316e761d7af39d0790a8a4228582aa22cbaf6e01606eff3f578013f10633";

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert!(check_key("k", "abc-123").is_ok());
        for bad in ["", "has space", "caf\u{e9}", &"x".repeat(MAX_KEY_CHARS + 1)] {
            let error = check_key("Idempotency-Key", bad).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("Idempotency-Key"));
        }
        assert!(check_key("k", &"x".repeat(MAX_KEY_CHARS)).is_ok());
    }

    #[test]
    fn a_request_hash_is_lowercase_hex_sha256() {
        assert_eq!(check_request_hash(Some(FIRST)), Ok(FIRST));
        assert!(check_request_hash(Some(&FIRST.to_uppercase())).is_err());
        assert!(check_request_hash(Some("abc")).is_err());
        assert!(check_request_hash(None).is_err());
    }

    #[test]
    fn derive_token_matches_the_pinned_root_vector() {
        assert_eq!(derive_token(ROOT, 0), FIRST);
    }

    #[test]
    fn derive_token_matches_the_pinned_child_vector() {
        let child = child_lineage_key(ROOT, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
        assert_eq!(
            derive_token(&child, 2),
            "e2924277f2e81e6e9941409ade3e665c78c7468885c491ea51f1a70596dbdfc1"
        );
    }

    #[test]
    fn reservation_id_keeps_the_prefix_and_forty_hex_chars() {
        assert_eq!(
            reservation_id("rds-id-", FIRST),
            "rds-id-9094316e761d7af39d0790a8a4228582aa22cbaf"
        );
    }

    #[test]
    fn reservation_id_drops_characters_aws_refuses() {
        assert_eq!(reservation_id("a_b.", "c:d"), "abcd");
    }

    #[test]
    fn mask_token_shows_eight_chars_and_an_ellipsis() {
        assert_eq!(mask_token(FIRST), "9094316e...");
    }

    #[test]
    fn tokens_differ_by_index_and_by_lineage() {
        assert_ne!(derive_token(ROOT, 0), derive_token(ROOT, 1));
        assert_ne!(derive_token(ROOT, 0), derive_token("other", 0));
        assert_eq!(derive_token(ROOT, 0).len(), 64);
    }
}
