//! Executions and purchase history (docs/design/API.md, Executions): direct executions, listing and
//! reading, approval and cancellation by approval token or admin key (with the
//! CUDly-compatible `/api/purchases/approve|cancel/{id}?token=` links), retries, the
//! purchase history, and the admin resolution of an in-doubt purchase.
//!
//! Two routers: [`router`] (an API key is required) and [`token_router`] (an approval
//! token authorises; a key is optional). An approval token is never logged: the request
//! span records the path without its query, and no handler puts the token in a field.

pub(crate) mod models;
mod views;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cudly_common::ApiError;
use cudly_proto::executor::v1 as pb;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use models::{
    CreateExecutionBody, DecisionBody, DryRunQuery, ExecutionsQuery, HistoryQuery, ResolveBody,
    ResolveOutcome, TokenQuery,
};
pub use views::{
    ApprovalPreview, CreatedExecutionView, ExecutionItemView, ExecutionList, ExecutionView,
    PurchaseAttemptView, PurchaseList, PurchaseView, ResolvedAttempt, execution_view,
};

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpError, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::idempotency::IdempotentRequest;
use crate::state::AppState;
use models::{decision_body, parse_id_list, parse_time};
use views::{attempt_view, purchase_view};

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

/// Who decides: the approval token when one is given, with the identity of the key
/// that comes with it (any role: with a token the key only says who approves), else an
/// admin key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decider {
    token: Option<String>,
    actor: String,
    /// The key's identity, when a key came.
    key_id: Option<String>,
}

fn decider(token: Option<String>, principal: Option<&Principal>) -> Result<Decider, ApiError> {
    match (token.map(|token| token.trim().to_owned()), principal) {
        (Some(token), principal) if !token.is_empty() => Ok(Decider {
            token: Some(token),
            actor: principal.map_or_else(|| "token".to_owned(), Principal::actor),
            key_id: principal.map(Principal::identity),
        }),
        (_, Some(principal)) => {
            principal.require_admin()?;
            Ok(Decider {
                token: None,
                actor: principal.actor(),
                key_id: Some(principal.identity()),
            })
        }
        (_, None) => Err(ApiError::unauthenticated(
            "an approval token or an admin api key is required",
        )),
    }
}

pub(crate) async fn decide(
    state: &AppState,
    id: Uuid,
    approve: bool,
    token: Option<String>,
    principal: Option<&Principal>,
) -> HttpResult<ApiJson<ExecutionView>> {
    let Decider {
        token,
        actor,
        key_id,
    } = decider(token, principal)?;
    let by_token = token.is_some();
    let mut client = executor(state);
    let reply = if approve {
        client
            .approve_execution(pb::ApproveExecutionRequest {
                id: id.to_string(),
                token,
                actor: actor.clone(),
                actor_key_id: key_id,
            })
            .await
    } else {
        client
            .cancel_execution(pb::CancelExecutionRequest {
                id: id.to_string(),
                token,
                actor: actor.clone(),
                actor_key_id: key_id,
            })
            .await
    };
    let execution = reply.map_err(executor_error)?.into_inner();
    tracing::info!(execution_id = %id, approve, by_token, by = %actor, "execution decided");
    Ok(ApiJson(execution_view(execution)?))
}

// ---------------------------------------------------------------------------------------
// Handlers: key routes

/// Creates a direct execution: one account buys the list, priced by the system, pending
/// approval. `?dry_run=true` prices and checks it and stores nothing.
#[utoipa::path(
    post,
    path = "/api/executions",
    tag = "executions",
    request_body = CreateExecutionBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "same key and body: the original execution; same key, other body: 409"),
        ("dry_run" = Option<bool>, Query, description = "true: the execution as it would be created (status dry_run, no id), nothing stored or bought"),
    ),
    responses(
        (status = 201, description = "the execution; `approval_token` only in this reply", body = CreatedExecutionView),
        (status = 200, description = "dry run: the execution as it would be created", body = CreatedExecutionView),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 422, description = "an item cannot be priced (`item`), or a spend limit refuses it (`limit`, `committed`, `requested`)", body = ErrorBody),
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
    ApiQuery(query): ApiQuery<DryRunQuery>,
    ApiJson(body): ApiJson<CreateExecutionBody>,
) -> HttpResult<(StatusCode, ApiJson<CreatedExecutionView>)> {
    principal.require_admin()?;
    let dry_run = query.requested();
    let idempotent = if dry_run {
        // A dry run stores nothing, so there is nothing to replay.
        IdempotentRequest::default()
    } else {
        IdempotentRequest::read(&headers, "POST", "/api/executions", &body)?
    };
    let request = pb::CreateExecutionRequest {
        plan_id: None,
        step_number: None,
        scheduled_date: None,
        target_account_ids: vec![body.cloud_account_id.to_string()],
        recommendations: body.recommendations.into_iter().map(Into::into).collect(),
        creation_key: None,
        idempotency_key: idempotent.key,
        request_hash: idempotent.request_hash,
        auto_approve: false,
        source: "api".to_owned(),
        actor: principal.actor(),
        actor_key_id: Some(principal.identity()),
        dry_run,
        max_commitment_per_run: None,
        sized_from: None,
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
    tracing::info!(execution_id = %execution.id, created = reply.created, dry_run, by = %principal.name, "direct execution created");
    Ok((
        if dry_run {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        ApiJson(CreatedExecutionView {
            execution: execution_view(execution)?,
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
        executions: reply
            .executions
            .into_iter()
            .map(execution_view)
            .collect::<Result<_, _>>()?,
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
    Ok(ApiJson(execution_view(execution)?))
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
            actor_key_id: Some(principal.identity()),
        })
        .await
        .map_err(executor_error)?
        .into_inner();
    tracing::info!(retry_of = %id, execution_id = %execution.id, by = %principal.name, "execution retried");
    Ok((StatusCode::CREATED, ApiJson(execution_view(execution)?)))
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
            actor_key_id: Some(principal.identity()),
        })
        .await
        .map_err(executor_error)?
        .into_inner();
    let attempt = reply.attempt.unwrap_or_default();
    tracing::warn!(execution_id = %id, index, state = %attempt.state, by = %principal.name, "in-doubt purchase resolved");
    Ok(ApiJson(ResolvedAttempt {
        attempt: attempt_view(attempt),
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
        execution: execution_view(execution)?,
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
    fn a_token_decides_before_any_key_and_a_viewer_alone_cannot() {
        let viewer = Principal {
            key_id: None,
            name: "reader".to_owned(),
            role: crate::auth::Role::Viewer,
        };
        let with_key = decider(Some("t".repeat(64)), Some(&viewer)).unwrap();
        assert!(with_key.token.is_some());
        assert_eq!(with_key.actor, "key:reader");
        assert_eq!(with_key.key_id.as_deref(), Some("bootstrap"));
        let alone = decider(Some("t".repeat(64)), None).unwrap();
        assert_eq!((alone.actor.as_str(), alone.key_id), ("token", None));
        assert_eq!(decider(None, Some(&viewer)).unwrap_err().http_status(), 403);
        assert_eq!(decider(None, None).unwrap_err().http_status(), 401);
        let admin = Principal::bootstrap();
        assert_eq!(decider(None, Some(&admin)).unwrap().actor, "key:bootstrap");
    }
}
