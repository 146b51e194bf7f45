//! The planner's operations: each one validates its input, then reads and writes the
//! `planner` schema in one transaction, asking accounts and executor what it needs
//! before that transaction commits, so that any failure changes nothing.

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_common::audit::{self, Actor};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::clients::{Clients, CreatedExecution};
use crate::domain::auto_purchase::{self, AutoPurchaseState};
use crate::domain::binding::{check_binding, check_orphans, parse_account_ids, select_targets};
use crate::domain::plan::{AccountRef, Editor, Plan, PlanInput, PlanSpec, RampSchedule};
use crate::domain::ramp;
use crate::domain::run::{
    NothingToRun, RunList, RunOptions, RunRefusal, RunSource, build_execution_request,
};
use crate::domain::validation::validate_plan;
use crate::error::{PlannerError, PlannerResult, db};
use crate::metrics;
use crate::repo::{self, Authors, Lock};
use cudly_vocabulary::{Recommendation, RecommendationInput, validate_recommendations};

mod notices;
mod recommendations;

pub use recommendations::{AccountRefresh, RecommendationSettings, RefreshReport};

/// Most due plans one FireDuePlans call looks at; the rest wait for the next sweep.
pub const FIRE_BATCH: i64 = 100;
/// Actor recorded on executions the planner creates for due plans.
pub const SCHEDULE_ACTOR: &str = "planner";
/// Longest sweeper task name accepted.
const MAX_TASK_CHARS: usize = 64;

/// A plan's account binding with the accounts' current data.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanAccounts {
    /// The explicit list (empty when `all_enabled_accounts`).
    pub account_ids: Vec<Uuid>,
    pub all_enabled_accounts: bool,
    /// The listed accounts that still exist, or the enabled accounts of the plan's
    /// providers.
    pub accounts: Vec<AccountRef>,
}

/// What one FireDuePlans call did.
#[derive(Debug, Default)]
pub struct FireReport {
    pub found: u32,
    pub fired: u32,
    pub race_lost: u32,
    pub errors: u32,
    pub executions: Vec<FiredExecution>,
    pub skipped: Vec<SkippedPlan>,
    /// Reminders of upcoming steps staged (`step_upcoming`).
    pub reminders: u32,
}

/// An execution created (or found) for a due plan.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredExecution {
    pub plan_id: Uuid,
    pub step_number: u32,
    pub execution_id: String,
    pub status: String,
    pub created: bool,
}

/// A due plan that created no execution.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedPlan {
    pub plan_id: Uuid,
    pub step_number: u32,
    pub reason: String,
    pub step_advanced: bool,
}

/// The outcome of a step report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepOutcome {
    pub advanced: bool,
    pub current_step: u32,
}

enum FireOutcome {
    Fired(FiredExecution),
    Skipped(SkippedPlan),
    RaceLost,
    Failed,
}

/// The planner service's operations.
#[derive(Clone)]
pub struct Planner {
    pool: PgPool,
    clients: Clients,
    /// Fires of one step before the plan pauses (`CUDLY_PLAN_STEP_MAX_FIRES`).
    step_max_fires: u32,
    recommendations: RecommendationSettings,
}

/// Checks a sweeper task name as a fencing check needs it.
fn check_task(task: &str) -> PlannerResult<()> {
    if task.trim().is_empty() || task.len() > MAX_TASK_CHARS {
        return Err(ApiError::invalid_field("fencing.task", "is required").into());
    }
    Ok(())
}

fn plan_not_found(id: Uuid) -> PlannerError {
    PlannerError::Api(ApiError::not_found(format!("plan {id} not found")))
}

impl Planner {
    pub fn new(
        pool: PgPool,
        clients: Clients,
        step_max_fires: u32,
        recommendations: RecommendationSettings,
    ) -> Self {
        Self {
            pool,
            clients,
            step_max_fires,
            recommendations,
        }
    }

