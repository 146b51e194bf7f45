//! Executions and purchase history (API.md, Executions): direct executions, listing and
//! reading, approval and cancellation by approval token or admin key (with the
//! CUDly-compatible `/api/purchases/approve|cancel/{id}?token=` links), retries, the
//! purchase history, and the admin resolution of an in-doubt purchase.
//!
//! Two routers: [`router`] (an API key is required) and [`token_router`] (an approval
//! token authorises; a key is optional). An approval token is never logged: the request
//! span records the path without its query, and no handler puts the token in a field.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use cudly_common::{ApiError, ErrorCode};
use cudly_proto::executor::v1 as pb;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpError, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiPath, ApiQuery, parse_json};
use crate::routes::plans::{
    CreatedExecutionView, ExecutionView, IDEMPOTENCY_KEY_HEADER, RecommendationBody,
    execution_view, recommendation_proto, request_hash,
};
use crate::state::AppState;

/// Longest Idempotency-Key accepted.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Returns the routes that need an API key.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_executions, create_execution))
        .routes(routes!(get_execution))
        .routes(routes!(retry_execution))
        .routes(routes!(list_history))
        .routes(routes!(resolve_item))
}

/// Returns the routes an approval token authorises (a key is optional).
pub fn token_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(approve_execution))
        .routes(routes!(cancel_execution))
        .routes(routes!(preview_approval_link, approve_by_link))
        .routes(routes!(cancel_by_link))
}

fn executor(state: &AppState) -> ExecutorServiceClient<cudly_common::grpc::AuthChannel> {
    ExecutorServiceClient::new(state.clients.executor.clone())
}

fn executor_error(status: tonic::Status) -> HttpError {
    grpc_error("executor", status)
}

// ---------------------------------------------------------------------------------------
// Bodies, queries and replies

/// A direct execution: one account buys the list.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExecutionBody {
    /// The account that buys.
    pub cloud_account_id: Uuid,
    pub recommendations: Vec<RecommendationBody>,
}

/// Approve or cancel: the approval token, or nothing with an admin key. The body may be
/// empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// The approval token from the creation reply (64 hex characters).
    #[serde(default)]
    pub token: Option<String>,
}

/// The token of an approve/cancel link.
#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    pub token: Option<String>,
}

/// Filters of the execution list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionsQuery {
    #[serde(default)]
    pub plan_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// Comma-separated account ids: roots with a child for any of them.
    #[serde(default)]
    pub account_ids: Option<String>,
}

/// Filters of the purchase history.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Comma-separated account ids.
    #[serde(default)]
    pub account_ids: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    /// RFC 3339: purchased at or after.
    #[serde(default)]
    pub start: Option<String>,
    /// RFC 3339: purchased before.
    #[serde(default)]
    pub end: Option<String>,
}

/// Root executions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionList {
    pub executions: Vec<ExecutionView>,
}

/// What an approve link would approve.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalPreview {
    /// The execution with its children and items.
    pub execution: ExecutionView,
    /// True when a POST on the link would approve it (pending, token unexpired).
    pub approvable: bool,
}

/// A commitment bought (API.md "Purchase").
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseView {
    pub id: String,
    /// The child execution that bought it.
    pub execution_id: String,
    pub cloud_account_id: String,
    pub account_external_id: String,
    pub plan_id: Option<String>,
    pub provider: String,
    pub service: String,
    pub region: String,
    pub resource_type: String,
    pub count: u32,
    pub term: u32,
    pub payment: String,
    pub commitment_id: String,
    pub upfront_cost: Option<f64>,
    pub purchased_at: Option<DateTime<Utc>>,
}

/// Purchases, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseList {
    pub purchases: Vec<PurchaseView>,
}

/// An operator's resolution of an in-doubt purchase, after checking the cloud console.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `bought` (give `commitment_id`) or `not_bought` (a retry may then buy it).
    pub outcome: ResolveOutcome,
    /// The commitment found in the console, with `bought`.
    #[serde(default)]
    pub commitment_id: Option<String>,
}

/// How an in-doubt purchase ended.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolveOutcome {
    Bought,
    NotBought,
}

/// A purchase attempt as shown to an operator.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseAttemptView {
    /// First 8 characters of the idempotency token and `...`.
    pub token_masked: String,
    /// in_flight | bought | failed | in_doubt.
    pub state: String,
    pub commitment_id: Option<String>,
    pub offering_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// Null: the purchase call was never sent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// The reply of a resolution.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedAttempt {
    pub attempt: PurchaseAttemptView,
}

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

