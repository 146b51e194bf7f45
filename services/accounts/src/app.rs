//! Start-up of the accounts service: bind, connect, migrate, serve until stopped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use cudly_common::server::{Readiness, ServiceSpec, serve};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::{Config, RotationConfig};
use crate::crypto::CredentialCipher;
use crate::grpc;
use crate::resolver::Resolver;
use crate::rotation::{RotationReport, rotate_credential_key};
use crate::service::Accounts;

/// Postgres schema owned by this service.
pub const SCHEMA: &str = "accounts";

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

    /// Serves until `shutdown` completes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let spec = ServiceSpec {
            name: "accounts",
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
        let cipher = CredentialCipher::new(self.config.credential_keys.clone());
        let resolver = Resolver::new(
            self.pool.clone(),
            cipher.clone(),
            self.config.aws.clone(),
            self.config.aws_ambient_credentials.clone(),
        );
        let accounts = Arc::new(Accounts::new(self.pool.clone(), cipher, resolver));
        let routes = grpc::routes(&self.config, accounts);
        serve(spec, self.listener, self.pool, routes, shutdown).await
    }
}

/// Applies the service's migrations (the rotation command may run before the service
/// ever started).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    cudly_common::db::migrate(pool, &MIGRATOR, SCHEMA).await?;
    Ok(())
}

/// The `rotate-credential-key` command: re-encrypts every stored credential blob under
/// the current key.
pub async fn rotate(config: RotationConfig) -> anyhow::Result<RotationReport> {
    let pool = cudly_common::db::lazy_pool(&config.database_url, SCHEMA, 2)?;
    migrate(&pool).await.context("applying migrations")?;
    let cipher = CredentialCipher::new(config.credential_keys);
    let report = rotate_credential_key(&pool, &cipher)
        .await
        .context("re-encrypting credentials (nothing was changed)")?;
    pool.close().await;
    Ok(report)
}
