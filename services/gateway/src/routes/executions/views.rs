//! The replies of the execution routes, built from the executor's wire types.

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_proto::convert::optional_time;
use cudly_proto::executor::v1 as pb;
use cudly_vocabulary::Recommendation;
use serde::Serialize;
use utoipa::ToSchema;

use crate::routes::plans::views::recommendations;

/// An execution (docs/design/API.md "Execution"): a root with its children, or a child with its
/// items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionView {
    /// Null on a dry run (nothing was stored).
    pub id: Option<String>,
    pub plan_id: Option<String>,
    pub parent_id: Option<String>,
    pub cloud_account_id: Option<String>,
    /// pending | approved | running | completed | partially_completed | failed |
    /// canceled | expired; dry_run on a dry run's reply.
    pub status: String,
    pub step_number: Option<u32>,
    pub scheduled_date: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Number of re-drives.
    pub attempt: u32,
    /// `key:<name>`, or the plan's last editor for scheduled runs.
    pub created_by: String,
    /// `key:<name>`, or `token` when approved by the approval token alone.
    pub approved_by: Option<String>,
    /// api | schedule | retry.
    pub source: String,
    pub total_items: u32,
    /// The quote's upfront total (the system's price, not the requester's estimate).
    pub total_upfront_cost: f64,
    /// What it costs, priced from the AWS offering APIs at creation; null on executions
    /// created before quotes.
    pub quote: Option<QuoteView>,
    /// When a pending root's approval token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_expires_at: Option<DateTime<Utc>>,
    /// A plan run sized from Cost Explorer recommendations: when the oldest set it was
    /// sized from was collected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sized_from: Option<DateTime<Utc>>,
    pub recommendations: Vec<Recommendation>,
    pub items: Vec<ExecutionItemView>,
    #[schema(no_recursion)]
    pub children: Vec<ExecutionView>,
}

/// One recommendation bought by one child execution.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionItemView {
    pub index: u32,
    pub recommendation: Option<Recommendation>,
    /// pending | in_flight | bought | failed | skipped.
    pub status: String,
    pub commitment_id: Option<String>,
    pub error: Option<String>,
    pub purchased_at: Option<DateTime<Utc>>,
    /// The offering this item buys and its list price, from creation.
    pub quote: Option<ItemQuoteView>,
}

/// What an execution (root or child) costs: the sums of its items' quotes.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteView {
    pub currency: String,
    pub upfront: f64,
    /// Recurring charges per month (730 hours).
    pub monthly: f64,
    /// upfront + monthly × term months.
    pub total_commitment: f64,
}

/// What one item costs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemQuoteView {
    pub offering_id: String,
    pub currency: String,
    /// Per unit.
    pub fixed_price: f64,
    /// Per unit and hour.
    pub recurring_hourly: f64,
    pub count: u32,
    pub term_months: u32,
    pub upfront: f64,
    pub monthly: f64,
    pub total_commitment: f64,
}

/// A new execution: the only reply that shows its approval token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedExecutionView {
    #[serde(flatten)]
    pub execution: ExecutionView,
    /// One-time approval token of a new pending execution (approve/cancel links); absent
    /// when auto-approved or on an idempotent replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_token: Option<String>,
}

/// Root executions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionList {
    pub executions: Vec<ExecutionView>,
}

/// What an approve link would approve.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalPreview {
    /// The execution with its children and items.
    pub execution: ExecutionView,
    /// True when a POST on the link would approve it (pending, token unexpired).
    pub approvable: bool,
}

/// A commitment bought (docs/design/API.md "Purchase").
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseView {
    pub id: String,
    /// The child execution that bought it.
    pub execution_id: String,
    pub cloud_account_id: String,
    pub account_external_id: String,
    pub plan_id: Option<String>,
    pub provider: String,
    pub service: String,
    pub region: String,
    pub resource_type: String,
    pub count: u32,
    pub term: u32,
    pub payment: String,
    pub commitment_id: String,
    pub upfront_cost: Option<f64>,
    pub purchased_at: Option<DateTime<Utc>>,
}

