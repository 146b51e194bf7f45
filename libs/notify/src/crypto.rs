//! Encryption of the notification secrets at rest: channel targets (a Slack or Teams
//! webhook URL is itself a credential), webhook signing secrets and approval links with
//! their token.
//!
//! The scheme of the stored credentials (services/accounts/src/crypto.rs): AES-256-GCM,
//! a random 12-byte nonce per write, and the row id and column as associated data, so a
//! blob copied to another row or column fails to decrypt. A blob is stored as bytea:
//! `nonce || ciphertext+tag`. The 32-byte key is `CUDLY_NOTIFY_KEY` (64 hex characters,
//! or `CUDLY_NOTIFY_KEY_FILE`); during a rotation `CUDLY_NOTIFY_OLD_KEY` still decrypts.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use uuid::Uuid;

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// A 256-bit key for notification secrets. Never printed.
#[derive(Clone)]
pub struct ChannelKey(Arc<SecretBox<[u8; KEY_LEN]>>);

impl std::fmt::Debug for ChannelKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ChannelKey([redacted])")
    }
}

impl ChannelKey {
    /// Parses 64 hex characters (surrounding whitespace ignored). The error never
    /// repeats the text.
    pub fn from_hex(text: &str) -> Result<Self, &'static str> {
        const PROBLEM: &str = "must be 64 hex characters (32 bytes)";
        let trimmed = text.trim();
        if trimmed.len() != KEY_LEN * 2 {
            return Err(PROBLEM);
        }
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(trimmed, &mut bytes).map_err(|_| PROBLEM)?;
        Ok(Self::from_bytes(bytes))
    }

    /// Returns a key of these 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Arc::new(SecretBox::new(Box::new(bytes))))
    }

    /// Returns a random key (tests, dev mode).
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.expose_secret()).expect("a channel key is 32 bytes")
    }
}

/// The column a blob belongs to: part of its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretField {
    /// `notification_channels.target_ciphertext`.
    ChannelTarget,
    /// `notification_channels.signing_secret_ciphertext`.
    ChannelSigningSecret,
    /// `notification_events.approval_url_ciphertext`.
    EventApprovalUrl,
}

impl SecretField {
    fn as_str(self) -> &'static str {
        match self {
            SecretField::ChannelTarget => "notification_channels.target",
            SecretField::ChannelSigningSecret => "notification_channels.signing_secret",
            SecretField::EventApprovalUrl => "notification_events.approval_url",
        }
    }
}

/// Why a blob could not be sealed or opened. Never holds key or plaintext material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("a stored secret is malformed")]
    Malformed,
    #[error("a stored secret does not decrypt with the configured keys")]
    Undecryptable,
    #[error("encryption failed")]
    EncryptionFailed,
}

/// Encrypts and decrypts notification secrets.
#[derive(Clone, Debug)]
pub struct ChannelCipher {
    current: ChannelKey,
    old: Option<ChannelKey>,
}

impl ChannelCipher {
    /// Returns a cipher writing with `current` and reading with `current`, then `old`.
    pub fn new(current: ChannelKey, old: Option<ChannelKey>) -> Self {
        Self { current, old }
    }

    /// Returns `plaintext` sealed with the current key for (`row_id`, `field`).
    pub fn encrypt(
        &self,
        row_id: Uuid,
        field: SecretField,
        plaintext: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(row_id, field);
        let sealed = self
            .current
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::EncryptionFailed)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Returns the plaintext of `blob` stored in (`row_id`, `field`).
    pub fn decrypt(
        &self,
        row_id: Uuid,
        field: SecretField,
        blob: &[u8],
    ) -> Result<SecretString, CryptoError> {
        if blob.len() <= NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce_bytes, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| CryptoError::Malformed)?;
        let nonce = Nonce::from(nonce);
        let aad = associated_data(row_id, field);
        let keys = std::iter::once(&self.current).chain(self.old.iter());
        for key in keys {
            let opened = key.cipher().decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            );
            if let Ok(bytes) = opened {
                let text = String::from_utf8(bytes).map_err(|_| CryptoError::Malformed)?;
                return Ok(SecretString::from(text));
            }
        }
        Err(CryptoError::Undecryptable)
    }

    /// Returns `blob` sealed again under the current key when only the old key opens
    /// it; none when it is under the current key already (a key rotation).
    pub fn reseal(
        &self,
        row_id: Uuid,
        field: SecretField,
        blob: &[u8],
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        let current_only = ChannelCipher::new(self.current.clone(), None);
        match current_only.decrypt(row_id, field, blob) {
            Ok(_) => Ok(None),
            Err(CryptoError::Undecryptable) => {
                let plaintext = self.decrypt(row_id, field, blob)?;
                self.encrypt(row_id, field, plaintext.expose_secret())
                    .map(Some)
            }
            Err(other) => Err(other),
        }
    }
}

