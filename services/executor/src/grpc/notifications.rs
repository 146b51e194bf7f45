//! Proto conversions of notification channels, notifications and relayed events.

use cudly_common::ApiError;
use cudly_notify::{ChannelDraft, ChannelInfo, Event, Notification, NotificationFilter};
use cudly_proto::convert::{
    parse_id, parse_ids, parse_optional_id, parse_optional_time, timestamp,
};
use cudly_proto::executor::v1 as pb;
use secrecy::SecretString;

use crate::service::relayed_event;

/// Returns the channel a creation request asks for (checked by the library).
pub fn channel_draft(
    request: &mut pb::CreateNotificationChannelRequest,
) -> Result<ChannelDraft, ApiError> {
    Ok(ChannelDraft {
        name: std::mem::take(&mut request.name),
        kind: std::mem::take(&mut request.kind),
        target: SecretString::from(std::mem::take(&mut request.target)),
        secret: request.secret.take().map(SecretString::from),
        events: std::mem::take(&mut request.events),
        plan_ids: parse_ids(&request.plan_ids, "plan_ids")?,
        account_ids: parse_ids(&request.account_ids, "account_ids")?,
        private: request.private,
    })
}

pub fn channel_to_proto(info: &ChannelInfo) -> pb::NotificationChannel {
    pb::NotificationChannel {
        id: info.id.to_string(),
        name: info.name.clone(),
        kind: info.kind.as_str().to_owned(),
        events: info
            .events
            .iter()
            .map(|kind| kind.as_str().to_owned())
            .collect(),
        plan_ids: info.plan_ids.iter().map(ToString::to_string).collect(),
        account_ids: info.account_ids.iter().map(ToString::to_string).collect(),
        private: info.audience == cudly_notify::Audience::Private,
        consecutive_failures: u32::try_from(info.consecutive_failures).unwrap_or_default(),
        failing_since: info.failing_since.map(timestamp),
        created_at: Some(timestamp(info.created_at)),
    }
}

/// Returns the filter of a listing; 400 naming a bad id or limit.
pub fn notification_filter(
    request: &pb::ListNotificationsRequest,
) -> Result<NotificationFilter, ApiError> {
    let limit = request
        .limit
        .unwrap_or(cudly_notify::repo::outbox::MAX_PAGE);
    if !(1..=cudly_notify::repo::outbox::MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be from 1 to {}", cudly_notify::repo::outbox::MAX_PAGE),
        ));
    }
    Ok(NotificationFilter {
        execution_id: parse_optional_id(request.execution_id.as_deref(), "execution_id")?,
        channel_id: parse_optional_id(request.channel_id.as_deref(), "channel_id")?,
        limit,
    })
}

pub fn notification_to_proto(notification: &Notification) -> pb::Notification {
    pb::Notification {
        id: notification.id.to_string(),
        event_id: notification.event_id.to_string(),
        event: notification.event.as_str().to_owned(),
        channel_id: notification.channel_id.to_string(),
        execution_id: notification.execution_id.map(|id| id.to_string()),
        state: match notification.state {
            cudly_notify::NotificationState::Pending => "pending",
            cudly_notify::NotificationState::Delivered => "delivered",
            cudly_notify::NotificationState::Failed => "failed",
        }
        .to_owned(),
        attempts: u32::try_from(notification.attempts).unwrap_or_default(),
        last_error: notification.last_error.clone(),
        created_at: Some(timestamp(notification.created_at)),
        delivered_at: notification.delivered_at.map(timestamp),
    }
}

/// Returns the event a relay request carries; 400 naming the bad field.
pub fn raised_event(request: &pb::RaiseNotificationRequest) -> Result<Event, ApiError> {
    let occurred_at = parse_optional_time(request.occurred_at.as_ref(), "occurred_at")?
        .ok_or_else(|| ApiError::invalid_field("occurred_at", "is required"))?;
    relayed_event(
        parse_id(&request.event_id, "event_id")?,
        occurred_at,
        parse_optional_id(request.plan_id.as_deref(), "plan_id")?,
        parse_ids(&request.account_ids, "account_ids")?,
        &request.payload_json,
    )
}
