//! Prometheus figures per task: runs by outcome, found, acted, race_lost, errors,
//! lock_not_acquired and duration.

use std::time::Duration;

use crate::task::{Counts, Outcome, Task};

/// Records one finished run.
pub fn record_run(task: Task, outcome: Outcome, counts: Counts, duration: Duration) {
    let task_name = task.name();
    metrics::counter!("sweeper_task_runs_total", "task" => task_name, "outcome" => outcome.name())
        .increment(1);
    metrics::counter!("sweeper_task_found_total", "task" => task_name)
        .increment(u64::from(counts.found));
    metrics::counter!("sweeper_task_acted_total", "task" => task_name)
        .increment(u64::from(counts.acted));
    metrics::counter!("sweeper_task_race_lost_total", "task" => task_name)
        .increment(u64::from(counts.race_lost));
    metrics::counter!("sweeper_task_errors_total", "task" => task_name)
        .increment(u64::from(counts.errors));
    if outcome == Outcome::LockNotAcquired {
        metrics::counter!("sweeper_lock_not_acquired_total", "task" => task_name).increment(1);
    }
    if matches!(outcome, Outcome::Ran | Outcome::LockLost) {
        metrics::counter!("sweeper_lock_acquisitions_total", "task" => task_name).increment(1);
    }
    metrics::histogram!("sweeper_task_duration_seconds", "task" => task_name)
        .record(duration.as_secs_f64());
}
