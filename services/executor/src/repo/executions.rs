//! Roots and children: creation, reads, status compare-and-sets (with their
//! status_transitions rows), leases, fencing, Idempotency-Key replays.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::quotes::QuoteTotal;
use crate::domain::status::{ExecutionStatus, Source};
use crate::error::{ExecutorError, ExecutorResult};
use crate::repo::{Lease, root_leased};
use cudly_aws::purchase::Quote;
use cudly_vocabulary::Recommendation;

/// An `executions` row (root or child).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExecutionRow {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
    pub cloud_account_id: Option<Uuid>,
    pub status: String,
    pub idempotency_key: String,
    pub creation_key: Option<String>,
    pub step_number: Option<i32>,
    pub scheduled_date: Option<DateTime<Utc>>,
    pub recommendations: Json<Vec<Recommendation>>,
    pub target_account_ids: Vec<Uuid>,
    pub approval_token_hash: Option<Vec<u8>>,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    pub created_by: String,
    pub source: String,
    pub attempt: i32,
    pub lease_owner: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub step_reported: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Sums of the items' quotes; null on rows created before quotes.
    pub quote: Option<Json<QuoteTotal>>,
    pub total_commitment: f64,
    pub created_by_key_id: Option<String>,
    pub approved_by_key_id: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    /// When the recommendation set a sized plan run was sized from was collected.
    pub sized_from: Option<DateTime<Utc>>,
}

impl ExecutionRow {
    /// Returns the row's status (the table's CHECK constraint admits only known ones).
    pub fn status(&self) -> ExecutorResult<ExecutionStatus> {
        parse_status(&self.status)
    }

    pub fn is_root(&self) -> bool {
        self.parent_id.is_none()
    }
}

/// Parses a stored status.
pub fn parse_status(text: &str) -> ExecutorResult<ExecutionStatus> {
    ExecutionStatus::parse(text)
        .ok_or_else(|| ExecutorError::Internal(format!("unknown stored status {text}")))
}

/// A root to insert.
#[derive(Debug)]
pub struct NewRoot<'a> {
    pub id: Uuid,
    pub plan_id: Option<Uuid>,
    pub status: ExecutionStatus,
    pub lineage_key: &'a str,
    pub creation_key: Option<&'a str>,
    pub step_number: Option<i32>,
    pub scheduled_date: Option<DateTime<Utc>>,
    pub recommendations: &'a [Recommendation],
    pub targets: &'a [Uuid],
    pub token_hash: Option<[u8; 32]>,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub approved_by: Option<&'a str>,
    pub created_by: &'a str,
    pub source: Source,
    pub identities: Identities<'a>,
    pub quote: &'a QuoteTotal,
    pub sized_from: Option<DateTime<Utc>>,
}

/// The API key ids of a new row's creator and (when created approved) approver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identities<'a> {
    pub created_by_key_id: Option<&'a str>,
    pub approved_by_key_id: Option<&'a str>,
}

/// Inserts a root unless a unique rule refuses it (its creation key was used, or its
/// lineage has a live root); returns false then, without aborting the transaction.
pub async fn insert_root(conn: &mut PgConnection, root: &NewRoot<'_>) -> ExecutorResult<bool> {
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO executions (id, parent_id, plan_id, cloud_account_id, status, idempotency_key, \
             creation_key, step_number, scheduled_date, recommendations, target_account_ids, \
             approval_token_hash, approval_expires_at, approved_by, created_by, source, \
             quote, total_commitment, created_by_key_id, approved_by_key_id, approved_at, \
             sized_from) \
         VALUES ($1, NULL, $2, NULL, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17, $18, CASE WHEN $3 = 'approved' THEN now() END, $19) \
         ON CONFLICT DO NOTHING \
         RETURNING id",
    )
    .bind(root.id)
    .bind(root.plan_id)
    .bind(root.status.as_str())
    .bind(root.lineage_key)
    .bind(root.creation_key)
    .bind(root.step_number)
    .bind(root.scheduled_date)
    .bind(Json(root.recommendations))
    .bind(root.targets)
    .bind(root.token_hash.map(|hash| hash.to_vec()))
    .bind(root.approval_expires_at)
    .bind(root.approved_by)
    .bind(root.created_by)
    .bind(root.source.as_str())
    .bind(Json(root.quote))
    .bind(root.quote.total_commitment)
    .bind(root.identities.created_by_key_id)
    .bind(root.identities.approved_by_key_id)
    .bind(root.sized_from)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("inserting a root execution"))?;
    Ok(inserted.is_some())
}

