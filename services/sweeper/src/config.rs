//! Configuration of the sweeper service: every variable it reads, read in
//! [`Config::read`] (alone and inside the all-in-one `cudly`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cudly_common::config::{
    CommonSettings, ConfigError, ConfigResult, Env, Layout, SecretSource, defaults,
};
use cudly_common::grpc::{Caller, InternalAuth};
use secrecy::SecretString;

use crate::task::Task;

/// How often each task runs unless configured (`CUDLY_SWEEP_INTERVAL`).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The callers this service accepts (docs/design/ARCHITECTURE.md "Who calls whom").
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
                .map(|task| (task, task.own_interval().unwrap_or(DEFAULT_SWEEP_INTERVAL)))
                .collect(),
            lock_ttl: Duration::from_secs(30),
            stranded_approved_after: defaults::STRANDED_APPROVED_AFTER,
            stranded_running_after: defaults::STRANDED_RUNNING_AFTER,
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
    pub fn read(env: &Env) -> ConfigResult<Self> {
        let mut tuning = Self::default();
        let default_interval = env.duration("CUDLY_SWEEP_INTERVAL", DEFAULT_SWEEP_INTERVAL)?;
        for task in Task::ALL {
            let interval = env.duration(
                &task.interval_var(),
                task.own_interval().unwrap_or(default_interval),
            )?;
            tuning.intervals.insert(task, interval);
        }
        tuning.lock_ttl = env.duration("CUDLY_LOCK_TTL", tuning.lock_ttl)?;
        tuning.stranded_approved_after = env.duration(
            "CUDLY_STRANDED_APPROVED_AFTER",
            tuning.stranded_approved_after,
        )?;
        tuning.stranded_running_after = env.duration(
            "CUDLY_STRANDED_RUNNING_AFTER",
            tuning.stranded_running_after,
        )?;
        tuning.redrive_max_attempts =
            env.parse("CUDLY_REDRIVE_MAX_ATTEMPTS", tuning.redrive_max_attempts)?;
        if let Some(prefix) = env.var("CUDLY_LOCK_KEY_PREFIX") {
            tuning.lock_key_prefix = prefix.trim().to_owned();
        }
        tuning.validate()?;
        Ok(tuning)
    }

    /// Rejects settings under which the lock cannot work.
    pub fn validate(&self) -> ConfigResult<()> {
        if self.lock_ttl < Duration::from_millis(100) {
            return Err(ConfigError::new("CUDLY_LOCK_TTL", "must be at least 100ms"));
        }
        if self.redrive_max_attempts == 0 {
            return Err(ConfigError::new(
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
            .unwrap_or(DEFAULT_SWEEP_INTERVAL)
    }
}

#[derive(Clone)]
pub struct Config {
    /// gRPC listen address (`CUDLY_SWEEPER_ADDR`).
    pub addr: SocketAddr,
    /// Database URL (`CUDLY_SWEEPER_DATABASE_URL`, else `DATABASE_URL`).
    pub database_url: SecretString,
    /// Redis holding the task locks (`REDIS_URL`; `rediss://` for TLS).
    pub redis_url: SecretString,
    /// The CA a `rediss://` server's certificate must chain to
    /// (`CUDLY_REDIS_TLS_CA_FILE`); unset: the system's roots.
    pub redis_tls_ca_file: Option<std::path::PathBuf>,
    /// Tokens of the accepted callers (`CUDLY_INTERNAL_TOKEN_GATEWAY`).
    pub auth: InternalAuth,
    /// This service's own token for calls to the executor and planner.
    pub internal_token: SecretString,
    /// The executor service (`CUDLY_EXECUTOR_URL`).
    pub executor_url: String,
    /// The planner service (`CUDLY_PLANNER_URL`).
    pub planner_url: String,
    /// Health interval and the deadline of each call to executor or planner.
    pub common: CommonSettings,
    pub tuning: Tuning,
}

impl Config {
    /// Reads the configuration; fails naming the first missing or invalid variable.
    pub fn read(env: &Env, secrets: &impl SecretSource, layout: Layout) -> ConfigResult<Self> {
        Ok(Self {
            addr: env.listen_addr("sweeper", layout)?,
            database_url: env.database_url("sweeper"),
            redis_url: env.redis_url(),
            redis_tls_ca_file: env
                .var("CUDLY_REDIS_TLS_CA_FILE")
                .map(std::path::PathBuf::from),
            auth: InternalAuth::from_source(Some(Caller::Sweeper), ACCEPTED_CALLERS, secrets)?,
            internal_token: secrets.internal_token(Caller::Sweeper)?,
            executor_url: env.peer_url("executor", layout),
            planner_url: env.peer_url("planner", layout),
            common: CommonSettings::read(env)?,
            tuning: Tuning::read(env)?,
        })
    }

    /// Returns the interval of `task`.
    pub fn interval(&self, task: Task) -> Duration {
        self.tuning.interval(task)
    }
}
