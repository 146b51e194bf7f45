//! What a notification is about: an [`Event`] of one [`EventKind`], with typed data per
//! kind (docs/design/API.md "Notifications and the approval page").
//!
//! The approval link with its token ([`ApprovalUrl`]) is the one secret an event can
//! carry. It is never serialized with the event's data (`serde(skip)`), so it can reach
//! neither the stored payload nor a rendered body by accident: the outbox stores it
//! encrypted apart, and only a private channel's renderer puts it back.

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The kinds of event a channel subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An execution waits for approval.
    ApprovalRequested,
    /// An execution ended (completed, partially completed, failed).
    ExecutionFinished,
    /// A purchase whose outcome is unknown or in doubt: an operator must act.
    OutcomeUnknown,
    /// A spend limit refused an execution.
    LimitRefused,
    /// A plan stopped running by itself.
    PlanPaused,
    /// A recommendations refresh failed.
    RecommendationsFailed,
    /// A plan step fires soon (the plan's `notification_days_before`).
    StepUpcoming,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 7] = [
        EventKind::ApprovalRequested,
        EventKind::ExecutionFinished,
        EventKind::OutcomeUnknown,
        EventKind::LimitRefused,
        EventKind::PlanPaused,
        EventKind::RecommendationsFailed,
        EventKind::StepUpcoming,
    ];

    /// Returns the kind's wire name, e.g. `approval_requested` (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ApprovalRequested => "approval_requested",
            EventKind::ExecutionFinished => "execution_finished",
            EventKind::OutcomeUnknown => "outcome_unknown",
            EventKind::LimitRefused => "limit_refused",
            EventKind::PlanPaused => "plan_paused",
            EventKind::RecommendationsFailed => "recommendations_failed",
            EventKind::StepUpcoming => "step_upcoming",
        }
    }

    /// Returns the kind named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// An approval link that carries the approval token. Never printed, never serialized;
/// rendered for private channels only.
#[derive(Clone)]
pub struct ApprovalUrl(SecretString);

impl ApprovalUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    /// Returns the link itself: for a private channel's body only.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for ApprovalUrl {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ApprovalUrl([redacted])")
    }
}

/// The two links of an execution waiting for approval.
#[derive(Debug, Clone)]
pub struct ApprovalLinks {
    /// The approval page without a token: whoever opens it authenticates there.
    pub page_url: String,
    /// The same page with the token: private channels only.
    pub approval_url: ApprovalUrl,
}

/// Returns the approval page of `execution_id` under the gateway's public URL
/// (`<base>/approve/<id>`), with and without `token`. None when `public_base_url`
/// cannot hold a path (not an http(s) URL).
pub fn approval_links(
    public_base_url: &Url,
    execution_id: Uuid,
    token: &SecretString,
) -> Option<ApprovalLinks> {
    let page = approval_page(public_base_url, execution_id)?;
    let mut with_token = page.clone();
    with_token
        .query_pairs_mut()
        .append_pair("token", token.expose_secret());
    Some(ApprovalLinks {
        page_url: page.to_string(),
        approval_url: ApprovalUrl::new(with_token.to_string()),
    })
}

/// Returns the approval page of `execution_id` without a token
/// (`<base>/approve/<id>`): whoever opens it signs in there. None when
/// `public_base_url` cannot hold a path.
pub fn approval_page_url(public_base_url: &Url, execution_id: Uuid) -> Option<String> {
    approval_page(public_base_url, execution_id).map(|page| page.to_string())
}

fn approval_page(public_base_url: &Url, execution_id: Uuid) -> Option<Url> {
    let mut page = public_base_url.clone();
    page.set_query(None);
    page.set_fragment(None);
    page.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .push("approve")
        .push(&execution_id.to_string());
    Some(page)
}