/// A child to insert, with its items.
#[derive(Debug)]
pub struct NewChild<'a> {
    pub id: Uuid,
    pub parent_id: Uuid,
    pub plan_id: Option<Uuid>,
    pub account_id: Uuid,
    pub status: ExecutionStatus,
    pub lineage_key: &'a str,
    pub step_number: Option<i32>,
    pub scheduled_date: Option<DateTime<Utc>>,
    pub approved_by: Option<&'a str>,
    pub created_by: &'a str,
    pub source: Source,
    pub identities: Identities<'a>,
    pub quote: QuoteTotal,
    pub items: Vec<NewItem<'a>>,
}

/// An item of a new child.
#[derive(Debug)]
pub struct NewItem<'a> {
    /// The index in the root's list.
    pub index: u32,
    pub recommendation: &'a Recommendation,
    pub token: String,
    pub quote: &'a Quote,
}

/// Inserts a child and its items.
pub async fn insert_child(conn: &mut PgConnection, child: &NewChild<'_>) -> ExecutorResult<()> {
    sqlx::query(
        "INSERT INTO executions (id, parent_id, plan_id, cloud_account_id, status, idempotency_key, \
             step_number, scheduled_date, approved_by, created_by, source, quote, total_commitment, \
             created_by_key_id, approved_by_key_id, approved_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             CASE WHEN $5 = 'approved' THEN now() END)",
    )
    .bind(child.id)
    .bind(child.parent_id)
    .bind(child.plan_id)
    .bind(child.account_id)
    .bind(child.status.as_str())
    .bind(child.lineage_key)
    .bind(child.step_number)
    .bind(child.scheduled_date)
    .bind(child.approved_by)
    .bind(child.created_by)
    .bind(child.source.as_str())
    .bind(Json(&child.quote))
    .bind(child.quote.total_commitment)
    .bind(child.identities.created_by_key_id)
    .bind(child.identities.approved_by_key_id)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("inserting a child execution"))?;
    let indices: Vec<i32> = child.items.iter().map(|item| item.index as i32).collect();
    let recommendations: Vec<Json<&Recommendation>> = child
        .items
        .iter()
        .map(|item| Json(item.recommendation))
        .collect();
    let tokens: Vec<&str> = child.items.iter().map(|item| item.token.as_str()).collect();
    let offerings: Vec<&str> = child
        .items
        .iter()
        .map(|item| item.quote.offering_id.as_str())
        .collect();
    let quotes: Vec<Json<&Quote>> = child.items.iter().map(|item| Json(item.quote)).collect();
    sqlx::query(
        "INSERT INTO execution_items (execution_id, item_index, recommendation, idempotency_token, \
             status, offering_id, quote) \
         SELECT $1, item.item_index, item.recommendation, item.token, 'pending', item.offering_id, \
             item.quote \
         FROM UNNEST($2::int4[], $3::jsonb[], $4::text[], $5::text[], $6::jsonb[]) \
             AS item(item_index, recommendation, token, offering_id, quote)",
    )
    .bind(child.id)
    .bind(&indices)
    .bind(&recommendations)
    .bind(&tokens)
    .bind(&offerings)
    .bind(&quotes)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("inserting execution items"))?;
    Ok(())
}

/// Writes the status_transitions row of a creation (no previous status).
pub async fn insert_creation_transition(
    conn: &mut PgConnection,
    execution_id: Uuid,
    to: ExecutionStatus,
    actor: &str,
    reason: &str,
) -> ExecutorResult<()> {
    sqlx::query(
        "INSERT INTO status_transitions (execution_id, from_status, to_status, actor, reason) \
         VALUES ($1, NULL, $2, $3, $4)",
    )
    .bind(execution_id)
    .bind(to.as_str())
    .bind(actor)
    .bind(reason)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("writing a status transition"))?;
    crate::metrics::executions_entered(to, 1);
    Ok(())
}

