//! SQL of the sweeper: sweep_runs and the fencing sequence.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::task::{Counts, Outcome, Task};

/// One row of sweep_runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRunRow {
    pub id: Uuid,
    pub task: String,
    pub holder: String,
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: Counts,
    pub fencing_token: Option<i64>,
    pub error: Option<String>,
}

/// A finished run to record.
pub struct NewRun<'a> {
    pub task: Task,
    pub holder: &'a str,
    pub outcome: Outcome,
    pub started_at: DateTime<Utc>,
    pub counts: Counts,
    pub fencing_token: Option<i64>,
    pub error: Option<&'a str>,
}

/// Records a finished run; `finished_at` is the database's clock.
pub async fn insert_run(pool: &PgPool, run: NewRun<'_>) -> Result<SweepRunRow, sqlx::Error> {
    let NewRun {
        task,
        holder,
        outcome,
        started_at,
        counts,
        fencing_token,
        error,
    } = run;
    let row = sqlx::query(
        "INSERT INTO sweep_runs (id, task, holder, outcome, started_at, finished_at, found, acted, \
         race_lost, errors, fencing_token, error) \
         VALUES ($1, $2, $3, $4, $5, now(), $6, $7, $8, $9, $10, $11) \
         RETURNING id, task, holder, outcome, started_at, finished_at, found, acted, race_lost, errors, \
         fencing_token, error",
    )
    .bind(Uuid::new_v4())
    .bind(task.name())
    .bind(holder)
    .bind(outcome.name())
    .bind(started_at)
    .bind(counts.found as i32)
    .bind(counts.acted as i32)
    .bind(counts.race_lost as i32)
    .bind(counts.errors as i32)
    .bind(fencing_token)
    .bind(error)
    .fetch_one(pool)
    .await?;
    Ok(from_row(&row))
}

/// Returns true when `task` ran (outcome `ran`) less than `interval` ago, judged by the
/// database clock so several sweepers agree.
pub async fn ran_recently(
    pool: &PgPool,
    task: Task,
    interval: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let seconds = interval.as_secs_f64();
    let recent: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM sweep_runs WHERE task = $1 AND outcome = 'ran' \
         AND started_at > now() - make_interval(secs => $2) LIMIT 1",
    )
    .bind(task.name())
    .bind(seconds)
    .fetch_optional(pool)
    .await?;
    Ok(recent.is_some())
}

/// Returns the newest runs, optionally of one task.
pub async fn list_runs(
    pool: &PgPool,
    task: Option<Task>,
    limit: u32,
) -> Result<Vec<SweepRunRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, task, holder, outcome, started_at, finished_at, found, acted, race_lost, errors, \
         fencing_token, error FROM sweep_runs WHERE ($1::text IS NULL OR task = $1) \
         ORDER BY started_at DESC, id LIMIT $2",
    )
    .bind(task.map(Task::name))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Draws the next fencing token from the Postgres sequence.
pub async fn next_fencing_token(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT nextval('fencing_seq')")
        .fetch_one(pool)
        .await
}

fn from_row(row: &sqlx::postgres::PgRow) -> SweepRunRow {
    let count = |name: &str| row.get::<i32, _>(name).max(0) as u32;
    SweepRunRow {
        id: row.get("id"),
        task: row.get("task"),
        holder: row.get("holder"),
        outcome: row.get("outcome"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        counts: Counts {
            found: count("found"),
            acted: count("acted"),
            race_lost: count("race_lost"),
            errors: count("errors"),
        },
        fencing_token: row.get("fencing_token"),
        error: row.get("error"),
    }
}

/// Fencing tokens for the lock, drawn from the sweeper's Postgres sequence.
#[derive(Clone)]
pub struct PgFencing {
    pub pool: PgPool,
}

impl cudly_lock::FencingSource for PgFencing {
    async fn next_token(&self) -> cudly_lock::LockResult<i64> {
        next_fencing_token(&self.pool)
            .await
            .map_err(|error| cudly_lock::LockError::fencing(cudly_common::db::error_kind(&error)))
    }
}