/// One line of a quote: what one account would buy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseLine {
    /// The account as people know it, e.g. `prod (123456789012)`.
    pub account: String,
    pub service: String,
    pub region: String,
    pub resource_type: String,
    pub count: u32,
    pub term_years: u8,
    pub payment: String,
    pub upfront: f64,
    pub monthly: f64,
}

/// The sums of a quote, in its one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub currency: String,
    pub upfront: f64,
    pub monthly: f64,
    pub total_commitment: f64,
}

/// An execution waits for approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalRequested {
    pub lines: Vec<PurchaseLine>,
    pub totals: Totals,
    pub requested_by: String,
    pub expires_at: DateTime<Utc>,
    /// The approval page without a token.
    pub page_url: String,
    /// The approval page with the token, for private channels.
    #[serde(skip)]
    pub approval_url: Option<ApprovalUrl>,
}

/// An execution ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionFinished {
    /// `completed`, `partially_completed` or `failed`.
    pub status: String,
    pub bought: u32,
    pub failed: u32,
    /// What the bought items committed.
    pub committed: f64,
    pub currency: String,
    pub page_url: Option<String>,
}

/// Purchases whose outcome is unknown or in doubt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeUnknown {
    pub items: u32,
    /// Sanitised by the caller: no secret, no token.
    pub reason: String,
    pub page_url: Option<String>,
}

/// A spend limit refused an execution (as `cudly_common::SpendRefusal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitRefused {
    /// The limit's name, e.g. `max_window_commitment`.
    pub limit: String,
    pub amount: f64,
    pub committed: f64,
    pub requested: f64,
    pub currency: String,
}

impl LimitRefused {
    /// Returns the event data of a spend-limit refusal (amounts in USD).
    pub fn from_refusal(refusal: &cudly_common::SpendRefusal) -> Self {
        Self {
            limit: refusal.limit.clone(),
            amount: refusal.amount,
            committed: refusal.committed,
            requested: refusal.requested,
            currency: "USD".to_owned(),
        }
    }
}

/// A plan stopped running by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPaused {
    pub plan_name: String,
    /// Sanitised by the caller.
    pub reason: String,
}

/// One account whose recommendations could not be collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountFailure {
    pub account: String,
    /// Sanitised by the caller.
    pub error: String,
}

/// A recommendations refresh failed, for some accounts or all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationsFailed {
    pub failures: Vec<AccountFailure>,
}

/// A plan step fires soon: the reminder sent `notification_days_before` days ahead,
/// once per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepUpcoming {
    pub plan_name: String,
    /// The step that fires (1-based).
    pub step_number: u32,
    /// The day (UTC) it is due.
    pub fires_on: NaiveDate,
    /// True when the run it creates waits for approval (the plan has no auto_purchase).
    pub needs_approval: bool,
}

/// The data of an event, one variant per kind. Serialized as `{"event": <kind>,
/// "data": {...}}`: the stored payload and the webhook body's `event` and `data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum EventData {
    ApprovalRequested(ApprovalRequested),
    ExecutionFinished(ExecutionFinished),
    OutcomeUnknown(OutcomeUnknown),
    LimitRefused(LimitRefused),
    PlanPaused(PlanPaused),
    RecommendationsFailed(RecommendationsFailed),
    StepUpcoming(StepUpcoming),
}

impl EventData {
    /// Returns the kind of this data.
    pub fn kind(&self) -> EventKind {
        match self {
            EventData::ApprovalRequested(_) => EventKind::ApprovalRequested,
            EventData::ExecutionFinished(_) => EventKind::ExecutionFinished,
            EventData::OutcomeUnknown(_) => EventKind::OutcomeUnknown,
            EventData::LimitRefused(_) => EventKind::LimitRefused,
            EventData::PlanPaused(_) => EventKind::PlanPaused,
            EventData::RecommendationsFailed(_) => EventKind::RecommendationsFailed,
            EventData::StepUpcoming(_) => EventKind::StepUpcoming,
        }
    }

