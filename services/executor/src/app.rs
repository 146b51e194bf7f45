//! Start-up of the executor service: bind, connect, migrate, serve until stopped, with
//! the runner's poll loop in the background.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use cudly_common::grpc::secure_channel;
use cudly_common::server::{Readiness, ServiceSpec, serve};
use sqlx::PgPool;
use tokio::net::TcpListener;

use cudly_notify::{Dispatcher, Sender};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::grpc;
use crate::notices::Notices;
use crate::runner::Runner;
use crate::runner::cloud::AwsConnector;
use crate::service::Executor;

/// Postgres schema owned by this service.
pub const SCHEMA: &str = "executor";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct App {
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    readiness: Readiness,
    cloud: AwsConnector,
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
        config.runner.validate()?;
        let max_connections = config.runner.database_connections();
        let pool = cudly_common::db::lazy_pool(&config.database_url, SCHEMA, max_connections)?;
        let cloud = AwsConnector::new(config.aws.clone());
        Ok(Self {
            config,
            listener,
            pool,
            readiness: Readiness::default(),
            cloud,
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

    /// Serves until `shutdown` completes. The runner polls in the background; at
    /// shutdown every run finishes its current step before the server stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let accounts = secure_channel(
            &self.config.accounts_url,
            &self.config.internal_token,
            self.config.common.internal_call_timeout,
            self.config.common.grpc_tls.as_ref(),
        )?;
        let planner = secure_channel(
            &self.config.planner_url,
            &self.config.internal_token,
            self.config.common.internal_call_timeout,
            self.config.common.grpc_tls.as_ref(),
        )?;
        let notices = Notices::new(&self.config.notify, self.config.public_url.clone());
        let runner = Runner::new(
            self.pool.clone(),
            self.config.runner.clone(),
            self.cloud.clone(),
            accounts,
            planner,
            notices.clone(),
        );
        tracing::info!(
            process_id = runner.process_id(),
            parallelism = self.config.runner.max_account_parallelism,
            "executor runner ready"
        );
        runner.spawn_poll_loop();
        let stop_dispatcher = CancellationToken::new();
        let dispatcher = self.spawn_dispatcher(&notices, stop_dispatcher.clone())?;
        let executor = Executor::new(self.pool.clone(), runner.clone());
        let spec = ServiceSpec {
            name: "executor",
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
        let routes = grpc::routes(&self.config, executor);
        let stop_runner = runner.clone();
        let shutdown = async move {
            shutdown.await;
            tracing::info!("executor stopping: finishing the current steps");
            stop_runner.stop().await;
            stop_dispatcher.cancel();
            if let Some(dispatcher) = dispatcher {
                let _ = dispatcher.await;
            }
        };
        serve(spec, self.listener, self.pool, routes, shutdown).await
    }

    /// Starts delivering the outbox when notifications are on (a key is set).
    fn spawn_dispatcher(
        &self,
        notices: &Notices,
        cancel: CancellationToken,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(cipher) = notices.cipher() else {
            tracing::info!("notifications are off: CUDLY_NOTIFY_KEY is not set");
            return Ok(None);
        };
        let notify = &self.config.notify;
        let sender = Sender::new(
            notify.private_targets,
            notify.dispatch.send_timeout,
            notify.smtp.as_ref(),
        )
        .map_err(|error| anyhow::anyhow!(error.log_text()))?;
        let dispatcher = Dispatcher::new(
            self.pool.clone(),
            cipher.clone(),
            sender,
            notify.dispatch.clone(),
        )?;
        Ok(Some(tokio::spawn(dispatcher.run(cancel))))
    }
}

/// Seals every stored notification secret under `CUDLY_NOTIFY_KEY`, opening those
/// under `CUDLY_NOTIFY_OLD_KEY` (`cudly-executor rotate-notify-key`): all or nothing.
pub async fn rotate_notify_key(
    database_url: &secrecy::SecretString,
    notify: &cudly_notify::NotifyConfig,
) -> anyhow::Result<cudly_notify::RotationReport> {
    let cipher = notify
        .cipher()
        .context("CUDLY_NOTIFY_KEY must be set: the key to rotate to")?;
    let pool = cudly_common::db::lazy_pool(database_url, SCHEMA, 2)?;
    cudly_common::db::migrate(&pool, &MIGRATOR, SCHEMA)
        .await
        .context("applying migrations")?;
    let mut tx = pool.begin().await.context("starting the rotation")?;
    let report = cudly_notify::rotate_keys(&mut tx, &cipher)
        .await
        .map_err(|error| anyhow::anyhow!(error.log_text()))
        .context("re-encrypting notification secrets (nothing was changed)")?;
    tx.commit().await.context("committing the rotation")?;
    pool.close().await;
    Ok(report)
}
