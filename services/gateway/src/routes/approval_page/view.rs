//! The approval page's view model: the askama template and its rows, built from the
//! executor's preview of an execution.

use std::collections::HashMap;

use askama::Template;
use chrono::{DateTime, Utc};
use cudly_vocabulary::Recommendation;

use super::ACTOR_TOKEN;
use super::accounts::AccountName;
use super::format::{money, relative, when};
use super::labels::{
    actor_label, item_status_label, item_status_tone, page_title, payment_label, service_label,
    status_label, status_tone,
};
use crate::routes::executions::{ExecutionItemView, ExecutionView};

/// The page of a link without a token: sign in with an API key to review.
#[derive(Template)]
#[template(path = "approval_sign_in.html")]
pub(super) struct SignInPage {
    pub(super) title: &'static str,
    pub(super) id: String,
    pub(super) action: String,
    pub(super) csrf: String,
    /// A keyed decision redirected here.
    pub(super) just_decided: bool,
}

#[derive(Template)]
#[template(path = "approval.html")]
pub(super) struct ApprovalPage {
    title: &'static str,
    id: String,
    /// Still waiting for a decision.
    pending: bool,
    status_label: &'static str,
    status_tone: &'static str,
    created_by: String,
    created_at: Option<String>,
    /// While pending: when the link stops approving.
    expiry: Option<ExpiryView>,
    /// Once decided (anything but pending).
    outcome: Option<OutcomeView>,
    /// The page the decision redirected to.
    just_decided: bool,
    total_upfront: String,
    total_monthly: Option<String>,
    total_commitment: Option<String>,
    total_items: usize,
    account_count: usize,
    accounts: Vec<AccountRow>,
    items: Vec<ItemRow>,
    /// While approvable: the Approve and Cancel forms.
    form: Option<FormView>,
}

struct ExpiryView {
    at: String,
    relative: String,
}

struct OutcomeView {
    /// The execution's status, for `data-status`.
    status: String,
    heading: &'static str,
    tone: &'static str,
    message: String,
    /// Approved and not finished: a reload shows progress.
    in_progress: bool,
}

pub(super) struct FormView {
    pub(super) action: String,
    /// Empty when the approver signed in with a key instead (a broadcast link): both
    /// forms then ask for the key again.
    pub(super) token: String,
    pub(super) csrf: String,
    pub(super) require_key: bool,
}

struct AccountRow {
    name: String,
    number: Option<String>,
    item_count: usize,
    upfront: String,
    status: Option<&'static str>,
}

struct ItemRow {
    title: String,
    detail: String,
    account: String,
    count: u32,
    term: String,
    payment: String,
    priced: bool,
    upfront: String,
    monthly: String,
    /// The item's status once the execution is decided.
    status: Option<&'static str>,
    status_tone: &'static str,
}

/// Builds the page of `execution` (a root with its children and their items).
pub(super) fn approval_page(
    execution: &ExecutionView,
    names: &HashMap<String, AccountName>,
    form: Option<FormView>,
    just_decided: bool,
    now: DateTime<Utc>,
) -> ApprovalPage {
    let pending = execution.status == "pending";
    let currency = execution
        .quote
        .as_ref()
        .map_or("USD", |quote| quote.currency.as_str())
        .to_owned();
    let name_of = |id: &str| {
        names.get(id).cloned().unwrap_or_else(|| AccountName {
            name: id.to_owned(),
            number: None,
        })
    };
    // A root's items are on its children; a child (or an old root) holds its own.
    let buyers: Vec<&ExecutionView> = if execution.children.is_empty() {
        vec![execution]
    } else {
        execution.children.iter().collect()
    };
    let mut items = Vec::new();
    let mut accounts = Vec::new();
    for buyer in &buyers {
        let account = buyer.cloud_account_id.as_deref().map(name_of);
        for item in &buyer.items {
            items.push(item_row(
                item,
                account.as_ref().map_or("", |account| account.name.as_str()),
                pending,
                &currency,
            ));
        }
        if let Some(account) = account {
            accounts.push(AccountRow {
                name: account.name,
                number: account.number,
                item_count: buyer.items.len(),
                upfront: money(buyer.total_upfront_cost, &currency),
                status: (!pending).then(|| status_label(&buyer.status)),
            });
        }
    }
    if items.is_empty() {
        // Nothing itemised yet: the requested lines, unpriced.
        items = execution
            .recommendations
            .iter()
            .map(|line| line_row(line, ""))
            .collect();
    }
    let expiry = execution
        .approval_expires_at
        .filter(|_| pending)
        .map(|at| ExpiryView {
            at: when(at),
            relative: relative(at - now),
        });
    ApprovalPage {
        title: page_title(&execution.status),
        id: execution.id.clone().unwrap_or_default(),
        pending,
        status_label: status_label(&execution.status),
        status_tone: status_tone(&execution.status),
        created_by: actor_label(&execution.created_by),
        created_at: execution.created_at.map(when),
        expiry,
        outcome: outcome(execution),
        just_decided: just_decided && !pending,
        total_upfront: money(execution.total_upfront_cost, &currency),
        total_monthly: execution
            .quote
            .as_ref()
            .map(|quote| money(quote.monthly, &currency)),
        total_commitment: execution
            .quote
            .as_ref()
            .map(|quote| money(quote.total_commitment, &currency)),
        total_items: items.len(),
        account_count: accounts.len(),
        accounts,
        items,
        form,
    }
}

