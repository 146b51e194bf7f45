//! `/api/plans`: plans, their accounts and standing recommendations, and starting an
//! execution of a plan (API.md, Plans and `POST /api/plans/{id}/executions`). Every
//! route calls the planner; changes need an admin key (the auth layer gives viewers GET
//! only).
//!
//! The JSON shapes of recommendations and executions defined here ([`RecommendationBody`],
//! [`RecommendationView`], [`ExecutionView`]) are the ones API.md gives for every route,
//! so other route modules reuse them.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_proto::common::v1 as common_pb;
use cudly_proto::executor::v1 as executor_pb;
use cudly_proto::planner::v1 as pb;
use cudly_proto::planner::v1::planner_service_client::PlannerServiceClient;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// The header that makes execution creation idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest Idempotency-Key accepted.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Returns the `/api/plans` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plans, create_plan))
        .routes(routes!(get_plan, update_plan, delete_plan))
        .routes(routes!(get_plan_accounts, set_plan_accounts))
        .routes(routes!(get_plan_recommendations, set_plan_recommendations))
        .routes(routes!(start_plan_execution))
}

fn planner(state: &AppState) -> PlannerServiceClient<cudly_common::grpc::AuthChannel> {
    PlannerServiceClient::new(state.clients.planner.clone())
}

fn planner_error(status: tonic::Status) -> crate::error::HttpError {
    grpc_error("planner", status)
}

// ---------------------------------------------------------------------------------------
// Request bodies

/// A plan as written (POST and PUT). Read-only fields of a plan (`id`, timestamps,
/// dates, `ramp_schedule.current_step`) are accepted and ignored, so that a plan read
/// with GET can be sent back with PUT.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// Required, at most 100 characters.
    pub name: String,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default false: executions wait for approval.
    #[serde(default)]
    pub auto_purchase: Option<bool>,
    /// 0-30, default 7.
    #[serde(default)]
    pub notification_days_before: Option<u32>,
    /// Keyed `"<provider>/<service>"`, e.g. `"aws/ec2"`; at least one.
    pub services: BTreeMap<String, ServiceBody>,
    /// Default: immediate, starting now.
    #[serde(default)]
    pub ramp_schedule: Option<RampScheduleBody>,
    /// POST only: the accounts to bind; absent or empty: all enabled accounts of the
    /// plan's providers.
    #[serde(default)]
    pub account_ids: Option<Vec<Uuid>>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub id: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub next_execution_date: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub last_execution_date: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub created_at: Option<String>,
    /// Read-only, ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub updated_at: Option<String>,
}

/// One service of a plan as written.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    /// `aws` | `azure` | `gcp`; must agree with the key.
    pub provider: String,
    /// For aws: ec2, savingsplans, rds, elasticache, memorydb, opensearch, redshift; must
    /// agree with the key.
    pub service: String,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Years: 1 or 3.
    pub term: u32,
    /// aws: no-upfront | partial-upfront | all-upfront; azure: upfront | monthly; gcp:
    /// monthly.
    pub payment: String,
    /// Percent 0-100.
    pub coverage: f64,
    #[serde(default)]
    pub include_regions: Vec<String>,
    #[serde(default)]
    pub exclude_regions: Vec<String>,
    #[serde(default)]
    pub include_types: Vec<String>,
    #[serde(default)]
    pub exclude_types: Vec<String>,
}

/// A ramp schedule as written. A preset fills the fields not given; `custom` needs
/// percent_per_step, step_interval_days and total_steps.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RampScheduleBody {
    /// immediate | weekly-25pct | monthly-10pct | custom; default immediate.
    #[serde(default, rename = "type")]
    pub ramp_type: Option<String>,
    #[serde(default)]
    pub percent_per_step: Option<f64>,
    #[serde(default)]
    pub step_interval_days: Option<u32>,
    #[serde(default)]
    pub total_steps: Option<u32>,
    /// Default: now (on update: the stored start date).
    #[serde(default)]
    pub start_date: Option<DateTime<Utc>>,
    /// Read-only (advanced by completed executions), ignored.
    #[serde(default)]
    #[schema(read_only)]
    pub current_step: Option<u32>,
}

/// The accounts to bind to a plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanAccountsBody {
    /// Empty: all enabled accounts of the plan's providers, resolved when it runs.
    pub account_ids: Vec<Uuid>,
}

