//! The words of a notification, shared by every channel kind: a title, facts (label,
//! value) and, for an approval request, its purchase lines. Each renderer only lays
//! them out, so Slack, Teams and email say the same thing.

use chrono::{DateTime, NaiveDate, Utc};

use crate::event::{Event, EventData, PurchaseLine};

/// Most purchase lines a message lists; the rest are counted.
const MAX_LINES: usize = 10;

/// Returns the one-line summary of `event`.
pub(crate) fn title(event: &Event) -> String {
    match &event.data {
        EventData::ApprovalRequested(data) => format!(
            "Approval requested: {} purchase {}, {} committed",
            data.lines.len(),
            plural(data.lines.len(), "line", "lines"),
            money(data.totals.total_commitment, &data.totals.currency)
        ),
        EventData::ExecutionFinished(data) => format!(
            "Execution {}: {} bought, {} failed",
            data.status.replace('_', " "),
            data.bought,
            data.failed
        ),
        EventData::OutcomeUnknown(data) => format!(
            "Purchase outcome unknown for {} {}: operator action needed",
            data.items,
            plural(data.items as usize, "item", "items")
        ),
        EventData::LimitRefused(data) => {
            format!("Spend limit {} refused an execution", data.limit)
        }
        EventData::PlanPaused(data) => format!("Plan {} paused", data.plan_name),
        EventData::RecommendationsFailed(data) => format!(
            "Recommendations refresh failed for {} {}",
            data.failures.len(),
            plural(data.failures.len(), "account", "accounts")
        ),
        EventData::StepUpcoming(data) => format!(
            "Plan {} step {} fires on {}",
            data.plan_name,
            data.step_number,
            date(data.fires_on)
        ),
    }
}

/// Returns the facts of `event`, in display order.
pub(crate) fn facts(event: &Event) -> Vec<(String, String)> {
    let mut facts: Vec<(String, String)> = Vec::new();
    let mut fact = |label: &str, value: String| facts.push((label.to_owned(), value));
    match &event.data {
        EventData::ApprovalRequested(data) => {
            fact("Requested by", data.requested_by.clone());
            fact("Expires", time(data.expires_at));
            fact("Upfront", money(data.totals.upfront, &data.totals.currency));
            fact("Monthly", money(data.totals.monthly, &data.totals.currency));
            fact(
                "Total commitment",
                money(data.totals.total_commitment, &data.totals.currency),
            );
        }
        EventData::ExecutionFinished(data) => {
            fact("Status", data.status.clone());
            fact("Bought", data.bought.to_string());
            fact("Failed", data.failed.to_string());
            fact("Committed", money(data.committed, &data.currency));
        }
        EventData::OutcomeUnknown(data) => {
            fact("Items", data.items.to_string());
            fact("Reason", data.reason.clone());
        }
        EventData::LimitRefused(data) => {
            fact(
                "Limit",
                format!("{} ({})", data.limit, money(data.amount, &data.currency)),
            );
            fact("Already committed", money(data.committed, &data.currency));
            fact("Requested", money(data.requested, &data.currency));
        }
        EventData::PlanPaused(data) => {
            fact("Plan", data.plan_name.clone());
            fact("Reason", data.reason.clone());
        }
        EventData::RecommendationsFailed(data) => {
            for failure in &data.failures {
                fact(&failure.account, failure.error.clone());
            }
        }
        EventData::StepUpcoming(data) => {
            fact("Plan", data.plan_name.clone());
            fact("Step", data.step_number.to_string());
            fact("Fires on", date(data.fires_on));
            fact(
                "Approval",
                if data.needs_approval {
                    "needed: the run waits for an approver".to_owned()
                } else {
                    "none: the plan buys automatically (auto_purchase)".to_owned()
                },
            );
        }
    }
    if let Some(execution_id) = event.execution_id {
        fact("Execution", execution_id.to_string());
    }
    if let Some(plan_id) = event.plan_id {
        fact("Plan id", plan_id.to_string());
    }
    facts
}

/// Returns the purchase lines of an approval request (at most [`MAX_LINES`], then a
/// count of the rest); none for other events.
pub(crate) fn lines(event: &Event) -> Vec<String> {
    let EventData::ApprovalRequested(data) = &event.data else {
        return Vec::new();
    };
    let currency = &data.totals.currency;
    let mut listed: Vec<String> = data
        .lines
        .iter()
        .take(MAX_LINES)
        .map(|line| purchase_line(line, currency))
        .collect();
    if data.lines.len() > MAX_LINES {
        listed.push(format!("… and {} more", data.lines.len() - MAX_LINES));
    }
    listed
}

fn purchase_line(line: &PurchaseLine, currency: &str) -> String {
    format!(
        "{}: {} × {} {} {}, {}y {}, {} upfront, {} monthly",
        line.account,
        line.count,
        line.service,
        line.resource_type,
        line.region,
        line.term_years,
        line.payment,
        money(line.upfront, currency),
        money(line.monthly, currency)
    )
}

/// Returns the label of the link to the page behind a notification.
pub(crate) fn link_label(event: &Event) -> &'static str {
    match event.data {
        EventData::ApprovalRequested(_) => "Review",
        _ => "Open",
    }
}

pub(crate) fn money(amount: f64, currency: &str) -> String {
    format!("{amount:.2} {currency}")
}

pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub(crate) fn date(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

/// Returns `text` cut to at most `max_chars` characters, ending in `…` when cut (the
/// limits of Slack's blocks).
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::samples;

    #[test]
    fn an_approval_request_is_summed_up_and_listed() {
        let event = samples::approval_requested();
        assert_eq!(
            title(&event),
            "Approval requested: 1 purchase line, 1481.40 USD committed"
        );
        let facts = facts(&event);
        assert_eq!(
            facts[0],
            ("Requested by".to_owned(), "key:ops <alice>".to_owned())
        );
        assert!(facts.iter().any(|(label, _)| label == "Execution"));
        assert_eq!(
            lines(&event),
            vec![
                "prod (123456789012): 3 × ec2 m5.large eu-west-1, 1y no-upfront, \
                 0.00 USD upfront, 123.45 USD monthly"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn a_step_reminder_names_the_plan_the_step_its_day_and_the_approval() {
        let event = samples::every_kind().pop().unwrap();
        assert_eq!(
            title(&event),
            "Plan nightly & <weekly> step 2 fires on 2026-01-12"
        );
        let facts = facts(&event);
        assert_eq!(
            facts[0],
            ("Plan".to_owned(), "nightly & <weekly>".to_owned())
        );
        assert_eq!(facts[1], ("Step".to_owned(), "2".to_owned()));
        assert_eq!(facts[2], ("Fires on".to_owned(), "2026-01-12".to_owned()));
        assert_eq!(facts[3].0, "Approval");
        assert!(facts[3].1.starts_with("needed"), "{:?}", facts[3]);
        assert!(facts.iter().any(|(label, _)| label == "Plan id"));
        assert!(lines(&event).is_empty());
        assert_eq!(link_label(&event), "Open");
    }

    #[test]
    fn long_texts_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééééé", 4).chars().count(), 4);
    }
}
