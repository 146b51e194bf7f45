//! Start-up of the planner service: bind, connect, migrate, serve until stopped, with
//! the notification relay in the background.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use cudly_common::server::{Readiness, ServiceSpec, serve};
use cudly_notify::{Event, Relay, RelaySettings};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clients::Clients;
use crate::config::Config;
use crate::grpc;

/// Postgres schema owned by this service.
pub const SCHEMA: &str = "planner";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct App {
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    readiness: Readiness,
}

impl App {
    /// Binds the configured address and prepares the (lazy) database pool.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        Self::from_listener(config, listener)
    }

    /// Uses an already bound listener (the all-in-one binary binds every port first).
    pub fn from_listener(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        let pool = cudly_common::db::lazy_pool(&config.database_url, SCHEMA, 10)?;
        Ok(Self {
            config,
            listener,
            pool,
            readiness: Readiness::default(),
        })
    }

    /// Returns the bound address (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Whether the service is migrated and its dependencies answer (its probes).
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Serves until `shutdown` completes. The relay forwards the planner's staged
    /// notifications (`notification_relay`) to the executor meanwhile; at shutdown it
    /// finishes the batch in hand before the server stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let spec = ServiceSpec {
            name: "planner",
            grpc_name: grpc::SERVICE_NAME,
            schema: SCHEMA,
            migrator: &MIGRATOR,
            health_interval: self.config.common.health_interval,
            limits: self.config.common.grpc_limits,
            reflection: self.config.common.grpc_reflection,
            tls: self.config.common.grpc_tls.clone(),
            extra_checks: Vec::new(),
            readiness: self.readiness.clone(),
        };
        let planner = grpc::planner(&self.config, self.pool.clone())?;
        let routes = grpc::routes(&self.config, planner);
        let clients = Clients::new(&self.config)?;
        let relay = Relay::new(self.pool.clone(), RelaySettings::default());
        let stop_relay = CancellationToken::new();
        // Also stopped when serving ends on an error, before `shutdown` completed.
        let _stop_relay_on_return = stop_relay.clone().drop_guard();
        let relay_task = tokio::spawn(relay.run(stop_relay.clone(), move |event: Event| {
            let clients = clients.clone();
            async move { clients.raise_notification(&event).await }
        }));
        let shutdown = async move {
            shutdown.await;
            stop_relay.cancel();
            if relay_task.await.is_err() {
                tracing::warn!("notification relay ended abnormally");
            }
        };
        serve(spec, self.listener, self.pool, routes, shutdown).await
    }
}