/// A plan's standing recommendation list as written.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendationsBody {
    pub recommendations: Vec<RecommendationBody>,
}

/// What to buy: one line of a purchase list.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendationBody {
    /// `aws` (other providers: 400 for now).
    pub provider: String,
    /// ec2 | savingsplans | rds | elasticache | memorydb | opensearch | redshift.
    pub service: String,
    pub region: String,
    /// Instance or node type; for savingsplans the plan type.
    pub resource_type: String,
    #[serde(default)]
    pub engine: Option<String>,
    /// ec2: the product description, e.g. "Linux/UNIX".
    #[serde(default)]
    pub platform: Option<String>,
    pub count: u32,
    /// Years: 1 or 3.
    pub term: u32,
    pub payment: String,
    /// Only this account buys the line.
    #[serde(default)]
    pub cloud_account_id: Option<Uuid>,
    /// With several target accounts and no cloud_account_id: every target buys it.
    #[serde(default)]
    pub all_accounts: Option<bool>,
    #[serde(default)]
    pub details: Option<DetailsBody>,
    #[serde(default)]
    pub upfront_cost: Option<f64>,
    #[serde(default)]
    pub monthly_savings: Option<f64>,
}

/// Service-specific details of a recommendation.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailsBody {
    /// ec2: default | dedicated (default "default").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<String>,
    /// ec2: standard | convertible (default "standard").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offering_class: Option<String>,
    /// ec2: a zonal reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// rds (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
    /// savingsplans: Compute | EC2Instance | SageMaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_type: Option<String>,
    /// savingsplans: USD per hour as decimal text, e.g. "1.00".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_commitment: Option<String>,
    /// savingsplans: a specific offering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offering_id: Option<String>,
}

/// Starting an execution of a plan.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartExecutionBody {
    /// Buy this list verbatim (its own lineage). Absent: the plan's standing list,
    /// filtered and scaled for its next ramp step.
    #[serde(default)]
    pub recommendations: Option<Vec<RecommendationBody>>,
    #[serde(default)]
    pub scheduled_date: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------
// Replies

/// A plan (API.md "Plan").
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub auto_purchase: bool,
    pub notification_days_before: u32,
    pub services: BTreeMap<String, ServiceView>,
    pub ramp_schedule: RampScheduleView,
    /// Null when the plan has nothing more to run.
    pub next_execution_date: Option<DateTime<Utc>>,
    pub last_execution_date: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// One service of a plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    pub provider: String,
    pub service: String,
    pub enabled: bool,
    pub term: u32,
    pub payment: String,
    pub coverage: f64,
    pub include_regions: Vec<String>,
    pub exclude_regions: Vec<String>,
    pub include_types: Vec<String>,
    pub exclude_types: Vec<String>,
}

/// A plan's ramp schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RampScheduleView {
    #[serde(rename = "type")]
    pub ramp_type: String,
    pub percent_per_step: f64,
    pub step_interval_days: u32,
    /// Steps completed so far.
    pub current_step: u32,
    pub total_steps: u32,
    pub start_date: Option<DateTime<Utc>>,
}

/// Every plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    pub plans: Vec<PlanView>,
}

/// A plan's account binding.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanAccountsView {
    /// The explicit list (empty when all_enabled_accounts).
    pub account_ids: Vec<String>,
    /// The plan targets every enabled account of its providers.
    pub all_enabled_accounts: bool,
    /// The listed accounts that still exist, or the enabled accounts of the plan's
    /// providers now.
    pub accounts: Vec<PlanAccountView>,
}

/// An account bound to a plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanAccountView {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub external_id: String,
    pub enabled: bool,
}

/// A recommendation as stored (API.md "Recommendation").
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationView {
    pub provider: String,
    pub service: String,
    pub region: String,
    pub resource_type: String,
    pub engine: Option<String>,
    pub platform: Option<String>,
    pub count: u32,
    pub term: u32,
    pub payment: String,
    pub cloud_account_id: Option<String>,
    pub all_accounts: bool,
    pub details: DetailsBody,
    pub upfront_cost: Option<f64>,
    pub monthly_savings: Option<f64>,
}

/// A recommendation list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationList {
    pub recommendations: Vec<RecommendationView>,
}

