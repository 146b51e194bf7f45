//! The guardrails row and its change log, and the commitments a rolling window holds.
//! Whatever approves (an approval, an approved creation, a retry) locks the row first,
//! so that the window check and the approval are one serial step across replicas.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::domain::limits::{GuardrailDefaults, Guardrails};
use crate::error::{ExecutorError, ExecutorResult};

/// The `guardrails` row: what an admin stored (nulls: no limit, or the default).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize, Deserialize)]
pub struct StoredGuardrails {
    pub max_execution_commitment: Option<f64>,
    pub max_window_commitment: Option<f64>,
    pub window_days: i32,
    pub require_different_approver: Option<bool>,
    pub price_tolerance_percent: Option<f64>,
}

impl StoredGuardrails {
    /// Returns the guardrails in force.
    pub fn effective(&self, defaults: GuardrailDefaults) -> Guardrails {
        Guardrails {
            max_execution_commitment: self.max_execution_commitment,
            max_window_commitment: self.max_window_commitment,
            window_days: u32::try_from(self.window_days).unwrap_or(30),
            require_different_approver: self
                .require_different_approver
                .unwrap_or(defaults.require_different_approver),
            price_tolerance_percent: self
                .price_tolerance_percent
                .unwrap_or(defaults.price_tolerance_percent),
        }
    }
}

/// The columns of [`StoredGuardrails`], for `concat!`.
macro_rules! columns {
    () => {
        "max_execution_commitment, max_window_commitment, window_days, \
         require_different_approver, price_tolerance_percent"
    };
}

/// Reads the row.
pub async fn get(conn: &mut PgConnection) -> ExecutorResult<StoredGuardrails> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM guardrails"))
        .fetch_one(&mut *conn)
        .await
        .map_err(ExecutorError::db("reading the guardrails"))
}

/// Reads the row and locks it until the transaction ends: approvals queue here.
pub async fn lock(conn: &mut PgConnection) -> ExecutorResult<StoredGuardrails> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM guardrails FOR UPDATE"
    ))
    .fetch_one(&mut *conn)
    .await
    .map_err(ExecutorError::db("locking the guardrails"))
}

/// Stores `next` and logs the change with who made it.
pub async fn update(
    conn: &mut PgConnection,
    next: &StoredGuardrails,
    actor: &str,
    actor_key_id: Option<&str>,
) -> ExecutorResult<()> {
    let before = lock(conn).await?;
    sqlx::query(
        "UPDATE guardrails SET max_execution_commitment = $1, max_window_commitment = $2, \
             window_days = $3, require_different_approver = $4, price_tolerance_percent = $5, \
             updated_by = $6, updated_at = now()",
    )
    .bind(next.max_execution_commitment)
    .bind(next.max_window_commitment)
    .bind(next.window_days)
    .bind(next.require_different_approver)
    .bind(next.price_tolerance_percent)
    .bind(actor)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("updating the guardrails"))?;
    sqlx::query(
        "INSERT INTO guardrail_changes (changed_by, changed_by_key_id, before, after) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(actor)
    .bind(actor_key_id)
    .bind(Json(&before))
    .bind(Json(next))
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("logging a guardrails change"))?;
    Ok(())
}

/// Returns what the roots approved in the last `window_days` commit together: every
/// one but those canceled, expired or failed with nothing bought.
pub async fn committed_in_window(conn: &mut PgConnection, window_days: u32) -> ExecutorResult<f64> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(e.total_commitment), 0)::float8 FROM executions e \
         WHERE e.parent_id IS NULL AND e.approved_at > now() - make_interval(days => $1) \
           AND e.status NOT IN ('canceled', 'expired') \
           AND NOT (e.status = 'failed' AND NOT EXISTS ( \
               SELECT 1 FROM executions c JOIN execution_items i ON i.execution_id = c.id \
               WHERE c.parent_id = e.id AND i.status = 'bought'))",
    )
    .bind(i32::try_from(window_days).unwrap_or(i32::MAX))
    .fetch_one(&mut *conn)
    .await
    .map_err(ExecutorError::db("adding up the window's commitments"))
}
