//! A Microsoft Teams incoming-webhook message: one Adaptive Card attachment (Microsoft
//! Learn, "Create an Incoming Webhook", "Send Adaptive Cards using an Incoming
//! Webhook"), with the title, the facts as a FactSet, the purchase lines and an
//! `Action.OpenUrl` to the page. Always broadcast: a Teams channel is read by all.

use serde_json::{Value, json};

use super::{review_link, text};
use crate::channel::Audience;
use crate::event::Event;

const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
const CARD_SCHEMA: &str = "http://adaptivecards.io/schemas/adaptive-card.json";
const CARD_VERSION: &str = "1.4";

pub(super) fn body(event: &Event, audience: Audience) -> Value {
    let mut card_body = vec![
        json!({
            "type": "TextBlock",
            "text": text::title(event),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": true
        }),
        json!({
            "type": "FactSet",
            "facts": text::facts(event)
                .into_iter()
                .map(|(title, value)| json!({"title": title, "value": value}))
                .collect::<Vec<_>>()
        }),
    ];
    let lines = text::lines(event);
    if !lines.is_empty() {
        card_body.push(json!({
            "type": "TextBlock",
            "text": lines
                .iter()
                .map(|line| format!("- {line}"))
                .collect::<Vec<_>>()
                .join("\n"),
            "wrap": true
        }));
    }
    let mut card = json!({
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": card_body
    });
    if let Some(url) = review_link(event, audience) {
        card["actions"] = json!([{
            "type": "Action.OpenUrl",
            "title": text::link_label(event),
            "url": url
        }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": CARD_CONTENT_TYPE,
            "contentUrl": null,
            "content": card
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples;

    #[test]
    fn the_message_is_one_adaptive_card_in_microsofts_format() {
        let event = samples::approval_requested();
        let message = body(&event, Audience::Broadcast);
        assert_eq!(message["type"], "message");
        let attachments = message["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 1);
        assert_eq!(
            attachments[0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert!(attachments[0]["contentUrl"].is_null());
        let card = &attachments[0]["content"];
        assert_eq!(
            card["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        let card_body = card["body"].as_array().unwrap();
        assert_eq!(card_body[0]["type"], "TextBlock");
        assert_eq!(card_body[0]["wrap"], true);
        assert!(
            card_body[0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Approval requested")
        );
        assert_eq!(card_body[1]["type"], "FactSet");
        assert_eq!(card_body[1]["facts"][0]["title"], "Requested by");
        assert_eq!(card_body[1]["facts"][0]["value"], "key:ops <alice>");
        assert_eq!(card_body[2]["type"], "TextBlock");
        assert!(card_body[2]["text"].as_str().unwrap().starts_with("- prod"));
        let action = &card["actions"][0];
        assert_eq!(action["type"], "Action.OpenUrl");
        assert_eq!(action["title"], "Review");
        let url = action["url"].as_str().unwrap();
        assert!(url.starts_with("https://cudly.example.com/approve/"));
        assert!(!url.contains("token"));
    }

    #[test]
    fn an_event_without_a_page_has_no_action() {
        let message = body(&samples::every_kind()[3], Audience::Broadcast);
        assert!(
            message["attachments"][0]["content"]
                .get("actions")
                .is_none()
        );
    }

    #[test]
    fn a_step_reminder_lists_its_facts_without_an_action() {
        let message = body(&samples::every_kind().pop().unwrap(), Audience::Broadcast);
        let card = &message["attachments"][0]["content"];
        assert!(card.get("actions").is_none());
        assert_eq!(
            card["body"][0]["text"],
            "Plan nightly & <weekly> step 2 fires on 2026-01-12"
        );
        let facts = card["body"][1]["facts"].as_array().unwrap();
        let fires_on = facts.iter().find(|fact| fact["title"] == "Fires on");
        assert_eq!(fires_on.unwrap()["value"], "2026-01-12");
    }
}
