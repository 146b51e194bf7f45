//! `/api/notification-channels` and `/api/notifications` (docs/design/API.md
//! "Notifications"): where events go, and where each delivery stands. The executor owns
//! both (libs/notify); this module translates JSON to gRPC and back. Every route needs an
//! admin key: a channel's events name executions, plans and accounts.
//!
//! A channel's `target` (a Slack or Teams webhook URL is itself a credential; an email
//! list is personal data) and its `secret` are write-only: they travel from the request
//! body into the gRPC message untouched, are never logged (their `Debug` is redacted)
//! and no reply carries them, but for a webhook secret the executor generated, shown
//! once in the creation reply.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_proto::convert::optional_time;
use cudly_proto::executor::v1 as pb;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpError, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Most notifications one list returns (the executor's bound).
const MAX_LIMIT: u32 = 1000;

/// Returns the notification routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(delete_channel))
        .routes(routes!(list_notifications))
}

fn executor(state: &AppState) -> ExecutorServiceClient<cudly_common::grpc::AuthChannel> {
    ExecutorServiceClient::new(state.clients.executor.clone())
}

fn executor_error(status: tonic::Status) -> HttpError {
    grpc_error("executor", status)
}

/// How a channel is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// A signed JSON POST to any https URL.
    Webhook,
    /// A Slack incoming webhook (`https://hooks.slack.com/services/...`).
    Slack,
    /// A Microsoft Teams incoming webhook (https).
    Teams,
    /// Email over the configured SMTP relay.
    Email,
}

impl ChannelKind {
    fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Email => "email",
        }
    }
}

/// A value the caller writes and no reply shows (a target, a signing secret): its
/// `Debug` never prints it, so no log line or panic message of a request can.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct WriteOnly(String);

impl WriteOnly {
    fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for WriteOnly {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("[redacted]")
    }
}

/// A new notification channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannelBody {
    /// A unique name among the live channels, at most 100 characters.
    pub name: String,
    pub kind: ChannelKind,
    /// Write-only. A URL (webhook, slack, teams; https, or http only where private
    /// targets are allowed) or comma-separated email addresses (email). Targets on
    /// loopback, link-local or private addresses are refused unless the server allows
    /// them (`CUDLY_NOTIFY_ALLOW_PRIVATE_TARGETS`, dev mode).
    #[schema(value_type = String)]
    pub target: WriteOnly,
    /// Write-only. A webhook's signing secret, 32 to 256 characters; absent: the server
    /// generates one and shows it once in the reply. Webhooks only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub secret: Option<WriteOnly>,
    /// The events the channel wants, at least one: approval_requested,
    /// execution_finished, outcome_unknown, limit_refused, plan_paused,
    /// recommendations_failed, step_upcoming.
    pub events: Vec<String>,
    /// Only events about these plans; absent or empty: any plan, and events about none.
    #[serde(default)]
    pub plan_ids: Option<Vec<Uuid>>,
    /// Only events about these accounts; absent or empty: any account, and events about
    /// none.
    #[serde(default)]
    pub account_ids: Option<Vec<Uuid>>,
    /// Default false (broadcast: never an approval token). True: read by named
    /// approvers only, so approval links may carry their token; webhook and email only.
    #[serde(default)]
    pub private: Option<bool>,
}

/// A notification channel, without its target or secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: Uuid,
    pub name: String,
    /// webhook | slack | teams | email
    pub kind: String,
    pub events: Vec<String>,
    /// Empty: any plan.
    pub plan_ids: Vec<Uuid>,
    /// Empty: any account.
    pub account_ids: Vec<Uuid>,
    /// Approval links sent here may carry their token.
    pub private: bool,
    /// Deliveries that failed in a row since the last success.
    pub consecutive_failures: u32,
    /// Since when the channel keeps failing (alerted); null while it works.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
}

/// A channel just created: the only reply that may show a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedChannel {
    #[serde(flatten)]
    pub channel: ChannelView,
    /// The webhook signing secret the server generated, shown this once (the receiver
    /// needs it to check `X-Cudly-Signature`); absent when the caller chose it or the
    /// channel is not a webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Every live channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelView>,
}

/// Filters of the notification list; an unknown one is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub limit: Option<String>,
}

/// One event for one channel, and where its delivery stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// The delivery id (header `X-Cudly-Delivery`), stable across retries.
    pub id: Uuid,
    /// The event id (header `X-Cudly-Event-Id`): the same for every channel.
    pub event_id: Uuid,
    /// The event kind, e.g. approval_requested.
    pub event: String,
    pub channel_id: Uuid,
    pub execution_id: Option<Uuid>,
    /// pending | delivered | failed
    pub state: String,
    pub attempts: u32,
    /// What the last attempt met (codes and kinds only, never a target or a token).
    pub last_error: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Notifications, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationView>,
}

