//! purchase_attempts: one row per idempotency token, lineage-wide. A run claims it by
//! insert-if-absent before any purchase call; a present row means another run owns or
//! owned the purchase, and it is reconciled, never bought blindly. sent_at is set just
//! before the purchase call, so null means the call was never sent.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::clocks::SentAt;
use crate::domain::status::AttemptState;
use crate::error::{ExecutorError, ExecutorResult};
use crate::repo::{Lease, root_leased};

/// A `purchase_attempts` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub idempotency_token: String,
    pub state: String,
    pub execution_id: Uuid,
    pub root_id: Uuid,
    pub item_index: i32,
    pub cloud_account_id: Uuid,
    pub service: String,
    pub lease_owner: Option<String>,
    pub started_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub sent_at_sender: Option<DateTime<Utc>>,
    pub commitment_id: Option<String>,
    pub offering_id: Option<String>,
    pub error: Option<String>,
    pub resolved_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl AttemptRow {
    /// Returns when the purchase was sent, if it was.
    pub fn sent(&self) -> Option<SentAt> {
        self.sent_at.map(|database| SentAt {
            database,
            sender: self.sent_at_sender,
        })
    }

    pub fn state(&self) -> ExecutorResult<AttemptState> {
        AttemptState::parse(&self.state).ok_or_else(|| {
            ExecutorError::Internal(format!("unknown stored attempt state {}", self.state))
        })
    }
}

/// An attempt a run claims.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    pub token: &'a str,
    pub child_id: Uuid,
    pub item_index: i32,
    pub account_id: Uuid,
    pub service: &'a str,
}

/// Claims the attempt of a token by insert-if-absent, under the run's lease. None when a
/// row exists already (or the lease is lost: the caller then reads the row to tell).
pub async fn insert_if_absent(
    conn: &mut PgConnection,
    lease: &Lease,
    attempt: &NewAttempt<'_>,
) -> ExecutorResult<Option<AttemptRow>> {
    sqlx::query_as(concat!(
        "INSERT INTO purchase_attempts (idempotency_token, state, execution_id, root_id, item_index, \
             cloud_account_id, service, lease_owner, started_at) \
         SELECT $3, 'in_flight', $4, $1, $5, $6, $7, $2, now() WHERE ",
        root_leased!(),
        " ON CONFLICT (idempotency_token) DO NOTHING RETURNING *"
    ))
    .bind(lease.root_id)
    .bind(&lease.owner)
    .bind(attempt.token)
    .bind(attempt.child_id)
    .bind(attempt.item_index)
    .bind(attempt.account_id)
    .bind(attempt.service)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("claiming a purchase attempt"))
}

/// Returns the attempt of a token.
pub async fn get(conn: &mut PgConnection, token: &str) -> ExecutorResult<Option<AttemptRow>> {
    sqlx::query_as("SELECT * FROM purchase_attempts WHERE idempotency_token = $1")
        .bind(token)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ExecutorError::db("reading a purchase attempt"))
}

/// Claims again an attempt that definitely bought nothing: failed → in_flight, sent_at
/// cleared.
pub async fn reclaim_failed(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    child_id: Uuid,
) -> ExecutorResult<Option<AttemptRow>> {
    sqlx::query_as(concat!(
        "UPDATE purchase_attempts a SET state = 'in_flight', lease_owner = $2, execution_id = $4, \
             root_id = $1, started_at = now(), sent_at = NULL, sent_at_sender = NULL, commitment_id = NULL, error = NULL, \
             updated_at = now() \
         WHERE a.idempotency_token = $3 AND a.state = 'failed' AND ",
        root_leased!(),
        " RETURNING *"
    ))
    .bind(lease.root_id)
    .bind(&lease.owner)
    .bind(token)
    .bind(child_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("reclaiming a failed purchase attempt"))
}

/// Takes over an in_flight attempt of an earlier run, provided it is still exactly as
/// observed (same owner, same sent_at): a previous owner that sets sent_at first makes
/// this fail, and after this succeeds the previous owner can no longer set it.
pub async fn take_over(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    child_id: Uuid,
    observed_owner: Option<&str>,
    observed_sent_at: Option<DateTime<Utc>>,
) -> ExecutorResult<Option<AttemptRow>> {
    sqlx::query_as(concat!(
        "UPDATE purchase_attempts a SET lease_owner = $2, execution_id = $4, root_id = $1, updated_at = now() \
         WHERE a.idempotency_token = $3 AND a.state = 'in_flight' \
           AND a.lease_owner IS NOT DISTINCT FROM $5 AND a.sent_at IS NOT DISTINCT FROM $6 AND ",
        root_leased!(),
        " RETURNING *"
    ))
    .bind(lease.root_id)
    .bind(&lease.owner)
    .bind(token)
    .bind(child_id)
    .bind(observed_owner)
    .bind(observed_sent_at)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("taking over a purchase attempt"))
}

