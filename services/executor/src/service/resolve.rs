//! ResolvePurchaseAttempt: an operator settles an in_doubt purchase attempt after
//! checking the cloud console: bought (with its commitment id: recorded on the
//! attempt, its items and purchase_history) or not bought (the attempt fails, so a
//! retry of the lineage may buy).

use cudly_common::ApiError;
use cudly_common::audit::Actor;
use cudly_common::idempotency::mask_token;
use uuid::Uuid;

use crate::domain::status::AttemptState;
use crate::error::{ExecutorError, ExecutorResult};
use crate::repo::attempts::{self, AttemptRow, Resolution};
use crate::repo::executions;
use crate::repo::history::{self, NewPurchase};
use crate::repo::items;
use crate::service::{Executor, audit};

/// Which attempt to resolve.
#[derive(Debug, Clone)]
pub enum AttemptTarget {
    Token(String),
    Item { execution_id: Uuid, index: u32 },
}

/// An operator's resolution.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    pub target: AttemptTarget,
    /// Some: bought with this commitment id; None: not bought.
    pub bought_commitment_id: Option<String>,
    pub actor: String,
    /// The resolving API key's id ("bootstrap" for the bootstrap key).
    pub actor_key_id: Option<String>,
}

impl Executor {
    /// Resolves an in_doubt attempt; 404 when unknown, 409 when not in_doubt.
    pub async fn resolve_attempt(
        &self,
        request: ResolveRequest,
        trail: &Actor,
    ) -> ExecutorResult<AttemptRow> {
        if request.actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required").into());
        }
        if let Some(commitment_id) = &request.bought_commitment_id {
            let valid = !commitment_id.trim().is_empty()
                && commitment_id.len() <= 256
                && commitment_id.chars().all(|c| c.is_ascii_graphic());
            if !valid {
                return Err(ApiError::invalid_field(
                    "bought.commitment_id",
                    "must be 1 to 256 printable characters",
                )
                .into());
            }
        }
        let mut tx = self.begin().await?;
        let token = match &request.target {
            AttemptTarget::Token(token) => {
                if token.len() != 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(ApiError::invalid_field(
                        "idempotency_token",
                        "must be 64 hex characters",
                    )
                    .into());
                }
                token.to_ascii_lowercase()
            }
            AttemptTarget::Item {
                execution_id,
                index,
            } => {
                let index = i32::try_from(*index)
                    .map_err(|_| ApiError::invalid_field("item.index", "is too large"))?;
                items::get(&mut tx, *execution_id, index)
                    .await?
                    .ok_or_else(|| {
                        ApiError::not_found(format!("execution {execution_id} has no item {index}"))
                    })?
                    .idempotency_token
            }
        };
        if request.bought_commitment_id.is_none() {
            self.check_not_bought_resolver(&mut tx, &token, request.actor_key_id.as_deref())
                .await?;
        }
        let resolution = attempts::resolve_in_doubt(
            &mut tx,
            &token,
            request.bought_commitment_id.as_deref(),
            &request.actor,
        )
        .await?;
        let attempt = match resolution {
            Resolution::Applied(row) => row,
            Resolution::NotFound => {
                return Err(ApiError::not_found(format!(
                    "no purchase attempt for token {}",
                    mask_token(&token)
                ))
                .into());
            }
            Resolution::NotInDoubt(state) => {
                return Err(ApiError::conflict(format!(
                    "the purchase attempt is {} (only in_doubt attempts are resolved)",
                    state.as_str()
                ))
                .with_status(state.as_str())
                .into());
            }
        };
        if let Some(commitment_id) = &request.bought_commitment_id {
            items::resolve_bought(&mut tx, &token, commitment_id).await?;
            self.record_resolved_purchase(&mut tx, &attempt, commitment_id)
                .await?;
        }
        // The attempt by its masked token: the full token is a purchase's idempotency key.
        let change = cudly_common::audit::Change {
            action: match request.bought_commitment_id {
                Some(_) => "purchase_attempt.resolve_bought",
                None => "purchase_attempt.resolve_not_bought",
            },
            target_type: "purchase_attempt",
            target_id: mask_token(&token),
            before: None,
            after: Some(cudly_common::audit::digest(&attempt)),
        };
        audit(
            &mut tx,
            trail,
            &request.actor,
            request.actor_key_id.as_deref(),
            change,
        )
        .await?;
        tx.commit()
            .await
            .map_err(ExecutorError::db("committing a resolution"))?;
        let state = attempt.state().unwrap_or(AttemptState::Failed);
        tracing::warn!(token = %mask_token(&token), state = state.as_str(), by = %request.actor, "purchase attempt resolved by an operator");
        Ok(attempt)
    }

    /// "Not bought" lets a retry buy again: with `require_different_approver`, it takes
    /// an identity other than the execution's creator, like an approval.
    async fn check_not_bought_resolver(
        &self,
        tx: &mut sqlx::PgConnection,
        token: &str,
        resolver_key_id: Option<&str>,
    ) -> ExecutorResult<()> {
        let limits = self.guardrails(tx).await?;
        if !limits.require_different_approver {
            return Ok(());
        }
        let Some(attempt) = attempts::get(tx, token).await? else {
            // Unknown token: the resolution below answers 404.
            return Ok(());
        };
        let creator = executions::get(tx, attempt.root_id)
            .await?
            .and_then(|root| root.created_by_key_id);
        limits.check_approver(creator.as_deref(), resolver_key_id)?;
        Ok(())
    }

    /// Writes the purchase_history row of a resolved purchase, with the account's
    /// external id as recorded on an earlier purchase of the account (empty if none).
    async fn record_resolved_purchase(
        &self,
        tx: &mut sqlx::PgConnection,
        attempt: &AttemptRow,
        commitment_id: &str,
    ) -> ExecutorResult<()> {
        let Some(item) = items::latest_with_token(tx, &attempt.idempotency_token).await? else {
            return Ok(());
        };
        let Some(child) = executions::get(tx, item.execution_id).await? else {
            return Ok(());
        };
        let external_id: Option<String> = sqlx::query_scalar(
            "SELECT account_external_id FROM purchase_history WHERE cloud_account_id = $1 \
             AND account_external_id <> '' ORDER BY purchased_at DESC LIMIT 1",
        )
        .bind(attempt.cloud_account_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ExecutorError::db("reading an account's external id"))?;
        history::upsert(
            tx,
            &NewPurchase {
                token: &attempt.idempotency_token,
                child_id: item.execution_id,
                root_id: child.parent_id.unwrap_or(child.id),
                account_id: attempt.cloud_account_id,
                account_external_id: external_id.as_deref().unwrap_or(""),
                plan_id: child.plan_id,
                recommendation: &item.recommendation.0,
                commitment_id,
                upfront_cost: item.upfront_cost(),
            },
        )
        .await
    }
}