/// Returns one execution (root or child).
pub async fn get(conn: &mut PgConnection, id: Uuid) -> ExecutorResult<Option<ExecutionRow>> {
    sqlx::query_as("SELECT * FROM executions WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ExecutorError::db("reading an execution"))
}

/// Returns one execution, locked for the rest of the transaction.
pub async fn get_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> ExecutorResult<Option<ExecutionRow>> {
    sqlx::query_as("SELECT * FROM executions WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ExecutorError::db("locking an execution"))
}

/// Returns the children of roots, ordered by root and creation.
pub async fn children_of(
    conn: &mut PgConnection,
    root_ids: &[Uuid],
) -> ExecutorResult<Vec<ExecutionRow>> {
    sqlx::query_as(
        "SELECT c.* FROM executions c JOIN executions r ON r.id = c.parent_id \
         WHERE c.parent_id = ANY($1) \
         ORDER BY c.parent_id, array_position(r.target_account_ids, c.cloud_account_id), c.id",
    )
    .bind(root_ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading child executions"))
}

/// Returns the root of `lineage_key` that opened it with a creation key.
pub async fn lineage_opener(
    conn: &mut PgConnection,
    lineage_key: &str,
) -> ExecutorResult<Option<ExecutionRow>> {
    sqlx::query_as(
        "SELECT * FROM executions WHERE parent_id IS NULL AND idempotency_key = $1 \
         ORDER BY created_at, id LIMIT 1",
    )
    .bind(lineage_key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading a lineage"))
}

/// Returns when the lineage of `execution_id` began (its first root's creation) and the
/// database's clock now, both by the database's clock.
pub async fn lineage_start(
    conn: &mut PgConnection,
    execution_id: Uuid,
) -> ExecutorResult<(DateTime<Utc>, DateTime<Utc>)> {
    let (start, now): (Option<DateTime<Utc>>, DateTime<Utc>) = sqlx::query_as(
        "SELECT (SELECT min(r.created_at) FROM executions r \
                 WHERE r.parent_id IS NULL AND r.idempotency_key = root.idempotency_key), now() \
         FROM executions e JOIN executions root ON root.id = COALESCE(e.parent_id, e.id) \
         WHERE e.id = $1",
    )
    .bind(execution_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading when a lineage began"))?
    .ok_or_else(|| ExecutorError::Internal(format!("execution {execution_id} is missing")))?;
    let start = start.ok_or_else(|| {
        ExecutorError::Internal(format!(
            "the lineage of execution {execution_id} has no root"
        ))
    })?;
    Ok((start, now))
}

/// Returns the newest root of a lineage.
pub async fn latest_in_lineage(
    conn: &mut PgConnection,
    lineage_key: &str,
) -> ExecutorResult<Option<ExecutionRow>> {
    sqlx::query_as(
        "SELECT * FROM executions WHERE parent_id IS NULL AND idempotency_key = $1 \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(lineage_key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading a lineage"))
}

/// Returns the live root of a lineage, or else a completed one.
pub async fn live_or_completed_in_lineage(
    conn: &mut PgConnection,
    lineage_key: &str,
) -> ExecutorResult<Option<ExecutionRow>> {
    sqlx::query_as(
        "SELECT * FROM executions WHERE parent_id IS NULL AND idempotency_key = $1 \
           AND status IN ('pending', 'approved', 'running', 'completed') \
         ORDER BY (status = 'completed'), created_at DESC LIMIT 1",
    )
    .bind(lineage_key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading a lineage"))
}

/// Filters of [`list_roots`].
#[derive(Debug, Default)]
pub struct RootFilter {
    pub plan_id: Option<Uuid>,
    pub status: Option<ExecutionStatus>,
    pub account_ids: Vec<Uuid>,
    pub limit: Option<i64>,
}

/// Returns roots, newest first.
pub async fn list_roots(
    conn: &mut PgConnection,
    filter: &RootFilter,
) -> ExecutorResult<Vec<ExecutionRow>> {
    sqlx::query_as(
        "SELECT * FROM executions e WHERE e.parent_id IS NULL \
           AND ($1::uuid IS NULL OR e.plan_id = $1) \
           AND ($2::text IS NULL OR e.status = $2) \
           AND (cardinality($3::uuid[]) = 0 OR EXISTS ( \
                 SELECT 1 FROM executions c WHERE c.parent_id = e.id AND c.cloud_account_id = ANY($3))) \
         ORDER BY e.created_at DESC, e.id DESC \
         LIMIT $4",
    )
    .bind(filter.plan_id)
    .bind(filter.status.map(ExecutionStatus::as_str))
    .bind(&filter.account_ids)
    .bind(filter.limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("listing executions"))
}

/// A status compare-and-set: from one of `from` to `to`, guarded, with its effects.
#[derive(Debug, Clone)]
pub struct StatusChange<'a> {
    pub id: Uuid,
    pub from: &'a [ExecutionStatus],
    pub to: ExecutionStatus,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    /// The row's lease owner must be this.
    pub require_owner: Option<&'a str>,
    /// The root must be running under this lease (children and items of a run).
    pub require_root_lease: Option<&'a Lease>,
    /// The row's heartbeat must be null or older than this (a stale lease).
    pub require_heartbeat_before: Option<DateTime<Utc>>,
    /// The row's attempt must equal this.
    pub require_attempt: Option<i32>,
    /// approval_expires_at must be after this (an open approval window).
    pub require_approval_open_at: Option<DateTime<Utc>>,
    /// approval_expires_at must be at or before this (an expired window).
    pub require_approval_expired_at: Option<DateTime<Utc>>,
    /// Some(Some(owner)): take the lease (heartbeat now); Some(None): clear it.
    pub set_lease: Option<Option<&'a str>>,
    pub bump_attempt: bool,
    pub approved_by: Option<&'a str>,
    /// The approving API key's id ("bootstrap" for the bootstrap key).
    pub approved_by_key_id: Option<&'a str>,
    pub error: Option<&'a str>,
}

impl<'a> StatusChange<'a> {
    /// A change with no guard or effect beyond the status.
    pub fn new(id: Uuid, from: &'a [ExecutionStatus], to: ExecutionStatus, actor: &'a str) -> Self {
        Self {
            id,
            from,
            to,
            actor,
            reason: None,
            require_owner: None,
            require_root_lease: None,
            require_heartbeat_before: None,
            require_attempt: None,
            require_approval_open_at: None,
            require_approval_expired_at: None,
            set_lease: None,
            bump_attempt: false,
            approved_by: None,
            approved_by_key_id: None,
            error: None,
        }
    }
}

/// The result of a compare-and-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The change was made; the status it changed from.
    Applied { from: ExecutionStatus },
    /// Another change came first (or a guard failed): nothing changed.
    Lost,
}

impl CasOutcome {
    pub fn applied(self) -> bool {
        matches!(self, CasOutcome::Applied { .. })
    }
}

/// Applies one status compare-and-set and writes its status_transitions row, in one
/// statement.
pub async fn change_status(
    conn: &mut PgConnection,
    change: &StatusChange<'_>,
) -> ExecutorResult<CasOutcome> {
    debug_assert!(
        change.from.iter().all(|from| from.can_become(change.to)),
        "{:?} -> {}",
        change.from,
        change.to
    );
    let from: Vec<&str> = change.from.iter().map(|status| status.as_str()).collect();
    let (set_lease, lease_value) = match change.set_lease {
        None => (false, None),
        Some(owner) => (true, owner),
    };
    let root_lease = change.require_root_lease;
    let row: Option<String> = sqlx::query_scalar(concat!(
        "WITH old AS ( \
             SELECT e.id, e.status FROM executions e \
             WHERE e.id = $3 AND e.status = ANY($4::text[]) \
               AND ($6::text IS NULL OR e.lease_owner = $6) \
               AND ($7::timestamptz IS NULL OR e.heartbeat_at IS NULL OR e.heartbeat_at < $7) \
               AND ($8::int4 IS NULL OR e.attempt = $8) \
               AND ($9::timestamptz IS NULL OR e.approval_expires_at > $9) \
               AND ($10::timestamptz IS NULL OR e.approval_expires_at <= $10) \
               AND ($1::uuid IS NULL OR ",
        root_leased!(),
        ") \
             FOR UPDATE OF e \
         ), changed AS ( \
             UPDATE executions e SET \
                 status = $5, \
                 updated_at = now(), \
                 lease_owner = CASE WHEN $11 THEN $12::text ELSE e.lease_owner END, \
                 heartbeat_at = CASE WHEN $11 THEN (CASE WHEN $12::text IS NULL THEN NULL ELSE now() END) \
                                ELSE e.heartbeat_at END, \
                 attempt = e.attempt + $13, \
                 approved_by = COALESCE($14::text, e.approved_by), \
                 approved_by_key_id = COALESCE($18::text, e.approved_by_key_id), \
                 approved_at = CASE WHEN $5 = 'approved' THEN now() ELSE e.approved_at END, \
                 error = COALESCE($15::text, e.error), \
                 started_at = CASE WHEN $5 = 'running' THEN COALESCE(e.started_at, now()) ELSE e.started_at END, \
                 completed_at = CASE WHEN $5 IN ('completed', 'partially_completed', 'failed', 'canceled', 'expired') \
                                THEN now() ELSE e.completed_at END \
             FROM old WHERE e.id = old.id \
             RETURNING e.id, old.status AS from_status, e.status AS to_status \
         ), logged AS ( \
             INSERT INTO status_transitions (execution_id, from_status, to_status, actor, reason) \
             SELECT id, from_status, to_status, $16, $17 FROM changed \
         ) \
         SELECT from_status FROM changed"
    ))
    .bind(root_lease.map(|lease| lease.root_id))
    .bind(root_lease.map(|lease| lease.owner.as_str()))
    .bind(change.id)
    .bind(&from)
    .bind(change.to.as_str())
    .bind(change.require_owner)
    .bind(change.require_heartbeat_before)
    .bind(change.require_attempt)
    .bind(change.require_approval_open_at)
    .bind(change.require_approval_expired_at)
    .bind(set_lease)
    .bind(lease_value)
    .bind(i32::from(change.bump_attempt))
    .bind(change.approved_by)
    .bind(change.error)
    .bind(change.actor)
    .bind(change.reason)
    .bind(change.approved_by_key_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("changing an execution status"))?;
    match row {
        Some(from) => {
            crate::metrics::executions_entered(change.to, 1);
            Ok(CasOutcome::Applied {
                from: parse_status(&from)?,
            })
        }
        None => Ok(CasOutcome::Lost),
    }
}

/// Moves every child of `parent_id` in one of `from` to `to` (approve, cancel, expire),
/// each with its status_transitions row; returns how many moved.
pub async fn change_children_status(
    conn: &mut PgConnection,
    parent_id: Uuid,
    from: &[ExecutionStatus],
    to: ExecutionStatus,
    actor: &str,
    reason: Option<&str>,
    approved_by: Option<&str>,
) -> ExecutorResult<i64> {
    let from: Vec<&str> = from.iter().map(|status| status.as_str()).collect();
    sqlx::query_scalar(
        "WITH old AS ( \
             SELECT id, status FROM executions WHERE parent_id = $1 AND status = ANY($2::text[]) \
             ORDER BY id FOR UPDATE \
         ), changed AS ( \
             UPDATE executions e SET status = $3, updated_at = now(), \
                 approved_by = COALESCE($6::text, e.approved_by), \
                 completed_at = CASE WHEN $3 IN ('canceled', 'expired', 'failed', 'partially_completed', 'completed') \
                                THEN now() ELSE e.completed_at END \
             FROM old WHERE e.id = old.id \
             RETURNING e.id, old.status AS from_status, e.status AS to_status \
         ), logged AS ( \
             INSERT INTO status_transitions (execution_id, from_status, to_status, actor, reason) \
             SELECT id, from_status, to_status, $4, $5 FROM changed \
         ) \
         SELECT count(*) FROM changed",
    )
    .bind(parent_id)
    .bind(&from)
    .bind(to.as_str())
    .bind(actor)
    .bind(reason)
    .bind(approved_by)
    .fetch_one(&mut *conn)
    .await
    .map_err(ExecutorError::db("changing child statuses"))
    .inspect(|moved: &i64| {
        crate::metrics::executions_entered(to, u64::try_from(*moved).unwrap_or(0))
    })
}

/// Renews a root's lease; false when the lease is not ours any more or the root ended.
pub async fn renew_lease(conn: &mut PgConnection, lease: &Lease) -> ExecutorResult<bool> {
    let renewed: Option<Uuid> = sqlx::query_scalar(
        "UPDATE executions SET heartbeat_at = now() \
         WHERE id = $1 AND parent_id IS NULL AND status = 'running' AND lease_owner = $2 \
         RETURNING id",
    )
    .bind(lease.root_id)
    .bind(&lease.owner)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("renewing a lease"))?;
    Ok(renewed.is_some())
}

/// Makes a lease we give up (shutdown, nothing in flight) stale at once, so a re-drive
/// need not wait for the threshold.
pub async fn release_lease(conn: &mut PgConnection, lease: &Lease) -> ExecutorResult<bool> {
    let released: Option<Uuid> = sqlx::query_scalar(
        "UPDATE executions SET heartbeat_at = 'epoch' \
         WHERE id = $1 AND parent_id IS NULL AND status = 'running' AND lease_owner = $2 \
         RETURNING id",
    )
    .bind(lease.root_id)
    .bind(&lease.owner)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("releasing a lease"))?;
    Ok(released.is_some())
}

/// Returns up to `limit` approved roots, locked (skipping rows others hold) for the
/// transaction that claims them.
pub async fn lock_approved_roots(conn: &mut PgConnection, limit: i64) -> ExecutorResult<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM executions WHERE parent_id IS NULL AND status = 'approved' \
         ORDER BY updated_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("polling approved executions"))
}

