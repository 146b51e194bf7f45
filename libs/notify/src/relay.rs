//! The relay: the outbox of a service that raises notifications but keeps no channels
//! of its own (the planner; the channels and their outbox live with the executor).
//!
//! [`stage`] writes an event to `notification_relay` (`sql/relay.sql`) on the caller's
//! connection, in the transaction of the change that causes it: either both commit or
//! neither does. A [`Relay`] then forwards each staged event to the channels' owner
//! (a closure the service gives it: the executor's `RaiseNotification`), at least once,
//! and deletes the row once a forward succeeded. The receiver writes its outbox under
//! the event's id, so a repeated forward adds nothing.
//!
//! A failed forward is never dropped: the row stays, its attempts counted, its failure
//! stored as a short code ([`RelayError`], never a message), and it is due again after a
//! capped exponential back-off ([`crate::dispatcher::backoff`]). A failure stops the
//! batch in hand, so that a receiver that is down gets one call per pass, not one per
//! row. Claims are leased (`FOR UPDATE SKIP LOCKED`, then the row's due time pushed past
//! the lease), so several relays over one table share the work, and a relay that dies
//! mid-forward leaves the row to the next one once the lease ran out.
//!
//! An event with an approval link never goes through a relay: the token would sit in a
//! second table and cross a second call. [`stage`] refuses it.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::dispatcher::backoff;
use crate::error::{NotifyError, NotifyResult};
use crate::event::{Event, EventData};

/// Longest stored failure code, in characters.
const MAX_CODE_CHARS: usize = 64;
/// The code stored for a row whose payload cannot be read back.
const CORRUPT_CODE: &str = "corrupt_payload";

/// Writes `event` to the relay table on `conn` (the transaction of the change:
/// `&mut *tx`). A repeated stage of the same event id writes nothing. Refuses an event
/// that carries an approval link (those never go through a relay) or names an
/// execution (the relay carries none).
pub async fn stage(conn: &mut PgConnection, event: &Event) -> NotifyResult<()> {
    if event.data.approval_url().is_some() {
        return Err(NotifyError::Api(ApiError::invalid(
            "an event with an approval link is never relayed",
        )));
    }
    if event.execution_id.is_some() {
        return Err(NotifyError::Api(ApiError::invalid(
            "a relayed event names no execution",
        )));
    }
    let payload = serde_json::to_value(&event.data)
        .map_err(|error| NotifyError::Corrupt(format!("event payload: {error}")))?;
    sqlx::query(
        "INSERT INTO notification_relay (id, occurred_at, plan_id, account_ids, payload) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.id)
    .bind(event.occurred_at)
    .bind(event.plan_id)
    .bind(&event.account_ids)
    .bind(&payload)
    .execute(&mut *conn)
    .await
    .map_err(NotifyError::db("stage notification"))?;
    tracing::debug!(event_id = %event.id, kind = %event.kind(), "notification staged");
    Ok(())
}

/// How a relay works through its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Pause between looks for due rows when the last pass found no full batch, or
    /// failed.
    pub poll_interval: Duration,
    /// Rows claimed at once.
    pub batch_size: u32,
    /// How long a claimed row stays with its relay: past it (a crash), any relay takes
    /// it again. Longer than a forward's deadline.
    pub lease: Duration,
    /// Wait after the first failed forward; doubled after each further one up to
    /// `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            batch_size: 32,
            lease: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
        }
    }
}

/// Why a forward failed, as stored in `last_error` and logged: a short code (a gRPC
/// code name such as `Unavailable`), never a message, which could carry a detail of
/// the receiver or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}")]
pub struct RelayError {
    code: String,
}

impl RelayError {
    /// Returns a failure of code `code`: its leading ASCII letters, digits and `_`, at
    /// most 64 (`unknown` when there are none), so that no text after a code slips in.
    pub fn new(code: impl AsRef<str>) -> Self {
        let code: String = code
            .as_ref()
            .chars()
            .take_while(|character| character.is_ascii_alphanumeric() || *character == '_')
            .take(MAX_CODE_CHARS)
            .collect();
        Self {
            code: if code.is_empty() {
                "unknown".to_owned()
            } else {
                code
            },
        }
    }

    /// Returns the code.
    pub fn code(&self) -> &str {
        &self.code
    }
}

/// A staged event a relay holds until its lease runs out.
#[derive(sqlx::FromRow)]
struct StagedRow {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    plan_id: Option<Uuid>,
    account_ids: Vec<Uuid>,
    payload: serde_json::Value,
    /// Failed forwards before this one.
    attempts: i32,
    created_at: DateTime<Utc>,
}

impl StagedRow {
    /// Returns the staged event, or why its payload cannot be read.
    fn event(&self) -> Result<Event, String> {
        let data: EventData =
            serde_json::from_value(self.payload.clone()).map_err(|error| error.to_string())?;
        Ok(Event {
            id: self.id,
            occurred_at: self.occurred_at,
            execution_id: None,
            plan_id: self.plan_id,
            account_ids: self.account_ids.clone(),
            data,
        })
    }
}

/// Forwards the relay table of one schema.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    settings: RelaySettings,
}

impl Relay {
    /// Returns a relay over the `notification_relay` table of `pool`'s schema.
    pub fn new(pool: PgPool, settings: RelaySettings) -> Self {
        Self { pool, settings }
    }