/// An execution (API.md "Execution"): a root with its children, or a child with its
/// items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionView {
    pub id: String,
    pub plan_id: Option<String>,
    pub parent_id: Option<String>,
    pub cloud_account_id: Option<String>,
    /// pending | approved | running | completed | partially_completed | failed |
    /// canceled | expired.
    pub status: String,
    pub step_number: Option<u32>,
    pub scheduled_date: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Number of re-drives.
    pub attempt: u32,
    pub approved_by: Option<String>,
    /// api | schedule | retry.
    pub source: String,
    pub total_items: u32,
    pub total_upfront_cost: f64,
    /// When a pending root's approval token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub recommendations: Vec<RecommendationView>,
    pub items: Vec<ExecutionItemView>,
    #[schema(no_recursion)]
    pub children: Vec<ExecutionView>,
}

/// One recommendation bought by one child execution.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionItemView {
    pub index: u32,
    pub recommendation: Option<RecommendationView>,
    /// pending | in_flight | bought | failed | skipped.
    pub status: String,
    pub commitment_id: Option<String>,
    pub error: Option<String>,
    pub purchased_at: Option<DateTime<Utc>>,
}

/// A new execution: the only reply that shows its approval token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedExecutionView {
    #[serde(flatten)]
    pub execution: ExecutionView,
    /// One-time approval token of a new pending execution (approve/cancel links); absent
    /// when auto-approved or on an idempotent replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_token: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Conversions

fn time(timestamp: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let timestamp = timestamp?;
    DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).ok()?)
}

fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

fn plan_input(body: PlanBody) -> pb::PlanInput {
    pb::PlanInput {
        name: body.name,
        enabled: body.enabled,
        auto_purchase: body.auto_purchase,
        notification_days_before: body.notification_days_before,
        services: body
            .services
            .into_iter()
            .map(|(key, service)| {
                let input = pb::ServiceConfigInput {
                    provider: service.provider,
                    service: service.service,
                    enabled: service.enabled,
                    term: service.term,
                    payment: service.payment,
                    coverage: service.coverage,
                    include_regions: service.include_regions,
                    exclude_regions: service.exclude_regions,
                    include_types: service.include_types,
                    exclude_types: service.exclude_types,
                };
                (key, input)
            })
            .collect(),
        ramp_schedule: body.ramp_schedule.map(|ramp| pb::RampScheduleInput {
            r#type: ramp.ramp_type,
            percent_per_step: ramp.percent_per_step,
            step_interval_days: ramp.step_interval_days,
            total_steps: ramp.total_steps,
            start_date: ramp.start_date.map(timestamp),
        }),
    }
}

fn plan_view(plan: pb::Plan) -> PlanView {
    let ramp = plan.ramp_schedule.unwrap_or_default();
    PlanView {
        id: plan.id,
        name: plan.name,
        enabled: plan.enabled,
        auto_purchase: plan.auto_purchase,
        notification_days_before: plan.notification_days_before,
        services: plan
            .services
            .into_iter()
            .map(|(key, service)| {
                let view = ServiceView {
                    provider: service.provider,
                    service: service.service,
                    enabled: service.enabled,
                    term: service.term,
                    payment: service.payment,
                    coverage: service.coverage,
                    include_regions: service.include_regions,
                    exclude_regions: service.exclude_regions,
                    include_types: service.include_types,
                    exclude_types: service.exclude_types,
                };
                (key, view)
            })
            .collect(),
        ramp_schedule: RampScheduleView {
            ramp_type: ramp.r#type,
            percent_per_step: ramp.percent_per_step,
            step_interval_days: ramp.step_interval_days,
            current_step: ramp.current_step,
            total_steps: ramp.total_steps,
            start_date: time(ramp.start_date),
        },
        next_execution_date: time(plan.next_execution_date),
        last_execution_date: time(plan.last_execution_date),
        created_at: time(plan.created_at),
        updated_at: time(plan.updated_at),
    }
}

fn plan_accounts_view(binding: pb::PlanAccounts) -> PlanAccountsView {
    PlanAccountsView {
        account_ids: binding.account_ids,
        all_enabled_accounts: binding.all_enabled_accounts,
        accounts: binding
            .accounts
            .into_iter()
            .map(|account| PlanAccountView {
                id: account.id,
                name: account.name,
                provider: account.provider,
                external_id: account.external_id,
                enabled: account.enabled,
            })
            .collect(),
    }
}

