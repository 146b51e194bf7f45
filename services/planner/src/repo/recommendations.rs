//! SQL of the stored Cost Explorer recommendations: each account's latest set and when
//! it was collected (`recommendations`, `recommendation_collections`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cudly_vocabulary::{AwsService, RecommendationDetails};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::recommendations::{RecommendationFilter, StoredRecommendation};
use crate::error::{PlannerError, PlannerResult, db};
use cudly_vocabulary::CollectedRecommendation;

/// Rows per INSERT: 15 binds each stays far below Postgres's 65 535 parameters.
const INSERT_CHUNK: usize = 1_000;
/// Longest stored error text, in characters.
const MAX_ERROR_CHARS: usize = 1_000;

#[derive(Debug, FromRow)]
struct RecommendationRow {
    id: Uuid,
    cloud_account_id: Uuid,
    account_external_id: String,
    service: String,
    region: String,
    resource_type: String,
    engine: Option<String>,
    platform: Option<String>,
    term: i32,
    payment: String,
    recommended_count: f64,
    upfront_cost: f64,
    monthly_savings: f64,
    details: Json<RecommendationDetails>,
    collected_at: DateTime<Utc>,
}

impl TryFrom<RecommendationRow> for StoredRecommendation {
    type Error = PlannerError;

    fn try_from(row: RecommendationRow) -> PlannerResult<Self> {
        let service = AwsService::from_name(&row.service).ok_or_else(|| {
            PlannerError::Internal(format!(
                "stored recommendation {} has an unknown service",
                row.id
            ))
        })?;
        Ok(StoredRecommendation {
            id: row.id,
            cloud_account_id: row.cloud_account_id,
            recommendation: CollectedRecommendation {
                account_id: row.account_external_id.clone(),
                service,
                region: row.region,
                resource_type: row.resource_type,
                engine: row.engine,
                platform: row.platform,
                term: u32::try_from(row.term).unwrap_or_default(),
                payment: row.payment,
                recommended_count: row.recommended_count,
                upfront_cost: row.upfront_cost,
                monthly_savings: row.monthly_savings,
                details: row.details.0,
            },
            account_external_id: row.account_external_id,
            collected_at: row.collected_at,
        })
    }
}

/// Replaces one account's set with `set`, collected at `collected_at`, and records the
/// collection (clearing the last error). The caller's transaction makes it atomic.
pub async fn replace_set(
    conn: &mut PgConnection,
    account_id: Uuid,
    external_id: &str,
    set: &[CollectedRecommendation],
    collected_at: DateTime<Utc>,
) -> PlannerResult<()> {
    sqlx::query("DELETE FROM recommendations WHERE cloud_account_id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await
        .map_err(db("delete recommendations"))?;
    for chunk in set.chunks(INSERT_CHUNK) {
        let mut insert: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO recommendations (id, cloud_account_id, account_external_id, provider, \
             service, region, resource_type, engine, platform, term, payment, recommended_count, \
             upfront_cost, monthly_savings, details, collected_at) ",
        );
        insert.push_values(chunk, |mut row, detail| {
            row.push_bind(Uuid::new_v4())
                .push_bind(account_id)
                .push_bind(external_id.to_owned())
                .push_bind("aws")
                .push_bind(detail.service.name())
                .push_bind(detail.region.clone())
                .push_bind(detail.resource_type.clone())
                .push_bind(detail.engine.clone())
                .push_bind(detail.platform.clone())
                .push_bind(i32::try_from(detail.term).unwrap_or_default())
                .push_bind(detail.payment.clone())
                .push_bind(detail.recommended_count)
                .push_bind(detail.upfront_cost)
                .push_bind(detail.monthly_savings)
                .push_bind(Json(detail.details.clone()))
                .push_bind(collected_at);
        });
        insert
            .build()
            .execute(&mut *conn)
            .await
            .map_err(db("insert recommendations"))?;
    }
    sqlx::query(
        "INSERT INTO recommendation_collections (cloud_account_id, collected_at) VALUES ($1, $2)
         ON CONFLICT (cloud_account_id) DO UPDATE
             SET collected_at = EXCLUDED.collected_at, last_error = NULL, last_error_at = NULL",
    )
    .bind(account_id)
    .bind(collected_at)
    .execute(&mut *conn)
    .await
    .map_err(db("record collection"))?;
    Ok(())
}

/// Records why an account's set was not replaced; the set itself stays.
pub async fn record_failure(
    conn: &mut PgConnection,
    account_id: Uuid,
    error: &str,
) -> PlannerResult<()> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    sqlx::query(
        "INSERT INTO recommendation_collections (cloud_account_id, last_error, last_error_at)
         VALUES ($1, $2, now())
         ON CONFLICT (cloud_account_id) DO UPDATE
             SET last_error = EXCLUDED.last_error, last_error_at = EXCLUDED.last_error_at",
    )
    .bind(account_id)
    .bind(error)
    .execute(&mut *conn)
    .await
    .map_err(db("record collection failure"))?;
    Ok(())
}

/// Returns the stored recommendations of `account_ids` that pass `filter`, by account,
/// service, region and type.
pub async fn list(
    conn: &mut PgConnection,
    account_ids: &[Uuid],
    filter: &RecommendationFilter,
) -> PlannerResult<Vec<StoredRecommendation>> {
    let rows: Vec<RecommendationRow> = sqlx::query_as(
        "SELECT id, cloud_account_id, account_external_id, service, region, resource_type,
             engine, platform, term, payment, recommended_count, upfront_cost, monthly_savings,
             details, collected_at
         FROM recommendations
         WHERE cloud_account_id = ANY($1)
           AND ($2::text IS NULL OR service = $2)
           AND ($3::text IS NULL OR region = $3)
           AND ($4::integer IS NULL OR term = $4)
           AND ($5::text IS NULL OR payment = $5)
         ORDER BY account_external_id, service, region, resource_type, term, payment, id",
    )
    .bind(account_ids)
    .bind(filter.service.map(AwsService::name))
    .bind(filter.region.as_deref())
    .bind(filter.term.and_then(|term| i32::try_from(term).ok()))
    .bind(filter.payment.as_deref())
    .fetch_all(conn)
    .await
    .map_err(db("list recommendations"))?;
    rows.into_iter()
        .map(StoredRecommendation::try_from)
        .collect()
}

/// Returns when each of `account_ids` last had its set collected (accounts never
/// collected are absent).
pub async fn collected_at(
    conn: &mut PgConnection,
    account_ids: &[Uuid],
) -> PlannerResult<HashMap<Uuid, DateTime<Utc>>> {
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT cloud_account_id, collected_at FROM recommendation_collections
         WHERE cloud_account_id = ANY($1) AND collected_at IS NOT NULL",
    )
    .bind(account_ids)
    .fetch_all(conn)
    .await
    .map_err(db("read collection times"))?;
    Ok(rows.into_iter().collect())
}
