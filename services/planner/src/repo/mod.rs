//! SQL of the `planner` schema: plans, plan_accounts and fencing; Cost Explorer
//! recommendations in [`recommendations`]. Every function takes a
//! connection or a transaction; the callers decide the transaction boundaries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::domain::plan::{
    Editor, Plan, PlanSource, PlanSpec, RampSchedule, RampType, ServiceConfig,
};
use crate::error::{PlannerError, PlannerResult, db};
use cudly_vocabulary::Recommendation;

pub mod recommendations;

/// The columns of a plan, in the order of [`PlanRow`].
const PLAN_COLUMNS: &str = "id, name, enabled, auto_purchase, notification_days_before, services, \
     ramp_type, ramp_percent_per_step, ramp_step_interval_days, ramp_total_steps, ramp_current_step, \
     ramp_start_date, all_enabled_accounts, next_execution_date, last_execution_date, step_fires, \
     paused_reason, max_commitment_per_run, updated_by, updated_by_key_id, \
     auto_purchase_requested_by, auto_purchase_requested_by_key_id, source, created_at, updated_at";

#[derive(Debug, FromRow)]
struct PlanRow {
    id: Uuid,
    name: String,
    enabled: bool,
    auto_purchase: bool,
    notification_days_before: i32,
    services: Json<BTreeMap<String, ServiceConfig>>,
    ramp_type: String,
    ramp_percent_per_step: f64,
    ramp_step_interval_days: i32,
    ramp_total_steps: i32,
    ramp_current_step: i32,
    ramp_start_date: DateTime<Utc>,
    all_enabled_accounts: bool,
    next_execution_date: Option<DateTime<Utc>>,
    last_execution_date: Option<DateTime<Utc>>,
    step_fires: i32,
    paused_reason: Option<String>,
    max_commitment_per_run: Option<f64>,
    updated_by: Option<String>,
    updated_by_key_id: Option<String>,
    auto_purchase_requested_by: Option<String>,
    auto_purchase_requested_by_key_id: Option<String>,
    source: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Returns a stored integer as u32; the table's checks keep them non-negative.
fn unsigned(value: i32) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

/// Returns a u32 as the i32 Postgres stores; validated values are far below i32::MAX.
fn signed(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl TryFrom<PlanRow> for Plan {
    type Error = PlannerError;

    fn try_from(row: PlanRow) -> PlannerResult<Self> {
        let ramp_type = RampType::parse(&row.ramp_type).ok_or_else(|| {
            PlannerError::Internal(format!("stored plan {} has an unknown ramp type", row.id))
        })?;
        let source = PlanSource::parse(&row.source).ok_or_else(|| {
            PlannerError::Internal(format!("stored plan {} has an unknown source", row.id))
        })?;
        Ok(Plan {
            id: row.id,
            name: row.name,
            enabled: row.enabled,
            auto_purchase: row.auto_purchase,
            notification_days_before: unsigned(row.notification_days_before),
            services: row.services.0,
            ramp: RampSchedule {
                ramp_type,
                percent_per_step: row.ramp_percent_per_step,
                step_interval_days: unsigned(row.ramp_step_interval_days),
                current_step: unsigned(row.ramp_current_step),
                total_steps: unsigned(row.ramp_total_steps),
                start_date: row.ramp_start_date,
            },
            all_enabled_accounts: row.all_enabled_accounts,
            next_execution_date: row.next_execution_date,
            last_execution_date: row.last_execution_date,
            step_fires: unsigned(row.step_fires),
            paused_reason: row.paused_reason,
            max_commitment_per_run: row.max_commitment_per_run,
            editor: row.updated_by.map(|actor| Editor {
                actor,
                key_id: row.updated_by_key_id,
            }),
            auto_purchase_requested_by: row.auto_purchase_requested_by.map(|actor| Editor {
                actor,
                key_id: row.auto_purchase_requested_by_key_id,
            }),
            source,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Who a plan write records: its editor, and an admin waiting for a second identity
/// to enable auto_purchase.
#[derive(Debug, Clone, Copy)]
pub struct Authors<'a> {
    pub editor: &'a Editor,
    pub auto_purchase_requested_by: Option<&'a Editor>,
}

/// Row locks a reading transaction takes on a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Plain read.
    None,
    /// `FOR SHARE`: the plan may not be changed or deleted until the transaction ends.
    Share,
    /// `FOR UPDATE`: exclusive.
    Update,
}

/// Inserts a plan and returns it as stored.
pub async fn insert_plan(
    conn: &mut PgConnection,
    id: Uuid,
    spec: &PlanSpec,
    start_date: DateTime<Utc>,
    next_execution_date: Option<DateTime<Utc>>,
    all_enabled_accounts: bool,
    authors: Authors<'_>,
) -> PlannerResult<Plan> {
    let sql = format!(
        "INSERT INTO plans (id, name, enabled, auto_purchase, notification_days_before, services,
             ramp_type, ramp_percent_per_step, ramp_step_interval_days, ramp_total_steps,
             ramp_current_step, ramp_start_date, all_enabled_accounts, next_execution_date,
             max_commitment_per_run, updated_by, updated_by_key_id, auto_purchase_requested_by,
             auto_purchase_requested_by_key_id, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13, $14, $15, $16, $17,
             $18, $19)
         RETURNING {PLAN_COLUMNS}"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&spec.name)
        .bind(spec.enabled)
        .bind(spec.auto_purchase)
        .bind(signed(spec.notification_days_before))
        .bind(Json(&spec.services))
        .bind(spec.ramp.ramp_type.as_str())
        .bind(spec.ramp.percent_per_step)
        .bind(signed(spec.ramp.step_interval_days))
        .bind(signed(spec.ramp.total_steps))
        .bind(start_date)
        .bind(all_enabled_accounts)
        .bind(next_execution_date);
    let row: PlanRow = bind_written(query, spec, authors)
        .fetch_one(conn)
        .await
        .map_err(db("insert plan"))?;
    row.try_into()
}

type PlanQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, PlanRow, sqlx::postgres::PgArguments>;

/// Binds what an insert and an update of a plan both end with, in this order: the
/// per-run limit, the editor and its key, the pending auto_purchase request and its
/// key, the source.
fn bind_written<'q>(
    query: PlanQuery<'q>,
    spec: &'q PlanSpec,
    authors: Authors<'q>,
) -> PlanQuery<'q> {
    query
        .bind(spec.max_commitment_per_run)
        .bind(&authors.editor.actor)
        .bind(authors.editor.key_id.as_deref())
        .bind(
            authors
                .auto_purchase_requested_by
                .map(|request| request.actor.as_str()),
        )
        .bind(
            authors
                .auto_purchase_requested_by
                .and_then(|request| request.key_id.as_deref()),
        )
        .bind(spec.source.as_str())
}

/// Replaces a plan's writable fields and schedule; returns the plan as stored, or
/// `None` when it does not exist.
pub async fn update_plan(
    conn: &mut PgConnection,
    id: Uuid,
    spec: &PlanSpec,
    ramp: &RampSchedule,
    next_execution_date: Option<DateTime<Utc>>,
    authors: Authors<'_>,
) -> PlannerResult<Option<Plan>> {
    let sql = format!(
        "UPDATE plans SET name = $2, enabled = $3, auto_purchase = $4, notification_days_before = $5,
             services = $6, ramp_type = $7, ramp_percent_per_step = $8, ramp_step_interval_days = $9,
             ramp_total_steps = $10, ramp_start_date = $11, next_execution_date = $12,
             step_fires = CASE WHEN $3 AND NOT enabled THEN 0 ELSE step_fires END,
             paused_reason = CASE WHEN $3 THEN NULL ELSE paused_reason END,
             max_commitment_per_run = $13, updated_by = $14, updated_by_key_id = $15,
             auto_purchase_requested_by = $16, auto_purchase_requested_by_key_id = $17,
             source = $18, updated_at = now()
         WHERE id = $1
         RETURNING {PLAN_COLUMNS}"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&spec.name)
        .bind(spec.enabled)
        .bind(spec.auto_purchase)
        .bind(signed(spec.notification_days_before))
        .bind(Json(&spec.services))
        .bind(ramp.ramp_type.as_str())
        .bind(ramp.percent_per_step)
        .bind(signed(ramp.step_interval_days))
        .bind(signed(ramp.total_steps))
        .bind(ramp.start_date)
        .bind(next_execution_date);
    let row: Option<PlanRow> = bind_written(query, spec, authors)
        .fetch_optional(conn)
        .await
        .map_err(db("update plan"))?;
    row.map(Plan::try_from).transpose()
}

/// Returns one plan, taking the given row lock.
pub async fn get_plan(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
) -> PlannerResult<Option<Plan>> {
    let suffix = match lock {
        Lock::None => "",
        Lock::Share => " FOR SHARE",
        Lock::Update => " FOR UPDATE",
    };
    let sql = format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1{suffix}");
    let row: Option<PlanRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db("get plan"))?;
    row.map(Plan::try_from).transpose()
}

/// Returns every plan, ordered by name.
pub async fn list_plans(conn: &mut PgConnection) -> PlannerResult<Vec<Plan>> {
    let sql = format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY name, id");
    let rows: Vec<PlanRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(conn)
        .await
        .map_err(db("list plans"))?;
    rows.into_iter().map(Plan::try_from).collect()
}

/// Deletes a plan and its account list; returns false when there was none.
pub async fn delete_plan(conn: &mut PgConnection, id: Uuid) -> PlannerResult<bool> {
    let result = sqlx::query("DELETE FROM plans WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(db("delete plan"))?;
    Ok(result.rows_affected() == 1)
}

/// Returns the plan's explicit account ids in the order they were given.
pub async fn plan_account_ids(conn: &mut PgConnection, plan_id: Uuid) -> PlannerResult<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT account_id FROM plan_accounts WHERE plan_id = $1 ORDER BY position, account_id",
    )
    .bind(plan_id)
    .fetch_all(conn)
    .await
    .map_err(db("list plan accounts"))
}

/// Replaces the plan's account list: the explicit `account_ids`, or none with
/// `all_enabled_accounts` set when the list is empty. Call inside a transaction.
pub async fn replace_plan_accounts(
    conn: &mut PgConnection,
    plan_id: Uuid,
    account_ids: &[Uuid],
) -> PlannerResult<()> {
    sqlx::query("DELETE FROM plan_accounts WHERE plan_id = $1")
        .bind(plan_id)
        .execute(&mut *conn)
        .await
        .map_err(db("clear plan accounts"))?;
    if !account_ids.is_empty() {
        let positions: Vec<i32> = (0..account_ids.len())
            .map(|index| signed(index as u32))
            .collect();
        sqlx::query(
            "INSERT INTO plan_accounts (plan_id, account_id, position)
             SELECT $1, account_id, position FROM UNNEST($2::uuid[], $3::int4[]) AS t(account_id, position)",
        )
        .bind(plan_id)
        .bind(account_ids)
        .bind(&positions)
        .execute(&mut *conn)
        .await
        .map_err(db("insert plan accounts"))?;
    }
    sqlx::query("UPDATE plans SET all_enabled_accounts = $2, updated_at = now() WHERE id = $1")
        .bind(plan_id)
        .bind(account_ids.is_empty())
        .execute(&mut *conn)
        .await
        .map_err(db("set plan account mode"))?;
    Ok(())
}

/// Replaces the plan's standing recommendations; returns false when the plan does not
/// exist.
pub async fn set_recommendations(
    conn: &mut PgConnection,
    plan_id: Uuid,
    recommendations: &[Recommendation],
) -> PlannerResult<bool> {
    let result =
        sqlx::query("UPDATE plans SET recommendations = $2, updated_at = now() WHERE id = $1")
            .bind(plan_id)
            .bind(Json(recommendations))
            .execute(conn)
            .await
            .map_err(db("set plan recommendations"))?;
    Ok(result.rows_affected() == 1)
}

/// Returns the plan's standing recommendations, or `None` when the plan does not exist.
pub async fn get_recommendations(
    conn: &mut PgConnection,
    plan_id: Uuid,
) -> PlannerResult<Option<Vec<Recommendation>>> {
    let stored: Option<Json<Vec<Recommendation>>> =
        sqlx::query_scalar("SELECT recommendations FROM plans WHERE id = $1")
            .bind(plan_id)
            .fetch_optional(conn)
            .await
            .map_err(db("get plan recommendations"))?;
    Ok(stored.map(|json| json.0))
}

/// Returns the ids of enabled plans due at `now`, oldest date first.
pub async fn due_plan_ids(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> PlannerResult<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM plans
         WHERE enabled AND next_execution_date IS NOT NULL AND next_execution_date <= $1
         ORDER BY next_execution_date, id
         LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db("list due plans"))
}