    /// The service's pool (its audit events are read straight from it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> PlannerResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(db("begin transaction"))
    }

    async fn connection(&self) -> PlannerResult<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.pool.acquire().await.map_err(db("acquire connection"))
    }

    /// Creates a plan bound to `account_ids` (absent or empty: all enabled accounts of
    /// its providers). The accounts are checked before anything is written.
    pub async fn create_plan(
        &self,
        actor: &Actor,
        input: PlanInput,
        account_ids: Option<Vec<String>>,
        editor: &Editor,
        now: DateTime<Utc>,
    ) -> PlannerResult<Plan> {
        let mut spec = validate_plan(input)?;
        let ids = parse_account_ids(&account_ids.unwrap_or_default())?;
        let nothing_yet = AutoPurchaseState {
            enabled: false,
            requested_by: None,
        };
        let auto_purchase = self.auto_purchase(&spec, &nothing_yet, editor).await?;
        spec.auto_purchase = auto_purchase.enabled;
        if !ids.is_empty() {
            let looked_up = self.clients.accounts_by_ids(&ids).await?;
            check_binding(
                &ids,
                looked_up.found,
                &looked_up.not_found,
                &spec.providers(),
            )?;
        }
        let start_date = spec.ramp.start_date.unwrap_or(now);
        let next_execution_date = ramp::next_date_on_creation(start_date);
        let mut tx = self.begin().await?;
        let plan = repo::insert_plan(
            &mut tx,
            Uuid::new_v4(),
            &spec,
            start_date,
            next_execution_date,
            ids.is_empty(),
            Authors {
                editor,
                auto_purchase_requested_by: auto_purchase.requested_by.as_ref(),
            },
        )
        .await?;
        repo::replace_plan_accounts(&mut tx, plan.id, &ids).await?;
        audit_plan(&mut tx, actor, "plan.create", plan.id, None, Some(&plan)).await?;
        tx.commit().await.map_err(db("commit create plan"))?;
        tracing::info!(plan_id = %plan.id, accounts = ids.len(), "plan created");
        Ok(plan)
    }

    pub async fn get_plan(&self, id: Uuid) -> PlannerResult<Plan> {
        let mut conn = self.connection().await?;
        repo::get_plan(&mut conn, id, Lock::None)
            .await?
            .ok_or_else(|| plan_not_found(id))
    }

    pub async fn list_plans(&self) -> PlannerResult<Vec<Plan>> {
        let mut conn = self.connection().await?;
        repo::list_plans(&mut conn).await
    }

    /// Replaces a plan's writable fields. The ramp's current step is kept; the next date
    /// is recomputed only when the schedule changed. Removing a provider that bound
    /// accounts still use is refused, naming them.
    pub async fn update_plan(
        &self,
        actor: &Actor,
        id: Uuid,
        input: PlanInput,
        editor: &Editor,
        now: DateTime<Utc>,
    ) -> PlannerResult<Plan> {
        let mut spec = validate_plan(input)?;
        let mut tx = self.begin().await?;
        let old = repo::get_plan(&mut tx, id, Lock::Update)
            .await?
            .ok_or_else(|| plan_not_found(id))?;
        let stored = AutoPurchaseState {
            enabled: old.auto_purchase,
            requested_by: old.auto_purchase_requested_by.clone(),
        };
        let auto_purchase = self.auto_purchase(&spec, &stored, editor).await?;
        spec.auto_purchase = auto_purchase.enabled;
        let new_providers = spec.providers();
        let removes_a_provider = old
            .providers()
            .iter()
            .any(|provider| !new_providers.contains(provider));
        if removes_a_provider && !old.all_enabled_accounts {
            let bound_ids = repo::plan_account_ids(&mut tx, id).await?;
            let bound = self.clients.accounts_by_ids(&bound_ids).await?;
            check_orphans(&bound.found, &new_providers)?;
        }
        let ramp = RampSchedule {
            ramp_type: spec.ramp.ramp_type,
            percent_per_step: spec.ramp.percent_per_step,
            step_interval_days: spec.ramp.step_interval_days,
            current_step: old.ramp.current_step,
            total_steps: spec.ramp.total_steps,
            start_date: spec.ramp.start_date.unwrap_or(old.ramp.start_date),
        };
        if ramp.total_steps < old.ramp.current_step {
            return Err(ApiError::invalid_field(
                "ramp_schedule.total_steps",
                format!(
                    "must be at least the {} steps already completed",
                    old.ramp.current_step
                ),
            )
            .into());
        }
        let next = ramp::next_date_after_update(
            &old.ramp,
            &ramp,
            old.next_execution_date,
            old.last_execution_date,
            now,
        );
        let plan = repo::update_plan(
            &mut tx,
            id,
            &spec,
            &ramp,
            next,
            Authors {
                editor,
                auto_purchase_requested_by: auto_purchase.requested_by.as_ref(),
            },
        )
        .await?
        .ok_or_else(|| plan_not_found(id))?;
        audit_plan(&mut tx, actor, "plan.update", id, Some(&old), Some(&plan)).await?;
        tx.commit().await.map_err(db("commit update plan"))?;
        tracing::info!(plan_id = %id, "plan updated");
        Ok(plan)
    }

    /// Deletes a plan unless it has a non-terminal execution. The executor is asked while
    /// the plan is locked, so no run of it can start in between; if the executor cannot
    /// answer, nothing is deleted.
    pub async fn delete_plan(&self, actor: &Actor, id: Uuid) -> PlannerResult<()> {
        let mut tx = self.begin().await?;
        let old = repo::get_plan(&mut tx, id, Lock::Update)
            .await?
            .ok_or_else(|| plan_not_found(id))?;
        let live = self.clients.has_live_execution(id).await?;
        if !live.is_empty() {
            return Err(ApiError::conflict(format!(
                "plan has a non-terminal execution: {}",
                live.join(", ")
            ))
            .into());
        }
        repo::delete_plan(&mut tx, id).await?;
        audit_plan(&mut tx, actor, "plan.delete", id, Some(&old), None).await?;
        tx.commit().await.map_err(db("commit delete plan"))?;
        tracing::info!(plan_id = %id, "plan deleted");
        Ok(())
    }

    /// Replaces the plan's account list atomically: every account is looked up in one
    /// call and must exist and match the plan's providers; an empty list means all
    /// enabled accounts of its providers.
    pub async fn set_plan_accounts(
        &self,
        actor: &Actor,
        plan_id: Uuid,
        account_ids: Vec<String>,
    ) -> PlannerResult<PlanAccounts> {
        let ids = parse_account_ids(&account_ids)?;
        let mut tx = self.begin().await?;
        let plan = repo::get_plan(&mut tx, plan_id, Lock::Update)
            .await?
            .ok_or_else(|| plan_not_found(plan_id))?;
        let accounts = if ids.is_empty() {
            self.clients.enabled_accounts(&plan.providers()).await?
        } else {
            let looked_up = self.clients.accounts_by_ids(&ids).await?;
            check_binding(
                &ids,
                looked_up.found,
                &looked_up.not_found,
                &plan.providers(),
            )?
        };
        let before = repo::plan_account_ids(&mut tx, plan_id).await?;
        repo::replace_plan_accounts(&mut tx, plan_id, &ids).await?;
        let change = audit::Change {
            action: "plan_accounts.set",
            target_type: "plan_accounts",
            target_id: plan_id.to_string(),
            before: Some(audit::digest(&(plan.all_enabled_accounts, &before))),
            after: Some(audit::digest(&(ids.is_empty(), &ids))),
        };
        audit::record(&mut tx, SERVICE, actor, change)
            .await
            .map_err(db("record audit event"))?;
        tx.commit().await.map_err(db("commit set plan accounts"))?;
        tracing::info!(%plan_id, accounts = ids.len(), all_enabled_accounts = ids.is_empty(), "plan accounts set");
        Ok(PlanAccounts {
            all_enabled_accounts: ids.is_empty(),
            account_ids: ids,
            accounts,
        })
    }

    pub async fn get_plan_accounts(&self, plan_id: Uuid) -> PlannerResult<PlanAccounts> {
        let mut conn = self.connection().await?;
        let plan = repo::get_plan(&mut conn, plan_id, Lock::None)
            .await?
            .ok_or_else(|| plan_not_found(plan_id))?;
        if plan.all_enabled_accounts {
            let accounts = self.clients.enabled_accounts(&plan.providers()).await?;
            return Ok(PlanAccounts {
                account_ids: Vec::new(),
                all_enabled_accounts: true,
                accounts,
            });
        }
        let ids = repo::plan_account_ids(&mut conn, plan_id).await?;
        drop(conn);
        let looked_up = self.clients.accounts_by_ids(&ids).await?;
        let accounts = ids
            .iter()
            .filter_map(|id| {
                looked_up
                    .found
                    .iter()
                    .find(|account| account.id == *id)
                    .cloned()
            })
            .collect();
        Ok(PlanAccounts {
            account_ids: ids,
            all_enabled_accounts: false,
            accounts,
        })
    }

    pub async fn set_recommendations(
        &self,
        actor: &Actor,
        plan_id: Uuid,
        inputs: Vec<RecommendationInput>,
    ) -> PlannerResult<Vec<Recommendation>> {
        let recommendations = validate_recommendations(inputs)?;
        let mut tx = self.begin().await?;
        if !repo::set_recommendations(&mut tx, plan_id, &recommendations).await? {
            return Err(plan_not_found(plan_id));
        }
        let change = audit::Change {
            action: "plan_recommendations.set",
            target_type: "plan_recommendations",
            target_id: plan_id.to_string(),
            before: None,
            after: Some(audit::digest(&recommendations)),
        };
        audit::record(&mut tx, SERVICE, actor, change)
            .await
            .map_err(db("record audit event"))?;
        tx.commit()
            .await
            .map_err(db("commit plan recommendations"))?;
        tracing::info!(%plan_id, items = recommendations.len(), "plan recommendations set");
        Ok(recommendations)
    }

    pub async fn get_recommendations(&self, plan_id: Uuid) -> PlannerResult<Vec<Recommendation>> {
        let mut conn = self.connection().await?;
        repo::get_recommendations(&mut conn, plan_id)
            .await?
            .ok_or_else(|| plan_not_found(plan_id))
    }

    /// Returns the accounts a run of `plan` targets now: its explicit list or every
    /// enabled account of its providers, disabled and deleted accounts dropped.
    async fn resolve_targets(
        &self,
        conn: &mut PgConnection,
        plan: &Plan,
    ) -> PlannerResult<Vec<Uuid>> {
        let providers = plan.providers();
        let candidates = if plan.all_enabled_accounts {
            self.clients.enabled_accounts(&providers).await?
        } else {
            let ids = repo::plan_account_ids(conn, plan.id).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let looked_up = self.clients.accounts_by_ids(&ids).await?;
            ids.iter()
                .filter_map(|id| {
                    looked_up
                        .found
                        .iter()
                        .find(|account| account.id == *id)
                        .cloned()
                })
                .collect()
        };
        Ok(select_targets(&candidates, &providers))
    }

    /// Returns what a write of `spec` by `editor` stores for auto_purchase. Turning it
    /// on is refused while the guardrails set no rolling-window limit (nothing would
    /// bound what the schedule buys unapproved), and takes a second identity when
    /// approvers must differ.
    async fn auto_purchase(
        &self,
        spec: &PlanSpec,
        stored: &AutoPurchaseState,
        editor: &Editor,
    ) -> PlannerResult<AutoPurchaseState> {
        if !spec.auto_purchase || stored.enabled {
            return Ok(auto_purchase::decide(
                spec.auto_purchase,
                stored,
                editor,
                false,
            ));
        }
        let rules = self.clients.auto_purchase_rules().await?;
        if rules.window_limit.is_none() {
            return Err(ApiError::new(
                cudly_common::ErrorCode::Unprocessable,
                "auto_purchase needs a window limit: set max_window_commitment in \
                 /api/guardrails first",
            )
            .into());
        }
        Ok(auto_purchase::decide(
            true,
            stored,
            editor,
            rules.require_different_approver,
        ))
    }

    /// Starts an execution of a plan by hand: `given` verbatim, or (absent) the standing
    /// list for step `current_step + 1`. The plan stays share-locked until the executor
    /// answered, so it cannot be deleted meanwhile.
    pub async fn start_execution(
        &self,
        plan_id: Uuid,
        given: Option<Vec<RecommendationInput>>,
        options: RunOptions,
    ) -> PlannerResult<CreatedExecution> {
        if options.actor.trim().is_empty() {
            return Err(ApiError::invalid_field("actor", "is required").into());
        }
        let given = given.map(validate_recommendations).transpose()?;
        let mut tx = self.begin().await?;
        let plan = repo::get_plan(&mut tx, plan_id, Lock::Share)
            .await?
            .ok_or_else(|| plan_not_found(plan_id))?;
        let targets = self.resolve_targets(&mut tx, &plan).await?;
        let (list, standing) = match given {
            Some(given) => (RunList::Given(given), Vec::new()),
            None => self
                .run_list(&mut tx, &plan, &targets, Utc::now())
                .await?
                .map_err(|nothing| ApiError::from(RunRefusal::Nothing(nothing)))?,
        };
        let request = build_execution_request(&plan, &standing, &targets, list, options)
            .map_err(ApiError::from)?;
        let created = self.clients.create_execution(&request).await?;
        tx.commit().await.map_err(db("commit start execution"))?;
        tracing::info!(
            %plan_id,
            execution_id = %created.execution_id,
            step = request.step_number,
            created = created.created,
            "plan execution started"
        );
        Ok(created)
    }

    /// Starts every due plan once for its next step and moves its date on, each plan in
    /// its own transaction that first checks the sweeper's fencing token. A refused token
    /// stops the call; a failure of one plan is counted and leaves its date due.
    pub async fn fire_due_plans(
        &self,
        task: &str,
        token: i64,
        now: DateTime<Utc>,
    ) -> PlannerResult<FireReport> {
        check_task(task)?;
        let mut tx = self.begin().await?;
        repo::check_fencing(&mut tx, task, token).await?;
        let due = repo::due_plan_ids(&mut tx, now, FIRE_BATCH).await?;
        tx.commit().await.map_err(db("commit fencing check"))?;
        let mut report = FireReport {
            found: u32::try_from(due.len()).unwrap_or(u32::MAX),
            ..FireReport::default()
        };
        for plan_id in due {
            match self.fire_one(plan_id, task, token, now).await {
                Ok(FireOutcome::Fired(fired)) => {
                    report.fired += 1;
                    report.executions.push(fired);
                }
                Ok(FireOutcome::Skipped(skipped)) => report.skipped.push(skipped),
                Ok(FireOutcome::RaceLost) => report.race_lost += 1,
                Ok(FireOutcome::Failed) => report.errors += 1,
                Err(error @ PlannerError::StaleFencingToken { .. }) => return Err(error),
                Err(error) => {
                    tracing::warn!(%plan_id, error = %error, "due plan not fired");
                    report.errors += 1;
                }
            }
        }
        // After the fires: a step fired now is no longer upcoming. A failure leaves the
        // reminders for the next sweep.
        match self.stage_reminders(task, token, now).await {
            Ok(staged) => report.reminders = staged,
            Err(error @ PlannerError::StaleFencingToken { .. }) => return Err(error),
            Err(error) => tracing::warn!(error = %error, "step reminders not staged"),
        }
        tracing::info!(
            found = report.found,
            fired = report.fired,
            skipped = report.skipped.len(),
            race_lost = report.race_lost,
            errors = report.errors,
            reminders = report.reminders,
            "due plans fired"
        );
        Ok(report)
    }

    async fn fire_one(
        &self,
        plan_id: Uuid,
        task: &str,
        token: i64,
        now: DateTime<Utc>,
    ) -> PlannerResult<FireOutcome> {
        let mut tx = self.begin().await?;
        repo::check_fencing(&mut tx, task, token).await?;
        let Some(plan) = repo::lock_due_plan(&mut tx, plan_id, now).await? else {
            return Ok(FireOutcome::RaceLost);
        };
        let current_step = plan.ramp.current_step;
        let step = current_step + 1;
        let moved_on = ramp::next_date_after_fire(&plan.ramp, now);
        let skipped = |reason: &NothingToRun, step_advanced: bool| SkippedPlan {
            plan_id,
            step_number: step,
            reason: reason.to_string(),
            step_advanced,
        };
        let targets = self.resolve_targets(&mut tx, &plan).await?;
        // A scheduled run is created in the name of the plan's last editor, who then
        // cannot approve it when approvers must differ.
        let (actor, actor_key_id) = match &plan.editor {
            Some(editor) => (editor.actor.clone(), editor.key_id.clone()),
            None => (SCHEDULE_ACTOR.to_owned(), None),
        };
        let options = RunOptions {
            source: RunSource::Schedule,
            actor,
            actor_key_id,
            dry_run: false,
            scheduled_date: plan.next_execution_date,
            idempotency_key: None,
            request_hash: None,
        };
        let built = match self.run_list(&mut tx, &plan, &targets, now).await? {
            Ok((list, standing)) => {
                build_execution_request(&plan, &standing, &targets, list, options)
            }
            Err(nothing) => Err(RunRefusal::Nothing(nothing)),
        };
        let outcome = match built {
            Ok(_) if plan.step_fires >= self.step_max_fires => {
                // Re-fired that often, the step cannot complete as it is (a target that
                // cannot buy, an item that always fails): an operator looks before more.
                let reason = format!(
                    "step {step} was fired {} times without completing: check its \
                     executions, then enable the plan again",
                    plan.step_fires
                );
                if !repo::pause_plan(&mut tx, plan_id, current_step, &reason).await? {
                    return Ok(FireOutcome::RaceLost);
                }
                // Raised with the pause: both commit or neither does.
                let paused = notices::plan_paused(&plan, &reason, &targets);
                notices::stage(&mut tx, &paused).await?;
                metrics::plan_paused("step_max_fires");
                tracing::warn!(%plan_id, step, fires = plan.step_fires, "plan paused: its step keeps failing to complete");
                FireOutcome::Skipped(SkippedPlan {
                    plan_id,
                    step_number: step,
                    reason,
                    step_advanced: false,
                })
            }
            Ok(request) => {
                let created = self.clients.create_execution(&request).await?;
                if !repo::record_fire(&mut tx, plan_id, current_step, moved_on).await? {
                    return Ok(FireOutcome::RaceLost);
                }
                tracing::info!(
                    %plan_id,
                    step,
                    execution_id = %created.execution_id,
                    created = created.created,
                    "due plan fired"
                );
                FireOutcome::Fired(FiredExecution {
                    plan_id,
                    step_number: step,
                    execution_id: created.execution_id,
                    status: created.status,
                    created: created.created,
                })
            }
            Err(RunRefusal::Nothing(nothing @ NothingToRun::EmptyIncrement { .. })) => {
                // The step has nothing to buy by construction (its increment rounds to
                // zero): it is complete without an execution, and the ramp goes on.
                let mut advanced = plan.ramp.clone();
                advanced.current_step = step;
                let next = ramp::next_date_after_completion(&advanced, now);
                if !repo::advance_step(&mut tx, plan_id, step, next, None).await? {
                    return Ok(FireOutcome::RaceLost);
                }
                tracing::info!(%plan_id, step, reason = %nothing, "due plan step advanced without an execution");
                FireOutcome::Skipped(skipped(&nothing, true))
            }
            Err(RunRefusal::Nothing(nothing)) => {
                let next = match nothing {
                    NothingToRun::PlanFinished => None,
                    _ => moved_on,
                };
                if !repo::move_next_date(&mut tx, plan_id, current_step, next).await? {
                    return Ok(FireOutcome::RaceLost);
                }
                tracing::info!(%plan_id, step, reason = %nothing, "due plan ran nothing");
                FireOutcome::Skipped(skipped(&nothing, false))
            }
            Err(RunRefusal::Invalid(error)) => {
                // The standing list does not fit the targets: the same answer would come
                // every sweep, so the date moves on as for a fired step.
                tracing::warn!(%plan_id, step, error = %error.message, "due plan cannot run");
                if !repo::move_next_date(&mut tx, plan_id, current_step, moved_on).await? {
                    return Ok(FireOutcome::RaceLost);
                }
                FireOutcome::Failed
            }
        };
        tx.commit().await.map_err(db("commit fire plan"))?;
        Ok(outcome)
    }

    /// Records that step `step` of the plan completed (the executor's report): advances
    /// the step from `step - 1` to `step` by compare-and-set and sets the next date. A
    /// repeat, or a step already passed, is acknowledged without advancing.
    pub async fn complete_plan_step(
        &self,
        plan_id: Uuid,
        step: u32,
        execution_id: Uuid,
        completed_at: DateTime<Utc>,
    ) -> PlannerResult<StepOutcome> {
        if step == 0 {
            return Err(ApiError::invalid_field("step_number", "must be at least 1").into());
        }
        let mut tx = self.begin().await?;
        let plan = repo::get_plan(&mut tx, plan_id, Lock::Update)
            .await?
            .ok_or_else(|| plan_not_found(plan_id))?;
        let current_step = plan.ramp.current_step;
        if step != current_step + 1 || step > plan.ramp.total_steps {
            if step > current_step + 1 {
                tracing::warn!(%plan_id, step, current_step, %execution_id, "step report ahead of the plan ignored");
            }
            return Ok(StepOutcome {
                advanced: false,
                current_step,
            });
        }
        let mut advanced = plan.ramp.clone();
        advanced.current_step = step;
        let next = ramp::next_date_after_completion(&advanced, completed_at);
        let moved = repo::advance_step(&mut tx, plan_id, step, next, Some(completed_at)).await?;
        tx.commit().await.map_err(db("commit complete plan step"))?;
        if moved {
            tracing::info!(%plan_id, step, %execution_id, "plan step completed");
        }
        Ok(StepOutcome {
            advanced: moved,
            current_step: if moved { step } else { current_step },
        })
    }
}

/// The name this service records its audit events under.
const SERVICE: &str = "planner";

/// Records a change to a plan in its transaction.
async fn audit_plan(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    id: Uuid,
    before: Option<&Plan>,
    after: Option<&Plan>,
) -> PlannerResult<()> {
    let change = audit::Change {
        action,
        target_type: "plan",
        target_id: id.to_string(),
        before: before.map(audit::digest),
        after: after.map(audit::digest),
    };
    audit::record(conn, SERVICE, actor, change)
        .await
        .map_err(db("record audit event"))
}
