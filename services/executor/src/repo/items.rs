//! Items: one recommendation bought by one child. A run claims an item (pending →
//! in_flight under its lease) before touching its purchase and writes its outcome right
//! after.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::status::ItemStatus;
use crate::error::{ExecutorError, ExecutorResult};
use crate::repo::{Lease, root_leased};
use cudly_aws::purchase::{LimitPrice, Quote};
use cudly_vocabulary::Recommendation;

/// An `execution_items` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub execution_id: Uuid,
    pub item_index: i32,
    pub recommendation: Json<Recommendation>,
    pub idempotency_token: String,
    pub status: String,
    pub commitment_id: Option<String>,
    pub error: Option<String>,
    pub purchased_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The offering priced at creation, which the run buys; null on items created
    /// before quotes.
    pub offering_id: Option<String>,
    pub quote: Option<Json<Quote>>,
}

impl ItemRow {
    pub fn status(&self) -> ExecutorResult<ItemStatus> {
        ItemStatus::parse(&self.status).ok_or_else(|| {
            ExecutorError::Internal(format!("unknown stored item status {}", self.status))
        })
    }

    pub fn index(&self) -> u32 {
        u32::try_from(self.item_index).unwrap_or_default()
    }

    /// Returns the upfront cost to record: the quote's, or for an item created before
    /// quotes the requester's estimate.
    pub fn upfront_cost(&self) -> Option<f64> {
        match &self.quote {
            Some(quote) => Some(quote.0.upfront()),
            None => self.recommendation.0.upfront_cost,
        }
    }

    /// Returns the most the purchase may cost upfront: the quoted upfront plus the
    /// price tolerance, so that AWS (EC2 LimitPrice) refuses exactly what the drift
    /// check would.
    pub fn limit_price(&self, tolerance: f64) -> Option<LimitPrice> {
        self.quote.as_ref().map(|quote| LimitPrice {
            amount: quote.0.upfront() * (1.0 + tolerance.max(0.0)),
            currency: quote.0.currency.clone(),
        })
    }
}

/// Returns the items of children, by child and index.
pub async fn items_of(conn: &mut PgConnection, child_ids: &[Uuid]) -> ExecutorResult<Vec<ItemRow>> {
    sqlx::query_as(
        "SELECT * FROM execution_items WHERE execution_id = ANY($1) ORDER BY execution_id, item_index",
    )
    .bind(child_ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading execution items"))
}

/// Returns one item.
pub async fn get(
    conn: &mut PgConnection,
    child_id: Uuid,
    index: i32,
) -> ExecutorResult<Option<ItemRow>> {
    sqlx::query_as("SELECT * FROM execution_items WHERE execution_id = $1 AND item_index = $2")
        .bind(child_id)
        .bind(index)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ExecutorError::db("reading an execution item"))
}

/// Claims an item for the run holding `lease`: pending → in_flight, or an in_flight item
/// of a previous lease holder (whose lease this run took over). False when the item is
/// settled or the lease is lost.
pub async fn claim(
    conn: &mut PgConnection,
    lease: &Lease,
    child_id: Uuid,
    index: i32,
) -> ExecutorResult<bool> {
    let claimed: Option<i32> = sqlx::query_scalar(concat!(
        "UPDATE execution_items i SET status = 'in_flight', lease_owner = $2, claimed_at = now(), \
             updated_at = now(), error = NULL \
         WHERE i.execution_id = $3 AND i.item_index = $4 \
           AND (i.status = 'pending' OR (i.status = 'in_flight' AND i.lease_owner IS DISTINCT FROM $2)) \
           AND ",
        root_leased!(),
        " AND EXISTS (SELECT 1 FROM executions c WHERE c.id = $3 AND c.parent_id = $1 \
                        AND c.status = 'running' AND c.lease_owner = $2) \
         RETURNING i.item_index"
    ))
    .bind(lease.root_id)
    .bind(&lease.owner)
    .bind(child_id)
    .bind(index)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("claiming an item"))?;
    Ok(claimed.is_some())
}

