//! `/api/guardrails`: the spend limits and approval rules (docs/design/API.md "Quotes,
//! guardrails, identities"), stored by the executor. Reading needs any key; changing an
//! admin key, and every change is logged with who made it.

use axum::extract::State;
use cudly_proto::executor::v1 as pb;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ErrorBody, HttpResult, grpc_error};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Returns the `/api/guardrails` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_guardrails, put_guardrails))
}

/// The guardrails in force. Amounts are in USD; null: no limit.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuardrailsView {
    /// Most one execution may commit in total (upfront + monthly × term).
    pub max_execution_commitment: Option<f64>,
    /// Most the executions approved in the last `window_days` may commit together.
    pub max_window_commitment: Option<f64>,
    pub window_days: u32,
    /// The creator cannot approve; a token needs a key of another identity with it.
    pub require_different_approver: bool,
    /// How far a price may rise after approval and still be bought.
    pub price_tolerance_percent: f64,
    pub currency: String,
    /// What the executions approved in the window commit now.
    pub committed_in_window: f64,
}

/// New guardrails: every field (absent or null: no limit, or the service's default).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsBody {
    #[serde(default)]
    pub max_execution_commitment: Option<f64>,
    #[serde(default)]
    pub max_window_commitment: Option<f64>,
    /// 1 to 366; default 30.
    #[serde(default)]
    pub window_days: Option<u32>,
    #[serde(default)]
    pub require_different_approver: Option<bool>,
    /// 0 to 100; default `CUDLY_PRICE_TOLERANCE`.
    #[serde(default)]
    pub price_tolerance_percent: Option<f64>,
}

fn view(guardrails: pb::Guardrails) -> GuardrailsView {
    GuardrailsView {
        max_execution_commitment: guardrails.max_execution_commitment,
        max_window_commitment: guardrails.max_window_commitment,
        window_days: guardrails.window_days,
        require_different_approver: guardrails.require_different_approver,
        price_tolerance_percent: guardrails.price_tolerance_percent,
        currency: guardrails.currency,
        committed_in_window: guardrails.committed_in_window,
    }
}

/// Returns the guardrails in force and what the window holds now.
#[utoipa::path(
    get,
    path = "/api/guardrails",
    tag = "guardrails",
    responses(
        (status = 200, description = "the guardrails", body = GuardrailsView),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn get_guardrails(State(state): State<AppState>) -> HttpResult<ApiJson<GuardrailsView>> {
    let guardrails = ExecutorServiceClient::new(state.clients.executor.clone())
        .get_guardrails(pb::GetGuardrailsRequest {})
        .await
        .map_err(|status| grpc_error("executor", status))?
        .into_inner();
    Ok(ApiJson(view(guardrails)))
}

/// Replaces the guardrails (admin); the change is logged with who made it.
#[utoipa::path(
    put,
    path = "/api/guardrails",
    tag = "guardrails",
    request_body = GuardrailsBody,
    responses(
        (status = 200, description = "the guardrails now", body = GuardrailsView),
        (status = 400, description = "a negative or non-numeric limit, window_days out of 1-366, an unknown field", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 503, description = "executor service unavailable", body = ErrorBody),
    ),
)]
async fn put_guardrails(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<GuardrailsBody>,
) -> HttpResult<ApiJson<GuardrailsView>> {
    principal.require_admin()?;
    let guardrails = ExecutorServiceClient::new(state.clients.executor.clone())
        .put_guardrails(pb::PutGuardrailsRequest {
            max_execution_commitment: body.max_execution_commitment,
            max_window_commitment: body.max_window_commitment,
            window_days: body.window_days,
            require_different_approver: body.require_different_approver,
            price_tolerance_percent: body.price_tolerance_percent,
            actor: principal.actor(),
            actor_key_id: Some(principal.identity()),
        })
        .await
        .map_err(|status| grpc_error("executor", status))?
        .into_inner();
    tracing::info!(by = %principal.name, "guardrails changed");
    Ok(ApiJson(view(guardrails)))
}
