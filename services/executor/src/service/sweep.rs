//! What the sweeper asks of the executor, each fenced by its task's token in the same
//! transaction as the action: expire pending approvals, list stranded roots, re-drive
//! one (lease takeover), safe-fail one.

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use uuid::Uuid;

use crate::domain::outcome::safe_fail_outcome;
use crate::domain::status::{ACTOR_SWEEPER, ExecutionStatus};
use crate::error::{ExecutorError, ExecutorResult};
use crate::notices::RunEnd;
use crate::repo::executions::{self, CasOutcome, StaleRow, StatusChange};
use crate::repo::{self, items};
use crate::service::{Executor, existing_view};

/// Counts of an expiry pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireCounts {
    pub found: u32,
    pub acted: u32,
    pub race_lost: u32,
}

/// How a re-drive ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveOutcome {
    pub accepted: bool,
    /// "redriven" | "lease_fresh" | "terminal" | "attempt_changed" | "not_approved".
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub attempt: i32,
}

/// How a safe-fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeFailOutcome {
    pub status: ExecutionStatus,
    pub race_lost: bool,
}

fn since(now: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl Executor {
    async fn fence(
        &self,
        tx: &mut sqlx::PgConnection,
        task: &str,
        token: i64,
    ) -> ExecutorResult<()> {
        if task.trim().is_empty() {
            return Err(ApiError::invalid_field("fencing.task", "is required").into());
        }
        if !executions::check_fencing(tx, task, token).await? {
            tracing::warn!(task, token, "stale fencing token refused");
            return Err(ExecutorError::StaleFencing {
                task: task.to_owned(),
            });
        }
        Ok(())
    }

    /// Expires pending roots whose approval window closed (and their children).
    pub async fn expire_pending(
        &self,
        task: &str,
        token: i64,
        now: Option<DateTime<Utc>>,
    ) -> ExecutorResult<ExpireCounts> {
        let mut tx = self.begin().await?;
        self.fence(&mut tx, task, token).await?;
        let now = match now {
            Some(now) => now,
            None => repo::database_now(&mut tx).await?,
        };
        let ids = executions::expired_pending(&mut tx, now).await?;
        let mut counts = ExpireCounts {
            found: ids.len() as u32,
            ..ExpireCounts::default()
        };
        // The token goes into the audit trail: which sweeper run expired what.
        let reason = format!("approval window closed (fencing token {token})");
        for id in ids {
            let change = StatusChange {
                reason: Some(&reason),
                require_approval_expired_at: Some(now),
                ..StatusChange::new(
                    id,
                    &[ExecutionStatus::Pending],
                    ExecutionStatus::Expired,
                    ACTOR_SWEEPER,
                )
            };
            match executions::change_status(&mut tx, &change).await? {
                CasOutcome::Applied { .. } => {
                    executions::change_children_status(
                        &mut tx,
                        id,
                        &[ExecutionStatus::Pending],
                        ExecutionStatus::Expired,
                        ACTOR_SWEEPER,
                        Some(&reason),
                        None,
                    )
                    .await?;
                    counts.acted += 1;
                }
                CasOutcome::Lost => counts.race_lost += 1,
            }
        }
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing expiries"))?;
        if counts.acted > 0 {
            tracing::info!(
                acted = counts.acted,
                race_lost = counts.race_lost,
                "pending executions expired"
            );
        }
        Ok(counts)
    }

    /// Returns roots stranded in approved or running.
    pub async fn list_stale(
        &self,
        task: &str,
        token: i64,
        approved_after: std::time::Duration,
        running_after: std::time::Duration,
        limit: u32,
        now: Option<DateTime<Utc>>,
    ) -> ExecutorResult<Vec<StaleRow>> {
        let limit = if limit == 0 {
            100
        } else {
            i64::from(limit.min(1000))
        };
        let mut tx = self.begin().await?;
        self.fence(&mut tx, task, token).await?;
        let now = match now {
            Some(now) => now,
            None => repo::database_now(&mut tx).await?,
        };
        let rows = executions::list_stale(
            &mut tx,
            since(now, approved_after),
            since(now, running_after),
            limit,
        )
        .await?;
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a fencing token"))?;
        Ok(rows)
    }

    /// Takes over a stale root's lease (or claims an approved one) in one transaction
    /// with the fencing check and attempt + 1, then resumes the run in the background.
    pub async fn redrive(
        &self,
        id: Uuid,
        task: &str,
        token: i64,
        expected_attempt: Option<u32>,
    ) -> ExecutorResult<RedriveOutcome> {
        let mut tx = self.begin().await?;
        self.fence(&mut tx, task, token).await?;
        let root = executions::get_for_update(&mut tx, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
        if !root.is_root() {
            return Err(ApiError::invalid_field(
                "execution_id",
                "is a child execution; re-drive its root",
            )
            .into());
        }
        let refusal = |outcome: &'static str, reason: String| RedriveOutcome {
            accepted: false,
            outcome,
            reason: Some(reason),
            attempt: root.attempt,
        };
        let status = root.status()?;
        if status.is_terminal() {
            return Ok(refusal("terminal", format!("the execution is {status}")));
        }
        if let Some(expected) = expected_attempt
            && i64::from(expected) != i64::from(root.attempt)
        {
            return Ok(refusal(
                "attempt_changed",
                format!("attempt is {} (expected {expected})", root.attempt),
            ));
        }
        if status == ExecutionStatus::Pending {
            return Ok(refusal(
                "not_approved",
                "the execution awaits approval".to_owned(),
            ));
        }
        let now = repo::database_now(&mut tx).await?;
        let stale_before = since(now, self.settings().stranded_running_after);
        if status == ExecutionStatus::Running
            && root.heartbeat_at.is_some_and(|at| at >= stale_before)
        {
            return Ok(refusal(
                "lease_fresh",
                "the lease is held and fresh".to_owned(),
            ));
        }
        let lease = self.runner.new_lease(id);
        let reason = format!("re-driven by {task} (fencing token {token})");
        let from = [status];
        let change = StatusChange {
            reason: Some(&reason),
            require_heartbeat_before: (status == ExecutionStatus::Running).then_some(stale_before),
            require_attempt: Some(root.attempt),
            set_lease: Some(Some(&lease.owner)),
            bump_attempt: true,
            ..StatusChange::new(id, &from, ExecutionStatus::Running, ACTOR_SWEEPER)
        };
        if !executions::change_status(&mut tx, &change).await?.applied() {
            return Ok(refusal(
                "lease_fresh",
                "the lease changed meanwhile".to_owned(),
            ));
        }
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a re-drive"))?;
        let attempt = root.attempt + 1;
        tracing::info!(execution_id = %id, attempt, lease_owner = %lease.owner, "execution re-driven");
        self.runner.resume(lease);
        Ok(RedriveOutcome {
            accepted: true,
            outcome: "redriven",
            reason: None,
            attempt,
        })
    }

    /// Ends a stale root and its non-terminal children with `reason`: partially_completed
    /// if anything was bought, else failed; clears the lease so a zombie cannot write.
    pub async fn safe_fail(
        &self,
        id: Uuid,
        task: &str,
        token: i64,
        reason: &str,
        expected_attempt: Option<u32>,
    ) -> ExecutorResult<SafeFailOutcome> {
        let reason = if reason.trim().is_empty() {
            "verify in the cloud console, then retry"
        } else {
            reason
        };
        let reason = crate::runner::stored_error(reason);
        let mut tx = self.begin().await?;
        self.fence(&mut tx, task, token).await?;
        let root = executions::get_for_update(&mut tx, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
        if !root.is_root() {
            return Err(ApiError::invalid_field(
                "execution_id",
                "is a child execution; safe-fail its root",
            )
            .into());
        }
        let status = root.status()?;
        let lost = SafeFailOutcome {
            status,
            race_lost: true,
        };
        let now = repo::database_now(&mut tx).await?;
        let stale = match status {
            ExecutionStatus::Running => root
                .heartbeat_at
                .is_none_or(|at| at < since(now, self.settings().stranded_running_after)),
            ExecutionStatus::Approved => {
                root.updated_at < since(now, self.settings().stranded_approved_after)
            }
            _ => false,
        };
        let attempt_matches =
            expected_attempt.is_none_or(|expected| i64::from(expected) == i64::from(root.attempt));
        if !stale || !attempt_matches {
            return Ok(lost);
        }
        let anything_bought = items::anything_bought_for_root(&mut tx, id).await?;
        let outcome = safe_fail_outcome(anything_bought);
        let from = [status];
        let change = StatusChange {
            reason: Some(&reason),
            require_attempt: Some(root.attempt),
            set_lease: Some(None),
            error: Some(&reason),
            ..StatusChange::new(id, &from, outcome, ACTOR_SWEEPER)
        };
        if !executions::change_status(&mut tx, &change).await?.applied() {
            return Ok(lost);
        }
        for child in executions::children_of(&mut tx, &[id]).await? {
            let child_status = child.status()?;
            if child_status.is_terminal() {
                continue;
            }
            items::settle_for_safe_fail(&mut tx, child.id, &reason).await?;
            let child_outcome =
                safe_fail_outcome(items::anything_bought_for_child(&mut tx, child.id).await?);
            let child_from = [child_status];
            let child_change = StatusChange {
                reason: Some(&reason),
                set_lease: Some(None),
                error: Some(&reason),
                ..StatusChange::new(child.id, &child_from, child_outcome, ACTOR_SWEEPER)
            };
            executions::change_status(&mut tx, &child_change).await?;
        }
        let view = existing_view(&mut tx, id).await?;
        let unsettled = items::unsettled_for_root(&mut tx, id).await?;
        let ended = RunEnd::of(&view, outcome, unsettled);
        for event in self.notices().run_finished(&view, &ended) {
            self.notices().raise(&mut tx, &event).await?;
        }
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a safe-fail"))?;
        tracing::warn!(execution_id = %id, status = %outcome, "execution safe-failed");
        Ok(SafeFailOutcome {
            status: outcome,
            race_lost: false,
        })
    }
}
