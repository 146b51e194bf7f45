//! Configuration of the sweeper service, read from the environment at start-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cudly_common::config::{self, ConfigResult};
use cudly_common::grpc::{Caller, InternalAuth, caller_token};
use secrecy::SecretString;

use crate::task::Task;

/// The callers this service accepts (ARCHITECTURE.md, who calls whom).
pub const ACCEPTED_CALLERS: &[Caller] = &[Caller::Gateway];

/// The sweeper's tunable behaviour, separate from addresses and secrets so that the
/// all-in-one stack and tests can set it directly.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Interval of each task (`CUDLY_SWEEP_INTERVAL_<TASK>`, else `CUDLY_SWEEP_INTERVAL`).
    pub intervals: HashMap<Task, Duration>,
    /// Lock time-to-live (`CUDLY_LOCK_TTL`); the lock is renewed at a third of it.
    pub lock_ttl: Duration,
    /// Roots approved and untouched this long are stranded (`CUDLY_STRANDED_APPROVED_AFTER`).
    pub stranded_approved_after: Duration,
    /// Roots running without a heartbeat this long are stranded (`CUDLY_STRANDED_RUNNING_AFTER`).
    pub stranded_running_after: Duration,
    /// Re-drives before a stranded root is safe-failed (`CUDLY_REDRIVE_MAX_ATTEMPTS`).
    pub redrive_max_attempts: u32,
    /// Whether the periodic loops run (tests drive tasks through RunTask instead).
    pub run_loops: bool,
    /// Most stranded roots handled in one run.
    pub batch_limit: u32,
    /// Prefix of the Redis lock keys (`CUDLY_LOCK_KEY_PREFIX`, default
    /// `cudly:lock:task:`): two deployments sharing one Redis need their own, and so do
    /// tests sharing one.
    pub lock_key_prefix: String,
    /// A pause between listing stranded roots and acting on them. Tests use it to
    /// make an execution finish in between; zero in production.
    pub pause_before_acting: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            intervals: Task::ALL
                .into_iter()
                .map(|task| (task, Duration::from_secs(60)))
                .collect(),
            lock_ttl: Duration::from_secs(30),
            stranded_approved_after: Duration::from_secs(15 * 60),
            stranded_running_after: Duration::from_secs(10 * 60),
            redrive_max_attempts: 3,
            run_loops: true,
            batch_limit: 500,
            lock_key_prefix: cudly_lock::DEFAULT_KEY_PREFIX.to_owned(),
            pause_before_acting: Duration::ZERO,
        }
    }
}

impl Tuning {
    /// Reads the documented variables over the defaults.
    pub fn from_env() -> ConfigResult<Self> {
        let mut tuning = Self::default();
        let default_interval =
            config::duration_var("CUDLY_SWEEP_INTERVAL", Duration::from_secs(60))?;
        for task in Task::ALL {
            let interval = config::duration_var(&task.interval_var(), default_interval)?;
            tuning.intervals.insert(task, interval);
        }
        tuning.lock_ttl = config::duration_var("CUDLY_LOCK_TTL", tuning.lock_ttl)?;
        tuning.stranded_approved_after = config::duration_var(
            "CUDLY_STRANDED_APPROVED_AFTER",
            tuning.stranded_approved_after,
        )?;
        tuning.stranded_running_after = config::duration_var(
            "CUDLY_STRANDED_RUNNING_AFTER",
            tuning.stranded_running_after,
        )?;
        tuning.redrive_max_attempts =
            config::parse_var("CUDLY_REDRIVE_MAX_ATTEMPTS", tuning.redrive_max_attempts)?;
        if let Ok(prefix) = std::env::var("CUDLY_LOCK_KEY_PREFIX")
            && !prefix.trim().is_empty()
        {
            tuning.lock_key_prefix = prefix.trim().to_owned();
        }
        tuning.validate()?;
        Ok(tuning)
    }

    /// Rejects settings under which the lock cannot work.
    pub fn validate(&self) -> ConfigResult<()> {
        if self.lock_ttl < Duration::from_millis(100) {
            return Err(config::ConfigError::new(
                "CUDLY_LOCK_TTL",
                "must be at least 100ms",
            ));
        }
        if self.redrive_max_attempts == 0 {
            return Err(config::ConfigError::new(
                "CUDLY_REDRIVE_MAX_ATTEMPTS",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Returns the interval of `task`.
    pub fn interval(&self, task: Task) -> Duration {
        self.intervals
            .get(&task)
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }
}

#[derive(Clone)]
pub struct Config {
    /// gRPC listen address (`CUDLY_SWEEPER_ADDR`).
    pub addr: SocketAddr,
    /// Database URL (`CUDLY_SWEEPER_DATABASE_URL`, else `DATABASE_URL`).
    pub database_url: SecretString,
    /// Redis holding the task locks (`REDIS_URL`).
    pub redis_url: SecretString,
    /// Tokens of the accepted callers (`CUDLY_INTERNAL_TOKEN_GATEWAY`).
    pub auth: InternalAuth,
    /// This service's own token for calls to the executor and planner.
    pub internal_token: SecretString,
    pub executor_url: String,
    pub planner_url: String,
    /// How often dependencies are checked for health.
    pub health_interval: Duration,
    /// Longest one RPC to the executor or planner may take.
    pub rpc_timeout: Duration,
    pub tuning: Tuning,
}

impl Config {
    /// Returns a configuration with the documented defaults.
    pub fn new(
        database_url: SecretString,
        redis_url: SecretString,
        auth: InternalAuth,
        internal_token: SecretString,
        executor_url: String,
        planner_url: String,
    ) -> Self {
        Self {
            addr: "0.0.0.0:50054".parse().expect("the default address parses"),
            database_url,
            redis_url,
            auth,
            internal_token,
            executor_url,
            planner_url,
            health_interval: Duration::from_secs(2),
            rpc_timeout: Duration::from_secs(30),
            tuning: Tuning::default(),
        }
    }

    /// Reads the configuration; fails naming the first missing or invalid variable.
    pub fn from_env() -> ConfigResult<Self> {
        let mut config = Self::new(
            config::database_url("sweeper"),
            config::redis_url(),
            InternalAuth::from_env(ACCEPTED_CALLERS)?,
            caller_token(Caller::Sweeper)?,
            config::var("CUDLY_EXECUTOR_URL")
                .unwrap_or_else(|| "http://127.0.0.1:50053".to_owned()),
            config::var("CUDLY_PLANNER_URL").unwrap_or_else(|| "http://127.0.0.1:50052".to_owned()),
        );
        config.addr = config::addr_var("CUDLY_SWEEPER_ADDR", "0.0.0.0:50054")?;
        config.health_interval =
            config::duration_var("CUDLY_HEALTH_INTERVAL", config.health_interval)?;
        config.tuning = Tuning::from_env()?;
        Ok(config)
    }

    /// Returns the interval of `task`.
    pub fn interval(&self, task: Task) -> Duration {
        self.tuning.interval(task)
    }
}