/// Locks one plan if it is still due at `now` and no other transaction holds it.
pub async fn lock_due_plan(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> PlannerResult<Option<Plan>> {
    let sql = format!(
        "SELECT {PLAN_COLUMNS} FROM plans
         WHERE id = $1 AND enabled AND next_execution_date IS NOT NULL AND next_execution_date <= $2
         FOR UPDATE SKIP LOCKED"
    );
    let row: Option<PlanRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(now)
        .fetch_optional(conn)
        .await
        .map_err(db("lock due plan"))?;
    row.map(Plan::try_from).transpose()
}

/// Records a fire of the step after `expected_step` and moves the next date, while the
/// step is still `expected_step` (compare-and-set); returns false when it moved.
pub async fn record_fire(
    conn: &mut PgConnection,
    id: Uuid,
    expected_step: u32,
    next_execution_date: Option<DateTime<Utc>>,
) -> PlannerResult<bool> {
    let result = sqlx::query(
        "UPDATE plans SET next_execution_date = $3, step_fires = step_fires + 1, updated_at = now()
         WHERE id = $1 AND ramp_current_step = $2",
    )
    .bind(id)
    .bind(signed(expected_step))
    .bind(next_execution_date)
    .execute(conn)
    .await
    .map_err(db("record plan fire"))?;
    Ok(result.rows_affected() == 1)
}

/// Pauses (disables) a plan with `reason` while its step is still `expected_step`
/// (compare-and-set); returns false when it moved.
pub async fn pause_plan(
    conn: &mut PgConnection,
    id: Uuid,
    expected_step: u32,
    reason: &str,
) -> PlannerResult<bool> {
    let result = sqlx::query(
        "UPDATE plans SET enabled = false, paused_reason = $3, updated_at = now()
         WHERE id = $1 AND ramp_current_step = $2 AND enabled",
    )
    .bind(id)
    .bind(signed(expected_step))
    .bind(reason)
    .execute(conn)
    .await
    .map_err(db("pause plan"))?;
    Ok(result.rows_affected() == 1)
}

/// The next step of a plan to remind its channels of, as [`take_due_reminders`] marked
/// it.
#[derive(Debug, FromRow)]
pub struct StepReminder {
    pub plan_id: Uuid,
    pub plan_name: String,
    /// The step after the plan's current one.
    pub step_number: i32,
    /// When it is due (never null: only plans with a date are reminded of).
    pub fires_at: Option<DateTime<Utc>>,
    pub auto_purchase: bool,
}

/// Marks as reminded and returns up to `limit` plan steps due for their reminder at
/// `now`: the next step of each enabled plan with `notification_days_before` > 0 whose
/// date falls after `now` and at most that many days after it, that was not fired yet
/// (a re-fire of a step is not its first) and not reminded of before (compare-and-set
/// on `reminded_step`, so each step is reminded of once). Plans another transaction
/// holds are skipped, for the next call; the caller's transaction makes the mark and
/// the staged reminder one.
pub async fn take_due_reminders(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> PlannerResult<Vec<StepReminder>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT id FROM plans
             WHERE enabled AND notification_days_before > 0 AND step_fires = 0
               AND ramp_current_step < ramp_total_steps
               AND reminded_step <= ramp_current_step
               AND next_execution_date IS NOT NULL
               AND next_execution_date > $1
               AND next_execution_date <= $1 + make_interval(days => notification_days_before)
             ORDER BY next_execution_date, id
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         UPDATE plans p SET reminded_step = p.ramp_current_step + 1
         FROM due
         WHERE p.id = due.id
         RETURNING p.id AS plan_id, p.name AS plan_name, p.ramp_current_step + 1 AS step_number,
             p.next_execution_date AS fires_at, p.auto_purchase",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(db("take due step reminders"))
}

/// Moves a plan's next date while its step is still `expected_step` (compare-and-set);
/// returns false when the step moved meanwhile.
pub async fn move_next_date(
    conn: &mut PgConnection,
    id: Uuid,
    expected_step: u32,
    next_execution_date: Option<DateTime<Utc>>,
) -> PlannerResult<bool> {
    let result = sqlx::query(
        "UPDATE plans SET next_execution_date = $3, updated_at = now()
         WHERE id = $1 AND ramp_current_step = $2",
    )
    .bind(id)
    .bind(signed(expected_step))
    .bind(next_execution_date)
    .execute(conn)
    .await
    .map_err(db("move plan date"))?;
    Ok(result.rows_affected() == 1)
}

/// Advances the plan's step from `step - 1` to `step` (compare-and-set) and sets its next
/// date, and its last execution date when given; returns false when the plan was not at
/// `step - 1`.
pub async fn advance_step(
    conn: &mut PgConnection,
    id: Uuid,
    step: u32,
    next_execution_date: Option<DateTime<Utc>>,
    last_execution_date: Option<DateTime<Utc>>,
) -> PlannerResult<bool> {
    let result = sqlx::query(
        "UPDATE plans SET ramp_current_step = $2, next_execution_date = $3, step_fires = 0,
             last_execution_date = COALESCE($4, last_execution_date), updated_at = now()
         WHERE id = $1 AND ramp_current_step = $2 - 1 AND $2 <= ramp_total_steps",
    )
    .bind(id)
    .bind(signed(step))
    .bind(next_execution_date)
    .bind(last_execution_date)
    .execute(conn)
    .await
    .map_err(db("advance plan step"))?;
    Ok(result.rows_affected() == 1)
}

/// Checks the sweeper's fencing token for `task` against the highest seen and records
/// it: a lower one is refused, an equal one accepted, a higher one stored. The row stays
/// locked until the caller's transaction ends, so the check holds for what the
/// transaction does.
pub async fn check_fencing(conn: &mut PgConnection, task: &str, token: i64) -> PlannerResult<()> {
    let accepted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO fencing AS f (task, token) VALUES ($1, $2)
         ON CONFLICT (task) DO UPDATE SET token = EXCLUDED.token, updated_at = now()
             WHERE f.token <= EXCLUDED.token
         RETURNING token",
    )
    .bind(task)
    .bind(token)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db("check fencing token"))?;
    if accepted.is_some() {
        return Ok(());
    }
    let highest: i64 = sqlx::query_scalar("SELECT token FROM fencing WHERE task = $1")
        .bind(task)
        .fetch_one(&mut *conn)
        .await
        .map_err(db("read fencing token"))?;
    Err(PlannerError::StaleFencingToken {
        task: task.to_owned(),
        presented: token,
        highest,
    })
}
