//! CreateExecution: a root and one child per target (each with its items), in one
//! transaction; idempotent by Idempotency-Key and by creation key (lineage).

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_common::idempotency::{check_request_hash, child_lineage_key, derive_token};
use cudly_vocabulary::{
    Recommendation, RecommendationInput, TargetItems, assign_targets, validate_recommendations,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::approval::ApprovalToken;
use crate::domain::lineage::{self, Route};
use crate::domain::quotes::QuoteTotal;
use crate::domain::status::{ExecutionStatus, Source};
use crate::error::{ExecutorError, ExecutorResult};
use crate::notices::AccountLabels;
use crate::pricing::Quotes;
use crate::repo::executions::{self, Identities, NewChild, NewItem, NewRoot};
use crate::runner::accounts::Purpose;
use crate::service::{ExecutionView, Executor, Refused, existing_view};

/// Rounds of the creation transaction when a concurrent creation of the same key wins
/// a unique index: the next round finds its row.
const MAX_ROUNDS: u32 = 3;

/// A validated creation request (the edge parsed ids and checked the caller).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub plan_id: Option<Uuid>,
    pub step_number: Option<u32>,
    pub scheduled_date: Option<DateTime<Utc>>,
    pub targets: Vec<Uuid>,
    /// The list as received; [`Executor::create`] validates it.
    pub recommendations: Vec<RecommendationInput>,
    pub creation_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub auto_approve: bool,
    pub source: Source,
    pub actor: String,
    /// The creating API key's id ("bootstrap" for the bootstrap key); for a scheduled
    /// run, the plan's last editor's.
    pub actor_key_id: Option<String>,
    pub caller_is_planner: bool,
    /// Price and check everything, store nothing, buy nothing.
    pub dry_run: bool,
    /// The plan's own limit on one run's total commitment.
    pub max_commitment_per_run: Option<f64>,
    /// A run sized from Cost Explorer recommendations: when its set was collected.
    pub sized_from: Option<DateTime<Utc>>,
}

impl CreateRequest {
    /// Returns the validated list after every check that needs no database: the list
    /// (the shared vocabulary's rules, at least one line), its targets, the step and
    /// the actor.
    pub fn checked_recommendations(&self) -> Result<Vec<Recommendation>, ApiError> {
        let recommendations = validate_recommendations(self.recommendations.clone())?;
        if recommendations.is_empty() {
            return Err(ApiError::invalid_field(
                "recommendations",
                "must not be empty",
            ));
        }
        assign_targets(&self.targets, &recommendations)?;
        if self.step_number.is_some() && self.plan_id.is_none() {
            return Err(ApiError::invalid_field("step_number", "needs plan_id"));
        }
        if self.step_number == Some(0) {
            return Err(ApiError::invalid_field("step_number", "must be at least 1"));
        }
        if self.actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required"));
        }
        if let Some(limit) = self.max_commitment_per_run
            && !(limit.is_finite() && limit >= 0.0)
        {
            return Err(ApiError::invalid_field(
                "max_commitment_per_run",
                "must be a number of at least 0",
            ));
        }
        Ok(recommendations)
    }
}

/// The reply of a creation.
#[derive(Debug)]
pub struct Created {
    pub view: ExecutionView,
    /// Shown once, for a new pending root.
    pub approval_token: Option<ApprovalToken>,
    pub created: bool,
}

/// What a creation round decided.
enum Round {
    Done(Created),
    /// A concurrent creation won a unique index: try again.
    Raced,
    /// The list to create is not the one priced (or none was): price it, then try again.
    Price(Priced),
}

/// A recommendation list with its targets and, once priced, its quotes.
#[derive(Debug, Clone, PartialEq)]
struct Priced {
    recommendations: Vec<Recommendation>,
    targets: Vec<Uuid>,
    quotes: Option<Quotes>,
}

