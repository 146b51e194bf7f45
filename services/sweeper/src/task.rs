//! The periodic tasks of the sweeper (docs/design/DOMAIN.md, Sweeper).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Pending executions past their approval lifetime become expired.
    ExpirePending,
    /// Stranded roots are re-driven with the same tokens, then safe-failed.
    RecoverStranded,
    /// Due plans start their executions.
    FireDuePlans,
    /// Cost Explorer recommendations are collected again (daily by default: each call
    /// is billed and the data changes once a day).
    RefreshRecommendations,
}

impl Task {
    pub const ALL: [Task; 4] = [
        Task::ExpirePending,
        Task::RecoverStranded,
        Task::FireDuePlans,
        Task::RefreshRecommendations,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::ExpirePending => "expire_pending",
            Task::RecoverStranded => "recover_stranded",
            Task::FireDuePlans => "fire_due_plans",
            Task::RefreshRecommendations => "refresh_recommendations",
        }
    }

    /// Returns the default interval of a task that does not follow
    /// `CUDLY_SWEEP_INTERVAL` (only its own variable changes it).
    pub fn own_interval(self) -> Option<std::time::Duration> {
        match self {
            Task::RefreshRecommendations => Some(std::time::Duration::from_secs(24 * 3600)),
            _ => None,
        }
    }

    /// Returns the variable that overrides this task's interval.
    pub fn interval_var(self) -> String {
        format!("CUDLY_SWEEP_INTERVAL_{}", self.name().to_ascii_uppercase())
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Task::ALL
            .into_iter()
            .find(|task| task.name() == name)
            .ok_or_else(|| format!("unknown task {name:?}: expected expire_pending, recover_stranded, fire_due_plans or refresh_recommendations"))
    }
}

/// How one run of a task ended (sweep_runs.outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ran,
    LockNotAcquired,
    SkippedRecent,
    LockLost,
    Error,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::LockNotAcquired => "lock_not_acquired",
            Outcome::SkippedRecent => "skipped_recent",
            Outcome::LockLost => "lock_lost",
            Outcome::Error => "error",
        }
    }
}

/// What a task body did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub found: u32,
    pub acted: u32,
    pub race_lost: u32,
    pub errors: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_round_trip() {
        for task in Task::ALL {
            assert_eq!(task.name().parse::<Task>().unwrap(), task);
        }
        assert!("expire".parse::<Task>().is_err());
    }

    #[test]
    fn interval_variables_follow_the_documented_names() {
        assert_eq!(
            Task::RecoverStranded.interval_var(),
            "CUDLY_SWEEP_INTERVAL_RECOVER_STRANDED"
        );
    }
}