    /// Returns the link with a token, if the event carries one.
    pub(crate) fn approval_url(&self) -> Option<&ApprovalUrl> {
        match self {
            EventData::ApprovalRequested(data) => data.approval_url.as_ref(),
            _ => None,
        }
    }

    /// Puts back the link with a token read from the outbox.
    pub(crate) fn set_approval_url(&mut self, url: ApprovalUrl) {
        if let EventData::ApprovalRequested(data) = self {
            data.approval_url = Some(url);
        }
    }

    /// Returns the page a reader can open without a token, if any.
    pub fn page_url(&self) -> Option<&str> {
        match self {
            EventData::ApprovalRequested(data) => Some(&data.page_url),
            EventData::ExecutionFinished(data) => data.page_url.as_deref(),
            EventData::OutcomeUnknown(data) => data.page_url.as_deref(),
            EventData::LimitRefused(_)
            | EventData::PlanPaused(_)
            | EventData::RecommendationsFailed(_)
            | EventData::StepUpcoming(_) => None,
        }
    }
}

/// Something that happened, to notify the channels that want it.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event id: the same in every delivery and every retry (receivers dedupe on it).
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub execution_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
    /// The accounts the event is about.
    pub account_ids: Vec<Uuid>,
    pub data: EventData,
}

impl Event {
    /// Returns a new event with a fresh id, happening now.
    pub fn new(data: EventData) -> Self {
        Self {
            id: Uuid::new_v4(),
            occurred_at: Utc::now(),
            execution_id: None,
            plan_id: None,
            account_ids: Vec::new(),
            data,
        }
    }

    /// Returns the event with a chosen id (a caller that derives ids, so that a repeated
    /// enqueue of the same event is recognised).
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    pub fn for_execution(mut self, execution_id: Uuid) -> Self {
        self.execution_id = Some(execution_id);
        self
    }

    pub fn for_plan(mut self, plan_id: Uuid) -> Self {
        self.plan_id = Some(plan_id);
        self
    }

    pub fn for_accounts(mut self, account_ids: impl IntoIterator<Item = Uuid>) -> Self {
        self.account_ids = account_ids.into_iter().collect();
        self.account_ids.sort_unstable();
        self.account_ids.dedup();
        self
    }

    /// Returns the event's kind.
    pub fn kind(&self) -> EventKind {
        self.data.kind()
    }
}

#[cfg(test)]
pub(crate) mod samples {
    //! One event of each kind, for the renderers' tests.

    use super::*;

    /// A token no rendered broadcast body may contain.
    pub const CANARY_TOKEN: &str =
        "c4n4ry70k3n0f64hexcharacterssssssssssssssssssssssssssssssssssssss";

    pub fn approval_requested() -> Event {
        let links = approval_links(
            &Url::parse("https://cudly.example.com/").unwrap(),
            Uuid::new_v4(),
            &SecretString::from(CANARY_TOKEN),
        )
        .unwrap();
        Event::new(EventData::ApprovalRequested(ApprovalRequested {
            lines: vec![PurchaseLine {
                account: "prod (123456789012)".to_owned(),
                service: "ec2".to_owned(),
                region: "eu-west-1".to_owned(),
                resource_type: "m5.large".to_owned(),
                count: 3,
                term_years: 1,
                payment: "no-upfront".to_owned(),
                upfront: 0.0,
                monthly: 123.45,
            }],
            totals: Totals {
                currency: "USD".to_owned(),
                upfront: 0.0,
                monthly: 123.45,
                total_commitment: 1481.4,
            },
            requested_by: "key:ops <alice>".to_owned(),
            expires_at: Utc::now(),
            page_url: links.page_url,
            approval_url: Some(links.approval_url),
        }))
        .for_execution(Uuid::new_v4())
        .for_plan(Uuid::new_v4())
        .for_accounts([Uuid::new_v4()])
    }