/// Writes a claimed item's outcome (bought, failed or skipped). False when the lease is
/// lost (the outcome is then not ours to write).
pub async fn finish(
    conn: &mut PgConnection,
    lease: &Lease,
    child_id: Uuid,
    index: i32,
    status: ItemStatus,
    commitment_id: Option<&str>,
    error: Option<&str>,
) -> ExecutorResult<bool> {
    let finished: Option<i32> = sqlx::query_scalar(concat!(
        "UPDATE execution_items i SET status = $5, commitment_id = COALESCE($6, i.commitment_id), \
             error = $7, updated_at = now(), \
             purchased_at = CASE WHEN $5 = 'bought' THEN COALESCE(i.purchased_at, now()) ELSE i.purchased_at END \
         WHERE i.execution_id = $3 AND i.item_index = $4 AND i.status = 'in_flight' AND i.lease_owner = $2 \
           AND ",
        root_leased!(),
        " RETURNING i.item_index"
    ))
    .bind(lease.root_id)
    .bind(&lease.owner)
    .bind(child_id)
    .bind(index)
    .bind(status.as_str())
    .bind(commitment_id)
    .bind(error)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("writing an item outcome"))?;
    Ok(finished.is_some())
}

/// The error of an item ended without being bought in this run, by what its purchase
/// attempt says: bought by an earlier run, sent with an unknown outcome, or never sent.
/// `$reason` names the parameter holding why the item ends. An attempt left in flight
/// is reconciled by the next run, never bought blindly.
macro_rules! unsettled_item_error {
    ($reason:literal) => {
        concat!(
            "CASE WHEN EXISTS (SELECT 1 FROM purchase_attempts a \
                 WHERE a.idempotency_token = i.idempotency_token AND a.state = 'bought') \
             THEN ",
            $reason,
            " || '; the purchase was made by an earlier run: a retry records it' \
             WHEN EXISTS (SELECT 1 FROM purchase_attempts a \
                 WHERE a.idempotency_token = i.idempotency_token \
                 AND a.state IN ('in_flight', 'in_doubt') AND a.sent_at IS NOT NULL) \
             THEN ",
            $reason,
            " || '; a purchase was sent and its outcome is unknown: verify in the \
                 cloud console, a retry reconciles it and never buys twice' \
             ELSE ",
            $reason,
            " || '; nothing was bought' END"
        )
    };
}

/// Fails the pending and in-flight items of a child (or only its item `only_item`)
/// under the run's lease, each reporting what its purchase attempt says (see
/// [`unsettled_item_error`]).
pub async fn fail_unsettled(
    conn: &mut PgConnection,
    lease: &Lease,
    child_id: Uuid,
    only_item: Option<i32>,
    reason: &str,
) -> ExecutorResult<u64> {
    let result = sqlx::query(concat!(
        "UPDATE execution_items i SET status = 'failed', error = ",
        unsettled_item_error!("$4"),
        ", lease_owner = $2, updated_at = now() \
         WHERE i.execution_id = $3 AND i.status IN ('pending', 'in_flight') \
         AND ($5::integer IS NULL OR i.item_index = $5) AND ",
        root_leased!()
    ))
    .bind(lease.root_id)
    .bind(&lease.owner)
    .bind(child_id)
    .bind(reason)
    .bind(only_item)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("failing unsettled items"))?;
    Ok(result.rows_affected())
}

/// Safe-fail: the child's in-flight items fail, each reporting what its purchase
/// attempt says (see [`unsettled_item_error`]); its pending ones were never attempted
/// and are skipped.
pub async fn settle_for_safe_fail(
    conn: &mut PgConnection,
    child_id: Uuid,
    reason: &str,
) -> ExecutorResult<()> {
    sqlx::query(concat!(
        "UPDATE execution_items i SET status = 'failed', error = ",
        unsettled_item_error!("$2"),
        ", updated_at = now() WHERE i.execution_id = $1 AND i.status = 'in_flight'"
    ))
    .bind(child_id)
    .bind(reason)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("failing in-flight items"))?;
    skip_pending(conn, child_id, reason).await?;
    Ok(())
}

