//! `/health/livez` and `/health/readyz` (no key needed).
//!
//! Ready means: the gateway's own Postgres answers and its migrations are applied
//! (`"postgres"`), and every backend reports SERVING over `grpc.health.v1` for the
//! server as a whole (service `""`). A backend that answers NOT_SERVING is also asked
//! about its dependencies `"postgres"` and `"redis"`; those it reports NOT_SERVING are
//! added, so a stopped database shows up as `"postgres"` whichever service noticed.
//!
//! The checks run every `CUDLY_HEALTH_INTERVAL` in the background ([`keep_checking`])
//! and `/health/readyz` answers from the last one: a probe, however frequent, never
//! fans out to every backend (only the very first, before any check, does).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cudly_common::grpc::AuthChannel;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Names of backend dependencies asked about when a backend is not serving.
const BACKEND_DEPENDENCIES: [&str; 2] = ["postgres", "redis"];

/// Returns the health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(livez))
        .routes(routes!(readyz))
}

/// The readiness report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: String,
    /// What is not ready, by name: `postgres`, `redis`, `accounts`, `planner`,
    /// `executor`, `sweeper`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
}

/// Answers 200 while the process runs.
#[utoipa::path(get, path = "/health/livez", tag = "health", security(()), responses((status = 200, description = "alive")))]
async fn livez() -> StatusCode {
    StatusCode::OK
}

/// Answers 200 when the gateway and every backend are ready, else 503 naming what is not.
#[utoipa::path(
    get,
    path = "/health/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready", body = Readiness),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let failing = match state.last_readiness() {
        Some(failing) => failing,
        None => check_now(&state).await,
    };
    if failing.is_empty() {
        return (
            StatusCode::OK,
            Json(Readiness {
                status: "ready".to_owned(),
                failing,
            }),
        )
            .into_response();
    }
    tracing::debug!(?failing, "not ready");
    let body = Readiness {
        status: "not ready".to_owned(),
        failing,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// Checks the dependencies every health interval until `cancel` fires, recording what
/// is failing for `/health/readyz`.
pub async fn keep_checking(state: AppState, cancel: CancellationToken) {
    loop {
        check_now(&state).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(state.config.health_interval) => {}
        }
    }
}

/// Checks the dependencies now and records the result.
async fn check_now(state: &AppState) -> Vec<String> {
    let generation = state.readiness_generation();
    let failing = failing_dependencies(state).await;
    state.record_readiness(generation, failing.clone());
    failing
}

/// Returns the names of the dependencies that are not ready, deduplicated, the
/// gateway's own Postgres first.
pub async fn failing_dependencies(state: &AppState) -> Vec<String> {
    let timeout = state.config.readiness_timeout;
    let [accounts, planner, executor, sweeper] = state.clients.named();
    let (own_postgres, accounts, planner, executor, sweeper) = tokio::join!(
        postgres_ready(state, timeout),
        backend_failures(accounts.0, accounts.1, timeout),
        backend_failures(planner.0, planner.1, timeout),
        backend_failures(executor.0, executor.1, timeout),
        backend_failures(sweeper.0, sweeper.1, timeout),
    );
    let mut failing: Vec<String> = Vec::new();
    if !own_postgres {
        failing.push("postgres".to_owned());
    }
    for name in [accounts, planner, executor, sweeper].into_iter().flatten() {
        if !failing.contains(&name) {
            failing.push(name);
        }
    }
    failing
}

async fn postgres_ready(state: &AppState, timeout: Duration) -> bool {
    if !state.is_migrated() {
        return false;
    }
    matches!(
        tokio::time::timeout(timeout, cudly_common::db::ping(&state.pool)).await,
        Ok(Ok(()))
    )
}

/// Returns what is failing at one backend: nothing when it serves; its name when it
/// cannot be reached; its name and its NOT_SERVING dependencies when it is not serving.
async fn backend_failures(
    name: &'static str,
    channel: &AuthChannel,
    timeout: Duration,
) -> Vec<String> {
    let mut client = HealthClient::new(channel.clone());
    match check(&mut client, "", timeout).await {
        Some(ServingStatus::Serving) => Vec::new(),
        Some(_) => {
            let mut failing = vec![name.to_owned()];
            for dependency in BACKEND_DEPENDENCIES {
                if check(&mut client, dependency, timeout).await == Some(ServingStatus::NotServing)
                {
                    failing.push(dependency.to_owned());
                }
            }
            failing
        }
        None => vec![name.to_owned()],
    }
}

/// Returns the status the backend reports for `service`, or `None` when it cannot be
/// asked (unreachable, too slow, or the name is unknown to it).
async fn check(
    client: &mut HealthClient<AuthChannel>,
    service: &str,
    timeout: Duration,
) -> Option<ServingStatus> {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    match tokio::time::timeout(timeout, client.check(request)).await {
        Ok(Ok(response)) => Some(response.into_inner().status()),
        Ok(Err(status)) => {
            tracing::debug!(service, code = ?status.code(), "health check failed");
            None
        }
        Err(_) => None,
    }
}
