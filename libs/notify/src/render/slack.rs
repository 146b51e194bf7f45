//! A Slack incoming-webhook message in Block Kit (api.slack.com, "Sending messages
//! using incoming webhooks" and the block reference): a `text` fallback for
//! notifications, then a header, a `mrkdwn` section with the facts and lines, and a
//! button to the page. Always broadcast: a Slack channel is read by all its members.

use serde_json::{Value, json};

use super::{review_link, text};
use crate::channel::Audience;
use crate::event::Event;

/// Slack's limits: header text, section text, button URL.
const MAX_HEADER_CHARS: usize = 150;
const MAX_SECTION_CHARS: usize = 3000;
const MAX_URL_CHARS: usize = 3000;

pub(super) fn body(event: &Event, audience: Audience) -> Value {
    let title = text::title(event);
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": text::truncate(&title, MAX_HEADER_CHARS)}
        }),
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": text::truncate(&section(event), MAX_SECTION_CHARS)}
        }),
    ];
    if let Some(url) = review_link(event, audience).filter(|url| url.len() <= MAX_URL_CHARS) {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": text::link_label(event)},
                "url": url
            }]
        }));
    }
    json!({"text": escape(&title), "blocks": blocks})
}

/// The facts as `*label:* value` lines, then the purchase lines as bullets.
fn section(event: &Event) -> String {
    let facts = text::facts(event)
        .into_iter()
        .map(|(label, value)| format!("*{}:* {}", escape(&label), escape(&value)));
    let lines = text::lines(event)
        .into_iter()
        .map(|line| format!("• {}", escape(&line)));
    facts.chain(lines).collect::<Vec<_>>().join("\n")
}

/// Escapes the three characters Slack's `mrkdwn` reads as control sequences.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples;

    #[test]
    fn the_message_follows_slacks_block_kit_format() {
        let event = samples::approval_requested();
        let message = body(&event, Audience::Broadcast);
        let mut top: Vec<&str> = message
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        top.sort_unstable();
        assert_eq!(top, ["blocks", "text"]);
        assert!(
            message["text"]
                .as_str()
                .unwrap()
                .starts_with("Approval requested")
        );
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert!(blocks[0]["text"]["text"].as_str().unwrap().len() <= MAX_HEADER_CHARS);
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        let section = blocks[1]["text"]["text"].as_str().unwrap();
        assert!(
            section.contains("*Requested by:* key:ops &lt;alice&gt;"),
            "{section}"
        );
        assert!(section.contains("• prod (123456789012): 3 × ec2 m5.large"));
        assert_eq!(blocks[2]["type"], "actions");
        let button = &blocks[2]["elements"][0];
        assert_eq!(button["type"], "button");
        assert_eq!(button["text"]["type"], "plain_text");
        assert_eq!(button["text"]["text"], "Review");
        let url = button["url"].as_str().unwrap();
        assert!(url.starts_with("https://cudly.example.com/approve/"));
        assert!(!url.contains("token"));
    }

    #[test]
    fn an_event_without_a_page_has_no_button_and_its_text_is_escaped() {
        let paused = &samples::every_kind()[4];
        let message = body(paused, Audience::Broadcast);
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(message["text"], "Plan nightly &amp; &lt;weekly&gt; paused");
        // Plain text is shown as is.
        assert_eq!(blocks[0]["text"]["text"], "Plan nightly & <weekly> paused");
    }

    #[test]
    fn a_step_reminder_has_no_button_and_its_facts_are_escaped() {
        let message = body(&samples::every_kind().pop().unwrap(), Audience::Broadcast);
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            message["text"],
            "Plan nightly &amp; &lt;weekly&gt; step 2 fires on 2026-01-12"
        );
        let section = blocks[1]["text"]["text"].as_str().unwrap();
        assert!(section.contains("*Fires on:* 2026-01-12"), "{section}");
        assert!(section.contains("*Approval:* needed"), "{section}");
    }
}
