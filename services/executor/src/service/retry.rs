//! RetryExecution: a new approved root in the same lineage (same recommendations in the
//! same order, same targets, so the same tokens), from a failed or partially_completed
//! root only. The retry is the admin's approval.

use cudly_common::ApiError;
use cudly_vocabulary::assign_targets;
use uuid::Uuid;

use crate::domain::status::{ExecutionStatus, Source};
use crate::error::{ExecutorError, ExecutorResult};
use crate::repo::executions::{self, NewRoot};
use crate::service::create::{ChildrenOf, insert_children};
use crate::service::{ExecutionView, Executor, existing_view};

impl Executor {
    /// Retries a failed or partially_completed root; 409 otherwise, or when the lineage
    /// has a newer root (two retries at once: exactly one wins).
    pub async fn retry(&self, id: Uuid, actor: &str) -> ExecutorResult<ExecutionView> {
        if actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required").into());
        }
        let mut tx = self.begin().await?;
        let root = executions::get_for_update(&mut tx, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
        if !root.is_root() {
            return Err(
                ApiError::invalid_field("id", "is a child execution; retry its root").into(),
            );
        }
        let status = root.status()?;
        if !matches!(
            status,
            ExecutionStatus::Failed | ExecutionStatus::PartiallyCompleted
        ) {
            return Err(ApiError::conflict(format!(
                "only a failed or partially_completed execution can be retried (it is {status})"
            ))
            .with_status(status.as_str())
            .into());
        }
        if let Some(latest) = executions::latest_in_lineage(&mut tx, &root.idempotency_key).await?
            && latest.id != root.id
        {
            return Err(ApiError::conflict(format!(
                "execution {} of the same lineage is newer: retry that one",
                latest.id
            ))
            .with_status(latest.status.clone())
            .into());
        }
        let recommendations = root.recommendations.0.clone();
        let targets = root.target_account_ids.clone();
        let assignment = assign_targets(&targets, &recommendations)?;
        let new_id = Uuid::new_v4();
        let inserted = executions::insert_root(
            &mut tx,
            &NewRoot {
                id: new_id,
                plan_id: root.plan_id,
                status: ExecutionStatus::Approved,
                lineage_key: &root.idempotency_key,
                creation_key: None,
                step_number: root.step_number,
                scheduled_date: root.scheduled_date,
                recommendations: &recommendations,
                targets: &targets,
                token_hash: None,
                approval_expires_at: None,
                approved_by: Some(actor),
                created_by: actor,
                source: Source::Retry,
            },
        )
        .await?;
        if !inserted {
            return Err(
                ApiError::conflict("the lineage already has a live execution")
                    .with_status(status.as_str())
                    .into(),
            );
        }
        let reason = format!("retry of {id}");
        executions::insert_creation_transition(
            &mut tx,
            new_id,
            ExecutionStatus::Approved,
            actor,
            &reason,
        )
        .await?;
        insert_children(
            &mut tx,
            ChildrenOf {
                root_id: new_id,
                plan_id: root.plan_id,
                lineage_key: &root.idempotency_key,
                status: ExecutionStatus::Approved,
                step_number: root.step_number,
                scheduled_date: root.scheduled_date,
                approved_by: Some(actor),
                actor,
                source: Source::Retry,
            },
            &assignment,
            &recommendations,
        )
        .await?;
        let view = existing_view(&mut tx, new_id).await?;
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a retry"))?;
        tracing::info!(execution_id = %new_id, retry_of = %id, by = %actor, "execution retried");
        self.runner.start(new_id);
        Ok(view)
    }
}