/// Returns the protobuf form of a recommendation as written.
pub fn recommendation_proto(body: RecommendationBody) -> common_pb::Recommendation {
    let details = body.details.unwrap_or_default();
    common_pb::Recommendation {
        provider: body.provider,
        service: body.service,
        region: body.region,
        resource_type: body.resource_type,
        engine: body.engine,
        platform: body.platform,
        count: body.count,
        term: body.term,
        payment: body.payment,
        cloud_account_id: body.cloud_account_id.map(|id| id.to_string()),
        all_accounts: body.all_accounts.unwrap_or(false),
        details: Some(common_pb::RecommendationDetails {
            tenancy: details.tenancy,
            offering_class: details.offering_class,
            availability_zone: details.availability_zone,
            multi_az: details.multi_az,
            plan_type: details.plan_type,
            hourly_commitment: details.hourly_commitment,
            offering_id: details.offering_id,
        }),
        upfront_cost: body.upfront_cost,
        monthly_savings: body.monthly_savings,
    }
}

/// Returns the JSON form of a recommendation.
pub fn recommendation_view(proto: common_pb::Recommendation) -> RecommendationView {
    let details = proto.details.unwrap_or_default();
    RecommendationView {
        provider: proto.provider,
        service: proto.service,
        region: proto.region,
        resource_type: proto.resource_type,
        engine: proto.engine,
        platform: proto.platform,
        count: proto.count,
        term: proto.term,
        payment: proto.payment,
        cloud_account_id: proto.cloud_account_id,
        all_accounts: proto.all_accounts,
        details: DetailsBody {
            tenancy: details.tenancy,
            offering_class: details.offering_class,
            availability_zone: details.availability_zone,
            multi_az: details.multi_az,
            plan_type: details.plan_type,
            hourly_commitment: details.hourly_commitment,
            offering_id: details.offering_id,
        },
        upfront_cost: proto.upfront_cost,
        monthly_savings: proto.monthly_savings,
    }
}

fn recommendation_list(recommendations: Vec<common_pb::Recommendation>) -> RecommendationList {
    RecommendationList {
        recommendations: recommendations
            .into_iter()
            .map(recommendation_view)
            .collect(),
    }
}

/// Returns the JSON form of an execution (a root with its children, or a child).
pub fn execution_view(proto: executor_pb::Execution) -> ExecutionView {
    ExecutionView {
        id: proto.id,
        plan_id: proto.plan_id,
        parent_id: proto.parent_id,
        cloud_account_id: proto.cloud_account_id,
        status: proto.status,
        step_number: proto.step_number,
        scheduled_date: time(proto.scheduled_date),
        created_at: time(proto.created_at),
        updated_at: time(proto.updated_at),
        started_at: time(proto.started_at),
        completed_at: time(proto.completed_at),
        error: proto.error,
        attempt: proto.attempt,
        approved_by: proto.approved_by,
        source: proto.source,
        total_items: proto.total_items,
        total_upfront_cost: proto.total_upfront_cost,
        approval_expires_at: time(proto.approval_expires_at),
        recommendations: proto
            .recommendations
            .into_iter()
            .map(recommendation_view)
            .collect(),
        items: proto
            .items
            .into_iter()
            .map(|item| ExecutionItemView {
                index: item.index,
                recommendation: item.recommendation.map(recommendation_view),
                status: item.status,
                commitment_id: item.commitment_id,
                error: item.error,
                purchased_at: time(item.purchased_at),
            })
            .collect(),
        children: proto.children.into_iter().map(execution_view).collect(),
    }
}

/// Returns the lowercase hex SHA-256 of the canonical request: method, path and the body
/// re-serialised with sorted keys, so that the same request always hashes the same.
pub fn request_hash(method: &str, path: &str, body: &impl Serialize) -> Result<String, ApiError> {
    let value = serde_json::to_value(body).map_err(|error| {
        tracing::error!(%error, "request body does not serialise");
        ApiError::internal()
    })?;
    let canonical = canonical_json(&value);
    let digest = Sha256::digest(format!("{method} {path}\n{canonical}").as_bytes());
    Ok(hex::encode(digest))
}