impl Executor {
    /// Creates a root with its children and items, priced, or returns the existing one.
    /// A dry run goes through the same steps in a transaction it rolls back, then asks
    /// EC2 whether each account may buy (DryRun).
    pub async fn create(&self, request: CreateRequest) -> ExecutorResult<Created> {
        let recommendations = request.checked_recommendations()?;
        let (creation_key, request_hash) = if request.dry_run {
            // A dry run joins no lineage and replays nothing: it shows a new execution.
            (None, None)
        } else {
            let creation_key = lineage::creation_key(
                request.creation_key.as_deref(),
                request.idempotency_key.as_deref(),
                request.caller_is_planner,
            )?;
            let request_hash = match &request.idempotency_key {
                Some(_) => Some(check_request_hash(request.request_hash.as_deref())?.to_owned()),
                None => None,
            };
            (creation_key, request_hash)
        };
        // Named once, before any transaction, for the approval request a creation that
        // waits for approval raises.
        let labels = if request.dry_run || request.auto_approve {
            AccountLabels::default()
        } else {
            self.notices()
                .account_labels(self.runner.accounts(), &request.targets)
                .await
        };
        let mut priced: Option<Priced> = None;
        let mut raced = 0;
        let mut pricings = 0;
        loop {
            let mut tx = self.begin().await?;
            let round = match self
                .create_round(
                    &mut tx,
                    &request,
                    &recommendations,
                    creation_key.as_deref(),
                    request_hash.as_deref(),
                    priced.as_ref(),
                )
                .await
            {
                Ok(round) => round,
                Err(error) => {
                    drop(tx);
                    if !request.dry_run {
                        let about = Refused {
                            execution_id: None,
                            plan_id: request.plan_id,
                            accounts: &request.targets,
                        };
                        self.notify_refusal(&error, about).await;
                    }
                    return Err(error);
                }
            };
            match round {
                Round::Done(created) if request.dry_run => {
                    tx.rollback()
                        .await
                        .map_err(ExecutorError::db("rolling back a dry run"))?;
                    return self.dry_run(created).await;
                }
                Round::Done(created) => {
                    if created.created
                        && created.view.row.status == ExecutionStatus::Pending.as_str()
                    {
                        let event = self.notices().approval_requested(
                            &created.view,
                            created.approval_token.as_ref(),
                            &labels,
                        );
                        self.notices().raise(&mut tx, &event).await?;
                    }
                    tx.commit()
                        .await
                        .map_err(ExecutorError::db("committing an execution"))?;
                    if created.created {
                        tracing::info!(
                            execution_id = %created.view.row.id,
                            status = %created.view.row.status,
                            children = created.view.children.len(),
                            source = %created.view.row.source,
                            total_commitment = created.view.row.total_commitment,
                            "execution created"
                        );
                        if created.view.row.status == ExecutionStatus::Approved.as_str() {
                            self.runner.start(created.view.row.id);
                        }
                    }
                    return Ok(created);
                }
                Round::Raced => {
                    tx.rollback()
                        .await
                        .map_err(ExecutorError::db("rolling back a creation"))?;
                    raced += 1;
                    if raced >= MAX_ROUNDS {
                        return Err(ApiError::conflict(
                            "a concurrent creation of the same execution did not settle, retry",
                        )
                        .into());
                    }
                }
                Round::Price(list) => {
                    tx.rollback()
                        .await
                        .map_err(ExecutorError::db("rolling back a creation"))?;
                    pricings += 1;
                    if pricings > MAX_ROUNDS {
                        return Err(ApiError::conflict(
                            "the list to create kept changing while it was priced, retry",
                        )
                        .into());
                    }
                    priced = Some(self.price(list).await?);
                }
            }
        }
    }

    /// Prices every line of a list for its targets (docs/design/DOMAIN.md "Quotes").
    async fn price(&self, list: Priced) -> ExecutorResult<Priced> {
        let assignment = assign_targets(&list.targets, &list.recommendations)?;
        let sessions = self.pricer.sessions(&list.targets, Purpose::Quote);
        let quotes = self
            .pricer
            .price(&sessions, &assignment, &list.recommendations)
            .await?;
        Ok(Priced {
            quotes: Some(quotes),
            ..list
        })
    }