    pub fn every_kind() -> Vec<Event> {
        vec![
            approval_requested(),
            Event::new(EventData::ExecutionFinished(ExecutionFinished {
                status: "partially_completed".to_owned(),
                bought: 2,
                failed: 1,
                committed: 999.5,
                currency: "USD".to_owned(),
                page_url: Some("https://cudly.example.com/executions/1".to_owned()),
            })),
            Event::new(EventData::OutcomeUnknown(OutcomeUnknown {
                items: 1,
                reason: "purchase call timed out".to_owned(),
                page_url: None,
            })),
            Event::new(EventData::LimitRefused(LimitRefused {
                limit: "max_window_commitment".to_owned(),
                amount: 1000.0,
                committed: 900.0,
                requested: 200.0,
                currency: "USD".to_owned(),
            })),
            Event::new(EventData::PlanPaused(PlanPaused {
                plan_name: "nightly & <weekly>".to_owned(),
                reason: "recommendations are stale".to_owned(),
            })),
            Event::new(EventData::RecommendationsFailed(RecommendationsFailed {
                failures: vec![AccountFailure {
                    account: "dev (210987654321)".to_owned(),
                    error: "access denied".to_owned(),
                }],
            })),
            Event::new(EventData::StepUpcoming(StepUpcoming {
                plan_name: "nightly & <weekly>".to_owned(),
                step_number: 2,
                fires_on: NaiveDate::from_ymd_opt(2026, 1, 12).unwrap(),
                needs_approval: true,
            }))
            .for_plan(Uuid::new_v4())
            .for_accounts([Uuid::new_v4()]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_agree_with_serde_and_parse_back() {
        for kind in EventKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        for event in samples::every_kind() {
            let value = serde_json::to_value(&event.data).unwrap();
            assert_eq!(value["event"], event.kind().as_str());
        }
        assert_eq!(EventKind::parse("approval"), None);
    }

    #[test]
    fn a_step_reminder_carries_its_day_as_a_date_and_reads_back() {
        let event = samples::every_kind().pop().unwrap();
        assert_eq!(event.kind(), EventKind::StepUpcoming);
        let value = serde_json::to_value(&event.data).unwrap();
        assert_eq!(value["event"], "step_upcoming");
        assert_eq!(value["data"]["fires_on"], "2026-01-12");
        assert_eq!(value["data"]["step_number"], 2);
        assert_eq!(value["data"]["needs_approval"], true);
        let back: EventData = serde_json::from_value(value).unwrap();
        assert!(matches!(
            back,
            EventData::StepUpcoming(StepUpcoming { step_number: 2, .. })
        ));
        assert_eq!(back.page_url(), None);
    }

    #[test]
    fn the_approval_link_is_neither_serialized_nor_printed() {
        let event = samples::approval_requested();
        assert!(event.data.approval_url().is_some());
        let json = serde_json::to_string(&event.data).unwrap();
        assert!(!json.contains(samples::CANARY_TOKEN), "{json}");
        assert!(!format!("{event:?}").contains(samples::CANARY_TOKEN));
        let back: EventData = serde_json::from_str(&json).unwrap();
        assert!(back.approval_url().is_none());
    }

    #[test]
    fn approval_links_keep_the_base_path_and_put_the_token_in_the_query_only() {
        let id = Uuid::new_v4();
        let token = SecretString::from("ab12");
        let links = approval_links(
            &Url::parse("https://cudly.example.com/base/?x=1#f").unwrap(),
            id,
            &token,
        )
        .unwrap();
        assert_eq!(
            links.page_url,
            format!("https://cudly.example.com/base/approve/{id}")
        );
        assert_eq!(
            links.approval_url.expose(),
            format!("https://cudly.example.com/base/approve/{id}?token=ab12")
        );
        assert!(approval_links(&Url::parse("mailto:a@b.c").unwrap(), id, &token).is_none());
    }
}