/// The associated data binding a blob to its place: `<row uuid>:<table>.<column>`.
fn associated_data(row_id: Uuid, field: SecretField) -> Vec<u8> {
    format!("{}:{}", row_id.hyphenated(), field.as_str()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> ChannelCipher {
        ChannelCipher::new(ChannelKey::generate(), None)
    }

    #[test]
    fn a_blob_round_trips_and_hides_its_plaintext() {
        let cipher = cipher();
        let row = Uuid::new_v4();
        let blob = cipher
            .encrypt(
                row,
                SecretField::ChannelTarget,
                "https://hooks.example/canary",
            )
            .unwrap();
        assert!(!String::from_utf8_lossy(&blob).contains("canary"));
        let plain = cipher
            .decrypt(row, SecretField::ChannelTarget, &blob)
            .unwrap();
        assert_eq!(plain.expose_secret(), "https://hooks.example/canary");
    }

    #[test]
    fn a_rotation_reseals_what_only_the_old_key_opens() {
        let old = ChannelKey::generate();
        let row = Uuid::new_v4();
        let field = SecretField::ChannelSigningSecret;
        let before = ChannelCipher::new(old.clone(), None)
            .encrypt(row, field, "s3cret")
            .unwrap();
        let rotating = ChannelCipher::new(ChannelKey::generate(), Some(old));
        let resealed = rotating.reseal(row, field, &before).unwrap().unwrap();
        assert!(rotating.reseal(row, field, &resealed).unwrap().is_none());
        let current_only = ChannelCipher::new(rotating.current.clone(), None);
        assert_eq!(
            current_only
                .decrypt(row, field, &resealed)
                .unwrap()
                .expose_secret(),
            "s3cret"
        );
        assert_eq!(
            ChannelCipher::new(ChannelKey::generate(), None).reseal(row, field, &before),
            Err(CryptoError::Undecryptable)
        );
    }

    #[test]
    fn a_blob_moved_to_another_row_or_column_fails_to_decrypt() {
        let cipher = cipher();
        let row = Uuid::new_v4();
        let blob = cipher
            .encrypt(row, SecretField::ChannelSigningSecret, "s")
            .unwrap();
        assert_eq!(
            cipher
                .decrypt(Uuid::new_v4(), SecretField::ChannelSigningSecret, &blob)
                .unwrap_err(),
            CryptoError::Undecryptable
        );
        assert_eq!(
            cipher
                .decrypt(row, SecretField::ChannelTarget, &blob)
                .unwrap_err(),
            CryptoError::Undecryptable
        );
        assert_eq!(
            cipher
                .decrypt(row, SecretField::ChannelTarget, &blob[..NONCE_LEN])
                .unwrap_err(),
            CryptoError::Malformed
        );
    }

    #[test]
    fn every_write_uses_a_fresh_nonce() {
        let cipher = cipher();
        let row = Uuid::new_v4();
        let first = cipher
            .encrypt(row, SecretField::ChannelTarget, "x")
            .unwrap();
        let second = cipher
            .encrypt(row, SecretField::ChannelTarget, "x")
            .unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn the_old_key_still_decrypts_during_a_rotation() {
        let old = ChannelKey::generate();
        let row = Uuid::new_v4();
        let blob = ChannelCipher::new(old.clone(), None)
            .encrypt(row, SecretField::EventApprovalUrl, "x")
            .unwrap();
        let rotating = ChannelCipher::new(ChannelKey::generate(), Some(old));
        assert!(
            rotating
                .decrypt(row, SecretField::EventApprovalUrl, &blob)
                .is_ok()
        );
        assert!(
            cipher()
                .decrypt(row, SecretField::EventApprovalUrl, &blob)
                .is_err()
        );
    }

    #[test]
    fn keys_are_64_hex_characters_and_never_printed() {
        assert!(ChannelKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(ChannelKey::from_hex("abcd").is_err());
        assert!(ChannelKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(
            format!("{:?}", ChannelKey::generate()),
            "ChannelKey([redacted])"
        );
    }
}
