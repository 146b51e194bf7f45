//! Webhook signatures (docs/design/API.md "Notifications and the approval page").
//!
//! A webhook POST carries `X-Cudly-Timestamp` (unix seconds) and `X-Cudly-Signature:
//! sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` under the channel's secret (its
//! UTF-8 bytes). Signing the timestamp with the body lets a receiver refuse a replayed
//! request: [`verify`] accepts a timestamp within a tolerance of its clock only.

use std::time::Duration;

use ring::hmac;

/// The event's kind, e.g. `approval_requested`.
pub const EVENT_HEADER: &str = "X-Cudly-Event";
/// The event id: the same for every channel and every retry.
pub const EVENT_ID_HEADER: &str = "X-Cudly-Event-Id";
/// The notification (event × channel) id: the same for every retry.
pub const DELIVERY_HEADER: &str = "X-Cudly-Delivery";
/// Unix seconds at signing.
pub const TIMESTAMP_HEADER: &str = "X-Cudly-Timestamp";
/// `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Cudly-Signature";

/// How far a receiver should let a timestamp be from its clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const SCHEME: &str = "sha256=";

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the timestamp is not unix seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the tolerance: a replay or a skewed clock")]
    Stale,
    #[error("the signature is not sha256=<hex>")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
}

/// Returns what is signed: `"<timestamp>.<body>"`.
fn signed_message(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let prefix = format!("{timestamp}.");
    let mut message = Vec::with_capacity(prefix.len() + body.len());
    message.extend_from_slice(prefix.as_bytes());
    message.extend_from_slice(body);
    message
}

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// Returns the `X-Cudly-Signature` value of `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = hmac::sign(&key(secret), &signed_message(timestamp, body));
    format!("{SCHEME}{}", hex::encode(tag.as_ref()))
}

/// Checks a received webhook: `timestamp` and `signature` are the header values, `now`
/// the receiver's clock in unix seconds. The comparison takes constant time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let sent_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if now.abs_diff(sent_at) > tolerance.as_secs() {
        return Err(VerifyError::Stale);
    }
    let hex_digest = signature
        .trim()
        .strip_prefix(SCHEME)
        .ok_or(VerifyError::Malformed)?;
    let expected = hex::decode(hex_digest).map_err(|_| VerifyError::Malformed)?;
    // ring compares in constant time.
    hmac::verify(&key(secret), &signed_message(sent_at, body), &expected)
        .map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signature_verifies_within_the_tolerance() {
        let body = br#"{"id":"1"}"#;
        let signature = sign(SECRET, 1_700_000_000, body);
        assert!(signature.starts_with("sha256="));
        assert_eq!(signature.len(), "sha256=".len() + 64);
        assert_eq!(
            verify(
                SECRET,
                "1700000000",
                body,
                &signature,
                1_700_000_299,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn the_mac_is_hmac_sha256_over_timestamp_dot_body() {
        // The HMAC-SHA256 examples of Wikipedia's HMAC article and RFC 4231 (case 2).
        let wikipedia = hmac::sign(&key(b"key"), b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex::encode(wikipedia.as_ref()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let rfc = hmac::sign(&key(b"Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(rfc.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let direct = hmac::sign(&key(b"key"), b"1700000000.body");
        assert_eq!(
            sign(b"key", 1_700_000_000, b"body"),
            format!("sha256={}", hex::encode(direct.as_ref()))
        );
    }

    #[test]
    fn a_replayed_or_altered_request_is_refused() {
        let body = b"payload";
        let signature = sign(SECRET, 1_000, body);
        assert_eq!(
            verify(SECRET, "1000", body, &signature, 1_301, DEFAULT_TOLERANCE),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(SECRET, "1000", body, &signature, 699, DEFAULT_TOLERANCE),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(
                SECRET,
                "1000",
                b"payloaD",
                &signature,
                1_000,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::Mismatch)
        );
        // The timestamp is signed: moving it forward breaks the signature.
        assert_eq!(
            verify(SECRET, "1001", body, &signature, 1_000, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                b"another secret",
                "1000",
                body,
                &signature,
                1_000,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, "1000", body, "md5=00", 1_000, DEFAULT_TOLERANCE),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify(SECRET, "1000", body, "sha256=zz", 1_000, DEFAULT_TOLERANCE),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify(SECRET, "soon", body, &signature, 1_000, DEFAULT_TOLERANCE),
            Err(VerifyError::BadTimestamp)
        );
    }
}
