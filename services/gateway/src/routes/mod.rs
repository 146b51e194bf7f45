//! The REST routes under `/api`, one module per resource.
//!
//! To add a resource: write `routes/<resource>.rs` with `#[utoipa::path]` handlers and a
//! `pub fn router() -> OpenApiRouter<AppState>` built with `utoipa_axum::routes!`, then
//! merge it in [`key_routes`] (routes that need an API key; viewers get GET only) or in
//! [`token_routes`] (the approve/cancel routes an approval token authorises; the handler
//! checks the token or the optional `Principal`).

pub mod accounts;
mod approval_page;
pub mod audit;
pub mod executions;
pub mod guardrails;
pub mod keys;
pub mod notifications;
pub mod plans;
pub mod recommendations;
pub mod sweeps;

use axum::middleware;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;
use crate::{auth, limits};

/// Returns every `/api` route with its authentication layer.
pub fn api_router(state: &AppState) -> OpenApiRouter<AppState> {
    let keyed = key_routes(state).route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_api_key,
    ));
    // The approval page authenticates by its token (and a key typed into its form),
    // under its own rate limit: no API-key layer.
    let keyed = keyed.merge(OpenApiRouter::from(approval_page::router(state)));
    let token = token_routes();
    // axum refuses a route layer on a router without routes.
    if token.get_openapi().paths.paths.is_empty() {
        return keyed;
    }
    keyed.merge(
        token
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::accept_optional_api_key,
            ))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                limits::limit_token_requests,
            )),
    )
}

/// Routes that need `Authorization: Bearer <api key>`.
fn key_routes(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(keys::router())
        .merge(accounts::router())
        .merge(
            accounts::aws_check_router().route_layer(middleware::from_fn_with_state(
                state.clone(),
                limits::limit_aws_checks,
            )),
        )
        .merge(plans::router())
        .merge(executions::router())
        .merge(guardrails::router())
        .merge(recommendations::router())
        .merge(sweeps::router())
        .merge(audit::router())
        .merge(notifications::router())
}

/// Routes authorised by an approval token (`POST /api/executions/{id}/approve|cancel`,
/// `/api/purchases/approve|cancel/{id}?token=`). Every route here must be
/// registered through `routes!` (so that it is in the OpenAPI document, with
/// `security((), ("bearer" = []))` since a key is optional there), and its path must not
/// also be a key route: axum refuses to merge the same path and method twice.
fn token_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(executions::token_router())
}
