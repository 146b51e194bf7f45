//! Encryption of stored credentials (docs/design/DOMAIN.md, Cloud accounts: encryption at rest).
//!
//! AES-256-GCM with a random 12-byte nonce per write and the account id and credential
//! type as associated data, so a blob copied to another row (another account, or
//! another credential type) fails to decrypt. A blob is stored as
//! `base64url(nonce).base64url(ciphertext+tag)`.
//!
//! The 32-byte key comes from `CUDLY_CREDENTIAL_KEY` (64 hex characters) or
//! `CUDLY_CREDENTIAL_KEY_FILE`. During a rotation the previous key is given as
//! `CUDLY_CREDENTIAL_OLD_KEY` / `CUDLY_CREDENTIAL_OLD_KEY_FILE`: blobs are decrypted
//! with the current key first, then with the old one, and always written with the
//! current key ([`crate::rotation`] re-encrypts every blob).

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cudly_common::config::{ConfigError, ConfigResult, Env, SecretSource};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use uuid::Uuid;

use crate::domain::CredentialType;

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// A 256-bit credential key. Never printed.
#[derive(Clone)]
pub struct CredentialKey(Arc<SecretBox<[u8; KEY_LEN]>>);

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("CredentialKey([redacted])")
    }
}

impl CredentialKey {
    /// Parses 64 hex characters (surrounding whitespace ignored). The error never
    /// repeats the text.
    pub fn from_hex(text: &str) -> Result<Self, &'static str> {
        let trimmed = text.trim();
        if trimmed.len() != KEY_LEN * 2 {
            return Err("must be 64 hex characters (32 bytes)");
        }
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(trimmed, &mut bytes)
            .map_err(|_| "must be 64 hex characters (32 bytes)")?;
        Ok(Self(Arc::new(SecretBox::new(Box::new(bytes)))))
    }

    /// Returns a random key (tests, and the hex text of a fresh key for operators).
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self(Arc::new(SecretBox::new(Box::new(bytes))))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.expose_secret()).expect("a credential key is 32 bytes")
    }
}

/// The current key and, during a rotation, the previous one.
#[derive(Clone, Debug)]
pub struct CredentialKeys {
    pub current: CredentialKey,
    pub old: Option<CredentialKey>,
}

impl CredentialKeys {
    pub fn new(current: CredentialKey, old: Option<CredentialKey>) -> Self {
        Self { current, old }
    }

    /// Takes the current key from `secrets` (the environment's `CUDLY_CREDENTIAL_KEY`
    /// or `CUDLY_CREDENTIAL_KEY_FILE`, or the key `cudly` generated in dev mode) and the
    /// optional old key from `CUDLY_CREDENTIAL_OLD_KEY` or `CUDLY_CREDENTIAL_OLD_KEY_FILE`
    /// (never generated).
    pub fn read(env: &Env, secrets: &impl SecretSource) -> ConfigResult<Self> {
        let current = CredentialKey::from_hex(secrets.credential_key()?.expose_secret())
            .map_err(|problem| ConfigError::new("CUDLY_CREDENTIAL_KEY", problem))?;
        let old = env
            .secret_or_file("CUDLY_CREDENTIAL_OLD_KEY")?
            .map(|hex| CredentialKey::from_hex(hex.expose_secret()))
            .transpose()
            .map_err(|problem| ConfigError::new("CUDLY_CREDENTIAL_OLD_KEY", problem))?;
        Ok(Self { current, old })
    }
}

/// Why a blob could not be decrypted. Never holds key or plaintext material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("stored credentials are malformed")]
    Malformed,
    #[error("stored credentials do not decrypt with the configured keys")]
    Undecryptable,
    #[error("encryption failed")]
    EncryptionFailed,
}

/// Which key opened a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    Current,
    Old,
}

/// Encrypts and decrypts credential blobs.
#[derive(Clone, Debug)]
pub struct CredentialCipher {
    keys: CredentialKeys,
}

impl CredentialCipher {
    pub fn new(keys: CredentialKeys) -> Self {
        Self { keys }
    }

    /// Returns `plaintext` encrypted with the current key for the row of
    /// (`account_id`, `credential_type`).
    pub fn encrypt(
        &self,
        account_id: Uuid,
        credential_type: CredentialType,
        plaintext: &SecretString,
    ) -> Result<String, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(account_id, credential_type);
        let sealed = self
            .keys
            .current
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::EncryptionFailed)?;
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// Returns the plaintext of `blob` stored in the row of (`account_id`,
    /// `credential_type`), and which key opened it.
    pub fn decrypt(
        &self,
        account_id: Uuid,
        credential_type: CredentialType,
        blob: &str,
    ) -> Result<(SecretString, KeyUsed), CryptoError> {
        let (nonce_text, sealed_text) = blob.split_once('.').ok_or(CryptoError::Malformed)?;
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce_text)
            .map_err(|_| CryptoError::Malformed)?
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        let nonce = Nonce::from(nonce);
        let sealed = URL_SAFE_NO_PAD
            .decode(sealed_text)
            .map_err(|_| CryptoError::Malformed)?;
        let aad = associated_data(account_id, credential_type);
        let candidates = std::iter::once((KeyUsed::Current, &self.keys.current))
            .chain(self.keys.old.iter().map(|key| (KeyUsed::Old, key)));
        for (used, key) in candidates {
            let opened = key.cipher().decrypt(
                &nonce,
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            );
            if let Ok(bytes) = opened {
                let text = String::from_utf8(bytes).map_err(|_| CryptoError::Malformed)?;
                return Ok((SecretString::from(text), used));
            }
        }
        Err(CryptoError::Undecryptable)
    }
}