fn purchase_view(purchase: pb::Purchase) -> PurchaseView {
    PurchaseView {
        id: purchase.id,
        execution_id: purchase.execution_id,
        cloud_account_id: purchase.cloud_account_id,
        account_external_id: purchase.account_external_id,
        plan_id: purchase.plan_id,
        provider: purchase.provider,
        service: purchase.service,
        region: purchase.region,
        resource_type: purchase.resource_type,
        count: purchase.count,
        term: purchase.term,
        payment: purchase.payment,
        commitment_id: purchase.commitment_id,
        upfront_cost: purchase.upfront_cost,
        purchased_at: time(purchase.purchased_at),
    }
}

/// Parses a comma-separated list of uuids named `field`.
fn parse_id_list(field: &str, text: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            Uuid::parse_str(part)
                .map(|id| id.to_string())
                .map_err(|_| ApiError::invalid_field(field, "must be comma-separated uuids"))
        })
        .collect()
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<prost_types::Timestamp>, ApiError> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|time| timestamp(time.with_timezone(&Utc)))
            .map_err(|_| ApiError::invalid_field(field, "must be an RFC 3339 timestamp"))
    })
    .transpose()
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

/// Parses an approve/cancel body that may be empty (no body, or `{}`).
fn decision_body(headers: &HeaderMap, body: &Bytes) -> Result<DecisionBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"));
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected a json body (content-type: application/json)",
        ));
    }
    parse_json(body)
}

/// Who decides: the approval token when one is given (whatever key comes with it),
/// else an admin key. Returns (token, actor).
fn decider(
    token: Option<String>,
    principal: Option<&Principal>,
) -> Result<(Option<String>, String), ApiError> {
    match (token.map(|token| token.trim().to_owned()), principal) {
        (Some(token), _) if !token.is_empty() => Ok((Some(token), "token".to_owned())),
        (_, Some(principal)) => {
            principal.require_admin()?;
            Ok((None, principal.actor()))
        }
        (_, None) => Err(ApiError::unauthenticated(
            "an approval token or an admin api key is required",
        )),
    }
}

async fn decide(
    state: &AppState,
    id: Uuid,
    approve: bool,
    token: Option<String>,
    principal: Option<&Principal>,
) -> HttpResult<ApiJson<ExecutionView>> {
    let (token, actor) = decider(token, principal)?;
    let by_token = token.is_some();
    let mut client = executor(state);
    let reply = if approve {
        client
            .approve_execution(pb::ApproveExecutionRequest {
                id: id.to_string(),
                token,
                actor: actor.clone(),
            })
            .await
    } else {
        client
            .cancel_execution(pb::CancelExecutionRequest {
                id: id.to_string(),
                token,
                actor: actor.clone(),
            })
            .await
    };
    let execution = reply.map_err(executor_error)?.into_inner();
    tracing::info!(execution_id = %id, approve, by_token, by = %actor, "execution decided");
    Ok(ApiJson(execution_view(execution)))
}

// ---------------------------------------------------------------------------------------
// Handlers: key routes

/// Creates a direct execution: one account buys the list, pending approval.
#[utoipa::path(
    post,
    path = "/api/executions",
    tag = "executions",
    request_body = CreateExecutionBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "same key and body: the original execution; same key, other body: 409")),
    responses(
        (status = 201, description = "the execution; `approval_token` only in this reply", body = CreatedExecutionView),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 409, description = "the Idempotency-Key was used with another body", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn create_execution(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateExecutionBody>,
) -> HttpResult<(StatusCode, ApiJson<CreatedExecutionView>)> {
    principal.require_admin()?;
    let idempotency_key = idempotency_key(&headers)?;
    let request_hash = match idempotency_key {
        Some(_) => Some(request_hash("POST", "/api/executions", &body)?),
        None => None,
    };
    let request = pb::CreateExecutionRequest {
        plan_id: None,
        step_number: None,
        scheduled_date: None,
        target_account_ids: vec![body.cloud_account_id.to_string()],
        recommendations: body
            .recommendations
            .into_iter()
            .map(recommendation_proto)
            .collect(),
        creation_key: None,
        idempotency_key,
        request_hash,
        auto_approve: false,
        source: "api".to_owned(),
        actor: principal.actor(),
    };
    let reply = executor(&state)
        .create_execution(request)
        .await
        .map_err(executor_error)?
        .into_inner();
    let execution = reply.execution.ok_or_else(|| {
        tracing::error!("executor created an execution but returned none");
        ApiError::internal()
    })?;
    tracing::info!(execution_id = %execution.id, created = reply.created, by = %principal.name, "direct execution created");
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedExecutionView {
            execution: execution_view(execution),
            approval_token: reply.approval_token,
        }),
    ))
}

