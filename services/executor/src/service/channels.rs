//! Notification channels and the notifications sent to them (docs/design/API.md
//! "Notifications and the approval page"): the admin's operations, each audited in
//! its transaction, and the events the planner relays from its own outbox.

use cudly_common::ApiError;
use cudly_common::audit::{self, Actor};
use cudly_notify::{
    ChannelCipher, ChannelDraft, ChannelInfo, CreatedChannel, Event, EventData, EventKind,
    Notification, NotificationFilter,
};
use uuid::Uuid;

use crate::error::{ExecutorError, ExecutorResult};
use crate::notices::notify_error;
use crate::service::Executor;

/// The kinds of event the planner raises; any other kind is the executor's own.
const PLANNER_EVENTS: [EventKind; 3] = [
    EventKind::PlanPaused,
    EventKind::RecommendationsFailed,
    EventKind::StepUpcoming,
];

impl Executor {
    /// Stores a channel (400 naming a bad field, 409 on a taken name), audited as
    /// `channel.create` without its target or secret.
    pub async fn create_channel(
        &self,
        draft: ChannelDraft,
        actor: &str,
        actor_key_id: Option<&str>,
        trail: &Actor,
    ) -> ExecutorResult<CreatedChannel> {
        if actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required").into());
        }
        let cipher = self.notify_cipher()?;
        let rules = self.notices().rules();
        let mut tx = self.begin().await?;
        let created = cudly_notify::create_channel(&mut tx, cipher, rules, draft)
            .await
            .map_err(notify_error)?;
        let change = audit::Change {
            action: "channel.create",
            target_type: "notification_channel",
            target_id: created.info.id.to_string(),
            before: None,
            after: Some(audit::digest(&created.info)),
        };
        super::audit(&mut tx, trail, actor, actor_key_id, change).await?;
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a notification channel"))?;
        tracing::info!(channel_id = %created.info.id, kind = %created.info.kind.as_str(), by = %actor, "notification channel created");
        Ok(created)
    }

    /// Returns the live channels, without targets or secrets.
    pub async fn list_channels(&self) -> ExecutorResult<Vec<ChannelInfo>> {
        let mut conn = self.conn().await?;
        cudly_notify::list_channels(&mut conn)
            .await
            .map_err(notify_error)
    }

    /// Deletes a channel (404 when no live channel has the id): its secrets are erased,
    /// its pending notifications fail. Audited as `channel.delete`.
    pub async fn delete_channel(
        &self,
        id: Uuid,
        actor: &str,
        actor_key_id: Option<&str>,
        trail: &Actor,
    ) -> ExecutorResult<()> {
        if actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required").into());
        }
        let mut tx = self.begin().await?;
        let deleted = cudly_notify::delete_channel(&mut tx, id)
            .await
            .map_err(notify_error)?
            .ok_or_else(|| ApiError::not_found(format!("notification channel {id} not found")))?;
        let change = audit::Change {
            action: "channel.delete",
            target_type: "notification_channel",
            target_id: id.to_string(),
            before: Some(audit::digest(&deleted)),
            after: None,
        };
        super::audit(&mut tx, trail, actor, actor_key_id, change).await?;
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a channel deletion"))?;
        tracing::info!(channel_id = %id, by = %actor, "notification channel deleted");
        Ok(())
    }

    /// Returns the notifications `filter` selects, oldest first.
    pub async fn list_notifications(
        &self,
        filter: NotificationFilter,
    ) -> ExecutorResult<Vec<Notification>> {
        let mut conn = self.conn().await?;
        cudly_notify::list_notifications(&mut conn, filter)
            .await
            .map_err(notify_error)
    }

    /// Writes an event the planner staged to the outbox under the planner's event id:
    /// raising the same event again adds nothing. Returns the deliveries written.
    pub async fn raise_planner_event(&self, event: Event) -> ExecutorResult<usize> {
        if !PLANNER_EVENTS.contains(&event.kind()) {
            return Err(ApiError::invalid_field(
                "payload_json",
                format!("{} is not an event the planner raises", event.kind()),
            )
            .into());
        }
        let Some(cipher) = self.notices().cipher() else {
            // Notifications are off: there is no channel to write for.
            return Ok(0);
        };
        let mut tx = self.begin().await?;
        let deliveries = cudly_notify::enqueue(&mut tx, cipher, &event)
            .await
            .map_err(notify_error)?;
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a relayed notification"))?;
        Ok(deliveries)
    }

    /// The key channels are stored with; 409 when notifications are off.
    fn notify_cipher(&self) -> ExecutorResult<&ChannelCipher> {
        self.notices().cipher().ok_or_else(|| {
            ApiError::conflict(
                "notifications are off: set CUDLY_NOTIFY_KEY on the executor to store channels",
            )
            .into()
        })
    }
}

/// Returns the event a relay request describes; 400 naming the bad field.
pub fn relayed_event(
    event_id: Uuid,
    occurred_at: chrono::DateTime<chrono::Utc>,
    plan_id: Option<Uuid>,
    account_ids: Vec<Uuid>,
    payload_json: &str,
) -> Result<Event, ApiError> {
    let data: EventData = serde_json::from_str(payload_json)
        .map_err(|_| ApiError::invalid_field("payload_json", "is not an event's data"))?;
    let mut event = Event::new(data).with_id(event_id).for_accounts(account_ids);
    event.occurred_at = occurred_at;
    event.plan_id = plan_id;
    Ok(event)
}