    async fn create_round(
        &self,
        tx: &mut PgConnection,
        request: &CreateRequest,
        recommendations: &[Recommendation],
        creation_key: Option<&str>,
        request_hash: Option<&str>,
        priced: Option<&Priced>,
    ) -> ExecutorResult<Round> {
        if let (Some(key), Some(hash)) = (request.idempotency_key.as_deref(), request_hash)
            && let Some(recorded) = executions::find_idempotency_key(tx, key).await?
        {
            if recorded.request_hash != hash {
                return Err(ApiError::already_exists(
                    "this Idempotency-Key was used with a different request",
                )
                .into());
            }
            return Ok(Round::Done(Created {
                view: existing_view(tx, recorded.execution_id).await?,
                approval_token: None,
                created: false,
            }));
        }
        let route = Route::of(request.plan_id);
        let mut recommendations = recommendations.to_vec();
        let mut targets = request.targets.clone();
        let mut stored_creation_key = creation_key;
        let mut sized_from = request.sized_from;
        let lineage_key = match creation_key {
            None => lineage::random_lineage_key(),
            Some(key) => {
                let lineage_key = lineage::derived_lineage_key(route, request.plan_id, key);
                if let Some(existing) =
                    executions::live_or_completed_in_lineage(tx, &lineage_key).await?
                {
                    tracing::info!(execution_id = %existing.id, status = %existing.status, "creation key names a live or completed execution");
                    return self
                        .replay(tx, request, request_hash, existing.id)
                        .await
                        .map(Round::Done);
                }
                if let Some(first) = executions::lineage_opener(tx, &lineage_key).await? {
                    // A new root joins the lineage with its first list and targets, so
                    // each item keeps its idempotency token.
                    recommendations = first.recommendations.0.clone();
                    targets = first.target_account_ids.clone();
                    sized_from = first.sized_from;
                    stored_creation_key = None;
                }
                lineage_key
            }
        };
        let assignment = assign_targets(&targets, &recommendations)?;
        let quotes = match priced {
            Some(Priced {
                recommendations: priced_list,
                targets: priced_targets,
                quotes: Some(quotes),
            }) if *priced_list == recommendations && *priced_targets == targets => quotes,
            _ => {
                return Ok(Round::Price(Priced {
                    recommendations,
                    targets,
                    quotes: None,
                }));
            }
        };
        let totals = child_totals(&assignment, quotes)?;
        let root_total = QuoteTotal::sum(totals.iter())?;
        let approved_by_key_id = request
            .auto_approve
            .then_some(request.actor_key_id.as_deref())
            .flatten();
        self.check_creation_limits(tx, request, &root_total).await?;
        let root_id = Uuid::new_v4();
        let (status, token, approved_by) = if request.auto_approve {
            (
                ExecutionStatus::Approved,
                None,
                Some(request.actor.as_str()),
            )
        } else {
            (
                ExecutionStatus::Pending,
                Some(ApprovalToken::generate()),
                None,
            )
        };
        let expires_at = token.as_ref().map(|_| {
            Utc::now()
                + chrono::Duration::from_std(self.settings().approval_ttl)
                    .unwrap_or(chrono::Duration::days(7))
        });
        let identities = Identities {
            created_by_key_id: request.actor_key_id.as_deref(),
            approved_by_key_id,
        };
        let step_number = request.step_number.map(|step| step as i32);
        let inserted = executions::insert_root(
            tx,
            &NewRoot {
                id: root_id,
                plan_id: request.plan_id,
                status,
                lineage_key: &lineage_key,
                creation_key: stored_creation_key,
                step_number,
                scheduled_date: request.scheduled_date,
                recommendations: &recommendations,
                targets: &targets,
                token_hash: token.as_ref().map(ApprovalToken::hash),
                approval_expires_at: expires_at,
                approved_by,
                created_by: &request.actor,
                source: request.source,
                identities,
                quote: &root_total,
                sized_from,
            },
        )
        .await?;
        if !inserted {
            return Ok(Round::Raced);
        }
        let reason = if request.auto_approve {
            "created approved"
        } else {
            "created, awaiting approval"
        };
        executions::insert_creation_transition(tx, root_id, status, &request.actor, reason).await?;
        insert_children(
            tx,
            ChildrenOf {
                root_id,
                plan_id: request.plan_id,
                lineage_key: &lineage_key,
                status,
                step_number,
                scheduled_date: request.scheduled_date,
                approved_by,
                actor: &request.actor,
                source: request.source,
                identities,
            },
            &assignment,
            &recommendations,
            quotes,
            &totals,
        )
        .await?;
        if let (Some(key), Some(hash)) = (request.idempotency_key.as_deref(), request_hash)
            && !executions::insert_idempotency_key(tx, key, hash, root_id).await?
        {
            return Ok(Round::Raced);
        }
        Ok(Round::Done(Created {
            view: existing_view(tx, root_id).await?,
            approval_token: token,
            created: true,
        }))
    }

