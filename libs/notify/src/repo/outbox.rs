//! The outbox: an event and its deliveries are written on the caller's connection, in
//! the transaction of the change that causes them, so that either both commit or
//! neither does, and a restart between the commit and the sending loses nothing. The
//! dispatcher sends them afterwards ([`crate::dispatcher`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::channel::Audience;
use crate::crypto::{ChannelCipher, SecretField};
use crate::error::{NotifyError, NotifyResult};
use crate::event::{Event, EventKind};
use crate::repo::channels::live_subscriptions;

/// Most notifications one listing returns.
pub const MAX_PAGE: u32 = 1000;

/// Writes `event` and one delivery per live channel that wants it, on `conn` (the
/// transaction of the change: `&mut *tx`). The approval link with its token is stored
/// encrypted, and only when a private channel wants the event. Returns the number of
/// deliveries written: none when no channel wants the event, or when an event with
/// this id was written before (a repeated enqueue is harmless).
pub async fn enqueue(
    conn: &mut PgConnection,
    cipher: &ChannelCipher,
    event: &Event,
) -> NotifyResult<usize> {
    let wanting: Vec<(Uuid, Audience)> = live_subscriptions(&mut *conn)
        .await?
        .into_iter()
        .filter(|(_, _, subscription)| subscription.wants(event))
        .map(|(channel_id, audience, _)| (channel_id, audience))
        .collect();
    if wanting.is_empty() {
        return Ok(0);
    }
    let private_wants = wanting
        .iter()
        .any(|(_, audience)| *audience == Audience::Private);
    let approval_url_ciphertext = match event.data.approval_url() {
        Some(url) if private_wants => {
            Some(cipher.encrypt(event.id, SecretField::EventApprovalUrl, url.expose())?)
        }
        _ => None,
    };
    let payload = serde_json::to_value(&event.data)
        .map_err(|error| NotifyError::Corrupt(format!("event payload: {error}")))?;
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO notification_events \
         (id, kind, occurred_at, execution_id, plan_id, account_ids, payload, \
          approval_url_ciphertext) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO NOTHING \
         RETURNING id",
    )
    .bind(event.id)
    .bind(event.kind().as_str())
    .bind(event.occurred_at)
    .bind(event.execution_id)
    .bind(event.plan_id)
    .bind(&event.account_ids)
    .bind(&payload)
    .bind(approval_url_ciphertext.as_deref())
    .fetch_optional(&mut *conn)
    .await
    .map_err(NotifyError::db("insert notification event"))?;
    if inserted.is_none() {
        return Ok(0);
    }
    let channel_ids: Vec<Uuid> = wanting.iter().map(|(channel_id, _)| *channel_id).collect();
    let delivery_ids: Vec<Uuid> = channel_ids.iter().map(|_| Uuid::new_v4()).collect();
    sqlx::query(
        "INSERT INTO notification_deliveries (id, event_id, channel_id) \
         SELECT delivery_id, $1, channel_id \
         FROM unnest($2::uuid[], $3::uuid[]) AS wanted (delivery_id, channel_id)",
    )
    .bind(event.id)
    .bind(&delivery_ids)
    .bind(&channel_ids)
    .execute(&mut *conn)
    .await
    .map_err(NotifyError::db("insert notification deliveries"))?;
    tracing::debug!(
        event_id = %event.id,
        kind = %event.kind(),
        deliveries = channel_ids.len(),
        "notification enqueued"
    );
    Ok(channel_ids.len())
}

/// Where a notification stands, as the API shows it (a leased delivery is pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationState {
    Pending,
    Delivered,
    Failed,
}

impl NotificationState {
    /// Returns the API state of a stored delivery state.
    fn from_stored(state: &str) -> NotifyResult<Self> {
        match state {
            "pending" | "delivering" => Ok(NotificationState::Pending),
            "delivered" => Ok(NotificationState::Delivered),
            "failed" => Ok(NotificationState::Failed),
            other => Err(NotifyError::Corrupt(format!("delivery state {other}"))),
        }
    }
}

/// One notification (an event for one channel), as `GET /api/notifications` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// The delivery id (`X-Cudly-Delivery`).
    pub id: Uuid,
    pub event_id: Uuid,
    pub event: EventKind,
    pub channel_id: Uuid,
    pub execution_id: Option<Uuid>,
    pub state: NotificationState,
    pub attempts: i32,
    /// Redacted when written: codes and kinds only.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What a listing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationFilter {
    pub execution_id: Option<Uuid>,
    pub channel_id: Option<Uuid>,
    /// 1 to [`MAX_PAGE`].
    pub limit: u32,
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: Uuid,
    event_id: Uuid,
    kind: String,
    channel_id: Uuid,
    execution_id: Option<Uuid>,
    state: String,
    attempts: i32,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

/// Returns the notifications `filter` selects, oldest first.
pub async fn list_notifications(
    conn: &mut PgConnection,
    filter: NotificationFilter,
) -> NotifyResult<Vec<Notification>> {
    let limit = filter.limit.clamp(1, MAX_PAGE);
    let rows: Vec<NotificationRow> = sqlx::query_as(
        "SELECT d.id, d.event_id, e.kind, d.channel_id, e.execution_id, d.state, \
                d.attempts, d.last_error, d.created_at, d.delivered_at \
         FROM notification_deliveries d \
         JOIN notification_events e ON e.id = d.event_id \
         WHERE ($1::uuid IS NULL OR e.execution_id = $1) \
           AND ($2::uuid IS NULL OR d.channel_id = $2) \
         ORDER BY d.created_at, d.id \
         LIMIT $3",
    )
    .bind(filter.execution_id)
    .bind(filter.channel_id)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(NotifyError::db("list notifications"))?;
    rows.into_iter()
        .map(|row| {
            Ok(Notification {
                id: row.id,
                event_id: row.event_id,
                event: EventKind::parse(&row.kind)
                    .ok_or_else(|| NotifyError::Corrupt(format!("event kind {}", row.kind)))?,
                channel_id: row.channel_id,
                execution_id: row.execution_id,
                state: NotificationState::from_stored(&row.state)?,
                attempts: row.attempts,
                last_error: row.last_error,
                created_at: row.created_at,
                delivered_at: row.delivered_at,
            })
        })
        .collect()
}
