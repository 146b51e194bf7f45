//! purchase_history: one row per commitment bought, unique by idempotency token.

use chrono::{DateTime, Utc};
use cudly_vocabulary::Recommendation;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::error::{ExecutorError, ExecutorResult};

/// A purchase to record.
#[derive(Debug, Clone)]
pub struct NewPurchase<'a> {
    pub token: &'a str,
    pub child_id: Uuid,
    pub root_id: Uuid,
    pub account_id: Uuid,
    pub account_external_id: &'a str,
    pub plan_id: Option<Uuid>,
    pub recommendation: &'a Recommendation,
    pub commitment_id: &'a str,
    /// The quoted upfront price; the requester's estimate only on items created
    /// before quotes.
    pub upfront_cost: Option<f64>,
}

/// Records a purchase; a second record of the same token keeps the first row (the
/// commitment id is refreshed, it is the same commitment).
pub async fn upsert(conn: &mut PgConnection, purchase: &NewPurchase<'_>) -> ExecutorResult<()> {
    let rec = purchase.recommendation;
    sqlx::query(
        "INSERT INTO purchase_history (id, idempotency_token, execution_id, root_id, cloud_account_id, \
             account_external_id, plan_id, provider, service, region, resource_type, count, term, \
             payment, commitment_id, upfront_cost) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (idempotency_token) DO UPDATE SET commitment_id = EXCLUDED.commitment_id",
    )
    .bind(Uuid::new_v4())
    .bind(purchase.token)
    .bind(purchase.child_id)
    .bind(purchase.root_id)
    .bind(purchase.account_id)
    .bind(purchase.account_external_id)
    .bind(purchase.plan_id)
    .bind(rec.provider.as_str())
    .bind(rec.service.name())
    .bind(&rec.region)
    .bind(&rec.resource_type)
    .bind(rec.count as i32)
    .bind(rec.term as i32)
    .bind(&rec.payment)
    .bind(purchase.commitment_id)
    .bind(purchase.upfront_cost)
    .execute(&mut *conn)
    .await
    .map_err(ExecutorError::db("recording a purchase"))?;
    Ok(())
}

/// Binds $1 to $17 of the statements that finish an item as bought and insert its
/// purchase_history row: the lease, the item, the commitment and the purchase's fields.
fn bind_finished<'q>(
    query: QueryScalar<'q, Postgres, i32, PgArguments>,
    lease: &'q crate::repo::Lease,
    index: i32,
    purchase: &'q NewPurchase<'_>,
) -> QueryScalar<'q, Postgres, i32, PgArguments> {
    let rec = purchase.recommendation;
    query
        .bind(lease.root_id)
        .bind(&lease.owner)
        .bind(purchase.child_id)
        .bind(index)
        .bind(purchase.commitment_id)
        .bind(Uuid::new_v4())
        .bind(purchase.account_id)
        .bind(purchase.account_external_id)
        .bind(purchase.plan_id)
        .bind(rec.provider.as_str())
        .bind(rec.service.name())
        .bind(&rec.region)
        .bind(&rec.resource_type)
        .bind(rec.count as i32)
        .bind(rec.term as i32)
        .bind(&rec.payment)
        .bind(purchase.upfront_cost)
}

/// Writes a claimed item as bought and its purchase_history row, in one statement,
/// under the run's lease. False when the lease is lost (nothing is written).
pub async fn finish_item_bought(
    conn: &mut PgConnection,
    lease: &crate::repo::Lease,
    index: i32,
    purchase: &NewPurchase<'_>,
) -> ExecutorResult<bool> {
    let query = sqlx::query_scalar(concat!(
        "WITH finished AS ( \
             UPDATE execution_items i SET status = 'bought', commitment_id = $5, error = NULL, \
                 updated_at = now(), purchased_at = COALESCE(i.purchased_at, now()) \
             WHERE i.execution_id = $3 AND i.item_index = $4 AND i.status = 'in_flight' \
               AND i.lease_owner = $2 AND ",
        crate::repo::root_leased!(),
        " RETURNING i.idempotency_token \
         ) \
         INSERT INTO purchase_history (id, idempotency_token, execution_id, root_id, cloud_account_id, \
             account_external_id, plan_id, provider, service, region, resource_type, count, term, \
             payment, commitment_id, upfront_cost) \
         SELECT $6, finished.idempotency_token, $3, $1, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $5, $17 \
         FROM finished \
         ON CONFLICT (idempotency_token) DO UPDATE SET commitment_id = EXCLUDED.commitment_id \
         RETURNING 1"
    ));
    let written: Option<i32> = bind_finished(query, lease, index, purchase)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ExecutorError::db("recording a purchase"))?;
    Ok(written.is_some())
}

