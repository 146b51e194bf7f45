//! Start-up of the sweeper: bind, connect, migrate, run the task loops, serve.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use cudly_common::config::defaults;
use cudly_common::grpc::secure_channel;
use cudly_common::server::{Readiness, ServiceSpec, serve, wait_serving};
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_proto::planner::v1::planner_service_client::PlannerServiceClient;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::grpc;
use crate::runner::Sweeper;
use crate::tasks::Clients;

/// Postgres schema owned by this service.
pub const SCHEMA: &str = "sweeper";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct App {
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    readiness: Readiness,
    sweeper: Sweeper,
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
        config.tuning.validate()?;
        let pool = cudly_common::db::lazy_pool(&config.database_url, SCHEMA, 10)?;
        let clients = Clients {
            executor: ExecutorServiceClient::new(secure_channel(
                &config.executor_url,
                &config.internal_token,
                config.common.internal_call_timeout,
                config.common.grpc_tls.as_ref(),
            )?),
            planner: PlannerServiceClient::new(secure_channel(
                &config.planner_url,
                &config.internal_token,
                config.common.internal_call_timeout,
                config.common.grpc_tls.as_ref(),
            )?),
            planner_refresh: PlannerServiceClient::new(secure_channel(
                &config.planner_url,
                &config.internal_token,
                config
                    .common
                    .internal_call_timeout
                    .max(defaults::RECOMMENDATION_REFRESH_TIMEOUT),
                config.common.grpc_tls.as_ref(),
            )?),
        };
        let sweeper = Sweeper::new(config.clone(), pool.clone(), clients);
        Ok(Self {
            config,
            listener,
            pool,
            readiness: Readiness::default(),
            sweeper,
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

    /// Returns the task runner (tests drive tasks through it).
    pub fn sweeper(&self) -> Sweeper {
        self.sweeper.clone()
    }

    /// Serves until `shutdown` completes; the periodic loops stop with it, each
    /// finishing its current run.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let redis_sweeper = self.sweeper.clone();
        let redis_check: cudly_common::server::ExtraCheck = Arc::new(move || {
            let sweeper = redis_sweeper.clone();
            Box::pin(async move { ("redis", sweeper.ping_redis().await) })
        });
        let readiness = self.readiness.clone();
        let spec = ServiceSpec {
            name: "sweeper",
            grpc_name: grpc::SERVICE_NAME,
            schema: SCHEMA,
            migrator: &MIGRATOR,
            health_interval: self.config.common.health_interval,
            limits: self.config.common.grpc_limits,
            reflection: self.config.common.grpc_reflection,
            tls: self.config.common.grpc_tls.clone(),
            extra_checks: vec![redis_check],
            readiness: readiness.clone(),
        };
        let cancel = CancellationToken::new();
        let loops = if self.config.tuning.run_loops {
            let peers = [
                ("executor", self.config.executor_url.clone()),
                ("planner", self.config.planner_url.clone()),
            ];
            let interval = self.config.common.health_interval;
            let tls = self.config.common.grpc_tls.clone();
            // The first sweep waits for what every task needs: the sweeper's own schema,
            // Postgres and Redis, and the executor and planner serving (each migrated).
            let dependencies = async move {
                readiness.wait_ready().await;
                wait_serving(&peers, interval, tls.as_ref()).await;
            };
            self.sweeper.spawn_loops(cancel.clone(), dependencies)
        } else {
            Vec::new()
        };
        let routes = grpc::routes(self.sweeper.clone());
        // The loops stop first, each finishing its current run and recording it, and
        // only then do the server and its pool: a run in flight at shutdown is kept.
        let stop = async move {
            shutdown.await;
            cancel.cancel();
            for handle in loops {
                let _ = handle.await;
            }
        };
        serve(spec, self.listener, self.pool, routes, stop).await
    }
}