/// Lists root executions, newest first, with their children.
#[utoipa::path(
    get,
    path = "/api/executions",
    tag = "executions",
    params(
        ("plan_id" = Option<Uuid>, Query, description = "only this plan's executions"),
        ("status" = Option<String>, Query, description = "only roots in this status"),
        ("account_ids" = Option<String>, Query, description = "comma-separated account ids: roots with a child for any of them"),
    ),
    responses(
        (status = 200, description = "root executions, newest first", body = ExecutionList),
        (status = 400, description = "malformed filter", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn list_executions(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ExecutionsQuery>,
) -> HttpResult<ApiJson<ExecutionList>> {
    let plan_id = parse_id_list("plan_id", query.plan_id.as_deref())?;
    if plan_id.len() > 1 {
        return Err(ApiError::invalid_field("plan_id", "must be one uuid").into());
    }
    let request = pb::ListExecutionsRequest {
        plan_id: plan_id.into_iter().next(),
        status: query.status.filter(|status| !status.trim().is_empty()),
        account_ids: parse_id_list("account_ids", query.account_ids.as_deref())?,
        limit: None,
    };
    let reply = executor(&state)
        .list_executions(request)
        .await
        .map_err(executor_error)?
        .into_inner();
    Ok(ApiJson(ExecutionList {
        executions: reply.executions.into_iter().map(execution_view).collect(),
    }))
}

/// Returns a root (with children and items) or a child (with items).
#[utoipa::path(
    get,
    path = "/api/executions/{id}",
    tag = "executions",
    params(("id" = Uuid, Path, description = "the execution's id")),
    responses(
        (status = 200, description = "the execution", body = ExecutionView),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 404, description = "no such execution", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn get_execution(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<ApiJson<ExecutionView>> {
    let execution = executor(&state)
        .get_execution(pb::GetExecutionRequest { id: id.to_string() })
        .await
        .map_err(executor_error)?
        .into_inner();
    Ok(ApiJson(execution_view(execution)))
}

/// Retries a failed or partially_completed execution: a new approved execution of the
/// same lineage (same list, same order, same accounts), so nothing bought is bought again.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/retry",
    tag = "executions",
    params(("id" = Uuid, Path, description = "a failed or partially_completed root")),
    responses(
        (status = 201, description = "the new execution, approved", body = ExecutionView),
        (status = 400, description = "malformed id, or a child execution", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such execution", body = ErrorBody),
        (status = 409, description = "not failed or partially_completed, or a newer execution of the lineage exists", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn retry_execution(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<(StatusCode, ApiJson<ExecutionView>)> {
    principal.require_admin()?;
    let execution = executor(&state)
        .retry_execution(pb::RetryExecutionRequest {
            id: id.to_string(),
            actor: principal.actor(),
        })
        .await
        .map_err(executor_error)?
        .into_inner();
    tracing::info!(retry_of = %id, execution_id = %execution.id, by = %principal.name, "execution retried");
    Ok((StatusCode::CREATED, ApiJson(execution_view(execution))))
}

/// Lists purchases (one per commitment bought), newest first.
#[utoipa::path(
    get,
    path = "/api/history",
    tag = "executions",
    params(
        ("account_ids" = Option<String>, Query, description = "comma-separated account ids"),
        ("provider" = Option<String>, Query, description = "e.g. aws"),
        ("service" = Option<String>, Query, description = "e.g. rds"),
        ("start" = Option<String>, Query, description = "RFC 3339: purchased at or after"),
        ("end" = Option<String>, Query, description = "RFC 3339: purchased before"),
    ),
    responses(
        (status = 200, description = "purchases, newest first", body = PurchaseList),
        (status = 400, description = "malformed filter", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn list_history(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> HttpResult<ApiJson<PurchaseList>> {
    let request = pb::ListPurchaseHistoryRequest {
        account_ids: parse_id_list("account_ids", query.account_ids.as_deref())?,
        provider: query.provider.filter(|value| !value.trim().is_empty()),
        service: query.service.filter(|value| !value.trim().is_empty()),
        start: parse_time("start", query.start.as_deref())?,
        end: parse_time("end", query.end.as_deref())?,
        limit: None,
    };
    let reply = executor(&state)
        .list_purchase_history(request)
        .await
        .map_err(executor_error)?
        .into_inner();
    Ok(ApiJson(PurchaseList {
        purchases: reply.purchases.into_iter().map(purchase_view).collect(),
    }))
}

/// Resolves an in-doubt purchase of an item after checking the cloud console (admin):
/// `bought` records the commitment on the attempt, the item and the history;
/// `not_bought` releases the attempt so a retry may buy.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/items/{index}/resolve",
    tag = "executions",
    params(
        ("id" = Uuid, Path, description = "the child execution holding the item"),
        ("index" = u32, Path, description = "the item's index"),
    ),
    request_body = ResolveBody,
    responses(
        (status = 200, description = "the resolved purchase attempt", body = ResolvedAttempt),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such item or purchase attempt", body = ErrorBody),
        (status = 409, description = "the purchase attempt is not in doubt", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn resolve_item(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, index)): ApiPath<(Uuid, u32)>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> HttpResult<ApiJson<ResolvedAttempt>> {
    use pb::resolve_purchase_attempt_request::{Resolution, Target};
    principal.require_admin()?;
    let resolution = match (body.outcome, body.commitment_id) {
        (ResolveOutcome::Bought, Some(commitment_id)) => {
            Resolution::Bought(pb::Bought { commitment_id })
        }
        (ResolveOutcome::Bought, None) => {
            return Err(ApiError::invalid_field(
                "commitment_id",
                "is required when the outcome is bought",
            )
            .into());
        }
        (ResolveOutcome::NotBought, None) => Resolution::NotBought(pb::NotBought {}),
        (ResolveOutcome::NotBought, Some(_)) => {
            return Err(ApiError::invalid_field(
                "commitment_id",
                "is only given when the outcome is bought",
            )
            .into());
        }
    };
    let reply = executor(&state)
        .resolve_purchase_attempt(pb::ResolvePurchaseAttemptRequest {
            target: Some(Target::Item(pb::ItemRef {
                execution_id: id.to_string(),
                index,
            })),
            resolution: Some(resolution),
            actor: principal.actor(),
        })
        .await
        .map_err(executor_error)?
        .into_inner();
    let attempt = reply.attempt.unwrap_or_default();
    tracing::warn!(execution_id = %id, index, state = %attempt.state, by = %principal.name, "in-doubt purchase resolved");
    Ok(ApiJson(ResolvedAttempt {
        attempt: PurchaseAttemptView {
            token_masked: attempt.token_masked,
            state: attempt.state,
            commitment_id: attempt.commitment_id,
            offering_id: attempt.offering_id,
            started_at: time(attempt.started_at),
            sent_at: time(attempt.sent_at),
        },
    }))
}

// ---------------------------------------------------------------------------------------
// Handlers: token routes

/// Approves a pending execution, by its approval token or with an admin key.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/approve",
    tag = "executions",
    params(("id" = Uuid, Path, description = "a root execution")),
    request_body(content = DecisionBody, description = "`{token}`, or empty with an admin key"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the execution, approved", body = ExecutionView),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, description = "neither a token nor a valid key", body = ErrorBody),
        (status = 403, description = "wrong token, or not an admin key", body = ErrorBody),
        (status = 404, description = "no such execution", body = ErrorBody),
        (status = 409, description = "not pending (`status` says what it is)", body = ErrorBody),
        (status = 410, description = "approval token expired", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn approve_execution(
    State(state): State<AppState>,
    principal: Option<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<ApiJson<ExecutionView>> {
    let body = decision_body(&headers, &body)?;
    decide(&state, id, true, body.token, principal.as_ref()).await
}

/// Cancels a pending execution, by its approval token or with an admin key.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/cancel",
    tag = "executions",
    params(("id" = Uuid, Path, description = "a root execution")),
    request_body(content = DecisionBody, description = "`{token}`, or empty with an admin key"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the execution, canceled", body = ExecutionView),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, description = "neither a token nor a valid key", body = ErrorBody),
        (status = 403, description = "wrong token, or not an admin key", body = ErrorBody),
        (status = 404, description = "no such execution", body = ErrorBody),
        (status = 409, description = "not pending (`status` says what it is)", body = ErrorBody),
        (status = 410, description = "approval token expired", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn cancel_execution(
    State(state): State<AppState>,
    principal: Option<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<ApiJson<ExecutionView>> {
    let body = decision_body(&headers, &body)?;
    decide(&state, id, false, body.token, principal.as_ref()).await
}

/// Shows what an approve link would approve; changes nothing (CUDly-compatible link).
#[utoipa::path(
    get,
    path = "/api/purchases/approve/{id}",
    tag = "executions",
    params(
        ("id" = Uuid, Path, description = "a root execution"),
        ("token" = String, Query, description = "the approval token"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "what would be approved", body = ApprovalPreview),
        (status = 400, description = "no token, or a malformed id", body = ErrorBody),
        (status = 403, description = "wrong token", body = ErrorBody),
        (status = 404, description = "no such execution", body = ErrorBody),
        (status = 410, description = "approval token expired", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn preview_approval_link(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<TokenQuery>,
) -> HttpResult<ApiJson<ApprovalPreview>> {
    let token = query
        .token
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::invalid_field("token", "is required"))?;
    let reply = executor(&state)
        .preview_approval(pb::PreviewApprovalRequest {
            id: id.to_string(),
            token,
        })
        .await
        .map_err(executor_error)?
        .into_inner();
    let execution = reply.execution.ok_or_else(|| {
        tracing::error!(execution_id = %id, "executor previewed an execution but returned none");
        ApiError::internal()
    })?;
    Ok(ApiJson(ApprovalPreview {
        execution: execution_view(execution),
        approvable: reply.approvable,
    }))
}

/// Approves by link (CUDly-compatible): as `POST /api/executions/{id}/approve`.
#[utoipa::path(
    post,
    path = "/api/purchases/approve/{id}",
    tag = "executions",
    params(
        ("id" = Uuid, Path, description = "a root execution"),
        ("token" = Option<String>, Query, description = "the approval token (or an admin key)"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the execution, approved", body = ExecutionView),
        (status = 401, description = "neither a token nor a valid key", body = ErrorBody),
        (status = 403, description = "wrong token, or not an admin key", body = ErrorBody),
        (status = 404, description = "no such execution", body = ErrorBody),
        (status = 409, description = "not pending (`status` says what it is)", body = ErrorBody),
        (status = 410, description = "approval token expired", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn approve_by_link(
    State(state): State<AppState>,
    principal: Option<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<TokenQuery>,
) -> HttpResult<ApiJson<ExecutionView>> {
    decide(&state, id, true, query.token, principal.as_ref()).await
}

/// Cancels by link (CUDly-compatible): as `POST /api/executions/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/purchases/cancel/{id}",
    tag = "executions",
    params(
        ("id" = Uuid, Path, description = "a root execution"),
        ("token" = Option<String>, Query, description = "the approval token (or an admin key)"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the execution, canceled", body = ExecutionView),
        (status = 401, description = "neither a token nor a valid key", body = ErrorBody),
        (status = 403, description = "wrong token, or not an admin key", body = ErrorBody),
        (status = 404, description = "no such execution", body = ErrorBody),
        (status = 409, description = "not pending (`status` says what it is)", body = ErrorBody),
        (status = 410, description = "approval token expired", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn cancel_by_link(
    State(state): State<AppState>,
    principal: Option<Principal>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<TokenQuery>,
) -> HttpResult<ApiJson<ExecutionView>> {
    decide(&state, id, false, query.token, principal.as_ref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_decision_body_means_no_token() {
        let headers = HeaderMap::new();
        assert!(
            decision_body(&headers, &Bytes::new())
                .unwrap()
                .token
                .is_none()
        );
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(
            decision_body(&json, &Bytes::from_static(b"{}"))
                .unwrap()
                .token
                .is_none()
        );
        assert_eq!(
            decision_body(&json, &Bytes::from_static(br#"{"token":"abc"}"#))
                .unwrap()
                .token
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            decision_body(&headers, &Bytes::from_static(b"token=abc"))
                .unwrap_err()
                .http_status(),
            415
        );
    }

    #[test]
    fn a_token_decides_before_any_key_and_a_viewer_alone_cannot() {
        let viewer = Principal {
            key_id: None,
            name: "reader".to_owned(),
            role: crate::auth::Role::Viewer,
        };
        let (token, actor) = decider(Some("t".repeat(64)), Some(&viewer)).unwrap();
        assert!(token.is_some());
        assert_eq!(actor, "token");
        assert_eq!(decider(None, Some(&viewer)).unwrap_err().http_status(), 403);
        assert_eq!(decider(None, None).unwrap_err().http_status(), 401);
        let admin = Principal::bootstrap();
        assert_eq!(decider(None, Some(&admin)).unwrap().1, "key:bootstrap");
    }

    #[test]
    fn id_lists_are_comma_separated_uuids() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse_id_list("account_ids", Some(&format!("{id}, {id}")))
                .unwrap()
                .len(),
            2
        );
        assert!(parse_id_list("account_ids", Some("nope")).is_err());
        assert!(parse_id_list("account_ids", None).unwrap().is_empty());
    }
}
