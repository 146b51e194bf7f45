//! The testkit's local HTTP receiver, as the notification tests of the whole system
//! read it: which event a request is about, and waiting for those of one kind.

use std::time::Duration;

use cudly_notify::sign;
use cudly_testkit::eventually;
pub use cudly_testkit::receiver::{Received, Receiver};

/// How long a test waits for a delivery.
pub const WAIT: Duration = Duration::from_secs(30);

/// The event a request is about: the webhook's header, else the title that opens a
/// Slack or Teams message (libs/notify/src/render/text.rs).
pub fn event_kind(request: &Received) -> String {
    if let Some(kind) = request.header(sign::EVENT_HEADER) {
        return kind;
    }
    let text = request.text();
    let titles = [
        ("Approval requested: ", "approval_requested"),
        ("Execution ", "execution_finished"),
        ("Spend limit ", "limit_refused"),
    ];
    titles
        .into_iter()
        .find(|(title, _)| text.contains(&format!("\"{title}")))
        .map(|(_, kind)| kind.to_owned())
        .unwrap_or_default()
}

/// Waits until the requests to `path` about event `kind` number at least `count`;
/// returns them.
pub async fn wait_for_event(
    receiver: &Receiver,
    path: &str,
    kind: &str,
    count: usize,
) -> Vec<Received> {
    let what = format!("{count} {kind} notification(s) at {path}");
    eventually(&what, WAIT, || async {
        let found: Vec<Received> = receiver
            .received()
            .into_iter()
            .filter(|request| request.path == path && event_kind(request) == kind)
            .collect();
        (found.len() >= count).then_some(found)
    })
    .await
    .unwrap()
}
