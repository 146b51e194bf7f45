//! Notification key rotation: every stored secret (channel targets, signing secrets,
//! approval links still in the outbox) sealed again under the current key, in one
//! transaction, so that either all of them end under the new key or none changes.
//! Secrets already under the current key are left alone: running it twice is harmless.
//! Afterwards `CUDLY_NOTIFY_OLD_KEY` can be dropped.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::crypto::{ChannelCipher, SecretField};
use crate::error::{NotifyError, NotifyResult};

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RotationReport {
    /// Secrets that only the old key opened, now under the current one.
    pub re_encrypted: usize,
    /// Secrets that were under the current key already.
    pub already_current: usize,
}

/// The columns holding secrets, and the field each blob is bound to.
const COLUMNS: [(&str, &str, SecretField); 3] = [
    (
        "notification_channels",
        "target_ciphertext",
        SecretField::ChannelTarget,
    ),
    (
        "notification_channels",
        "signing_secret_ciphertext",
        SecretField::ChannelSigningSecret,
    ),
    (
        "notification_events",
        "approval_url_ciphertext",
        SecretField::EventApprovalUrl,
    ),
];

/// Seals every stored secret that only the old key opens under the current key, on
/// `conn` (a transaction: the caller commits). Fails, to be rolled back, when a secret
/// opens with neither key.
pub async fn rotate_keys(
    conn: &mut PgConnection,
    cipher: &ChannelCipher,
) -> NotifyResult<RotationReport> {
    let mut report = RotationReport::default();
    for (table, column, field) in COLUMNS {
        // Names from the constant above, never from input.
        let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL FOR UPDATE"
        )))
        .fetch_all(&mut *conn)
        .await
        .map_err(NotifyError::db("lock notification secrets"))?;
        for (id, blob) in rows {
            let Some(resealed) = cipher.reseal(id, field, &blob)? else {
                report.already_current += 1;
                continue;
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET {column} = $2 WHERE id = $1"
            )))
            .bind(id)
            .bind(&resealed)
            .execute(&mut *conn)
            .await
            .map_err(NotifyError::db("reseal a notification secret"))?;
            report.re_encrypted += 1;
        }
    }
    tracing::info!(
        re_encrypted = report.re_encrypted,
        already_current = report.already_current,
        "notification key rotation done"
    );
    Ok(report)
}
