//! CompletePlanStep: tells the planner a plan step's root completed, retrying with
//! backoff until acknowledged. The acknowledgement is persisted (step_reported), and the
//! poll loop re-sends unreported steps, so a restart loses nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cudly_proto::planner::v1::CompletePlanStepRequest;
use uuid::Uuid;

use crate::repo::executions;
use crate::runner::Inner;

/// First pause between two attempts, doubled up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Starts reporting one completed step unless a report of it is running already.
pub fn spawn_report(
    inner: &Arc<Inner>,
    execution_id: Uuid,
    plan_id: Uuid,
    step_number: i32,
    completed_at: Option<DateTime<Utc>>,
) {
    {
        let mut reporting = inner
            .reporting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !reporting.insert(execution_id) {
            return;
        }
    }
    let task_inner = inner.clone();
    inner.tracker.spawn(async move {
        report(
            &task_inner,
            execution_id,
            plan_id,
            step_number,
            completed_at,
        )
        .await;
        task_inner
            .reporting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&execution_id);
    });
}

async fn report(
    inner: &Arc<Inner>,
    execution_id: Uuid,
    plan_id: Uuid,
    step_number: i32,
    completed_at: Option<DateTime<Utc>>,
) {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let request = CompletePlanStepRequest {
            plan_id: plan_id.to_string(),
            step_number: u32::try_from(step_number).unwrap_or_default(),
            execution_id: execution_id.to_string(),
            completed_at: completed_at.map(cudly_proto::convert::timestamp),
        };
        let acknowledged = match inner.planner.clone().complete_plan_step(request).await {
            Ok(response) => {
                let response = response.into_inner();
                tracing::info!(%execution_id, %plan_id, step_number, advanced = response.advanced, "plan step reported");
                true
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                tracing::info!(%execution_id, %plan_id, "plan deleted: step report dropped");
                true
            }
            Err(status) => {
                tracing::warn!(%execution_id, %plan_id, code = ?status.code(), "plan step report failed; retrying");
                false
            }
        };
        if acknowledged {
            match inner.pool.acquire().await {
                Ok(mut conn) => match executions::mark_step_reported(&mut conn, execution_id).await
                {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(error = %error, "recording the step report failed")
                    }
                },
                Err(error) => {
                    tracing::warn!(error = %cudly_common::db::error_kind(&error), "recording the step report failed")
                }
            }
        }
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
