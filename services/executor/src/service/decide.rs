//! Approve, cancel and preview: by approval token or by an admin (the gateway calls
//! without a token only for an admin key).

use chrono::Utc;
use cudly_common::ApiError;
use cudly_common::audit::Actor;
use uuid::Uuid;

use crate::domain::approval::{self, ApprovalView};
use crate::domain::status::{ACTOR_TOKEN, ExecutionStatus};
use crate::error::{ExecutorError, ExecutorResult};
use crate::repo::executions::{self, CasOutcome, ExecutionRow, StatusChange};
use crate::service::{ExecutionView, Executor, Refused, audit, existing_view, view_of};

/// What to do with a pending root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Cancel,
}

impl Decision {
    fn target(self) -> ExecutionStatus {
        match self {
            Decision::Approve => ExecutionStatus::Approved,
            Decision::Cancel => ExecutionStatus::Canceled,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Cancel => "canceled",
        }
    }
}

fn approval_view(row: &ExecutionRow) -> ExecutorResult<ApprovalView<'_>> {
    Ok(ApprovalView {
        status: row.status()?,
        token_hash: row.approval_token_hash.as_deref(),
        expires_at: row.approval_expires_at,
    })
}

fn root_or_error(row: Option<ExecutionRow>, id: Uuid) -> ExecutorResult<ExecutionRow> {
    let row = row.ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
    if !row.is_root() {
        return Err(ApiError::invalid_field(
            "id",
            "is a child execution; approve or cancel its root",
        )
        .into());
    }
    Ok(row)
}

impl Executor {
    /// Approves or cancels a pending root. `token` absent: an admin (`actor`
    /// "key:<name>"). Wrong token 403, expired 410, not pending 409 with its status;
    /// nothing changes then. An approval also answers to the guardrails: with
    /// `require_different_approver`, the creator's key is refused (403) and so is a token
    /// without a key of another identity; the rolling window's limit is checked under
    /// the guardrails lock, so concurrent approvals cannot pass it together (422).
    pub async fn decide(
        &self,
        id: Uuid,
        decision: Decision,
        token: Option<&str>,
        actor: &str,
        actor_key_id: Option<&str>,
        trail: &Actor,
    ) -> ExecutorResult<ExecutionView> {
        // A token holder who also presents a key acts as that key's identity.
        let actor = match (token, actor_key_id) {
            (Some(_), None) => ACTOR_TOKEN,
            _ => actor,
        };
        if actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required without a token").into());
        }
        let mut tx = self.begin().await?;
        // Approvals take the guardrails lock before the root's, like every approving path.
        let limits = match decision {
            Decision::Approve => Some(self.lock_guardrails(&mut tx).await?),
            Decision::Cancel => None,
        };
        let root = root_or_error(executions::get_for_update(&mut tx, id).await?, id)?;
        let now = Utc::now();
        approval::check_decision(&approval_view(&root)?, token, now)?;
        if let Some(limits) = &limits {
            limits.check_approver(root.created_by_key_id.as_deref(), actor_key_id)?;
            if let Err(error) = self
                .check_window(&mut tx, limits, root.total_commitment)
                .await
            {
                drop(tx);
                let about = Refused {
                    execution_id: Some(id),
                    plan_id: root.plan_id,
                    accounts: &root.target_account_ids,
                };
                self.notify_refusal(&error, about).await;
                return Err(error);
            }
        }
        let reason = match token {
            Some(_) => format!("{} by approval token", decision.verb()),
            None => format!("{} by {actor}", decision.verb()),
        };
        let change = StatusChange {
            reason: Some(&reason),
            require_approval_open_at: Some(now),
            approved_by: (decision == Decision::Approve).then_some(actor),
            approved_by_key_id: (decision == Decision::Approve)
                .then_some(actor_key_id)
                .flatten(),
            ..StatusChange::new(id, &[ExecutionStatus::Pending], decision.target(), actor)
        };
        match executions::change_status(&mut tx, &change).await? {
            CasOutcome::Applied { .. } => {}
            CasOutcome::Lost => {
                // Held FOR UPDATE above, so only the window closing in between can get here.
                return Err(
                    ApiError::new(cudly_common::ErrorCode::Gone, "approval token expired").into(),
                );
            }
        }
        executions::change_children_status(
            &mut tx,
            id,
            &[ExecutionStatus::Pending],
            decision.target(),
            actor,
            Some(&reason),
            (decision == Decision::Approve).then_some(actor),
        )
        .await?;
        let view = existing_view(&mut tx, id).await?;
        let change = cudly_common::audit::Change {
            action: match decision {
                Decision::Approve => "execution.approve",
                Decision::Cancel => "execution.cancel",
            },
            target_type: "execution",
            target_id: id.to_string(),
            before: Some(cudly_common::audit::digest(&root)),
            after: Some(cudly_common::audit::digest(&view)),
        };
        audit(&mut tx, trail, actor, actor_key_id, change).await?;
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a decision"))?;
        tracing::info!(execution_id = %id, decision = decision.verb(), by = %actor, "execution decided");
        if decision == Decision::Approve {
            self.runner.start(id);
        }
        Ok(view)
    }

    /// Shows what a token would approve; acts on nothing. Returns the view and whether a
    /// POST would approve it.
    pub async fn preview(&self, id: Uuid, token: &str) -> ExecutorResult<(ExecutionView, bool)> {
        let mut conn = self.conn().await?;
        let root = root_or_error(executions::get(&mut conn, id).await?, id)?;
        let approvable = approval::check_preview(&approval_view(&root)?, token, Utc::now())?;
        let view = view_of(&mut conn, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("execution {id} not found")))?;
        Ok((view, approvable))
    }
}
