//! The body of a notification per kind of channel: a signed webhook's JSON, a Slack
//! incoming webhook's Block Kit message, a Teams incoming webhook's Adaptive Card, an
//! email.
//!
//! Whether a body may carry the approval token is decided here, in [`token_link`], and
//! nowhere else: only a private channel gets it. Slack and Teams render as broadcast
//! whatever their row says, since everyone in the channel reads them.

mod mail;
mod slack;
mod teams;
mod text;
mod webhook;

use crate::channel::{Audience, ChannelKind};
use crate::event::Event;

/// An email's content.
#[derive(Clone, PartialEq, Eq)]
pub struct MailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for MailContent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A private email holds the approval link with its token.
        formatter
            .debug_struct("MailContent")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A rendered notification.
#[derive(Clone, PartialEq, Eq)]
pub enum Rendered {
    /// A JSON body to POST (webhook, Slack, Teams).
    Json(Vec<u8>),
    Email(MailContent),
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rendered::Json(body) => write!(formatter, "Rendered::Json({} bytes)", body.len()),
            Rendered::Email(mail) => write!(formatter, "Rendered::Email({mail:?})"),
        }
    }
}

/// Returns the body of `event` for a channel of `kind` read by `audience`.
pub fn render(kind: ChannelKind, audience: Audience, event: &Event) -> Rendered {
    let readers = effective_audience(kind, audience);
    match kind {
        ChannelKind::Webhook => Rendered::Json(to_bytes(&webhook::body(event, readers))),
        ChannelKind::Slack => Rendered::Json(to_bytes(&slack::body(event, readers))),
        ChannelKind::Teams => Rendered::Json(to_bytes(&teams::body(event, readers))),
        ChannelKind::Email => Rendered::Email(mail::content(event, readers)),
    }
}

/// Slack and Teams channels are shared rooms: always broadcast.
fn effective_audience(kind: ChannelKind, audience: Audience) -> Audience {
    match kind {
        ChannelKind::Slack | ChannelKind::Teams => Audience::Broadcast,
        ChannelKind::Webhook | ChannelKind::Email => audience,
    }
}

/// Returns the approval link with its token, for a private audience only.
fn token_link(event: &Event, audience: Audience) -> Option<&str> {
    match audience {
        Audience::Private => event.data.approval_url().map(|url| url.expose()),
        Audience::Broadcast => None,
    }
}

/// Returns the link a body shows: the one with the token where allowed, else the page
/// without it.
fn review_link(event: &Event, audience: Audience) -> Option<&str> {
    token_link(event, audience).or_else(|| event.data.page_url())
}

fn to_bytes(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a json value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples::{self, CANARY_TOKEN};

    fn texts(rendered: &Rendered) -> Vec<String> {
        match rendered {
            Rendered::Json(body) => vec![String::from_utf8(body.clone()).unwrap()],
            Rendered::Email(mail) => {
                vec![mail.subject.clone(), mail.text.clone(), mail.html.clone()]
            }
        }
    }

    #[test]
    fn a_broadcast_body_never_holds_the_token_whatever_the_kind_and_event() {
        for kind in ChannelKind::ALL {
            for event in samples::every_kind() {
                for text in texts(&render(kind, Audience::Broadcast, &event)) {
                    assert!(
                        !text.contains(CANARY_TOKEN),
                        "{kind:?} {:?}: {text}",
                        event.kind()
                    );
                    assert!(!text.contains("token="), "{kind:?}: {text}");
                }
            }
        }
    }

    #[test]
    fn slack_and_teams_never_hold_the_token_even_when_marked_private() {
        let event = samples::approval_requested();
        for kind in [ChannelKind::Slack, ChannelKind::Teams] {
            for text in texts(&render(kind, Audience::Private, &event)) {
                assert!(!text.contains(CANARY_TOKEN), "{kind:?}: {text}");
            }
        }
    }

    #[test]
    fn a_private_webhook_or_email_carries_the_approval_link() {
        let event = samples::approval_requested();
        let webhook = texts(&render(ChannelKind::Webhook, Audience::Private, &event));
        assert!(webhook[0].contains(CANARY_TOKEN));
        let email = texts(&render(ChannelKind::Email, Audience::Private, &event));
        assert!(email[1].contains(CANARY_TOKEN));
        assert!(email[2].contains(CANARY_TOKEN));
        assert!(!email[0].contains(CANARY_TOKEN), "never in a subject");
        assert!(
            !format!(
                "{:?}",
                render(ChannelKind::Email, Audience::Private, &event)
            )
            .contains(CANARY_TOKEN)
        );
    }
}