/// Returns JSON text with object keys sorted at every level.
fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(key.clone()),
                        canonical_json(&map[key])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// Returns the Idempotency-Key header, if sent: 1 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| {
            !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
                && key.chars().all(|c| c.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid_field(
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ascii characters"),
            )
        })?;
    Ok(Some(key.to_owned()))
}

// ---------------------------------------------------------------------------------------
// Handlers

/// Lists every plan, ordered by name.
#[utoipa::path(
    get,
    path = "/api/plans",
    tag = "plans",
    responses(
        (status = 200, description = "every plan", body = PlanList),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 503, description = "planner service unavailable", body = ErrorBody),
    ),
)]
async fn list_plans(State(state): State<AppState>) -> HttpResult<ApiJson<PlanList>> {
    let reply = planner(&state)
        .list_plans(pb::ListPlansRequest {})
        .await
        .map_err(planner_error)?
        .into_inner();
    Ok(ApiJson(PlanList {
        plans: reply.plans.into_iter().map(plan_view).collect(),
    }))
}

/// Creates a plan, optionally bound to accounts (all of the plan's providers).
#[utoipa::path(
    post,
    path = "/api/plans",
    tag = "plans",
    request_body = PlanBody,
    responses(
        (status = 201, description = "the plan", body = PlanView),
        (status = 400, description = "invalid field, or accounts of another provider (`mismatches`)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "unknown account", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable", body = ErrorBody),
    ),
)]
async fn create_plan(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<PlanBody>,
) -> HttpResult<(StatusCode, ApiJson<PlanView>)> {
    principal.require_admin()?;
    let account_ids = body.account_ids.as_ref().map(|ids| common_pb::IdList {
        ids: ids.iter().map(Uuid::to_string).collect(),
    });
    let request = pb::CreatePlanRequest {
        plan: Some(plan_input(body)),
        account_ids,
    };
    let plan = planner(&state)
        .create_plan(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    tracing::info!(plan_id = %plan.id, by = %principal.name, "plan created");
    Ok((StatusCode::CREATED, ApiJson(plan_view(plan))))
}

/// Returns one plan.
#[utoipa::path(
    get,
    path = "/api/plans/{id}",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    responses(
        (status = 200, description = "the plan", body = PlanView),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
    ),
)]
async fn get_plan(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<PlanView>> {
    let plan = planner(&state)
        .get_plan(pb::GetPlanRequest { id: id.to_string() })
        .await
        .map_err(planner_error)?
        .into_inner();
    Ok(ApiJson(plan_view(plan)))
}

/// Replaces a plan's writable fields (the ramp's current step is kept).
#[utoipa::path(
    put,
    path = "/api/plans/{id}",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    request_body = PlanBody,
    responses(
        (status = 200, description = "the plan", body = PlanView),
        (status = 400, description = "invalid field, or a removed provider still used by bound accounts (`mismatches`)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable", body = ErrorBody),
    ),
)]
async fn update_plan(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PlanBody>,
) -> HttpResult<ApiJson<PlanView>> {
    principal.require_admin()?;
    if body.account_ids.is_some() {
        return Err(ApiError::invalid_field(
            "account_ids",
            "set a plan's accounts with PUT /api/plans/{id}/accounts",
        )
        .into());
    }
    let request = pb::UpdatePlanRequest {
        id: id.to_string(),
        plan: Some(plan_input(body)),
    };
    let plan = planner(&state)
        .update_plan(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    tracing::info!(plan_id = %plan.id, by = %principal.name, "plan updated");
    Ok(ApiJson(plan_view(plan)))
}

/// Deletes a plan and its account binding, unless it has a non-terminal execution.
#[utoipa::path(
    delete,
    path = "/api/plans/{id}",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
        (status = 409, description = "the plan has a non-terminal execution", body = ErrorBody),
        (status = 503, description = "planner or executor service unavailable (nothing deleted)", body = ErrorBody),
    ),
)]
async fn delete_plan(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<StatusCode> {
    principal.require_admin()?;
    planner(&state)
        .delete_plan(pb::DeletePlanRequest { id: id.to_string() })
        .await
        .map_err(planner_error)?;
    tracing::info!(plan_id = %id, by = %principal.name, "plan deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Returns the plan's account binding with the accounts' current data.
#[utoipa::path(
    get,
    path = "/api/plans/{id}/accounts",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    responses(
        (status = 200, description = "the binding", body = PlanAccountsView),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable", body = ErrorBody),
    ),
)]
async fn get_plan_accounts(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<PlanAccountsView>> {
    let binding = planner(&state)
        .get_plan_accounts(pb::GetPlanAccountsRequest {
            plan_id: id.to_string(),
        })
        .await
        .map_err(planner_error)?
        .into_inner();
    Ok(ApiJson(plan_accounts_view(binding)))
}

/// Replaces the plan's account list atomically; an empty list means every enabled
/// account of the plan's providers. On any error nothing changes.
#[utoipa::path(
    put,
    path = "/api/plans/{id}/accounts",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    request_body = PlanAccountsBody,
    responses(
        (status = 200, description = "the binding", body = PlanAccountsView),
        (status = 400, description = "malformed id, or accounts of another provider (`mismatches`)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan or account", body = ErrorBody),
        (status = 503, description = "planner or accounts service unavailable (nothing changed)", body = ErrorBody),
    ),
)]
async fn set_plan_accounts(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PlanAccountsBody>,
) -> HttpResult<ApiJson<PlanAccountsView>> {
    principal.require_admin()?;
    let request = pb::SetPlanAccountsRequest {
        plan_id: id.to_string(),
        account_ids: body.account_ids.iter().map(Uuid::to_string).collect(),
    };
    let binding = planner(&state)
        .set_plan_accounts(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    tracing::info!(plan_id = %id, accounts = binding.account_ids.len(), by = %principal.name, "plan accounts set");
    Ok(ApiJson(plan_accounts_view(binding)))
}

/// Returns the plan's standing recommendation list.
#[utoipa::path(
    get,
    path = "/api/plans/{id}/recommendations",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    responses(
        (status = 200, description = "the standing list", body = RecommendationList),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
    ),
)]
async fn get_plan_recommendations(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<RecommendationList>> {
    let reply = planner(&state)
        .get_plan_recommendations(pb::GetPlanRecommendationsRequest {
            plan_id: id.to_string(),
        })
        .await
        .map_err(planner_error)?
        .into_inner();
    Ok(ApiJson(recommendation_list(reply.recommendations)))
}

/// Replaces the plan's standing recommendation list: what a scheduled run buys, filtered
/// to the plan's services and scaled to each ramp step.
#[utoipa::path(
    put,
    path = "/api/plans/{id}/recommendations",
    tag = "plans",
    params(("id" = Uuid, Path, description = "the plan's id")),
    request_body = RecommendationsBody,
    responses(
        (status = 200, description = "the standing list as stored (defaults applied)", body = RecommendationList),
        (status = 400, description = "invalid recommendation (the field is named)", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
    ),
)]
async fn set_plan_recommendations(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RecommendationsBody>,
) -> HttpResult<ApiJson<RecommendationList>> {
    principal.require_admin()?;
    let request = pb::SetPlanRecommendationsRequest {
        plan_id: id.to_string(),
        recommendations: body
            .recommendations
            .into_iter()
            .map(recommendation_proto)
            .collect(),
    };
    let reply = planner(&state)
        .set_plan_recommendations(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    tracing::info!(plan_id = %id, items = reply.recommendations.len(), by = %principal.name, "plan recommendations set");
    Ok(ApiJson(recommendation_list(reply.recommendations)))
}

/// Starts an execution of the plan: the given list verbatim, or the standing list for
/// the next ramp step (creation key `plan:<id>:step:<n>`). Honours `Idempotency-Key`:
/// the same key and body return the original execution, another body is 409.
#[utoipa::path(
    post,
    path = "/api/plans/{id}/executions",
    tag = "plans",
    params(
        ("id" = Uuid, Path, description = "the plan's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "makes the creation idempotent"),
    ),
    request_body = StartExecutionBody,
    responses(
        (status = 201, description = "the execution; approval_token only in this reply", body = CreatedExecutionView),
        (status = 400, description = "invalid recommendation, or an account that is not a target", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such plan", body = ErrorBody),
        (status = 409, description = "nothing to run, or the Idempotency-Key was used with another body", body = ErrorBody),
        (status = 503, description = "planner, accounts or executor service unavailable", body = ErrorBody),
    ),
)]
async fn start_plan_execution(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartExecutionBody>,
) -> HttpResult<(StatusCode, ApiJson<CreatedExecutionView>)> {
    principal.require_admin()?;
    let idempotency_key = idempotency_key(&headers)?;
    let request_hash = match idempotency_key {
        Some(_) => Some(request_hash(
            "POST",
            &format!("/api/plans/{id}/executions"),
            &body,
        )?),
        None => None,
    };
    let request = pb::StartExecutionRequest {
        plan_id: id.to_string(),
        recommendations: body
            .recommendations
            .map(|list| common_pb::RecommendationList {
                recommendations: list.into_iter().map(recommendation_proto).collect(),
            }),
        scheduled_date: body.scheduled_date.map(timestamp),
        idempotency_key,
        request_hash,
        actor: principal.actor(),
    };
    let reply = planner(&state)
        .start_execution(request)
        .await
        .map_err(planner_error)?
        .into_inner();
    let execution = reply.execution.ok_or_else(|| {
        tracing::error!(plan_id = %id, "planner started an execution but returned none");
        ApiError::internal()
    })?;
    tracing::info!(plan_id = %id, execution_id = %execution.id, created = reply.created, by = %principal.name, "plan execution started");
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedExecutionView {
            execution: execution_view(execution),
            approval_token: reply.approval_token,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_ignores_key_order_but_not_values() {
        let first: serde_json::Value =
            serde_json::from_str(r#"{"scheduled_date":null,"recommendations":[{"b":1,"a":2}]}"#)
                .unwrap();
        let reordered: serde_json::Value =
            serde_json::from_str(r#"{"recommendations":[{"a":2,"b":1}],"scheduled_date":null}"#)
                .unwrap();
        let other: serde_json::Value =
            serde_json::from_str(r#"{"recommendations":[{"a":3,"b":1}],"scheduled_date":null}"#)
                .unwrap();
        let path = "/api/plans/1/executions";
        let hash = request_hash("POST", path, &first).unwrap();
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, request_hash("POST", path, &reordered).unwrap());
        assert_ne!(hash, request_hash("POST", path, &other).unwrap());
        assert_ne!(
            hash,
            request_hash("POST", "/api/plans/2/executions", &first).unwrap()
        );
    }

    #[test]
    fn a_bad_idempotency_key_names_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert(IDEMPOTENCY_KEY_HEADER, "abc-123".parse().unwrap());
        assert_eq!(
            idempotency_key(&headers).unwrap().as_deref(),
            Some("abc-123")
        );
        headers.insert(IDEMPOTENCY_KEY_HEADER, "x".repeat(256).parse().unwrap());
        let error = idempotency_key(&headers).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("Idempotency-Key"));
    }

    #[test]
    fn a_plan_read_with_get_can_be_sent_back() {
        let body: PlanBody = crate::extract::parse_json(
            br#"{"id":"6f1c","name":"EC2 ladder","enabled":true,"auto_purchase":false,
            "notification_days_before":7,
            "services":{"aws/ec2":{"provider":"aws","service":"ec2","enabled":true,"term":1,
              "payment":"no-upfront","coverage":80,"include_regions":[],"exclude_regions":[],
              "include_types":[],"exclude_types":[]}},
            "ramp_schedule":{"type":"weekly-25pct","percent_per_step":25,"step_interval_days":7,
              "current_step":0,"total_steps":4,"start_date":"2026-11-24T00:00:00Z"},
            "next_execution_date":"2026-11-24T00:00:00Z","last_execution_date":null,
            "created_at":"2026-11-23T10:00:00Z","updated_at":"2026-11-23T10:00:00Z"}"#,
        )
        .unwrap();
        let input = plan_input(body);
        assert_eq!(input.services["aws/ec2"].coverage, 80.0);
        assert_eq!(
            input.ramp_schedule.unwrap().r#type.as_deref(),
            Some("weekly-25pct")
        );
    }

    #[test]
    fn an_unknown_plan_field_is_refused_by_name() {
        let error = crate::extract::parse_json::<PlanBody>(
            br#"{"name":"p","services":{"aws/ec2":{"provider":"aws","service":"ec2","term":1,
            "payment":"no-upfront","coverage":80,"colour":"red"}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            error.field.as_deref(),
            Some("services.aws/ec2.colour"),
            "{}",
            error.message
        );
    }
}
