//! Prometheus figures of the executor: executions by the status they entered, purchases
//! by service and outcome, and the latency of the purchase calls.

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
