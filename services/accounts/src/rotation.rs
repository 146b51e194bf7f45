//! Credential key rotation: re-encrypts every stored blob under the current key.
//!
//! Run with the new key as `CUDLY_CREDENTIAL_KEY` and the previous one as
//! `CUDLY_CREDENTIAL_OLD_KEY` (`cudly-accounts rotate-credential-key`). All blobs are
//! rewritten in one transaction: either every blob ends under the new key or none
//! changes. Blobs already under the new key are left alone, so running it twice is
//! harmless. Afterwards the old key can be dropped from the configuration.

use sqlx::PgPool;

use crate::crypto::{CredentialCipher, KeyUsed};
use crate::domain::CredentialType;
use crate::error::{AccountsError, AccountsResult};
use crate::repo;

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RotationReport {
    /// Blobs that were under the old key and now are under the current one.
    pub re_encrypted: usize,
    /// Blobs that were already under the current key.
    pub already_current: usize,
}

/// Re-encrypts every blob that only the old key opens under the current key. Fails,
/// changing nothing, when a blob opens with neither key.
pub async fn rotate_credential_key(
    pool: &PgPool,
    cipher: &CredentialCipher,
) -> AccountsResult<RotationReport> {
    let mut tx = pool
        .begin()
        .await
        .map_err(AccountsError::database("begin"))?;
    let blobs = repo::lock_all_credentials(&mut tx)
        .await
        .map_err(AccountsError::database("lock credentials"))?;
    let mut report = RotationReport::default();
    for blob in blobs {
        let credential_type = CredentialType::parse(&blob.credential_type).ok_or_else(|| {
            AccountsError::Internal(format!(
                "account {} has credentials of an unknown type",
                blob.account_id
            ))
        })?;
        let crypto_error = |source| AccountsError::Crypto {
            account_id: blob.account_id,
            credential_type: credential_type.as_str(),
            source,
        };
        let (plaintext, used) = cipher
            .decrypt(blob.account_id, credential_type, &blob.encrypted_blob)
            .map_err(crypto_error)?;
        if used == KeyUsed::Current {
            report.already_current += 1;
            continue;
        }
        let sealed = cipher
            .encrypt(blob.account_id, credential_type, &plaintext)
            .map_err(crypto_error)?;
        repo::replace_blob(&mut tx, blob.account_id, credential_type, &sealed)
            .await
            .map_err(AccountsError::database("replace blob"))?;
        report.re_encrypted += 1;
    }
    tx.commit()
        .await
        .map_err(AccountsError::database("commit"))?;
    tracing::info!(
        re_encrypted = report.re_encrypted,
        already_current = report.already_current,
        "credential key rotation finished"
    );
    Ok(report)
}
