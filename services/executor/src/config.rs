//! Configuration of the executor service, read from the environment at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use cudly_aws::sdk::AwsSettings;
use cudly_common::config::{self, ConfigError, ConfigResult};
use cudly_common::grpc::{Caller, InternalAuth, caller_token};
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
    /// The accounts service (`CUDLY_ACCOUNTS_URL`), for ResolveCredentials.
    pub accounts_url: String,
    /// The planner service (`CUDLY_PLANNER_URL`), for CompletePlanStep.
    pub planner_url: String,
    /// This service's own internal token (`CUDLY_INTERNAL_TOKEN_EXECUTOR`).
    pub internal_token: SecretString,
    /// AWS SDK settings (`AWS_REGION`, `CUDLY_AWS_CALL_TIMEOUT`, endpoint overrides).
    pub aws: AwsSettings,
    /// How runs are driven.
    pub runner: RunnerSettings,
}

/// Settings of the runner: fan-out bound, approval lifetime, lease timing, polling.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Concurrent account runs across all executions (`CUDLY_MAX_ACCOUNT_PARALLELISM`).
    pub max_account_parallelism: usize,
    /// Lifetime of an approval token (`CUDLY_APPROVAL_TTL`).
    pub approval_ttl: Duration,
    /// A running root whose heartbeat is older than this is stale
    /// (`CUDLY_STRANDED_RUNNING_AFTER`); the lease is renewed every third of it.
    pub stranded_running_after: Duration,
    /// An approved root not updated for this long is stranded
    /// (`CUDLY_STRANDED_APPROVED_AFTER`); safe-fail acts on approved roots only then.
    pub stranded_approved_after: Duration,
    /// How often approved roots are polled and unreported plan steps re-sent
    /// (`CUDLY_EXECUTOR_POLL_INTERVAL`).
    pub poll_interval: Duration,
    /// Added to the longest time a purchase call can take before a purchase whose outcome
    /// is unknown is looked up again (`CUDLY_PURCHASE_SETTLE_MARGIN`): room for the
    /// cloud to finish a request it accepted just before the call timed out.
    pub settle_margin: Duration,
    /// Deadline of each call to the accounts and planner services.
    pub rpc_timeout: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            max_account_parallelism: 20,
            approval_ttl: Duration::from_secs(7 * 86_400),
            stranded_running_after: Duration::from_secs(600),
            stranded_approved_after: Duration::from_secs(900),
            poll_interval: Duration::from_secs(5),
            settle_margin: Duration::from_secs(30),
            rpc_timeout: Duration::from_secs(30),
        }
    }
}

impl RunnerSettings {
    /// Returns how often the root lease is renewed: a third of the staleness threshold.
    pub fn lease_renewal_interval(&self) -> Duration {
        (self.stranded_running_after / 3).max(Duration::from_millis(100))
    }

    /// Reads the runner settings from the environment.
    pub fn from_env() -> ConfigResult<Self> {
        let defaults = Self::default();
        let max_account_parallelism: usize = config::parse_var(
            "CUDLY_MAX_ACCOUNT_PARALLELISM",
            defaults.max_account_parallelism,
        )?;
        if max_account_parallelism == 0 {
            return Err(ConfigError::new(
                "CUDLY_MAX_ACCOUNT_PARALLELISM",
                "must be at least 1",
            ));
        }
        let settings = Self {
            max_account_parallelism,
            approval_ttl: config::duration_var("CUDLY_APPROVAL_TTL", defaults.approval_ttl)?,
            stranded_running_after: config::duration_var(
                "CUDLY_STRANDED_RUNNING_AFTER",
                defaults.stranded_running_after,
            )?,
            stranded_approved_after: config::duration_var(
                "CUDLY_STRANDED_APPROVED_AFTER",
                defaults.stranded_approved_after,
            )?,
            poll_interval: config::duration_var(
                "CUDLY_EXECUTOR_POLL_INTERVAL",
                defaults.poll_interval,
            )?,
            settle_margin: config::duration_var(
                "CUDLY_PURCHASE_SETTLE_MARGIN",
                defaults.settle_margin,
            )?,
            ..defaults
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Fails naming the first setting out of range.
    pub fn validate(&self) -> ConfigResult<()> {
        if self.max_account_parallelism == 0 {
            return Err(ConfigError::new(
                "CUDLY_MAX_ACCOUNT_PARALLELISM",
                "must be at least 1",
            ));
        }
        if self.approval_ttl.is_zero() {
            return Err(ConfigError::new("CUDLY_APPROVAL_TTL", "must be positive"));
        }
        if self.stranded_running_after < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "CUDLY_STRANDED_RUNNING_AFTER",
                "must be at least 1s",
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_EXECUTOR_POLL_INTERVAL",
                "must be positive",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Reads the configuration; fails naming the first missing or invalid variable.
    pub fn from_env() -> ConfigResult<Self> {
        let aws = AwsSettings::from_env()
            .map_err(|problem| ConfigError::new("CUDLY_AWS_CALL_TIMEOUT", problem))?;
        Ok(Self {
            addr: config::addr_var("CUDLY_EXECUTOR_ADDR", "0.0.0.0:50053")?,
            database_url: config::database_url("executor"),
            auth: InternalAuth::from_env(ACCEPTED_CALLERS)?,
            health_interval: config::duration_var("CUDLY_HEALTH_INTERVAL", Duration::from_secs(2))?,
            accounts_url: config::var("CUDLY_ACCOUNTS_URL")
                .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned()),
            planner_url: config::var("CUDLY_PLANNER_URL")
                .unwrap_or_else(|| "http://127.0.0.1:50052".to_owned()),
            internal_token: caller_token(Caller::Executor)?,
            aws,
            runner: RunnerSettings::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_renewed_every_third_of_the_staleness_threshold() {
        let settings = RunnerSettings::default();
        assert_eq!(settings.lease_renewal_interval(), Duration::from_secs(200));
    }

    #[test]
    fn a_parallelism_of_zero_is_refused() {
        let settings = RunnerSettings {
            max_account_parallelism: 0,
            ..RunnerSettings::default()
        };
        assert!(settings.validate().is_err());
        assert!(RunnerSettings::default().validate().is_ok());
    }
}
