//! One run of a root: hold and renew its lease, run its children concurrently (each in
//! its own task, so a panic fails that child alone), then end the root by its
//! children's outcome and report a completed plan step.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use sqlx::Acquire;

use crate::domain::outcome::root_outcome;
use crate::domain::status::{ACTOR_EXECUTOR, ExecutionStatus};
use crate::error::{ExecutorError, ExecutorResult};
use crate::notices::RunEnd;
use crate::repo::Lease;
use crate::repo::executions::{self, CasOutcome, StatusChange};
use crate::repo::items;
use crate::runner::Inner;
use crate::runner::child::{self, ChildEnd};
use crate::service::existing_view;

/// Runs a root whose lease `lease` holds.
pub async fn run_root(inner: Arc<Inner>, lease: Lease) {
    let span = tracing::info_span!("execution_run", execution_id = %lease.root_id, lease_owner = %lease.owner);
    async move {
        tracing::info!("execution run started");
        if let Err(error) = drive(&inner, &lease).await {
            tracing::error!(error = %error, "execution run stopped on an error; a re-drive resumes it");
        }
    }
    .instrument(span)
    .await
}

async fn drive(inner: &Arc<Inner>, lease: &Lease) -> ExecutorResult<()> {
    let mut conn = inner
        .pool
        .acquire()
        .await
        .map_err(ExecutorError::db("acquiring a connection"))?;
    let Some(root) = executions::get(&mut conn, lease.root_id).await? else {
        return Ok(());
    };
    let children = executions::children_of(&mut conn, &[root.id]).await?;
    drop(conn);

    let run_stop = inner.cancel.child_token();
    let renewal_done = CancellationToken::new();
    let renewal = tokio::spawn(renew_lease(
        inner.clone(),
        lease.clone(),
        run_stop.clone(),
        renewal_done.clone(),
    ));

    let mut tasks = JoinSet::new();
    let mut task_children: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    for child_row in children {
        if child_row.status()?.is_terminal() {
            continue;
        }
        let child_id = child_row.id;
        let handle = tasks.spawn(
            child::run_child(inner.clone(), lease.clone(), child_row, run_stop.clone())
                .in_current_span(),
        );
        task_children.insert(handle.id(), child_id);
    }
    let mut stopped = false;
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, ChildEnd::Finished)) => {}
            Ok((_, ChildEnd::Stopped)) => stopped = true,
            Err(join_error) => {
                let child_id = task_children.get(&join_error.id()).copied();
                tracing::error!(child_id = ?child_id, panicked = join_error.is_panic(), "account run task failed");
                if let Some(child_id) = child_id {
                    let ended =
                        child::fail_child(inner, lease, child_id, child::INTERNAL_ERROR).await;
                    if !matches!(ended, Ok(ChildEnd::Finished)) {
                        stopped = true;
                    }
                }
            }
        }
    }
    renewal_done.cancel();
    let _ = renewal.await;

    if stopped {
        if inner.cancel.is_cancelled() {
            release(inner, lease).await;
        }
        tracing::info!("execution run stopped before the end; a re-drive resumes it");
        return Ok(());
    }
    finish_root(inner, lease, root.plan_id, root.step_number).await
}

/// Ends the root once every child ended.
async fn finish_root(
    inner: &Arc<Inner>,
    lease: &Lease,
    plan_id: Option<Uuid>,
    step_number: Option<i32>,
) -> ExecutorResult<()> {
    let mut conn = inner
        .pool
        .acquire()
        .await
        .map_err(ExecutorError::db("acquiring a connection"))?;
    let children = executions::children_of(&mut conn, &[lease.root_id]).await?;
    let statuses: Vec<ExecutionStatus> = children
        .iter()
        .map(|row| row.status())
        .collect::<ExecutorResult<_>>()?;
    if statuses.iter().any(|status| !status.is_terminal()) {
        return Ok(());
    }
    let anything_bought = items::anything_bought_for_root(&mut conn, lease.root_id).await?;
    let outcome = root_outcome(&statuses, anything_bought);
    let not_completed = statuses
        .iter()
        .filter(|status| **status != ExecutionStatus::Completed)
        .count();
    let summary = (outcome != ExecutionStatus::Completed).then(|| {
        format!(
            "{not_completed} of {} accounts did not complete",
            statuses.len()
        )
    });
    let change = StatusChange {
        reason: Some("run finished"),
        require_owner: Some(&lease.owner),
        error: summary.as_deref(),
        ..StatusChange::new(
            lease.root_id,
            &[ExecutionStatus::Running],
            outcome,
            ACTOR_EXECUTOR,
        )
    };
    let mut tx = conn
        .begin()
        .await
        .map_err(ExecutorError::db("starting a transaction"))?;
    let applied = executions::change_status(&mut tx, &change).await?;
    if let CasOutcome::Applied { .. } = applied {
        // The run's end and its notifications commit together.
        let root = existing_view(&mut tx, lease.root_id).await?;
        let unsettled = items::unsettled_for_root(&mut tx, lease.root_id).await?;
        let ended = RunEnd::of(&root, outcome, unsettled);
        for event in inner.notices.run_finished(&root, &ended) {
            inner.notices.raise(&mut tx, &event).await?;
        }
    }
    tx.commit()
        .await
        .map_err(ExecutorError::db("committing the end of a run"))?;
    match applied {
        CasOutcome::Applied { .. } => {
            tracing::info!(status = %outcome, "execution run finished");
            if outcome == ExecutionStatus::Completed
                && let (Some(plan_id), Some(step_number)) = (plan_id, step_number)
            {
                crate::runner::report::spawn_report(
                    inner,
                    lease.root_id,
                    plan_id,
                    step_number,
                    None,
                );
            }
        }
        CasOutcome::Lost => tracing::info!("execution ended by someone else meanwhile"),
    }
    Ok(())
}

/// Renews the lease every third of the staleness threshold while children run; when the
/// lease is lost (taken over, or the root ended), stops the run.
async fn renew_lease(
    inner: Arc<Inner>,
    lease: Lease,
    run_stop: CancellationToken,
    done: CancellationToken,
) {
    let interval = inner.settings.lease_renewal_interval();
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let renewed = match inner.pool.acquire().await {
            Ok(mut conn) => executions::renew_lease(&mut conn, &lease).await,
            Err(error) => Err(ExecutorError::db("acquiring a connection")(error)),
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    "lease lost (taken over or the execution ended): the run stops acting"
                );
                run_stop.cancel();
                return;
            }
            Err(error) => tracing::warn!(error = %error, "lease renewal failed; retrying"),
        }
    }
}

/// Gives the lease up at shutdown so a re-drive need not wait for the threshold.
async fn release(inner: &Arc<Inner>, lease: &Lease) {
    if let Ok(mut conn) = inner.pool.acquire().await
        && let Err(error) = executions::release_lease(&mut conn, lease).await
    {
        tracing::warn!(error = %error, "releasing the lease failed");
    }
}