    /// Forwards staged events with `forward` until `cancel` fires, then finishes the
    /// batch in hand and returns. `forward` succeeds once the receiver took the event;
    /// any error leaves the row for a later pass.
    pub async fn run<F, Fut>(self, cancel: CancellationToken, forward: F)
    where
        F: Fn(Event) -> Fut,
        Fut: Future<Output = Result<(), RelayError>>,
    {
        tracing::info!("notification relay started");
        let full_batch = self.settings.batch_size.max(1) as usize;
        while !cancel.is_cancelled() {
            let pause = match self.relay_once(&forward).await {
                Ok(forwarded) if forwarded >= full_batch => Duration::ZERO,
                Ok(_) => self.settings.poll_interval,
                Err(error) => {
                    if error.is_missing_schema() {
                        tracing::debug!(
                            error = %error.log_text(),
                            "notification relay skipped: database not ready"
                        );
                    } else {
                        tracing::warn!(error = %error.log_text(), "notification relay failed");
                    }
                    self.settings.poll_interval
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        tracing::info!("notification relay stopped");
    }

    /// Claims the due rows (one batch) and forwards them in order, deleting each one
    /// forwarded. The first failure is recorded and ends the pass: the rest of the batch
    /// is released for the next one. Returns how many were forwarded.
    pub async fn relay_once<F, Fut>(&self, forward: &F) -> NotifyResult<usize>
    where
        F: Fn(Event) -> Fut,
        Fut: Future<Output = Result<(), RelayError>>,
    {
        let rows = self.claim_due().await?;
        let mut forwarded = 0;
        for (index, row) in rows.iter().enumerate() {
            let attempt = u32::try_from(row.attempts).unwrap_or_default() + 1;
            let event = match row.event() {
                Ok(event) => event,
                Err(detail) => {
                    // Kept, not dropped: an operator can look at it (and a newer
                    // version of the library may read it).
                    tracing::error!(event_id = %row.id, %detail, "staged notification unreadable");
                    self.record_failure(row.id, attempt, CORRUPT_CODE).await?;
                    continue;
                }
            };
            let kind = event.kind();
            match forward(event).await {
                Ok(()) => {
                    self.remove(row.id).await?;
                    forwarded += 1;
                    tracing::debug!(event_id = %row.id, %kind, attempt, "notification relayed");
                }
                Err(error) => {
                    let retry_in = self.record_failure(row.id, attempt, error.code()).await?;
                    tracing::warn!(
                        event_id = %row.id,
                        %kind,
                        attempt,
                        error = error.code(),
                        retry_in = ?retry_in,
                        "notification not relayed; it stays staged"
                    );
                    let rest: Vec<Uuid> = rows[index + 1..].iter().map(|row| row.id).collect();
                    self.release(&rest).await?;
                    break;
                }
            }
        }
        Ok(forwarded)
    }

    /// Claims up to a batch of due rows (staged ones, failed ones whose back-off ran
    /// out, and leased ones whose lease ran out), leasing them; oldest first.
    async fn claim_due(&self) -> NotifyResult<Vec<StagedRow>> {
        let mut rows: Vec<StagedRow> = sqlx::query_as(
            "WITH due AS ( \
                 SELECT id FROM notification_relay \
                 WHERE next_attempt_at <= now() \
                 ORDER BY next_attempt_at, id \
                 LIMIT $2 \
                 FOR UPDATE SKIP LOCKED \
             ) \
             UPDATE notification_relay r \
             SET next_attempt_at = now() + make_interval(secs => $1) \
             FROM due \
             WHERE r.id = due.id \
             RETURNING r.id, r.occurred_at, r.plan_id, r.account_ids, r.payload, r.attempts, \
                       r.created_at",
        )
        .bind(self.settings.lease.as_secs_f64())
        .bind(i64::from(self.settings.batch_size.max(1)))
        .fetch_all(&self.pool)
        .await
        .map_err(NotifyError::db("claim staged notifications"))?;
        rows.sort_by_key(|row| (row.created_at, row.id));
        Ok(rows)
    }

    /// Deletes a forwarded row.
    async fn remove(&self, id: Uuid) -> NotifyResult<()> {
        sqlx::query("DELETE FROM notification_relay WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(NotifyError::db("delete relayed notification"))?;
        Ok(())
    }

    /// Records failed attempt `attempt` (1-based) of a row with its code, and makes it
    /// due again after the back-off. Returns the back-off.
    async fn record_failure(&self, id: Uuid, attempt: u32, code: &str) -> NotifyResult<Duration> {
        let retry_in = backoff(
            self.settings.backoff_base,
            self.settings.backoff_cap,
            attempt,
        );
        sqlx::query(
            "UPDATE notification_relay \
             SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_at = now() + make_interval(secs => $3) \
             WHERE id = $1",
        )
        .bind(id)
        .bind(code)
        .bind(retry_in.as_secs_f64())
        .execute(&self.pool)
        .await
        .map_err(NotifyError::db("record relay failure"))?;
        Ok(retry_in)
    }

    /// Gives claimed rows back, due at once, for the next pass.
    async fn release(&self, ids: &[Uuid]) -> NotifyResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("UPDATE notification_relay SET next_attempt_at = now() WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(NotifyError::db("release staged notifications"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_code_keeps_no_text() {
        assert_eq!(RelayError::new("Unavailable").code(), "Unavailable");
        assert_eq!(
            RelayError::new("Unavailable: tcp connect to https://x/?token=s3cr3t").code(),
            "Unavailable"
        );
        assert_eq!(
            RelayError::new("a".repeat(200)).code().len(),
            MAX_CODE_CHARS
        );
        assert_eq!(RelayError::new(" Unavailable").code(), "unknown");
        assert_eq!(
            RelayError::new("DeadlineExceeded").to_string(),
            "DeadlineExceeded"
        );
    }
}
