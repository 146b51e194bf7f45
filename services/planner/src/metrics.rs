//! Prometheus figures of the planner: plans it paused, by reason (an alert: a paused
//! plan buys nothing until an operator enables it again).

/// Plans the planner paused, by reason (`step_max_fires`).
pub const PLANS_PAUSED_TOTAL: &str = "planner_plans_paused_total";

/// Records a plan paused for `reason`.
pub fn plan_paused(reason: &'static str) {
    metrics::counter!(PLANS_PAUSED_TOTAL, "reason" => reason).increment(1);
}

/// Cost Explorer calls made by recommendation refreshes (Cost Explorer bills each).
pub const COST_EXPLORER_CALLS_TOTAL: &str = "planner_cost_explorer_calls_total";

/// Records the Cost Explorer calls of one refresh.
pub fn recommendations_refreshed(calls: u32) {
    metrics::counter!(COST_EXPLORER_CALLS_TOTAL).increment(u64::from(calls));
}
