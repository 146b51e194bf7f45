//! The execution state machine (docs/design/DOMAIN.md "Executions"): statuses, item statuses,
//! purchase attempt states, and which transitions exist.

use std::fmt;

use cudly_common::ApiError;

/// Status of a root or child execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    Pending,
    Approved,
    Running,
    Completed,
    PartiallyCompleted,
    Failed,
    Canceled,
    Expired,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Approved,
        ExecutionStatus::Running,
        ExecutionStatus::Completed,
        ExecutionStatus::PartiallyCompleted,
        ExecutionStatus::Failed,
        ExecutionStatus::Canceled,
        ExecutionStatus::Expired,
    ];

    /// The statuses a lineage may hold at most one root in.
    pub const LIVE: [ExecutionStatus; 3] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Approved,
        ExecutionStatus::Running,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Approved => "approved",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Completed => "completed",
            ExecutionStatus::PartiallyCompleted => "partially_completed",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Canceled => "canceled",
            ExecutionStatus::Expired => "expired",
        }
    }

    /// Returns the status spelled `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Returns the status spelled `text`, or a 400 naming `field`.
    pub fn parse_field(field: &str, text: &str) -> Result<Self, ApiError> {
        Self::parse(text).ok_or_else(|| {
            ApiError::invalid_field(
                field,
                "unknown status, expected one of pending, approved, running, completed, \
                 partially_completed, failed, canceled, expired",
            )
        })
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        !Self::LIVE.contains(&self)
    }

    /// Returns whether the state machine has an edge from `self` to `to`.
    pub fn can_become(self, to: ExecutionStatus) -> bool {
        use ExecutionStatus::*;
        matches!(
            (self, to),
            (Pending, Approved)
                | (Pending, Canceled)
                | (Pending, Expired)
                | (Approved, Running)
                | (Running, Running)
                | (Running, Completed)
                | (Running, PartiallyCompleted)
                | (Running, Failed)
                | (Approved, Failed)
                | (Approved, PartiallyCompleted)
        )
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Status of one item (one recommendation bought by one child).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemStatus {
    Pending,
    InFlight,
    Bought,
    Failed,
    Skipped,
}

impl ItemStatus {
    pub const ALL: [ItemStatus; 5] = [
        ItemStatus::Pending,
        ItemStatus::InFlight,
        ItemStatus::Bought,
        ItemStatus::Failed,
        ItemStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::InFlight => "in_flight",
            ItemStatus::Bought => "bought",
            ItemStatus::Failed => "failed",
            ItemStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// True once the item needs no more work from a run.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            ItemStatus::Bought | ItemStatus::Failed | ItemStatus::Skipped
        )
    }
}

/// State of a purchase attempt (one per idempotency token, lineage-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptState {
    /// Claimed by a run; the purchase may or may not have been sent (see sent_at).
    InFlight,
    Bought,
    /// Definitely not bought; a later run may claim it again.
    Failed,
    /// Possibly bought, not provably: only an operator moves it on.
    InDoubt,
}

impl AttemptState {
    pub const ALL: [AttemptState; 4] = [
        AttemptState::InFlight,
        AttemptState::Bought,
        AttemptState::Failed,
        AttemptState::InDoubt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::InFlight => "in_flight",
            AttemptState::Bought => "bought",
            AttemptState::Failed => "failed",
            AttemptState::InDoubt => "in_doubt",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// Where a root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Created by hand through the gateway.
    Api,
    /// A due plan fired by the sweeper through the planner.
    Schedule,
    /// RetryExecution.
    Retry,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Schedule => "schedule",
            Source::Retry => "retry",
        }
    }

    /// Returns the source of a creation request: `api` (also when empty) or `schedule`.
    pub fn parse_creation(text: &str) -> Result<Self, ApiError> {
        match text {
            "" | "api" => Ok(Source::Api),
            "schedule" => Ok(Source::Schedule),
            _ => Err(ApiError::invalid_field(
                "source",
                "unknown source, expected api or schedule",
            )),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "api" => Some(Source::Api),
            "schedule" => Some(Source::Schedule),
            "retry" => Some(Source::Retry),
            _ => None,
        }
    }
}

/// Actor recorded for what the executor does by itself.
pub const ACTOR_EXECUTOR: &str = "executor";
/// Actor recorded for what the sweeper asks.
pub const ACTOR_SWEEPER: &str = "sweeper";
/// Actor recorded for approvals and cancellations by token.
pub const ACTOR_TOKEN: &str = "token";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(status.as_str()), Some(status));
        }
        for status in ItemStatus::ALL {
            assert_eq!(ItemStatus::parse(status.as_str()), Some(status));
        }
        for state in AttemptState::ALL {
            assert_eq!(AttemptState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ExecutionStatus::parse("done"), None);
    }

    #[test]
    fn only_pending_approved_and_running_are_live() {
        let live: Vec<_> = ExecutionStatus::ALL
            .into_iter()
            .filter(|status| !status.is_terminal())
            .collect();
        assert_eq!(live, ExecutionStatus::LIVE.to_vec());
    }

    #[test]
    fn the_state_machine_has_exactly_the_documented_edges() {
        use ExecutionStatus::*;
        let edges: Vec<(ExecutionStatus, ExecutionStatus)> = ExecutionStatus::ALL
            .into_iter()
            .flat_map(|from| ExecutionStatus::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.can_become(*to))
            .collect();
        assert_eq!(
            edges,
            vec![
                (Pending, Approved),
                (Pending, Canceled),
                (Pending, Expired),
                (Approved, Running),
                (Approved, PartiallyCompleted),
                (Approved, Failed),
                (Running, Running),
                (Running, Completed),
                (Running, PartiallyCompleted),
                (Running, Failed),
            ]
        );
    }

    #[test]
    fn terminal_statuses_have_no_way_out() {
        for from in ExecutionStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ExecutionStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn only_api_and_schedule_may_be_asked_for_at_creation() {
        assert_eq!(Source::parse_creation("").unwrap(), Source::Api);
        assert_eq!(
            Source::parse_creation("schedule").unwrap(),
            Source::Schedule
        );
        assert!(Source::parse_creation("retry").is_err());
    }
}