/// Sets sent_at to now on an owned in_flight attempt, just before its purchase call,
/// recording the offering it buys in the same statement. None when the attempt is no
/// longer ours: then nothing may be sent.
pub async fn mark_sent(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    offering_id: &str,
    sender: DateTime<Utc>,
) -> ExecutorResult<Option<SentAt>> {
    let database: Option<DateTime<Utc>> = sqlx::query_scalar(concat!(
        "UPDATE purchase_attempts a SET sent_at = now(), sent_at_sender = $5, offering_id = $4, \
             updated_at = now() \
         WHERE a.idempotency_token = $3 AND a.state = 'in_flight' AND a.lease_owner = $2 AND ",
        root_leased!(),
        " RETURNING a.sent_at"
    ))
    .bind(lease.root_id)
    .bind(&lease.owner)
    .bind(token)
    .bind(offering_id)
    .bind(sender)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("marking a purchase sent"))?;
    Ok(database.map(|database| SentAt {
        database,
        sender: Some(sender),
    }))
}

/// in_flight → bought with the commitment, on an owned attempt.
pub async fn mark_bought(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    commitment_id: &str,
) -> ExecutorResult<bool> {
    owned_update(
        conn,
        lease,
        token,
        concat!(
            "UPDATE purchase_attempts a SET state = 'bought', commitment_id = $4, error = NULL, updated_at = now() \
             WHERE a.idempotency_token = $3 AND a.state = 'in_flight' AND a.lease_owner = $2 AND ",
            root_leased!(),
            " RETURNING a.idempotency_token"
        ),
        Some(commitment_id),
        "recording a bought commitment",
    )
    .await
}

/// in_flight → failed (definitely not bought), on an owned attempt.
pub async fn mark_failed(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    error: &str,
) -> ExecutorResult<bool> {
    owned_update(
        conn,
        lease,
        token,
        concat!(
            "UPDATE purchase_attempts a SET state = 'failed', error = $4, updated_at = now() \
             WHERE a.idempotency_token = $3 AND a.state = 'in_flight' AND a.lease_owner = $2 AND ",
            root_leased!(),
            " RETURNING a.idempotency_token"
        ),
        Some(error),
        "recording a failed purchase",
    )
    .await
}

/// in_flight → in_doubt (possibly bought, not provably), on an owned attempt.
pub async fn mark_in_doubt(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    error: &str,
) -> ExecutorResult<bool> {
    owned_update(
        conn,
        lease,
        token,
        concat!(
            "UPDATE purchase_attempts a SET state = 'in_doubt', error = $4, updated_at = now() \
             WHERE a.idempotency_token = $3 AND a.state = 'in_flight' AND a.lease_owner = $2 AND ",
            root_leased!(),
            " RETURNING a.idempotency_token"
        ),
        Some(error),
        "recording an in-doubt purchase",
    )
    .await
}

/// Records a reconciliation that could not settle an owned attempt's outcome: one more
/// failure, and the attempt is in doubt once it has failed `max_failures` times (else
/// it stays in flight for a later run). Returns the attempt's state, or `None` when the
/// attempt is not the run's any more.
pub async fn note_unsettled_outcome(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    error: &str,
    max_failures: i32,
) -> ExecutorResult<Option<AttemptState>> {
    let state: Option<String> = sqlx::query_scalar(concat!(
        "UPDATE purchase_attempts a SET error = $4, updated_at = now(), \
             reconcile_failures = a.reconcile_failures + 1, \
             state = CASE WHEN a.reconcile_failures + 1 >= $5 THEN 'in_doubt' ELSE a.state END \
         WHERE a.idempotency_token = $3 AND a.state = 'in_flight' AND a.lease_owner = $2 AND ",
        root_leased!(),
        " RETURNING a.state"
    ))
    .bind(lease.root_id)
    .bind(&lease.owner)
    .bind(token)
    .bind(error)
    .bind(max_failures)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("recording an unsettled purchase outcome"))?;
    state
        .map(|state| {
            AttemptState::parse(&state).ok_or_else(|| {
                ExecutorError::Internal(format!("unknown purchase attempt state {state}"))
            })
        })
        .transpose()
}