fn uuid_of(text: &str) -> Uuid {
    text.parse().unwrap_or_default()
}

fn uuids_of(texts: Vec<String>) -> Vec<Uuid> {
    texts.iter().map(String::as_str).map(uuid_of).collect()
}

fn channel_view(channel: pb::NotificationChannel) -> ChannelView {
    ChannelView {
        id: uuid_of(&channel.id),
        name: channel.name,
        kind: channel.kind,
        events: channel.events,
        plan_ids: uuids_of(channel.plan_ids),
        account_ids: uuids_of(channel.account_ids),
        private: channel.private,
        consecutive_failures: channel.consecutive_failures,
        failing_since: optional_time(channel.failing_since.as_ref()),
        created_at: optional_time(channel.created_at.as_ref()),
    }
}

fn notification_view(notification: pb::Notification) -> NotificationView {
    NotificationView {
        id: uuid_of(&notification.id),
        event_id: uuid_of(&notification.event_id),
        event: notification.event,
        channel_id: uuid_of(&notification.channel_id),
        execution_id: notification.execution_id.as_deref().map(uuid_of),
        state: notification.state,
        attempts: notification.attempts,
        last_error: notification.last_error,
        created_at: optional_time(notification.created_at.as_ref()),
        delivered_at: optional_time(notification.delivered_at.as_ref()),
    }
}

fn ids_to_wire(ids: Option<Vec<Uuid>>) -> Vec<String> {
    ids.unwrap_or_default()
        .into_iter()
        .map(|id| id.to_string())
        .collect()
}

/// Returns the uuid in the query parameter `field`; empty or absent: none.
fn optional_id(field: &str, text: Option<&str>) -> Result<Option<String>, ApiError> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => Uuid::parse_str(text)
            .map(|id| Some(id.to_string()))
            .map_err(|_| ApiError::invalid_field(field, "must be a uuid")),
    }
}

/// Returns the page size of `limit`, 1 to [`MAX_LIMIT`]; empty or absent: the
/// executor's default.
fn optional_limit(text: Option<&str>) -> Result<Option<u32>, ApiError> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field("limit", format!("must be 1 to {MAX_LIMIT}"))),
    }
}