/// Marks a child's pending items skipped (safe-fail: never attempted).
pub async fn skip_pending(
    conn: &mut PgConnection,
    child_id: Uuid,
    reason: &str,
) -> ExecutorResult<u64> {
    let result = sqlx::query(
        "UPDATE execution_items SET status = 'skipped', error = $2, updated_at = now() \
         WHERE execution_id = $1 AND status = 'pending'",
    )
    .bind(child_id)
    .bind(reason)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("skipping pending items"))?;
    Ok(result.rows_affected())
}

/// Returns the statuses of a child's items.
pub async fn statuses(conn: &mut PgConnection, child_id: Uuid) -> ExecutorResult<Vec<ItemStatus>> {
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT status FROM execution_items WHERE execution_id = $1 ORDER BY item_index",
    )
    .bind(child_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading item statuses"))?;
    texts
        .iter()
        .map(|text| {
            ItemStatus::parse(text).ok_or_else(|| {
                ExecutorError::Internal(format!("unknown stored item status {text}"))
            })
        })
        .collect()
}

/// True when any item of the root's children was bought, or any purchase attempt of
/// their tokens is bought (lineage-wide).
pub async fn anything_bought_for_root(
    conn: &mut PgConnection,
    root_id: Uuid,
) -> ExecutorResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS ( \
             SELECT 1 FROM execution_items i JOIN executions c ON c.id = i.execution_id \
             WHERE c.parent_id = $1 AND ( \
                 i.status = 'bought' OR EXISTS ( \
                     SELECT 1 FROM purchase_attempts a \
                     WHERE a.idempotency_token = i.idempotency_token AND a.state = 'bought')))",
    )
    .bind(root_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(ExecutorError::db("checking purchases of an execution"))
}

/// Counts the items of a root that were not bought but whose purchase was sent with
/// an outcome still unknown or in doubt: an operator must look.
pub async fn unsettled_for_root(conn: &mut PgConnection, root_id: Uuid) -> ExecutorResult<u32> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM execution_items i JOIN executions c ON c.id = i.execution_id \
         WHERE c.parent_id = $1 AND i.status <> 'bought' AND EXISTS ( \
             SELECT 1 FROM purchase_attempts a \
             WHERE a.idempotency_token = i.idempotency_token \
               AND a.state IN ('in_flight', 'in_doubt') AND a.sent_at IS NOT NULL)",
    )
    .bind(root_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(ExecutorError::db(
        "counting unsettled purchases of an execution",
    ))?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// Same as [`anything_bought_for_root`] for one child.
pub async fn anything_bought_for_child(
    conn: &mut PgConnection,
    child_id: Uuid,
) -> ExecutorResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS ( \
             SELECT 1 FROM execution_items i WHERE i.execution_id = $1 AND ( \
                 i.status = 'bought' OR EXISTS ( \
                     SELECT 1 FROM purchase_attempts a \
                     WHERE a.idempotency_token = i.idempotency_token AND a.state = 'bought')))",
    )
    .bind(child_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(ExecutorError::db("checking purchases of a child execution"))
}

/// Records an operator's resolution on the items carrying `token`: failed or in_flight
/// items become bought with the commitment.
pub async fn resolve_bought(
    conn: &mut PgConnection,
    token: &str,
    commitment_id: &str,
) -> ExecutorResult<u64> {
    let result = sqlx::query(
        "UPDATE execution_items SET status = 'bought', commitment_id = $2, error = NULL, \
             purchased_at = COALESCE(purchased_at, now()), updated_at = now() \
         WHERE idempotency_token = $1 AND status IN ('failed', 'in_flight')",
    )
    .bind(token)
    .bind(commitment_id)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("recording a resolved purchase on items"))?;
    Ok(result.rows_affected())
}

/// Returns the newest item carrying `token` (the one an operator resolves).
pub async fn latest_with_token(
    conn: &mut PgConnection,
    token: &str,
) -> ExecutorResult<Option<ItemRow>> {
    sqlx::query_as(
        "SELECT * FROM execution_items WHERE idempotency_token = $1 ORDER BY updated_at DESC LIMIT 1",
    )
    .bind(token)
    .fetch_optional(&mut *conn)
    .await
    .map_err(ExecutorError::db("reading items of a token"))
}