    /// Returns an existing root for a creation request, recording its Idempotency-Key.
    async fn replay(
        &self,
        tx: &mut PgConnection,
        request: &CreateRequest,
        request_hash: Option<&str>,
        execution_id: Uuid,
    ) -> ExecutorResult<Created> {
        if let (Some(key), Some(hash)) = (request.idempotency_key.as_deref(), request_hash) {
            executions::insert_idempotency_key(tx, key, hash, execution_id).await?;
        }
        Ok(Created {
            view: existing_view(tx, execution_id).await?,
            approval_token: None,
            created: false,
        })
    }
}

/// What every child of a new root shares.
pub(crate) struct ChildrenOf<'a> {
    pub root_id: Uuid,
    pub plan_id: Option<Uuid>,
    pub lineage_key: &'a str,
    pub status: ExecutionStatus,
    pub step_number: Option<i32>,
    pub scheduled_date: Option<DateTime<Utc>>,
    pub approved_by: Option<&'a str>,
    pub actor: &'a str,
    pub source: Source,
    pub identities: Identities<'a>,
}

/// Returns the sums of each target's item quotes, in target order.
pub(crate) fn child_totals(
    assignment: &[TargetItems],
    quotes: &Quotes,
) -> Result<Vec<QuoteTotal>, ApiError> {
    assignment
        .iter()
        .map(|target| QuoteTotal::of(target.item_indices.iter().map(|index| quotes.of(*index))))
        .collect()
}

/// Inserts one child per target with its items (tokens from the child lineage key and
/// the root index, each with its quote) and their creation transitions.
pub(crate) async fn insert_children(
    tx: &mut PgConnection,
    shared: ChildrenOf<'_>,
    assignment: &[TargetItems],
    recommendations: &[Recommendation],
    quotes: &Quotes,
    totals: &[QuoteTotal],
) -> ExecutorResult<()> {
    for (target, total) in assignment.iter().zip(totals) {
        let child_id = Uuid::new_v4();
        let child_key = child_lineage_key(shared.lineage_key, &target.account_id.to_string());
        let items = target
            .item_indices
            .iter()
            .map(|index| NewItem {
                index: *index,
                recommendation: &recommendations[*index as usize],
                token: derive_token(&child_key, *index),
                quote: quotes.of(*index),
            })
            .collect();
        executions::insert_child(
            tx,
            &NewChild {
                id: child_id,
                parent_id: shared.root_id,
                plan_id: shared.plan_id,
                account_id: target.account_id,
                status: shared.status,
                lineage_key: &child_key,
                step_number: shared.step_number,
                scheduled_date: shared.scheduled_date,
                approved_by: shared.approved_by,
                created_by: shared.actor,
                source: shared.source,
                identities: shared.identities,
                quote: total.clone(),
                items,
            },
        )
        .await?;
        executions::insert_creation_transition(
            tx,
            child_id,
            shared.status,
            shared.actor,
            "created with its root",
        )
        .await?;
    }
    Ok(())
}
