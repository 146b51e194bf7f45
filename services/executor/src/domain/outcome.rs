//! How a run ends (docs/design/DOMAIN.md "Executions": root outcome): never `failed` once anything
//! was bought, so nobody re-approves a half-bought plan.

use crate::domain::status::{ExecutionStatus, ItemStatus};

/// Returns the status of a child whose items are all settled: every item bought or
/// skipped → completed; some bought → partially_completed; nothing bought → failed.
pub fn child_outcome(items: &[ItemStatus]) -> ExecutionStatus {
    let all_done = items
        .iter()
        .all(|status| matches!(status, ItemStatus::Bought | ItemStatus::Skipped));
    if all_done {
        return ExecutionStatus::Completed;
    }
    if items.contains(&ItemStatus::Bought) {
        ExecutionStatus::PartiallyCompleted
    } else {
        ExecutionStatus::Failed
    }
}

/// Returns the status of a root whose children all ended: all completed → completed;
/// anything bought anywhere → partially_completed; else failed.
pub fn root_outcome(children: &[ExecutionStatus], anything_bought: bool) -> ExecutionStatus {
    if children
        .iter()
        .all(|status| *status == ExecutionStatus::Completed)
    {
        return ExecutionStatus::Completed;
    }
    safe_fail_outcome(anything_bought)
}

/// Returns the status a safe-failed root or child takes.
pub fn safe_fail_outcome(anything_bought: bool) -> ExecutionStatus {
    if anything_bought {
        ExecutionStatus::PartiallyCompleted
    } else {
        ExecutionStatus::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionStatus::*;

    #[test]
    fn a_child_that_bought_everything_completed() {
        assert_eq!(
            child_outcome(&[ItemStatus::Bought, ItemStatus::Skipped]),
            Completed
        );
        assert_eq!(child_outcome(&[]), Completed);
    }

    #[test]
    fn a_child_that_bought_some_is_partially_completed_never_failed() {
        assert_eq!(
            child_outcome(&[ItemStatus::Bought, ItemStatus::Failed]),
            PartiallyCompleted
        );
    }

    #[test]
    fn a_child_that_bought_nothing_failed() {
        assert_eq!(
            child_outcome(&[ItemStatus::Failed, ItemStatus::Failed]),
            Failed
        );
    }

    #[test]
    fn a_root_follows_its_children_and_what_was_bought() {
        assert_eq!(root_outcome(&[Completed, Completed], true), Completed);
        assert_eq!(root_outcome(&[Completed, Failed], true), PartiallyCompleted);
        assert_eq!(root_outcome(&[Failed, Failed], false), Failed);
        assert_eq!(
            root_outcome(&[PartiallyCompleted, Failed], true),
            PartiallyCompleted
        );
    }
}
