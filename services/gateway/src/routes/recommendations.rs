//! `/api/recommendations`: Cost Explorer's purchase recommendations, collected by the
//! planner through the accounts service (docs/design/API.md "Recommendations").
//! Listing needs any key; a refresh, which makes billed Cost Explorer calls, an admin
//! key.

use axum::extract::State;
use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_proto::convert::{details_from_wire, time};
use cudly_proto::planner::v1 as pb;
use cudly_proto::planner::v1::planner_service_client::PlannerServiceClient;
use cudly_vocabulary::RecommendationDetails;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::executions::models::parse_id_list;
use crate::state::AppState;

/// The refresh route, which the request timeout lets run longer.
pub const REFRESH_PATH: &str = "/api/recommendations/refresh";

/// Returns the `/api/recommendations` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_recommendations))
        .routes(routes!(refresh_recommendations))
}

/// Filters of the list; an unknown one is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendationsQuery {
    /// Comma-separated account ids; absent: every enabled account.
    #[serde(default)]
    pub account_ids: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Years, 1 or 3 (text here so a malformed value is refused naming the filter).
    #[serde(default)]
    pub term: Option<String>,
    #[serde(default)]
    pub payment: Option<String>,
}

/// A Cost Explorer recommendation as stored for one account.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationView {
    pub id: String,
    pub cloud_account_id: String,
    /// The 12-digit AWS account id.
    pub account_external_id: String,
    pub provider: String,
    pub service: String,
    pub region: String,
    pub resource_type: String,
    pub engine: Option<String>,
    pub platform: Option<String>,
    pub term: u32,
    pub payment: String,
    /// Cost Explorer's recommended number of instances (may be fractional); for
    /// savingsplans 1, the amount being `details.hourly_commitment`.
    pub recommended_count: f64,
    pub upfront_cost: f64,
    pub monthly_savings: f64,
    pub details: RecommendationDetails,
    pub collected_at: Option<DateTime<Utc>>,
}

/// The stored recommendations.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationsView {
    pub recommendations: Vec<RecommendationView>,
}

/// What a refresh did for one account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountRefreshView {
    pub cloud_account_id: String,
    /// Recommendations stored (0 on failure: the previous set stays).
    pub collected: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a refresh did, and the Cost Explorer calls it made (each is billed).
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshView {
    pub accounts: Vec<AccountRefreshView>,
    pub calls: u32,
}

fn view(stored: pb::StoredRecommendation) -> RecommendationView {
    RecommendationView {
        id: stored.id,
        cloud_account_id: stored.cloud_account_id,
        account_external_id: stored.account_external_id,
        provider: stored.provider,
        service: stored.service,
        region: stored.region,
        resource_type: stored.resource_type,
        engine: stored.engine,
        platform: stored.platform,
        term: stored.term,
        payment: stored.payment,
        recommended_count: stored.recommended_count,
        upfront_cost: stored.upfront_cost,
        monthly_savings: stored.monthly_savings,
        details: stored.details.map(details_from_wire).unwrap_or_default(),
        collected_at: stored.collected_at.as_ref().and_then(time),
    }
}

/// Returns the latest recommendations of enabled accounts (a disabled account's are
/// never listed).
#[utoipa::path(
    get,
    path = "/api/recommendations",
    tag = "recommendations",
    params(
        ("account_ids" = Option<String>, Query, description = "comma-separated account ids; absent: every enabled account"),
        ("service" = Option<String>, Query, description = "ec2 | savingsplans | rds | elasticache | memorydb | opensearch | redshift"),
        ("region" = Option<String>, Query, description = "e.g. us-east-1"),
        ("term" = Option<u32>, Query, description = "1 | 3"),
        ("payment" = Option<String>, Query, description = "no-upfront | partial-upfront | all-upfront"),
    ),
    responses(
        (status = 200, description = "the recommendations", body = RecommendationsView),
        (status = 400, description = "an unknown filter, a malformed account id, an unknown service, term or payment", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable", body = ErrorBody),
    ),
)]
async fn list_recommendations(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RecommendationsQuery>,
) -> HttpResult<ApiJson<RecommendationsView>> {
    let request = pb::ListRecommendationsRequest {
        account_ids: parse_id_list("account_ids", query.account_ids.as_deref())?,
        service: query.service,
        region: query.region,
        term: query
            .term
            .map(|term| {
                term.trim()
                    .parse::<u32>()
                    .map_err(|_| ApiError::invalid_field("term", "must be 1 or 3"))
            })
            .transpose()?,
        payment: query.payment,
    };
    let reply = PlannerServiceClient::new(state.clients.planner.clone())
        .list_recommendations(request)
        .await
        .map_err(|status| grpc_error("planner", status))?
        .into_inner();
    Ok(ApiJson(RecommendationsView {
        recommendations: reply.recommendations.into_iter().map(view).collect(),
    }))
}

/// Collects Cost Explorer recommendations now (admin): once at each organization root
/// for its registered members, per account elsewhere. Each call is billed by AWS.
#[utoipa::path(
    post,
    path = "/api/recommendations/refresh",
    tag = "recommendations",
    responses(
        (status = 200, description = "what was collected per account, and the calls made", body = RefreshView),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable", body = ErrorBody),
    ),
)]
async fn refresh_recommendations(
    State(state): State<AppState>,
    principal: Principal,
) -> HttpResult<ApiJson<RefreshView>> {
    principal.require_admin()?;
    let reply = PlannerServiceClient::new(state.clients.planner_refresh.clone())
        .refresh_recommendations(pb::RefreshRecommendationsRequest { fencing: None })
        .await
        .map_err(|status| grpc_error("planner", status))?
        .into_inner();
    Ok(ApiJson(RefreshView {
        accounts: reply
            .accounts
            .into_iter()
            .map(|entry| AccountRefreshView {
                cloud_account_id: entry.cloud_account_id,
                collected: entry.collected,
                error: entry.error,
            })
            .collect(),
        calls: reply.calls,
    }))
}
