//! Assembling and running the gateway: bind, serve at once (not ready until the
//! migrations are applied), migrate in the background while retrying until Postgres
//! answers, stop gracefully on the shutdown future.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::openapi::OpenApiJson;
use crate::state::{AppState, SCHEMA};
use crate::{health, metrics, middleware, openapi, routes};

/// The gateway's migrations (`services/gateway/migrations`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Longest pause between two migration attempts while Postgres is down.
const MAX_MIGRATION_RETRY: Duration = Duration::from_secs(5);

/// A gateway bound to its listeners, ready to run.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics_listener: TcpListener,
    metrics_addr: SocketAddr,
    state: AppState,
    router: Router,
}

impl App {
    /// Binds `config.addr` and builds the gateway.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        Self::from_listener(config, listener).await
    }

    /// Builds the gateway on an already bound listener (tests bind 127.0.0.1:0).
    pub async fn from_listener(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        config.validate()?;
        let local_addr = listener
            .local_addr()
            .context("listener has no local address")?;
        let metrics_listener = TcpListener::bind(config.metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {} for /metrics", config.metrics_addr))?;
        let metrics_addr = metrics_listener.local_addr()?;
        let state = AppState::new(config)?;
        let router = router(state.clone())?;
        Ok(Self {
            listener,
            local_addr,
            metrics_listener,
            metrics_addr,
            state,
            router,
        })
    }

    /// Returns the address the gateway listens on (the bound port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the address of the `/metrics` listener.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Returns the gateway's state (e.g. to wait for [`AppState::is_migrated`]).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    /// Migrations run in the background meanwhile, retried until Postgres answers;
    /// until they are applied the gateway reports not ready.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let migrations = tokio::spawn(apply_migrations(self.state.clone(), cancel.clone()));
        let metrics = tokio::spawn(cudly_common::metrics::serve_metrics(
            self.metrics_listener,
            cancel.clone(),
            None,
        ));
        let health = tokio::spawn(crate::health::keep_checking(
            self.state.clone(),
            cancel.clone(),
        ));
        let key_uses = tokio::spawn(crate::key_uses::keep_flushing(
            self.state.clone(),
            cancel.clone(),
        ));
        tracing::info!(addr = %self.local_addr, "gateway listening");
        crate::serve::serve(
            self.listener,
            self.router,
            self.state.config.connections,
            shutdown,
        )
        .await;
        cancel.cancel();
        let _ = migrations.await;
        if let Ok(Err(error)) = metrics.await {
            tracing::warn!(error = %format!("{error:#}"), "metrics listener failed");
        }
        let _ = health.await;
        // Its last flush, on cancel, wrote the uses of the requests just finished.
        let _ = key_uses.await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Returns the gateway's router: `/api` (with its auth layers), the OpenAPI document,
/// health and metrics, wrapped in the request layers.
pub fn router(state: AppState) -> anyhow::Result<Router> {
    let config = state.config.clone();
    // Installs the recorder before the first request is counted.
    metrics::prometheus_handle();
    let (api, document) = OpenApiRouter::with_openapi(openapi::base_document())
        .merge(routes::api_router(&state))
        .merge(health::router())
        .split_for_parts();
    let openapi_json = OpenApiJson::render(&document)?;
    let router = api
        .route(
            "/api/openapi.json",
            get(move || std::future::ready(openapi_json.clone())),
        )
        .fallback(middleware::not_found)
        .with_state(state)
        // The layers run outside-in from the last one added.
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(from_fn_with_state(
            config.request_timeout,
            middleware::enforce_timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(from_fn(metrics::track_requests))
        .layer(from_fn(middleware::json_errors))
        .layer(from_fn(middleware::hygiene_headers))
        .layer(from_fn(middleware::trace_request))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    Ok(router)
}

/// Applies the migrations, retrying with a growing pause until they succeed or
/// `cancel` fires.
async fn apply_migrations(state: AppState, cancel: CancellationToken) {
    let mut pause = Duration::from_millis(250);
    let mut warned = false;
    loop {
        match cudly_common::db::migrate(&state.pool, &MIGRATOR, SCHEMA).await {
            Ok(()) => {
                state.mark_migrated();
                tracing::info!(schema = SCHEMA, "migrations applied");
                return;
            }
            Err(error) if !warned => {
                tracing::warn!(%error, "cannot apply migrations yet, retrying");
                warned = true;
            }
            Err(error) => tracing::debug!(%error, "cannot apply migrations yet, retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_MIGRATION_RETRY);
    }
}
