//! Notifications of CUDly-rs (docs/design/API.md "Notifications and the approval
//! page"): channels (a signed webhook, Slack, Microsoft Teams, email), the events they
//! subscribe to, an outbox written in the transaction of the change that causes each
//! event, and a dispatcher that delivers it at least once.
//!
//! - [`channel`]: what a channel is and how a draft is checked; [`target`]: the one
//!   rule about the addresses a channel may reach; [`crypto`]: its secrets at rest.
//! - [`event`]: the events and their typed data; [`render`]: the body per channel
//!   kind, where the approval token is kept out of every broadcast channel; [`sign`]:
//!   webhook signatures, and the check a receiver makes.
//! - [`repo`]: the SQL of `sql/notifications.sql` (linked into the owning service's
//!   migrations): channels, [`enqueue`], [`list_notifications`]; [`dispatcher`]: the
//!   delivery loop; [`sender`] and [`email`]: one attempt over HTTP or SMTP.
//! - [`relay`]: the SQL of `sql/relay.sql` and its loop, for a service that raises
//!   events but keeps no channels (the planner): [`relay::stage`] in the caller's
//!   transaction, then a [`Relay`] forwards each event to the channels' owner at least
//!   once.
//!
//! No secret, key or token reaches a broadcast channel, a log line or a stored error:
//! targets and secrets are redacted in `Debug`, the approval link is never serialized
//! with an event, and stored errors are built from codes and kinds only ([`failure`]).

pub mod channel;
pub mod config;
pub mod crypto;
pub mod dispatcher;
pub mod email;
mod error;
pub mod event;
pub mod failure;
mod metrics;
pub mod relay;
pub mod render;
pub mod repo;
pub mod sender;
pub mod sign;
pub mod target;

pub use crate::metrics::{CHANNEL_FAILING, DELIVERIES_TOTAL};
pub use channel::{
    Audience, Channel, ChannelDraft, ChannelInfo, ChannelKind, ChannelRules, Subscription,
};
pub use config::{DispatchSettings, NotifyConfig, SmtpSettings};
pub use crypto::{ChannelCipher, ChannelKey};
pub use dispatcher::Dispatcher;
pub use error::{NotifyError, NotifyResult};
pub use event::{Event, EventData, EventKind, approval_links, approval_page_url};
pub use relay::{Relay, RelayError, RelaySettings};
pub use repo::channels::{CreatedChannel, create_channel, delete_channel, list_channels};
pub use repo::outbox::{
    Notification, NotificationFilter, NotificationState, enqueue, list_notifications,
};
pub use repo::rotation::{RotationReport, rotate_keys};
/// The URL type of targets and links (reqwest's), for callers that build links.
pub use reqwest::Url;
pub use sender::Sender;
pub use target::PrivateTargets;

/// The DDL of the notification tables, as linked into a service's migrations (tests
/// apply it to a fresh schema with `sqlx::raw_sql`).
pub const SCHEMA_SQL: &str = include_str!("../sql/notifications.sql");

/// The DDL of the relay table (`notification_relay`), as linked into the migrations of
/// a service that relays its events (tests apply it with `sqlx::raw_sql`).
pub const RELAY_SQL: &str = include_str!("../sql/relay.sql");
