//! RetryExecution: a new approved root in the same lineage (same recommendations in the
//! same order, same targets, so the same tokens), from a failed or partially_completed
//! root only, priced again. The retry is the admin's approval, within the spend limits;
//! when approvers must differ, the retry waits pending for another identity's approval.

use cudly_common::ApiError;
use cudly_common::audit::Actor;
use cudly_vocabulary::assign_targets;
use uuid::Uuid;

use crate::domain::quotes::QuoteTotal;
use crate::domain::status::{ExecutionStatus, Source};
use crate::error::{ExecutorError, ExecutorResult};
use crate::repo::executions::{self, Identities, NewRoot};
use crate::runner::accounts::Purpose;
use crate::service::create::{ChildrenOf, child_totals, insert_children};
use crate::service::{ExecutionView, Executor, Refused, audit, existing_view};

impl Executor {
    /// Retries a failed or partially_completed root; 409 otherwise, or when the lineage
    /// has a newer root (two retries at once: exactly one wins).
    pub async fn retry(
        &self,
        id: Uuid,
        actor: &str,
        actor_key_id: Option<&str>,
        trail: &Actor,
    ) -> ExecutorResult<ExecutionView> {
        if actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required").into());
        }
        // Priced before the transaction (no call to AWS holds a lock); the list and
        // targets of a root never change, so the quotes are those of the root read below.
        let (quotes, labels) = {
            let mut conn = self.conn().await?;
            let root = executions::get(&mut conn, id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
            drop(conn);
            let assignment = assign_targets(&root.target_account_ids, &root.recommendations.0)?;
            let sessions = self
                .pricer
                .sessions(&root.target_account_ids, Purpose::Quote);
            let quotes = self
                .pricer
                .price(&sessions, &assignment, &root.recommendations.0)
                .await?;
            // For the approval request of a retry that waits for another approver.
            let labels = self
                .notices()
                .account_labels(self.runner.accounts(), &root.target_account_ids)
                .await;
            (quotes, labels)
        };
        let mut tx = self.begin().await?;
        let limits = self.lock_guardrails(&mut tx).await?;
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
        let totals = child_totals(&assignment, &quotes)?;
        let root_total = QuoteTotal::sum(totals.iter())?;
        let refused = Refused {
            execution_id: Some(id),
            plan_id: root.plan_id,
            accounts: &root.target_account_ids,
        };
        if let Err(error) = limits
            .check_execution(root_total.total_commitment)
            .inspect_err(crate::metrics::limit_refused)
        {
            drop(tx);
            let error = ExecutorError::from(error);
            self.notify_refusal(&error, refused).await;
            return Err(error);
        }
        let status = if limits.require_different_approver {
            ExecutionStatus::Pending
        } else {
            if let Err(error) = self
                .check_window(&mut tx, &limits, root_total.total_commitment)
                .await
            {
                drop(tx);
                self.notify_refusal(&error, refused).await;
                return Err(error);
            }
            ExecutionStatus::Approved
        };
        let approved = status == ExecutionStatus::Approved;
        let approved_by = approved.then_some(actor);
        let identities = Identities {
            created_by_key_id: actor_key_id,
            approved_by_key_id: approved.then_some(actor_key_id).flatten(),
        };
        let expires_at = (!approved).then(|| {
            chrono::Utc::now()
                + chrono::Duration::from_std(self.settings().approval_ttl)
                    .unwrap_or(chrono::Duration::days(7))
        });
        let new_id = Uuid::new_v4();
        let inserted = executions::insert_root(
            &mut tx,
            &NewRoot {
                id: new_id,
                plan_id: root.plan_id,
                status,
                lineage_key: &root.idempotency_key,
                creation_key: None,
                step_number: root.step_number,
                scheduled_date: root.scheduled_date,
                recommendations: &recommendations,
                targets: &targets,
                token_hash: None,
                approval_expires_at: expires_at,
                approved_by,
                created_by: actor,
                source: Source::Retry,
                identities,
                quote: &root_total,
                sized_from: root.sized_from,
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
        let reason = if approved {
            format!("retry of {id}")
        } else {
            format!("retry of {id}, awaiting another identity's approval")
        };
        executions::insert_creation_transition(&mut tx, new_id, status, actor, &reason).await?;
        insert_children(
            &mut tx,
            ChildrenOf {
                root_id: new_id,
                plan_id: root.plan_id,
                lineage_key: &root.idempotency_key,
                status,
                step_number: root.step_number,
                scheduled_date: root.scheduled_date,
                approved_by,
                actor,
                source: Source::Retry,
                identities,
            },
            &assignment,
            &recommendations,
            &quotes,
            &totals,
        )
        .await?;
        let view = existing_view(&mut tx, new_id).await?;
        let change = cudly_common::audit::Change {
            action: "execution.retry",
            target_type: "execution",
            target_id: id.to_string(),
            before: Some(cudly_common::audit::digest(&root)),
            after: Some(cudly_common::audit::digest(&view)),
        };
        audit(&mut tx, trail, actor, actor_key_id, change).await?;
        if !approved {
            // Waits for another identity's key: the event links to the page, no token.
            let event = self.notices().approval_requested(&view, None, &labels);
            self.notices().raise(&mut tx, &event).await?;
        }
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a retry"))?;
        tracing::info!(execution_id = %new_id, retry_of = %id, by = %actor, status = %status, "execution retried");
        if approved {
            self.runner.start(new_id);
        }
        Ok(view)
    }
}
