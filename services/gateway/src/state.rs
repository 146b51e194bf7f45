//! The state every handler receives: the gateway's pool, the backend channels and the
//! configuration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use cudly_common::ApiError;
use cudly_common::config::defaults;
use cudly_common::grpc::{AuthChannel, secure_channel};
use secrecy::ExposeSecret;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use crate::auth::{KeyHash, hash_key};
use crate::config::Config;
use crate::error::GatewayError;
use crate::key_cache::KeyCache;
use crate::key_uses::KeyUses;
use crate::limits::ClientLimits;

/// The schema holding the gateway's tables.
pub const SCHEMA: &str = "gateway";

/// Lazily connecting gRPC channels to the backends, each carrying the gateway's internal
/// token and the trace context.
///
/// A route module builds its typed client from one of them:
/// `AccountsServiceClient::new(state.clients.accounts.clone())`. A backend that is down
/// makes each call fail with UNAVAILABLE; [`crate::error::grpc_error`] maps that to 503.
#[derive(Clone)]
pub struct Backends {
    pub accounts: AuthChannel,
    pub planner: AuthChannel,
    /// The planner for recommendation refreshes, with their longer deadline.
    pub planner_refresh: AuthChannel,
    pub executor: AuthChannel,
    pub sweeper: AuthChannel,
}

impl Backends {
    /// Returns lazy channels to the backends of `config`. Needs a Tokio runtime.
    pub fn connect_lazy(config: &Config) -> anyhow::Result<Self> {
        let token = &config.internal_token;
        let timeout = config.request_timeout;
        let tls = config.grpc_tls.as_ref();
        Ok(Self {
            accounts: secure_channel(&config.backends.accounts, token, timeout, tls)?,
            planner: secure_channel(&config.backends.planner, token, timeout, tls)?,
            planner_refresh: secure_channel(
                &config.backends.planner,
                token,
                timeout.max(defaults::RECOMMENDATION_REFRESH_TIMEOUT),
                tls,
            )?,
            executor: secure_channel(&config.backends.executor, token, timeout, tls)?,
            sweeper: secure_channel(&config.backends.sweeper, token, timeout, tls)?,
        })
    }

    /// Returns each backend with its name, in a fixed order.
    pub fn named(&self) -> [(&'static str, &AuthChannel); 4] {
        [
            ("accounts", &self.accounts),
            ("planner", &self.planner),
            ("executor", &self.executor),
            ("sweeper", &self.sweeper),
        ]
    }
}

/// What the readiness checks found, for `/health/readyz`.
#[derive(Debug, Default)]
struct Readiness {
    /// Bumped when the gateway's own state changes (migrations applied).
    generation: u64,
    failing: Option<Vec<String>>,
}

/// Shared state of one gateway; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The gateway's own Postgres, `search_path` set to [`SCHEMA`].
    pub pool: PgPool,
    /// The backend services.
    pub clients: Backends,
    pub config: Arc<Config>,
    /// SHA-256 of the bootstrap admin key, when one is configured.
    pub(crate) bootstrap_key_hash: Option<KeyHash>,
    /// Set once the migrations have been applied; until then the gateway is not ready.
    migrated: Arc<AtomicBool>,
    /// What the last readiness check found failing (`None` before the first), and
    /// the generation it belongs to.
    readiness: Arc<RwLock<Readiness>>,
    /// Per-client abuse limits.
    pub limits: Arc<ClientLimits>,
    /// Keys verified a moment ago, so that most requests need no key look-up.
    pub(crate) key_cache: Arc<KeyCache>,
    /// Key uses waiting to be written to `last_used_at`.
    pub(crate) key_uses: Arc<KeyUses>,
}

impl AppState {
    /// Returns the state of a gateway configured by `config`: a lazy pool (the gateway
    /// starts while Postgres is down) and lazy backend channels. Needs a Tokio runtime.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let pool =
            cudly_common::db::lazy_pool(&config.database_url, SCHEMA, config.max_db_connections)?;
        let clients = Backends::connect_lazy(&config)?;
        let bootstrap_key_hash = config
            .bootstrap_admin_key
            .as_ref()
            .map(|key| hash_key(key.expose_secret().trim()));
        let limits = Arc::new(ClientLimits::new(config.per_minute));
        let key_cache = Arc::new(KeyCache::new(config.api_key_cache_ttl));
        Ok(Self {
            pool,
            clients,
            config: Arc::new(config),
            bootstrap_key_hash,
            migrated: Arc::new(AtomicBool::new(false)),
            readiness: Arc::new(RwLock::new(Readiness::default())),
            limits,
            key_cache,
            key_uses: Arc::new(KeyUses::default()),
        })
    }

    /// Writes the key uses recorded so far to `last_used_at` (the background flush does
    /// this every few seconds); returns how many rows changed. Needs no connection when
    /// nothing waits.
    pub async fn flush_key_uses(&self) -> Result<u64, GatewayError> {
        if !self.key_uses.has_pending() {
            return Ok(0);
        }
        let mut conn = self.db().await?;
        self.key_uses
            .flush(&mut conn)
            .await
            .map_err(GatewayError::db("record api key uses"))
    }

    /// Returns true once the gateway's migrations have been applied.
    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Returns a pooled connection for a handler: 503 while the migrations are not
    /// applied yet or the database cannot be reached.
    /// Begins a transaction on the gateway's database (503 before the migrations).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, GatewayError> {
        if !self.is_migrated() {
            return Err(ApiError::unavailable("database unavailable").into());
        }
        self.pool
            .begin()
            .await
            .map_err(GatewayError::db("begin transaction"))
    }

    pub async fn db(&self) -> Result<PoolConnection<Postgres>, GatewayError> {
        if !self.is_migrated() {
            return Err(ApiError::unavailable("database unavailable").into());
        }
        self.pool
            .acquire()
            .await
            .map_err(GatewayError::db("acquire connection"))
    }

    /// Returns what the last readiness check found failing, `None` before the first.
    pub(crate) fn last_readiness(&self) -> Option<Vec<String>> {
        self.readiness().failing.clone()
    }

    /// Returns the readiness generation a check starting now belongs to.
    pub(crate) fn readiness_generation(&self) -> u64 {
        self.readiness().generation
    }

    /// Records what a check of `generation` found failing, unless the state changed
    /// since it started (its answer would be stale).
    pub(crate) fn record_readiness(&self, generation: u64, failing: Vec<String>) {
        let mut readiness = self.readiness_mut();
        if readiness.generation == generation {
            readiness.failing = Some(failing);
        }
    }

    fn readiness(&self) -> std::sync::RwLockReadGuard<'_, Readiness> {
        self.readiness
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn readiness_mut(&self) -> std::sync::RwLockWriteGuard<'_, Readiness> {
        self.readiness
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that the migrations are applied; what readiness checks found before is
    /// forgotten (and a check still running discarded), so the next probe checks again
    /// instead of answering "postgres".
    pub(crate) fn mark_migrated(&self) {
        self.migrated.store(true, Ordering::Release);
        let mut readiness = self.readiness_mut();
        readiness.generation += 1;
        readiness.failing = None;
    }
}