/// Checks and records a sweeper fencing token: true when accepted (equal to or higher
/// than the highest seen for the task), false when stale. Locks the task's row for the
/// transaction.
pub async fn check_fencing(
    conn: &mut PgConnection,
    task: &str,
    token: i64,
) -> ExecutorResult<bool> {
    let accepted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO fencing (task, token) VALUES ($1, $2) \
         ON CONFLICT (task) DO UPDATE SET token = EXCLUDED.token, updated_at = now() \
         WHERE fencing.token <= EXCLUDED.token \
         RETURNING token",
    )
    .bind(task)
    .bind(token)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("checking a fencing token"))?;
    Ok(accepted.is_some())
}

/// A recorded Idempotency-Key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub execution_id: Uuid,
}

pub async fn find_idempotency_key(
    conn: &mut PgConnection,
    key: &str,
) -> ExecutorResult<Option<IdempotencyRow>> {
    sqlx::query_as("SELECT request_hash, execution_id FROM idempotency_keys WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ExecutorError::db("reading an idempotency key"))
}

/// Records an Idempotency-Key; false when another request recorded it first.
pub async fn insert_idempotency_key(
    conn: &mut PgConnection,
    key: &str,
    request_hash: &str,
    execution_id: Uuid,
) -> ExecutorResult<bool> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (key, request_hash, execution_id) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO NOTHING RETURNING key",
    )
    .bind(key)
    .bind(request_hash)
    .bind(execution_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("recording an idempotency key"))?;
    Ok(inserted.is_some())
}