/// The associated data binding a blob to its row: `<account uuid>:<credential type>`.
fn associated_data(account_id: Uuid, credential_type: CredentialType) -> Vec<u8> {
    format!("{}:{}", account_id.hyphenated(), credential_type.as_str()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> CredentialCipher {
        CredentialCipher::new(CredentialKeys::new(CredentialKey::generate(), None))
    }

    #[test]
    fn a_blob_round_trips_and_has_the_documented_shape() {
        let cipher = cipher();
        let account = Uuid::new_v4();
        let secret = SecretString::from(r#"{"secret_access_key":"canary"}"#);
        let blob = cipher
            .encrypt(account, CredentialType::AwsAccessKeys, &secret)
            .unwrap();
        let (nonce, sealed) = blob.split_once('.').unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(nonce).unwrap().len(), NONCE_LEN);
        assert!(URL_SAFE_NO_PAD.decode(sealed).unwrap().len() > 16);
        assert!(!blob.contains("canary"));
        let (plain, used) = cipher
            .decrypt(account, CredentialType::AwsAccessKeys, &blob)
            .unwrap();
        assert_eq!(plain.expose_secret(), secret.expose_secret());
        assert_eq!(used, KeyUsed::Current);
    }

    #[test]
    fn every_write_uses_a_fresh_nonce() {
        let cipher = cipher();
        let account = Uuid::new_v4();
        let secret = SecretString::from("same");
        let first = cipher
            .encrypt(account, CredentialType::AwsAccessKeys, &secret)
            .unwrap();
        let second = cipher
            .encrypt(account, CredentialType::AwsAccessKeys, &secret)
            .unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn a_blob_moved_to_another_account_or_type_fails_to_decrypt() {
        let cipher = cipher();
        let account = Uuid::new_v4();
        let blob = cipher
            .encrypt(
                account,
                CredentialType::AwsAccessKeys,
                &SecretString::from("x"),
            )
            .unwrap();
        assert_eq!(
            cipher
                .decrypt(Uuid::new_v4(), CredentialType::AwsAccessKeys, &blob)
                .unwrap_err(),
            CryptoError::Undecryptable
        );
        assert_eq!(
            cipher
                .decrypt(account, CredentialType::AzureClientSecret, &blob)
                .unwrap_err(),
            CryptoError::Undecryptable
        );
    }

    #[test]
    fn the_old_key_still_decrypts_during_a_rotation() {
        let old = CredentialKey::generate();
        let account = Uuid::new_v4();
        let before = CredentialCipher::new(CredentialKeys::new(old.clone(), None));
        let blob = before
            .encrypt(
                account,
                CredentialType::AwsAccessKeys,
                &SecretString::from("x"),
            )
            .unwrap();
        let during =
            CredentialCipher::new(CredentialKeys::new(CredentialKey::generate(), Some(old)));
        let (_, used) = during
            .decrypt(account, CredentialType::AwsAccessKeys, &blob)
            .unwrap();
        assert_eq!(used, KeyUsed::Old);
        let after = CredentialCipher::new(CredentialKeys::new(CredentialKey::generate(), None));
        assert!(
            after
                .decrypt(account, CredentialType::AwsAccessKeys, &blob)
                .is_err()
        );
    }

    #[test]
    fn keys_are_64_hex_characters_and_never_echoed() {
        assert!(CredentialKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(CredentialKey::from_hex(&format!("  {}\n", "ab".repeat(32))).is_ok());
        assert!(CredentialKey::from_hex("abcd").is_err());
        assert!(CredentialKey::from_hex(&"zz".repeat(32)).is_err());
        let env = Env::from_pairs([("CUDLY_CREDENTIAL_KEY", "not-a-key-s3cr3t")]);
        let error = CredentialKeys::read(&env, &env).unwrap_err();
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
        assert!(format!("{:?}", CredentialKey::generate()).contains("redacted"));
    }

    #[test]
    fn the_keys_come_from_a_value_or_a_file_and_the_old_key_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential.key");
        std::fs::write(&path, format!("{}\n", "0f".repeat(32))).unwrap();
        let file = path.display().to_string();
        let env = Env::from_pairs([("CUDLY_CREDENTIAL_KEY_FILE", file.as_str())]);
        let keys = CredentialKeys::read(&env, &env).unwrap();
        assert!(keys.old.is_none());
        let old = "ab".repeat(32);
        let env = Env::from_pairs([
            ("CUDLY_CREDENTIAL_KEY_FILE", file.as_str()),
            ("CUDLY_CREDENTIAL_OLD_KEY", old.as_str()),
        ]);
        assert!(CredentialKeys::read(&env, &env).unwrap().old.is_some());
        let missing = Env::from_pairs([("CUDLY_CREDENTIAL_KEY_FILE", "/nonexistent/key")]);
        let error = CredentialKeys::read(&missing, &missing).unwrap_err();
        assert!(
            error.to_string().starts_with("CUDLY_CREDENTIAL_KEY_FILE"),
            "{error}"
        );
        assert!(CredentialKeys::read(&Env::empty(), &Env::empty()).is_err());
    }
}
