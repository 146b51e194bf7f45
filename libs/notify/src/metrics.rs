//! Prometheus figures of notifications: deliveries by channel kind and outcome, and
//! the channels marked failing (an alert fires on any at 1).

use uuid::Uuid;

use crate::channel::ChannelKind;

/// Delivery attempts by channel kind and outcome (`delivered`, `retried`, `failed`).
pub const DELIVERIES_TOTAL: &str = "cudly_notification_deliveries_total";
/// 1 while a channel is marked failing, 0 once it delivers again; by channel id.
pub const CHANNEL_FAILING: &str = "cudly_notification_channel_failing";

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    Retried,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
        }
    }
}

/// Counts one attempt; the kind is unknown when the channel could not be read.
pub(crate) fn attempt(kind: Option<ChannelKind>, outcome: Outcome) {
    let kind_label = kind.map_or("unknown", ChannelKind::as_str);
    metrics::counter!(DELIVERIES_TOTAL, "kind" => kind_label, "outcome" => outcome.as_str())
        .increment(1);
}

/// Sets whether a channel is failing.
pub(crate) fn channel_failing(channel_id: Uuid, failing: bool) {
    metrics::gauge!(CHANNEL_FAILING, "channel_id" => channel_id.to_string()).set(if failing {
        1.0
    } else {
        0.0
    });
}
