//! Configuration of the planner service, read from the environment at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use cudly_common::config::{self, ConfigError, ConfigResult};
use cudly_common::grpc::{Caller, InternalAuth, caller_token};
use secrecy::SecretString;

/// The callers this service accepts (ARCHITECTURE.md, who calls whom).
pub const ACCEPTED_CALLERS: &[Caller] = &[Caller::Gateway, Caller::Executor, Caller::Sweeper];

/// Default address of the accounts service when the planner runs alone.
pub const DEFAULT_ACCOUNTS_URL: &str = "http://127.0.0.1:50051";
/// Default address of the executor service when the planner runs alone.
pub const DEFAULT_EXECUTOR_URL: &str = "http://127.0.0.1:50053";
/// Default deadline of one call to the accounts or executor service.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Config {
    /// gRPC listen address (`CUDLY_PLANNER_ADDR`).
    pub addr: SocketAddr,
    /// Database URL (`CUDLY_PLANNER_DATABASE_URL`, else `DATABASE_URL`).
    pub database_url: SecretString,
    /// Tokens of the accepted callers (`CUDLY_INTERNAL_TOKEN_<CALLER>`).
    pub auth: InternalAuth,
    /// How often dependencies are checked for health.
    pub health_interval: Duration,
    /// The planner's own token for its calls to accounts and executor
    /// (`CUDLY_INTERNAL_TOKEN_PLANNER`).
    pub internal_token: SecretString,
    /// The accounts service (`CUDLY_ACCOUNTS_URL`).
    pub accounts_url: String,
    /// The executor service (`CUDLY_EXECUTOR_URL`).
    pub executor_url: String,
    /// Deadline of one call to accounts or executor (`CUDLY_REQUEST_TIMEOUT`).
    pub call_timeout: Duration,
}

impl Config {
    /// Reads the configuration; fails naming the first missing or invalid variable.
    pub fn from_env() -> ConfigResult<Self> {
        let call_timeout = config::duration_var("CUDLY_REQUEST_TIMEOUT", DEFAULT_CALL_TIMEOUT)?;
        if call_timeout.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_REQUEST_TIMEOUT",
                "must be longer than zero",
            ));
        }
        Ok(Self {
            addr: config::addr_var("CUDLY_PLANNER_ADDR", "0.0.0.0:50052")?,
            database_url: config::database_url("planner"),
            auth: InternalAuth::from_env(ACCEPTED_CALLERS)?,
            health_interval: config::duration_var("CUDLY_HEALTH_INTERVAL", Duration::from_secs(2))?,
            internal_token: caller_token(Caller::Planner)?,
            accounts_url: config::var("CUDLY_ACCOUNTS_URL")
                .unwrap_or_else(|| DEFAULT_ACCOUNTS_URL.to_owned()),
            executor_url: config::var("CUDLY_EXECUTOR_URL")
                .unwrap_or_else(|| DEFAULT_EXECUTOR_URL.to_owned()),
            call_timeout,
        })
    }
}
