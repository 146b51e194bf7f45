//! The dispatcher's SQL: claiming due deliveries under a lease, reading what to send,
//! and recording each outcome with a compare-and-set on the claim, so that a dispatcher
//! whose lease ran out (and whose delivery another one took) writes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::crypto::{ChannelCipher, SecretField};
use crate::error::{NotifyError, NotifyResult};
use crate::event::{ApprovalUrl, Event, EventData};

/// A delivery a dispatcher holds until its lease runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Claim {
    pub id: Uuid,
    pub event_id: Uuid,
    pub channel_id: Uuid,
    /// This attempt's number: also the claim's fencing number.
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries (pending ones whose time came, and leased ones
/// whose lease ran out, i.e. a dispatcher that died), counting the attempt and leasing
/// them for `lease`. Concurrent dispatchers skip each other's rows.
pub(crate) async fn claim_due(
    pool: &PgPool,
    lease: Duration,
    limit: u32,
) -> NotifyResult<Vec<Claim>> {
    sqlx::query_as(
        "WITH due AS ( \
             SELECT event_id, channel_id FROM notification_deliveries \
             WHERE state IN ('pending', 'delivering') AND next_attempt_at <= now() \
             ORDER BY next_attempt_at \
             LIMIT $2 \
             FOR UPDATE SKIP LOCKED \
         ) \
         UPDATE notification_deliveries d \
         SET state = 'delivering', attempts = d.attempts + 1, \
             next_attempt_at = now() + make_interval(secs => $1) \
         FROM due \
         WHERE d.event_id = due.event_id AND d.channel_id = due.channel_id \
         RETURNING d.id, d.event_id, d.channel_id, d.attempts",
    )
    .bind(lease.as_secs_f64())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(NotifyError::db("claim notification deliveries"))
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    execution_id: Option<Uuid>,
    plan_id: Option<Uuid>,
    account_ids: Vec<Uuid>,
    payload: serde_json::Value,
    approval_url_ciphertext: Option<Vec<u8>>,
}

/// Returns the event of a delivery; with its approval link decrypted when
/// `with_approval_url` (private channels only). None when the event is gone.
pub(crate) async fn load_event(
    conn: &mut PgConnection,
    cipher: &ChannelCipher,
    event_id: Uuid,
    with_approval_url: bool,
) -> NotifyResult<Option<Event>> {
    let row: Option<EventRow> = sqlx::query_as(
        "SELECT id, occurred_at, execution_id, plan_id, account_ids, payload, \
                approval_url_ciphertext \
         FROM notification_events WHERE id = $1",
    )
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(NotifyError::db("load notification event"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut data: EventData = serde_json::from_value(row.payload)
        .map_err(|error| NotifyError::Corrupt(format!("payload of event {}: {error}", row.id)))?;
    if with_approval_url && let Some(blob) = row.approval_url_ciphertext.as_deref() {
        let url = cipher.decrypt(row.id, SecretField::EventApprovalUrl, blob)?;
        data.set_approval_url(ApprovalUrl::new(url.expose_secret()));
    }
    Ok(Some(Event {
        id: row.id,
        occurred_at: row.occurred_at,
        execution_id: row.execution_id,
        plan_id: row.plan_id,
        account_ids: row.account_ids,
        data,
    }))
}

/// Records a delivered claim. False when the claim was lost (its lease ran out and
/// another dispatcher took it).
pub(crate) async fn mark_delivered(conn: &mut PgConnection, claim: &Claim) -> NotifyResult<bool> {
    let result = sqlx::query(
        "UPDATE notification_deliveries \
         SET state = 'delivered', delivered_at = now(), last_error = NULL \
         WHERE id = $1 AND state = 'delivering' AND attempts = $2",
    )
    .bind(claim.id)
    .bind(claim.attempts)
    .execute(&mut *conn)
    .await
    .map_err(NotifyError::db("mark notification delivered"))?;
    Ok(result.rows_affected() == 1)
}

/// Records a failed attempt of a claim: due again in `retry_in`, or failed for good
/// when none. `error` must come from [`crate::failure::DeliveryFailure`]'s text.
/// False when the claim was lost.
pub(crate) async fn mark_failed(
    conn: &mut PgConnection,
    claim: &Claim,
    error: &str,
    retry_in: Option<Duration>,
) -> NotifyResult<bool> {
    let (state, delay) = match retry_in {
        Some(delay) => ("pending", delay),
        None => ("failed", Duration::ZERO),
    };
    let result = sqlx::query(
        "UPDATE notification_deliveries \
         SET state = $3, last_error = $4, next_attempt_at = now() + make_interval(secs => $5) \
         WHERE id = $1 AND state = 'delivering' AND attempts = $2",
    )
    .bind(claim.id)
    .bind(claim.attempts)
    .bind(state)
    .bind(error)
    .bind(delay.as_secs_f64())
    .execute(&mut *conn)
    .await
    .map_err(NotifyError::db("mark notification failed"))?;
    Ok(result.rows_affected() == 1)
}

/// Clears a channel's failure count after a delivery. Returns true when the channel
/// was marked failing until now.
pub(crate) async fn channel_succeeded(
    conn: &mut PgConnection,
    channel_id: Uuid,
) -> NotifyResult<bool> {
    let was_failing: Option<Option<bool>> = sqlx::query_scalar(
        "WITH previous AS (SELECT failing_since FROM notification_channels WHERE id = $1) \
         UPDATE notification_channels SET consecutive_failures = 0, failing_since = NULL \
         WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL) \
         RETURNING (SELECT failing_since IS NOT NULL FROM previous)",
    )
    .bind(channel_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(NotifyError::db("reset notification channel failures"))?;
    Ok(was_failing.flatten().unwrap_or(false))
}

/// Counts a failed delivery against a channel, marking it failing at `threshold`
/// failures in a row. Returns the count and whether the channel just became failing.
pub(crate) async fn channel_failed(
    conn: &mut PgConnection,
    channel_id: Uuid,
    threshold: u32,
) -> NotifyResult<(i32, bool)> {
    let failing_after = i32::try_from(threshold).unwrap_or(i32::MAX);
    let row: Option<(i32, bool)> = sqlx::query_as(
        "WITH previous AS (SELECT failing_since FROM notification_channels WHERE id = $1) \
         UPDATE notification_channels \
         SET consecutive_failures = consecutive_failures + 1, \
             failing_since = CASE \
                 WHEN failing_since IS NULL AND consecutive_failures + 1 >= $2 THEN now() \
                 ELSE failing_since END \
         WHERE id = $1 \
         RETURNING consecutive_failures, \
                   failing_since IS NOT NULL \
                   AND (SELECT failing_since IS NULL FROM previous) AS newly_failing",
    )
    .bind(channel_id)
    .bind(failing_after)
    .fetch_optional(&mut *conn)
    .await
    .map_err(NotifyError::db("count notification channel failure"))?;
    Ok(row.unwrap_or((0, false)))
}

/// Erases an event's approval link once no private channel still has to receive it:
/// the token is kept at rest no longer than needed.
pub(crate) async fn forget_approval_url_when_done(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> NotifyResult<()> {
    sqlx::query(
        "UPDATE notification_events SET approval_url_ciphertext = NULL \
         WHERE id = $1 AND approval_url_ciphertext IS NOT NULL \
           AND NOT EXISTS ( \
               SELECT 1 FROM notification_deliveries d \
               JOIN notification_channels c ON c.id = d.channel_id \
               WHERE d.event_id = $1 AND d.state IN ('pending', 'delivering') \
                 AND c.audience = 'private' \
           )",
    )
    .bind(event_id)
    .execute(&mut *conn)
    .await
    .map_err(NotifyError::db("forget notification approval link"))?;
    Ok(())
}