/// A root stranded in approved or running.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaleRow {
    pub id: Uuid,
    pub status: String,
    pub attempt: i32,
    pub updated_at: DateTime<Utc>,
    pub heartbeat_at: Option<DateTime<Utc>>,
}

/// Returns roots approved and not updated since `approved_before`, or running with a
/// heartbeat older than `running_before`, oldest first.
pub async fn list_stale(
    conn: &mut PgConnection,
    approved_before: DateTime<Utc>,
    running_before: DateTime<Utc>,
    limit: i64,
) -> ExecutorResult<Vec<StaleRow>> {
    sqlx::query_as(
        "SELECT id, status, attempt, updated_at, heartbeat_at FROM executions \
         WHERE parent_id IS NULL AND ( \
               (status = 'approved' AND updated_at < $1) \
            OR (status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $2))) \
         ORDER BY COALESCE(heartbeat_at, updated_at), id LIMIT $3",
    )
    .bind(approved_before)
    .bind(running_before)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("listing stale executions"))
}

/// Returns pending roots whose approval window closed at or before `now`.
pub async fn expired_pending(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> ExecutorResult<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM executions WHERE parent_id IS NULL AND status = 'pending' \
           AND approval_expires_at <= $1 ORDER BY approval_expires_at, id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("listing expired approvals"))
}

