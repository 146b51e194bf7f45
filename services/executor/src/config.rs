//! Configuration of the executor service, read from the environment at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use cudly_common::config::{self, ConfigResult};
use cudly_common::grpc::{Caller, InternalAuth};
use secrecy::SecretString;

/// The callers this service accepts (ARCHITECTURE.md, who calls whom).
pub const ACCEPTED_CALLERS: &[Caller] = &[Caller::Gateway, Caller::Planner, Caller::Sweeper];

#[derive(Clone)]
pub struct Config {
    /// gRPC listen address (`CUDLY_EXECUTOR_ADDR`).
    pub addr: SocketAddr,
    /// Database URL (`CUDLY_EXECUTOR_DATABASE_URL`, else `DATABASE_URL`).
    pub database_url: SecretString,
    /// Tokens of the accepted callers (`CUDLY_INTERNAL_TOKEN_<CALLER>`).
    pub auth: InternalAuth,
    /// How often dependencies are checked for health.
    pub health_interval: Duration,
}

impl Config {
    /// Reads the configuration; fails naming the first missing or invalid variable.
    pub fn from_env() -> ConfigResult<Self> {
        Ok(Self {
            addr: config::addr_var("CUDLY_EXECUTOR_ADDR", "0.0.0.0:50053")?,
            database_url: config::database_url("executor"),
            auth: InternalAuth::from_env(ACCEPTED_CALLERS)?,
            health_interval: config::duration_var("CUDLY_HEALTH_INTERVAL", Duration::from_secs(2))?,
        })
    }
}
