//! An email: a one-line subject, a plain-text body and the same in HTML. The link with
//! the token goes in the body of a private email only, never in the subject (subjects
//! end up in mail logs and notification previews).

use super::{MailContent, review_link, text};
use crate::channel::Audience;
use crate::event::Event;

const SUBJECT_PREFIX: &str = "[CUDly] ";
const MAX_SUBJECT_CHARS: usize = 200;

pub(super) fn content(event: &Event, audience: Audience) -> MailContent {
    let title = text::title(event);
    let facts = text::facts(event);
    let lines = text::lines(event);
    let link = review_link(event, audience);

    let mut plain = format!("{title}\n\n");
    for (label, value) in &facts {
        plain.push_str(&format!("{label}: {value}\n"));
    }
    if !lines.is_empty() {
        plain.push('\n');
        for line in &lines {
            plain.push_str(&format!("- {line}\n"));
        }
    }
    if let Some(url) = link {
        plain.push_str(&format!("\n{}: {url}\n", text::link_label(event)));
    }
    plain.push_str(&format!("\nEvent {}\n", event.id));

    let mut html = format!("<h2>{}</h2>\n<table>\n", escape(&title));
    for (label, value) in &facts {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            escape(label),
            escape(value)
        ));
    }
    html.push_str("</table>\n");
    if !lines.is_empty() {
        html.push_str("<ul>\n");
        for line in &lines {
            html.push_str(&format!("<li>{}</li>\n", escape(line)));
        }
        html.push_str("</ul>\n");
    }
    if let Some(url) = link {
        html.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            escape(url),
            text::link_label(event)
        ));
    }
    html.push_str(&format!("<p><small>Event {}</small></p>\n", event.id));

    MailContent {
        subject: subject(&title),
        text: plain,
        html,
    }
}

/// One line, no control characters (no header injection), at most
/// [`MAX_SUBJECT_CHARS`].
fn subject(title: &str) -> String {
    let single_line: String = title
        .chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect();
    text::truncate(&format!("{SUBJECT_PREFIX}{single_line}"), MAX_SUBJECT_CHARS)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples;

    #[test]
    fn an_email_has_a_subject_a_text_and_an_escaped_html_body() {
        let event = samples::approval_requested();
        let mail = content(&event, Audience::Broadcast);
        assert!(mail.subject.starts_with("[CUDly] Approval requested"));
        assert!(mail.text.contains("Requested by: key:ops <alice>"));
        assert!(
            mail.text
                .contains("Review: https://cudly.example.com/approve/")
        );
        assert!(mail.html.contains("key:ops &lt;alice&gt;"));
        assert!(!mail.html.contains("<alice>"));
        assert!(mail.text.contains(&event.id.to_string()));
    }

    #[test]
    fn a_step_reminder_mail_names_the_step_and_escapes_the_plan() {
        let event = samples::every_kind().pop().unwrap();
        let mail = content(&event, Audience::Private);
        assert_eq!(
            mail.subject,
            "[CUDly] Plan nightly & <weekly> step 2 fires on 2026-01-12"
        );
        assert!(mail.text.contains("Fires on: 2026-01-12"), "{}", mail.text);
        assert!(!mail.text.contains("Open:"), "no page to link");
        assert!(mail.html.contains("nightly &amp; &lt;weekly&gt;"));
    }

    #[test]
    fn a_subject_is_one_line() {
        assert_eq!(subject("a\r\nBcc: x@y.z"), "[CUDly] a  Bcc: x@y.z");
    }
}