/// Returns the non-terminal roots of a plan.
pub async fn live_roots_of_plan(
    conn: &mut PgConnection,
    plan_id: Uuid,
) -> ExecutorResult<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM executions WHERE parent_id IS NULL AND plan_id = $1 \
           AND status IN ('pending', 'approved', 'running') ORDER BY created_at",
    )
    .bind(plan_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("listing a plan's live executions"))
}

/// A completed plan step root the planner has not acknowledged yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnreportedStep {
    pub id: Uuid,
    pub plan_id: Uuid,
    pub step_number: i32,
    pub completed_at: Option<DateTime<Utc>>,
}

pub async fn unreported_steps(
    conn: &mut PgConnection,
    limit: i64,
) -> ExecutorResult<Vec<UnreportedStep>> {
    sqlx::query_as(
        "SELECT id, plan_id, step_number, completed_at FROM executions \
         WHERE parent_id IS NULL AND status = 'completed' AND plan_id IS NOT NULL \
           AND step_number IS NOT NULL AND NOT step_reported \
         ORDER BY completed_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("listing unreported plan steps"))
}

pub async fn mark_step_reported(conn: &mut PgConnection, id: Uuid) -> ExecutorResult<()> {
    sqlx::query("UPDATE executions SET step_reported = true WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(ExecutorError::db("marking a plan step reported"))?;
    Ok(())
}