/// Lists the live notification channels (admin), without targets or secrets.
#[utoipa::path(
    get,
    path = "/api/notification-channels",
    tag = "notifications",
    responses(
        (status = 200, description = "the live channels", body = ChannelList),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn list_channels(
    State(state): State<AppState>,
    principal: Principal,
) -> HttpResult<ApiJson<ChannelList>> {
    principal.require_admin()?;
    let reply = executor(&state)
        .list_notification_channels(pb::ListNotificationChannelsRequest {})
        .await
        .map_err(executor_error)?
        .into_inner();
    Ok(ApiJson(ChannelList {
        channels: reply.channels.into_iter().map(channel_view).collect(),
    }))
}

/// Creates a notification channel (admin). A webhook without a `secret` gets a
/// generated one, shown once in the reply.
#[utoipa::path(
    post,
    path = "/api/notification-channels",
    tag = "notifications",
    request_body = CreateChannelBody,
    responses(
        (status = 201, description = "the channel (and a generated webhook secret, shown once)", body = CreatedChannel),
        (status = 400, description = "invalid field: an unknown kind or event, a target that is not allowed (a private address, a host that does not resolve), a secret too short or on a channel that is not a webhook, a private slack or teams channel, email without an SMTP relay, an unknown field", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 409, description = "a live channel has this name, or notifications are off on this server (no CUDLY_NOTIFY_KEY)", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn create_channel(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateChannelBody>,
) -> HttpResult<(StatusCode, ApiJson<CreatedChannel>)> {
    principal.require_admin()?;
    let reply = executor(&state)
        .create_notification_channel(pb::CreateNotificationChannelRequest {
            name: body.name,
            kind: body.kind.as_str().to_owned(),
            target: body.target.into_inner(),
            secret: body.secret.map(WriteOnly::into_inner),
            events: body.events,
            plan_ids: ids_to_wire(body.plan_ids),
            account_ids: ids_to_wire(body.account_ids),
            private: body.private.unwrap_or(false),
            actor: principal.actor(),
            actor_key_id: Some(principal.identity()),
        })
        .await
        .map_err(executor_error)?
        .into_inner();
    let channel = reply.channel.ok_or_else(|| {
        tracing::error!("executor created a notification channel but returned none");
        ApiError::internal()
    })?;
    let view = channel_view(channel);
    tracing::info!(channel_id = %view.id, kind = %view.kind, by = %principal.name, "notification channel created");
    let created = CreatedChannel {
        channel: view,
        secret: reply.generated_secret,
    };
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Deletes a notification channel (admin): nothing more is sent to it, its deliveries
/// still pending end failed, and its target and secret are erased.
#[utoipa::path(
    delete,
    path = "/api/notification-channels/{id}",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "the channel's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no live channel has this id", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn delete_channel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<StatusCode> {
    principal.require_admin()?;
    executor(&state)
        .delete_notification_channel(pb::DeleteNotificationChannelRequest {
            id: id.to_string(),
            actor: principal.actor(),
            actor_key_id: Some(principal.identity()),
        })
        .await
        .map_err(executor_error)?;
    tracing::info!(channel_id = %id, by = %principal.name, "notification channel deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Lists notifications (one event for one channel) and where their delivery stands,
/// oldest first (admin).
#[utoipa::path(
    get,
    path = "/api/notifications",
    tag = "notifications",
    params(
        ("execution_id" = Option<Uuid>, Query, description = "only the notifications about this execution"),
        ("channel_id" = Option<Uuid>, Query, description = "only the notifications for this channel"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 1000"),
    ),
    responses(
        (status = 200, description = "notifications, oldest first", body = NotificationList),
        (status = 400, description = "an unknown filter, a malformed id, a limit outside 1-1000", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn list_notifications(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<NotificationsQuery>,
) -> HttpResult<ApiJson<NotificationList>> {
    principal.require_admin()?;
    let request = pb::ListNotificationsRequest {
        execution_id: optional_id("execution_id", query.execution_id.as_deref())?,
        channel_id: optional_id("channel_id", query.channel_id.as_deref())?,
        limit: optional_limit(query.limit.as_deref())?,
    };
    let reply = executor(&state)
        .list_notifications(request)
        .await
        .map_err(executor_error)?
        .into_inner();
    Ok(ApiJson(NotificationList {
        notifications: reply
            .notifications
            .into_iter()
            .map(notification_view)
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;

    #[test]
    fn a_body_names_its_bad_field_and_never_shows_a_target_or_secret() {
        let body: CreateChannelBody = parse_json(
            br#"{"name":"ops","kind":"webhook","target":"https://hooks.example.com/s3cr3t",
                 "secret":"0123456789abcdef0123456789abcdef-s3cr3t","events":["approval_requested"]}"#,
        )
        .unwrap();
        assert_eq!(body.kind, ChannelKind::Webhook);
        assert!(!body.private.unwrap_or(false));
        let printed = format!("{body:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");

        let error = parse_json::<CreateChannelBody>(
            br#"{"name":"ops","kind":"pager","target":"x","events":["a"]}"#,
        )
        .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("kind"), "{}", error.message);
        assert!(!error.message.contains("pager"), "{}", error.message);

        let error = parse_json::<CreateChannelBody>(
            br#"{"name":"ops","kind":"slack","target":"x","events":[1]}"#,
        )
        .unwrap_err();
        assert_eq!(error.http_status(), 400);
        assert!(
            error
                .field
                .as_deref()
                .is_some_and(|field| field.starts_with("events")),
            "{error:?}"
        );

        let error = parse_json::<CreateChannelBody>(
            br#"{"name":"ops","kind":"email","target":"a@example.com","events":["a"],"plan_ids":["nope"]}"#,
        )
        .unwrap_err();
        assert!(
            error
                .field
                .as_deref()
                .is_some_and(|field| field.starts_with("plan_ids")),
            "{error:?}"
        );

        let error = parse_json::<CreateChannelBody>(
            br#"{"name":"ops","kind":"email","target":"a@example.com","events":["a"],"colour":"red"}"#,
        )
        .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("colour"));
    }

    #[test]
    fn query_filters_are_checked() {
        assert_eq!(optional_id("execution_id", None).unwrap(), None);
        assert_eq!(optional_id("execution_id", Some(" ")).unwrap(), None);
        let id = Uuid::new_v4();
        assert_eq!(
            optional_id("execution_id", Some(&id.to_string())).unwrap(),
            Some(id.to_string())
        );
        let error = optional_id("execution_id", Some("yesterday")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("execution_id"));
        assert_eq!(optional_limit(None).unwrap(), None);
        assert_eq!(optional_limit(Some("10")).unwrap(), Some(10));
        for bad in ["0", "1001", "-1", "ten"] {
            let error = optional_limit(Some(bad)).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("limit"), "{bad}");
        }
    }
}