/// Purchases, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseList {
    pub purchases: Vec<PurchaseView>,
}

/// A purchase attempt as shown to an operator.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseAttemptView {
    /// First 8 characters of the idempotency token and `...`.
    pub token_masked: String,
    /// in_flight | bought | failed | in_doubt.
    pub state: String,
    pub commitment_id: Option<String>,
    pub offering_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// Null: the purchase call was never sent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// The reply of a resolution.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedAttempt {
    pub attempt: PurchaseAttemptView,
}

/// Returns the JSON form of an execution (a root with its children, or a child).
pub fn execution_view(proto: pb::Execution) -> Result<ExecutionView, ApiError> {
    let items = proto
        .items
        .into_iter()
        .map(|item| {
            let recommendation = item
                .recommendation
                .map(|line| recommendations(vec![line]))
                .transpose()?
                .and_then(|mut lines| lines.pop());
            Ok(ExecutionItemView {
                index: item.index,
                recommendation,
                status: item.status,
                commitment_id: item.commitment_id,
                error: item.error,
                purchased_at: optional_time(item.purchased_at.as_ref()),
                quote: item.quote.map(|quote| ItemQuoteView {
                    offering_id: quote.offering_id,
                    currency: quote.currency,
                    fixed_price: quote.fixed_price,
                    recurring_hourly: quote.recurring_hourly,
                    count: quote.count,
                    term_months: quote.term_months,
                    upfront: quote.upfront,
                    monthly: quote.monthly,
                    total_commitment: quote.total_commitment,
                }),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(ExecutionView {
        id: Some(proto.id).filter(|id| !id.is_empty()),
        plan_id: proto.plan_id,
        parent_id: proto.parent_id,
        cloud_account_id: proto.cloud_account_id,
        status: proto.status,
        step_number: proto.step_number,
        scheduled_date: optional_time(proto.scheduled_date.as_ref()),
        created_at: optional_time(proto.created_at.as_ref()),
        updated_at: optional_time(proto.updated_at.as_ref()),
        started_at: optional_time(proto.started_at.as_ref()),
        completed_at: optional_time(proto.completed_at.as_ref()),
        error: proto.error,
        attempt: proto.attempt,
        created_by: proto.created_by,
        approved_by: proto.approved_by,
        source: proto.source,
        total_items: proto.total_items,
        total_upfront_cost: proto.total_upfront_cost,
        quote: proto.quote.map(|quote| QuoteView {
            currency: quote.currency,
            upfront: quote.upfront,
            monthly: quote.monthly,
            total_commitment: quote.total_commitment,
        }),
        approval_expires_at: optional_time(proto.approval_expires_at.as_ref()),
        sized_from: optional_time(proto.sized_from.as_ref()),
        recommendations: recommendations(proto.recommendations)?,
        items,
        children: proto
            .children
            .into_iter()
            .map(execution_view)
            .collect::<Result<_, _>>()?,
    })
}

/// Returns the JSON form of a purchase.
pub fn purchase_view(purchase: pb::Purchase) -> PurchaseView {
    PurchaseView {
        id: purchase.id,
        execution_id: purchase.execution_id,
        cloud_account_id: purchase.cloud_account_id,
        account_external_id: purchase.account_external_id,
        plan_id: purchase.plan_id,
        provider: purchase.provider,
        service: purchase.service,
        region: purchase.region,
        resource_type: purchase.resource_type,
        count: purchase.count,
        term: purchase.term,
        payment: purchase.payment,
        commitment_id: purchase.commitment_id,
        upfront_cost: purchase.upfront_cost,
        purchased_at: optional_time(purchase.purchased_at.as_ref()),
    }
}

/// Returns the JSON form of a purchase attempt.
pub fn attempt_view(attempt: pb::PurchaseAttempt) -> PurchaseAttemptView {
    PurchaseAttemptView {
        token_masked: attempt.token_masked,
        state: attempt.state,
        commitment_id: attempt.commitment_id,
        offering_id: attempt.offering_id,
        started_at: optional_time(attempt.started_at.as_ref()),
        sent_at: optional_time(attempt.sent_at.as_ref()),
    }
}