/// Notes an error on an owned attempt that stays in_flight (outcome unknown: a later
/// run reconciles it).
pub async fn note_error(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    error: &str,
) -> ExecutorResult<bool> {
    owned_update(
        conn,
        lease,
        token,
        concat!(
            "UPDATE purchase_attempts a SET error = $4, updated_at = now() \
             WHERE a.idempotency_token = $3 AND a.state = 'in_flight' AND a.lease_owner = $2 AND ",
            root_leased!(),
            " RETURNING a.idempotency_token"
        ),
        Some(error),
        "noting a purchase error",
    )
    .await
}

async fn owned_update(
    conn: &mut PgConnection,
    lease: &Lease,
    token: &str,
    sql: &'static str,
    value: Option<&str>,
    context: &'static str,
) -> ExecutorResult<bool> {
    let updated: Option<String> = sqlx::query_scalar(sql)
        .bind(lease.root_id)
        .bind(&lease.owner)
        .bind(token)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ExecutorError::db(context))?;
    Ok(updated.is_some())
}

/// Returns every commitment id recorded on an attempt of the account and service (EC2
/// and Redshift reconciliation excludes them from candidates).
pub async fn recorded_commitment_ids(
    conn: &mut PgConnection,
    account_id: Uuid,
    service: &str,
) -> ExecutorResult<Vec<String>> {
    sqlx::query_scalar(
        "SELECT commitment_id FROM purchase_attempts \
         WHERE cloud_account_id = $1 AND service = $2 AND commitment_id IS NOT NULL ORDER BY commitment_id",
    )
    .bind(account_id)
    .bind(service)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading recorded commitments"))
}

/// Returns how many other tokens' purchases of `offering_id` × `count` in the account
/// were sent and recorded no commitment yet (in flight, or in doubt): each may have
/// bought one commitment that no attempt recorded so far, and will adopt it when it is
/// reconciled. One token is excluded: the caller's own.
pub async fn unrecorded_sends_of_offering(
    conn: &mut PgConnection,
    account_id: Uuid,
    service: &str,
    offering_id: &str,
    count: u32,
    own_token: &str,
) -> ExecutorResult<usize> {
    let sends: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM purchase_attempts a \
         WHERE a.cloud_account_id = $1 AND a.service = $2 AND a.offering_id = $3 \
           AND a.idempotency_token <> $5 AND a.sent_at IS NOT NULL \
           AND a.commitment_id IS NULL AND a.state IN ('in_flight', 'in_doubt') \
           AND EXISTS (SELECT 1 FROM execution_items i \
                       WHERE i.idempotency_token = a.idempotency_token \
                         AND (i.recommendation->>'count')::bigint = $4)",
    )
    .bind(account_id)
    .bind(service)
    .bind(offering_id)
    .bind(i64::from(count))
    .bind(own_token)
    .fetch_one(&mut *conn)
    .await
    .map_err(ExecutorError::db(
        "counting unrecorded sends of an offering",
    ))?;
    Ok(usize::try_from(sends).unwrap_or(usize::MAX))
}

/// The outcome of an operator's resolution.
#[derive(Debug, Clone)]
pub enum Resolution {
    Applied(AttemptRow),
    /// The attempt is not in_doubt (its current state).
    NotInDoubt(AttemptState),
    NotFound,
}

/// Resolves an in_doubt attempt: bought with a commitment id, or not bought (→ failed,
/// so a retry of the lineage may buy).
pub async fn resolve_in_doubt(
    conn: &mut PgConnection,
    token: &str,
    bought_commitment_id: Option<&str>,
    actor: &str,
) -> ExecutorResult<Resolution> {
    let updated: Option<AttemptRow> = sqlx::query_as(
        "UPDATE purchase_attempts SET \
             state = CASE WHEN $2::text IS NULL THEN 'failed' ELSE 'bought' END, \
             commitment_id = COALESCE($2::text, commitment_id), \
             error = CASE WHEN $2::text IS NULL THEN 'resolved as not bought by ' || $3 ELSE NULL END, \
             resolved_by = $3, lease_owner = NULL, updated_at = now() \
         WHERE idempotency_token = $1 AND state = 'in_doubt' \
         RETURNING *",
    )
    .bind(token)
    .bind(bought_commitment_id)
    .bind(actor)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("resolving a purchase attempt"))?;
    if let Some(row) = updated {
        return Ok(Resolution::Applied(row));
    }
    match get(conn, token).await? {
        Some(row) => Ok(Resolution::NotInDoubt(row.state()?)),
        None => Ok(Resolution::NotFound),
    }
}
