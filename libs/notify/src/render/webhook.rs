//! The generic webhook body (docs/design/API.md): `{id, event, occurred_at,
//! execution?, plan?, accounts, summary, data, approve_url?}`, where `data` is the
//! event's typed data and `approve_url` (the link with the token) is there for private
//! channels only.

use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::{text, token_link};
use crate::channel::Audience;
use crate::event::Event;

pub(super) fn body(event: &Event, audience: Audience) -> Value {
    // `{"event": <kind>, "data": {...}}`: the approval link is never part of it.
    let mut body = serde_json::to_value(&event.data).expect("event data always serializes");
    let fields = body
        .as_object_mut()
        .expect("event data serializes to an object");
    fields.insert("id".to_owned(), json!(event.id));
    fields.insert(
        "occurred_at".to_owned(),
        json!(
            event
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
    );
    if let Some(execution_id) = event.execution_id {
        fields.insert("execution".to_owned(), json!(execution_id));
    }
    if let Some(plan_id) = event.plan_id {
        fields.insert("plan".to_owned(), json!(plan_id));
    }
    fields.insert("accounts".to_owned(), json!(event.account_ids));
    fields.insert("summary".to_owned(), json!(text::title(event)));
    if let Some(url) = token_link(event, audience) {
        fields.insert("approve_url".to_owned(), json!(url));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples;

    #[test]
    fn the_body_has_the_documented_fields() {
        let event = samples::approval_requested();
        let broadcast = body(&event, Audience::Broadcast);
        assert_eq!(broadcast["id"], json!(event.id));
        assert_eq!(broadcast["event"], "approval_requested");
        assert_eq!(broadcast["execution"], json!(event.execution_id.unwrap()));
        assert_eq!(broadcast["plan"], json!(event.plan_id.unwrap()));
        assert_eq!(broadcast["accounts"], json!(event.account_ids));
        assert!(broadcast["occurred_at"].as_str().unwrap().ends_with('Z'));
        assert!(
            broadcast["summary"]
                .as_str()
                .unwrap()
                .starts_with("Approval requested")
        );
        assert_eq!(broadcast["data"]["lines"][0]["resource_type"], "m5.large");
        assert!(
            broadcast["data"]["page_url"]
                .as_str()
                .unwrap()
                .contains("/approve/")
        );
        assert!(broadcast.get("approve_url").is_none());
        let private = body(&event, Audience::Private);
        assert!(
            private["approve_url"]
                .as_str()
                .unwrap()
                .contains(samples::CANARY_TOKEN)
        );
        let finished = body(&samples::every_kind()[1], Audience::Private);
        assert!(finished.get("execution").is_none());
        assert!(finished.get("approve_url").is_none());
    }

    #[test]
    fn a_step_reminder_has_its_plan_its_day_and_no_link() {
        let event = samples::every_kind().pop().unwrap();
        let reminder = body(&event, Audience::Private);
        assert_eq!(reminder["event"], "step_upcoming");
        assert_eq!(reminder["plan"], json!(event.plan_id.unwrap()));
        assert_eq!(reminder["accounts"], json!(event.account_ids));
        assert_eq!(reminder["data"]["step_number"], 2);
        assert_eq!(reminder["data"]["fires_on"], "2026-01-12");
        assert_eq!(reminder["data"]["needs_approval"], true);
        assert!(reminder.get("execution").is_none());
        assert!(reminder.get("approve_url").is_none());
    }
}