/// Records a commitment on the run's in_flight attempt (→ bought), writes the item as
/// bought and its purchase_history row, in one statement, under the run's lease. For
/// purchases that need no tag afterwards. False when the attempt or the item is not
/// the run's any more (then the item is left to a later run).
pub async fn finish_attempt_and_item_bought(
    conn: &mut PgConnection,
    lease: &crate::repo::Lease,
    index: i32,
    purchase: &NewPurchase<'_>,
) -> ExecutorResult<bool> {
    let query = sqlx::query_scalar(concat!(
        "WITH attempt AS ( \
             UPDATE purchase_attempts a SET state = 'bought', commitment_id = $5, error = NULL, \
                 updated_at = now() \
             WHERE a.idempotency_token = $18 AND a.state = 'in_flight' AND a.lease_owner = $2 AND ",
        crate::repo::root_leased!(),
        " RETURNING a.idempotency_token \
         ), finished AS ( \
             UPDATE execution_items i SET status = 'bought', commitment_id = $5, error = NULL, \
                 updated_at = now(), purchased_at = COALESCE(i.purchased_at, now()) \
             FROM attempt \
             WHERE i.execution_id = $3 AND i.item_index = $4 AND i.status = 'in_flight' \
               AND i.lease_owner = $2 AND i.idempotency_token = attempt.idempotency_token \
             RETURNING i.idempotency_token \
         ) \
         INSERT INTO purchase_history (id, idempotency_token, execution_id, root_id, cloud_account_id, \
             account_external_id, plan_id, provider, service, region, resource_type, count, term, \
             payment, commitment_id, upfront_cost) \
         SELECT $6, finished.idempotency_token, $3, $1, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $5, $17 \
         FROM finished \
         ON CONFLICT (idempotency_token) DO UPDATE SET commitment_id = EXCLUDED.commitment_id \
         RETURNING 1"
    ));
    let written: Option<i32> = bind_finished(query, lease, index, purchase)
        .bind(purchase.token)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ExecutorError::db("recording a purchase"))?;
    Ok(written.is_some())
}

/// A purchase_history row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PurchaseRow {
    pub id: Uuid,
    pub execution_id: Uuid,
    pub cloud_account_id: Uuid,
    pub account_external_id: String,
    pub plan_id: Option<Uuid>,
    pub provider: String,
    pub service: String,
    pub region: String,
    pub resource_type: String,
    pub count: i32,
    pub term: i32,
    pub payment: String,
    pub commitment_id: String,
    pub upfront_cost: Option<f64>,
    pub purchased_at: DateTime<Utc>,
    /// From the item's recommendation (purchase_history keeps the shape's main fields).
    pub engine: Option<String>,
    pub platform: Option<String>,
    pub hourly_commitment: Option<String>,
}

/// Filters of [`list`].
#[derive(Debug, Default)]
pub struct HistoryFilter {
    pub account_ids: Vec<Uuid>,
    pub provider: Option<String>,
    pub service: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
}

/// Returns purchases, newest first.
pub async fn list(
    conn: &mut PgConnection,
    filter: &HistoryFilter,
) -> ExecutorResult<Vec<PurchaseRow>> {
    sqlx::query_as(
        "SELECT h.id, h.execution_id, h.cloud_account_id, h.account_external_id, h.plan_id, \
             h.provider, h.service, h.region, h.resource_type, h.count, h.term, h.payment, \
             h.commitment_id, h.upfront_cost, h.purchased_at, \
             i.recommendation->>'engine' AS engine, i.recommendation->>'platform' AS platform, \
             i.recommendation->'details'->>'hourly_commitment' AS hourly_commitment \
         FROM purchase_history h \
         LEFT JOIN LATERAL (SELECT recommendation FROM execution_items \
             WHERE idempotency_token = h.idempotency_token LIMIT 1) i ON true \
         WHERE (cardinality($1::uuid[]) = 0 OR h.cloud_account_id = ANY($1)) \
           AND ($2::text IS NULL OR h.provider = $2) \
           AND ($3::text IS NULL OR h.service = $3) \
           AND ($4::timestamptz IS NULL OR h.purchased_at >= $4) \
           AND ($5::timestamptz IS NULL OR h.purchased_at < $5) \
         ORDER BY h.purchased_at DESC, h.id \
         LIMIT $6",
    )
    .bind(&filter.account_ids)
    .bind(&filter.provider)
    .bind(&filter.service)
    .bind(filter.start)
    .bind(filter.end)
    .bind(filter.limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(ExecutorError::db("listing purchases"))
}