fn item_row(item: &ExecutionItemView, account: &str, pending: bool, currency: &str) -> ItemRow {
    let quote = item
        .quote
        .as_ref()
        .map(|quote| (quote.upfront, quote.monthly));
    let mut row = match &item.recommendation {
        Some(line) => line_row(line, account),
        None => ItemRow {
            title: format!("Item {}", item.index + 1),
            detail: String::new(),
            account: account.to_owned(),
            count: item.quote.as_ref().map_or(0, |quote| quote.count),
            term: String::new(),
            payment: String::new(),
            priced: false,
            upfront: String::new(),
            monthly: String::new(),
            status: None,
            status_tone: "neutral",
        },
    };
    if let Some((upfront, monthly)) = quote {
        row.priced = true;
        row.upfront = money(upfront, currency);
        row.monthly = money(monthly, currency);
    }
    if !pending {
        row.status = Some(item_status_label(&item.status));
        row.status_tone = item_status_tone(&item.status);
    }
    row
}

/// Returns the row of a line, unpriced (its item's quote, when there is one, is added
/// by [`item_row`]).
fn line_row(line: &Recommendation, account: &str) -> ItemRow {
    let mut detail: Vec<String> = Vec::new();
    detail.extend(line.engine.clone());
    detail.extend(line.platform.clone());
    detail.push(line.region.clone());
    let details = &line.details;
    if details.multi_az == Some(true) {
        detail.push("Multi-AZ".to_owned());
    }
    if let Some(zone) = &details.availability_zone {
        detail.push(format!("zone {zone}"));
    }
    if details.tenancy.as_deref() == Some("dedicated") {
        detail.push("dedicated tenancy".to_owned());
    }
    if details.offering_class.as_deref() == Some("convertible") {
        detail.push("convertible".to_owned());
    }
    if let Some(hourly) = &details.hourly_commitment {
        detail.push(format!("${hourly} per hour each"));
    }
    ItemRow {
        title: format!("{} · {}", service_label(line.service), line.resource_type),
        detail: detail.join(" · "),
        account: account.to_owned(),
        count: line.count,
        term: if line.term == 1 {
            "1 year".to_owned()
        } else {
            format!("{} years", line.term)
        },
        payment: payment_label(&line.payment).to_owned(),
        priced: false,
        upfront: String::new(),
        monthly: String::new(),
        status: None,
        status_tone: "neutral",
    }
}

/// The outcome of a decided execution; none while it is pending.
fn outcome(execution: &ExecutionView) -> Option<OutcomeView> {
    let approved = match execution.approved_by.as_deref() {
        Some(ACTOR_TOKEN) => "Approved through the approval link".to_owned(),
        Some(actor) => format!("Approved by {}", actor_label(actor)),
        None => "Approved".to_owned(),
    };
    let failure = execution
        .error
        .as_deref()
        .map(|error| format!(" ({error})"))
        .unwrap_or_default();
    let (heading, message) = match execution.status.as_str() {
        "pending" => return None,
        "approved" | "running" => (
            "Approved, buying now",
            format!("{approved}. CUDly is buying the commitments."),
        ),
        "completed" => (
            "Approved and bought",
            format!("{approved}. Every commitment was bought."),
        ),
        "partially_completed" => (
            "Partly bought",
            format!("{approved}, but only part was bought{failure}. See the items below."),
        ),
        "failed" => (
            "The purchase failed",
            format!("{approved}, but the purchase failed{failure}."),
        ),
        "canceled" => (
            "Canceled",
            "This purchase was canceled. Nothing was bought.".to_owned(),
        ),
        "expired" => (
            "Expired",
            "Nobody decided before the approval window closed. Nothing was bought.".to_owned(),
        ),
        other => ("Decided", format!("This purchase is {other}.")),
    };
    Some(OutcomeView {
        status: execution.status.clone(),
        heading,
        tone: status_tone(&execution.status),
        message,
        in_progress: matches!(execution.status.as_str(), "approved" | "running"),
    })
}
