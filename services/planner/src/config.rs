//! Configuration of the planner service: every variable it reads, read in
//! [`Config::read`] (alone and inside the all-in-one `cudly`).

use std::net::SocketAddr;
use std::time::Duration;

use cudly_common::config::{
    CommonSettings, ConfigError, ConfigResult, Env, Layout, SecretSource, defaults,
};
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
    /// Deadline of one Cost Explorer collection by the accounts service.
    pub collection_timeout: Duration,
    /// Cost Explorer calls one refresh may make at most
    /// (`CUDLY_RECOMMENDATION_CALL_BUDGET`).
    pub recommendation_call_budget: u32,
    /// Purchases this recent are subtracted from a sized step whoever made them
    /// (`CUDLY_RECOMMENDATION_COOLDOWN`).
    pub recommendation_cooldown: Duration,
    /// Recommendations older than this refuse a sized run
    /// (`CUDLY_RECOMMENDATION_MAX_AGE`).
    pub recommendation_max_age: Duration,
}

/// Default of [`Config::step_max_fires`].
pub const DEFAULT_STEP_MAX_FIRES: u32 = 3;
/// Default of [`Config::recommendation_call_budget`]: an organization's full refresh
/// at every term and payment of the seven services (36 combinations) across 50 pages
/// each, with room to spare; Cost Explorer bills 0.01 USD a call.
pub const DEFAULT_RECOMMENDATION_CALL_BUDGET: u32 = 2_000;
/// Default of [`Config::recommendation_cooldown`]: Cost Explorer lags 24 to 48 hours
/// behind purchases.
pub const DEFAULT_RECOMMENDATION_COOLDOWN: Duration = Duration::from_secs(3 * 24 * 3600);
/// Default of [`Config::recommendation_max_age`].
pub const DEFAULT_RECOMMENDATION_MAX_AGE: Duration = Duration::from_secs(48 * 3600);

impl Config {
    /// Reads the configuration; fails naming the first missing or invalid variable.
    pub fn read(env: &Env, secrets: &impl SecretSource, layout: Layout) -> ConfigResult<Self> {
        Ok(Self {
            addr: env.listen_addr("planner", layout)?,
            database_url: env.database_url("planner"),
            auth: InternalAuth::from_source(Some(Caller::Planner), ACCEPTED_CALLERS, secrets)?,
            internal_token: secrets.internal_token(Caller::Planner)?,
            accounts_url: env.peer_url("accounts", layout),
            executor_url: env.peer_url("executor", layout),
            common: CommonSettings::read(env)?,
            step_max_fires: read_step_max_fires(env)?,
            collection_timeout: defaults::RECOMMENDATION_REFRESH_TIMEOUT,
            recommendation_call_budget: env.parse(
                "CUDLY_RECOMMENDATION_CALL_BUDGET",
                DEFAULT_RECOMMENDATION_CALL_BUDGET,
            )?,
            recommendation_cooldown: env.duration(
                "CUDLY_RECOMMENDATION_COOLDOWN",
                DEFAULT_RECOMMENDATION_COOLDOWN,
            )?,
            recommendation_max_age: env.duration(
                "CUDLY_RECOMMENDATION_MAX_AGE",
                DEFAULT_RECOMMENDATION_MAX_AGE,
            )?,
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
