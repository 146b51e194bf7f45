//! Configuration of the planner service: every variable it reads, read in
//! [`Config::read`] (alone and inside the all-in-one `cudly`).

use std::net::SocketAddr;

use cudly_common::config::{CommonSettings, ConfigError, ConfigResult, Env, Layout, SecretSource};
use cudly_common::grpc::{Caller, InternalAuth};
use secrecy::SecretString;

/// The callers this service accepts (docs/design/ARCHITECTURE.md "Who calls whom").
pub const ACCEPTED_CALLERS: &[Caller] = &[Caller::Gateway, Caller::Executor, Caller::Sweeper];

#[derive(Clone)]
pub struct Config {
    /// gRPC listen address (`CUDLY_PLANNER_ADDR`).
    pub addr: SocketAddr,
    /// Database URL (`CUDLY_PLANNER_DATABASE_URL`, else `DATABASE_URL`).
    pub database_url: SecretString,
    /// Tokens of the accepted callers (`CUDLY_INTERNAL_TOKEN_<CALLER>`).
    pub auth: InternalAuth,
    /// The planner's own token for its calls to accounts and executor
    /// (`CUDLY_INTERNAL_TOKEN_PLANNER`).
    pub internal_token: SecretString,
    /// The accounts service (`CUDLY_ACCOUNTS_URL`).
    pub accounts_url: String,
    /// The executor service (`CUDLY_EXECUTOR_URL`).
    pub executor_url: String,
    /// Health interval and the deadline of each call to accounts or executor.
    pub common: CommonSettings,
    /// Times one plan step may be fired without completing; due once more, the plan
    /// pauses instead (`CUDLY_PLAN_STEP_MAX_FIRES`, at least 1).
    pub step_max_fires: u32,
}

/// Default of [`Config::step_max_fires`].
pub const DEFAULT_STEP_MAX_FIRES: u32 = 3;

impl Config {
    /// Reads the configuration; fails naming the first missing or invalid variable.
    pub fn read(env: &Env, secrets: &impl SecretSource, layout: Layout) -> ConfigResult<Self> {
        Ok(Self {
            addr: env.listen_addr("planner", layout)?,
            database_url: env.database_url("planner"),
            auth: InternalAuth::from_source(ACCEPTED_CALLERS, secrets)?,
            internal_token: secrets.internal_token(Caller::Planner)?,
            accounts_url: env.peer_url("accounts", layout),
            executor_url: env.peer_url("executor", layout),
            common: CommonSettings::read(env)?,
            step_max_fires: read_step_max_fires(env)?,
        })
    }
}

fn read_step_max_fires(env: &Env) -> ConfigResult<u32> {
    let fires = env.parse("CUDLY_PLAN_STEP_MAX_FIRES", DEFAULT_STEP_MAX_FIRES)?;
    if fires == 0 {
        return Err(ConfigError::new(
            "CUDLY_PLAN_STEP_MAX_FIRES",
            "must be at least 1",
        ));
    }
    Ok(fires)
}
