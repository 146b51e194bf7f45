//! SQL of the executor's schema. Every status change is one compare-and-set statement
//! that writes its status_transitions row in the same statement; a lost race comes back
//! as a typed outcome, not an error. Functions take `&mut PgConnection` (a pooled
//! connection or a transaction).
//!
//! Writes made by a run carry a [`Lease`]: they apply only while the run's root is still
//! `running` under the run's lease owner, checked (and share-locked, root first) inside
//! the same statement, so a process whose lease was taken over or whose root was
//! safe-failed cannot claim items or write outcomes.

pub mod attempts;
pub mod executions;
pub mod guardrails;
pub mod history;
pub mod items;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{ExecutorError, ExecutorResult};

/// Returns the database's clock (in a transaction: its start). Staleness and settle
/// waits compare database timestamps with it, never with a process's clock.
pub async fn database_now(conn: &mut PgConnection) -> ExecutorResult<DateTime<Utc>> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await
        .map_err(ExecutorError::db("reading the database clock"))
}

/// The lease a run holds on its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub root_id: Uuid,
    /// `"<process id>:<run id>"`.
    pub owner: String,
}

/// SQL condition: the root `$1` is running under lease owner `$2`, share-locked so a
/// takeover or safe-fail waits for this statement's transaction. Expands to a literal
/// for `concat!`.
macro_rules! root_leased {
    () => {
        "EXISTS (SELECT 1 FROM executions lease_root WHERE lease_root.id = $1 \
         AND lease_root.parent_id IS NULL AND lease_root.status = 'running' \
         AND lease_root.lease_owner = $2 FOR SHARE)"
    };
}
pub(crate) use root_leased;
