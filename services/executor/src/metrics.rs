//! Prometheus figures of the executor: executions by the status they entered, purchases
//! by service and outcome, the latency of the purchase calls, and the fan-out's bounds
//! (purchase calls in flight, waits for a permit, account run time).

use std::time::Duration;

use crate::domain::status::ExecutionStatus;

/// Executions (roots and children) that entered `status`, counted when the change is
/// written (a transaction rolled back afterwards, on an error, may count a change that
/// did not stay).
pub const EXECUTIONS_TOTAL: &str = "executor_executions_total";
/// Items whose purchase was decided, by service and outcome.
pub const PURCHASES_TOTAL: &str = "executor_purchases_total";
/// Purchase calls to AWS, by service and result.
pub const PURCHASE_CALL_DURATION: &str = "executor_purchase_call_duration_seconds";

/// Purchases in flight in this process: each holds a `CUDLY_MAX_PURCHASE_CALLS` permit.
pub const PURCHASE_CALLS_IN_FLIGHT: &str = "executor_purchase_calls_in_flight";
/// Time spent waiting for a permit, by bound (`account`, `item`, `purchase_call`,
/// `lock_slot`).
pub const PERMIT_WAIT: &str = "executor_permit_wait_seconds";
/// Time an account run held its fan-out permit, from its start to its last item.
pub const ACCOUNT_RUN_DURATION: &str = "executor_account_run_duration_seconds";

/// What the bought items committed (their quotes' total commitment), by currency and
/// service.
pub const COMMITTED_TOTAL: &str = "executor_committed_total";
/// Creations and approvals a spend limit refused, by limit.
pub const LIMIT_REFUSALS_TOTAL: &str = "executor_limit_refusals_total";

/// Counts what a bought item committed.
pub fn committed(currency: &str, service: &'static str, amount: f64) {
    if amount.is_finite() && amount > 0.0 {
        metrics::counter!(COMMITTED_TOTAL, "currency" => currency.to_owned(), "service" => service)
            .increment(amount.round() as u64);
    }
}

/// Counts a refusal when `error` is a spend-limit refusal.
pub fn limit_refused(error: &cudly_common::ApiError) {
    if let Some(spend) = &error.spend {
        metrics::counter!(LIMIT_REFUSALS_TOTAL, "limit" => spend.limit.clone()).increment(1);
    }
}

/// The bounds a run waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// `CUDLY_MAX_ACCOUNT_PARALLELISM`, across all executions.
    Account,
    /// `CUDLY_MAX_ITEM_PARALLELISM`, within one account run.
    Item,
    /// `CUDLY_MAX_PURCHASE_CALLS`, across the process.
    PurchaseCall,
    /// A purchase lock's connection (EC2, Redshift), across the process.
    LockSlot,
}

impl Permit {
    fn name(self) -> &'static str {
        match self {
            Permit::Account => "account",
            Permit::Item => "item",
            Permit::PurchaseCall => "purchase_call",
            Permit::LockSlot => "lock_slot",
        }
    }
}

/// How an item's purchase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseOutcome {
    /// A commitment exists for the token (bought now or found by the guard).
    Bought,
    /// Nothing was bought.
    Failed,
    /// Possibly bought, not provably: an operator resolves it.
    InDoubt,
    /// The outcome is unknown for now; a retry reconciles it.
    Unknown,
}

impl PurchaseOutcome {
    fn name(self) -> &'static str {
        match self {
            PurchaseOutcome::Bought => "bought",
            PurchaseOutcome::Failed => "failed",
            PurchaseOutcome::InDoubt => "in_doubt",
            PurchaseOutcome::Unknown => "unknown",
        }
    }
}

/// Records `count` executions entering `status`.
pub fn executions_entered(status: ExecutionStatus, count: u64) {
    if count > 0 {
        metrics::counter!(EXECUTIONS_TOTAL, "status" => status.as_str()).increment(count);
    }
}

/// Records an item's outcome.
pub fn purchase_settled(service: &'static str, outcome: PurchaseOutcome) {
    metrics::counter!(PURCHASES_TOTAL, "service" => service, "outcome" => outcome.name())
        .increment(1);
}

/// Records one purchase call and how it ended (`ok`, `rejected`, `invalid`, `unknown`).
pub fn purchase_call(service: &'static str, result: &'static str, took: Duration) {
    metrics::histogram!(PURCHASE_CALL_DURATION, "service" => service, "result" => result)
        .record(took.as_secs_f64());
}

/// Records how long a run waited for a `permit`.
pub fn permit_waited(permit: Permit, took: Duration) {
    metrics::histogram!(PERMIT_WAIT, "permit" => permit.name()).record(took.as_secs_f64());
}

/// Records a purchase call permit taken (`1.0`) or given back (`-1.0`).
pub fn purchase_calls_in_flight(change: f64) {
    metrics::gauge!(PURCHASE_CALLS_IN_FLIGHT).increment(change);
}

/// Records how long an account run held its fan-out permit.
pub fn account_run(took: Duration) {
    metrics::histogram!(ACCOUNT_RUN_DURATION).record(took.as_secs_f64());
}
