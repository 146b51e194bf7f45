//! Configuration of the executor service: every variable it reads, read in
//! [`Config::read`] (alone and inside the all-in-one `cudly`).

use std::net::SocketAddr;
use std::time::Duration;

use cudly_aws::sdk::AwsSettings;
use cudly_common::config::{
    CommonSettings, ConfigError, ConfigResult, Env, Layout, SecretSource, defaults,
};
use cudly_common::grpc::{Caller, InternalAuth};
use secrecy::SecretString;

use cudly_notify::{NotifyConfig, Url};

use crate::domain::limits::GuardrailDefaults;

/// The callers this service accepts (docs/design/ARCHITECTURE.md "Who calls whom").
pub const ACCEPTED_CALLERS: &[Caller] = &[Caller::Gateway, Caller::Planner, Caller::Sweeper];

#[derive(Clone)]
pub struct Config {
    /// gRPC listen address (`CUDLY_EXECUTOR_ADDR`).
    pub addr: SocketAddr,
    /// Database URL (`CUDLY_EXECUTOR_DATABASE_URL`, else `DATABASE_URL`).
    pub database_url: SecretString,
    /// Tokens of the accepted callers (`CUDLY_INTERNAL_TOKEN_<CALLER>`).
    pub auth: InternalAuth,
    /// The accounts service (`CUDLY_ACCOUNTS_URL`), for ResolveCredentials.
    pub accounts_url: String,
    /// The planner service (`CUDLY_PLANNER_URL`), for CompletePlanStep.
    pub planner_url: String,
    /// This service's own internal token (`CUDLY_INTERNAL_TOKEN_EXECUTOR`).
    pub internal_token: SecretString,
    /// Health interval and the deadline of each call to accounts or planner.
    pub common: CommonSettings,
    /// AWS SDK settings (`AWS_REGION`, `CUDLY_AWS_CALL_TIMEOUT`, endpoint overrides).
    pub aws: AwsSettings,
    /// How runs are driven.
    pub runner: RunnerSettings,
    /// Notification channels, the outbox and its dispatcher (`CUDLY_NOTIFY_*`).
    pub notify: NotifyConfig,
    /// Where people reach the gateway (`CUDLY_PUBLIC_URL`): the approval page's links
    /// in notifications.
    pub public_url: Option<Url>,
}

impl Config {
    /// Reads the configuration; fails naming the first missing or invalid variable.
    pub fn read(env: &Env, secrets: &impl SecretSource, layout: Layout) -> ConfigResult<Self> {
        let notify = NotifyConfig::read(env, secrets.notify_key()?)?;
        let public_url = read_public_url(env, layout, notify.key.is_some())?;
        Ok(Self {
            addr: env.listen_addr("executor", layout)?,
            database_url: env.database_url("executor"),
            auth: InternalAuth::from_source(Some(Caller::Executor), ACCEPTED_CALLERS, secrets)?,
            accounts_url: env.peer_url("accounts", layout),
            planner_url: env.peer_url("planner", layout),
            internal_token: secrets.internal_token(Caller::Executor)?,
            common: CommonSettings::read(env)?,
            aws: AwsSettings::read(env)?,
            runner: RunnerSettings::read(env)?,
            notify,
            public_url,
        })
    }
}

/// Reads `CUDLY_PUBLIC_URL`, the gateway as people reach it, e.g.
/// `https://cudly.example.com`. Unset, `cudly` uses the address its gateway bound and
/// a lone executor in dev mode the gateway's default address; a lone executor in
/// production needs it when notifications are on, since their links point there.
fn read_public_url(env: &Env, layout: Layout, notifications_on: bool) -> ConfigResult<Option<Url>> {
    const NAME: &str = "CUDLY_PUBLIC_URL";
    let text = match env.var(NAME) {
        Some(text) => text,
        None if layout == Layout::AllInOne => return Ok(None),
        None if env.is_dev_mode() => format!(
            "http://{}",
            env.var("CUDLY_GATEWAY_ADDR")
                .unwrap_or_else(|| defaults::GATEWAY_ADDR.to_owned())
        ),
        None if notifications_on => {
            return Err(ConfigError::new(
                NAME,
                "must be set when CUDLY_NOTIFY_KEY is: notifications link to the approval page there",
            ));
        }
        None => return Ok(None),
    };
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(Some(url))
        }
        _ => Err(ConfigError::new(
            NAME,
            "must be an http(s) URL, e.g. https://cudly.example.com",
        )),
    }
}

/// Connections of the executor's pool for statements, at most (one per account run up
/// to this), besides the purchase locks' ([`RunnerSettings::database_connections`]).
const STATEMENT_CONNECTIONS: usize = 20;
/// Connections kept besides those (polls, lease renewals, reports).
const SPARE_CONNECTIONS: usize = 10;

/// Settings of the runner: fan-out bound, approval lifetime, lease timing, polling.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Concurrent account runs across all executions (`CUDLY_MAX_ACCOUNT_PARALLELISM`).
    pub max_account_parallelism: usize,
    /// Concurrent items of one account run (`CUDLY_MAX_ITEM_PARALLELISM`); items that
    /// share a purchase lock still go one at a time.
    pub max_item_parallelism: usize,
    /// Purchase calls in flight across this process (`CUDLY_MAX_PURCHASE_CALLS`), so that
    /// raising either parallelism never multiplies into unbounded connections.
    pub max_purchase_calls: usize,
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
    /// Tests only: a stall of the sending process between recording a run's first send
    /// and dispatching it (a GC pause, a frozen VM). Zero in production; no variable.
    pub stall_before_first_send: Duration,
    /// Tests only: how far this process's clock is off the database's (a drifted host
    /// clock). Zero in production; no variable.
    pub process_clock_offset: chrono::TimeDelta,
    /// What the guardrails are where an admin set nothing (`CUDLY_PRICE_TOLERANCE`,
    /// and approvers must differ outside dev mode).
    pub guardrail_defaults: GuardrailDefaults,
    /// Whether an auto-approved plan run is refused while no window limit is set: on in
    /// production mode, off in dev mode.
    pub auto_purchase_needs_window_limit: bool,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            max_account_parallelism: 20,
            max_item_parallelism: 4,
            max_purchase_calls: 64,
            approval_ttl: Duration::from_secs(7 * 86_400),
            stranded_running_after: defaults::STRANDED_RUNNING_AFTER,
            stranded_approved_after: defaults::STRANDED_APPROVED_AFTER,
            poll_interval: Duration::from_secs(5),
            settle_margin: Duration::from_secs(30),
            stall_before_first_send: Duration::ZERO,
            process_clock_offset: chrono::TimeDelta::zero(),
            guardrail_defaults: GuardrailDefaults::default(),
            auto_purchase_needs_window_limit: false,
        }
    }
}

impl RunnerSettings {
    /// Returns this process's clock (what a commitment's start is compared with, since
    /// SigV4 bounds AWS's clock by the sender's). Whatever is compared with a database
    /// timestamp uses the database's clock instead ([`crate::repo::database_now`]).
    pub fn process_now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.process_clock_offset
    }

    /// Returns how often the root lease is renewed: a third of the staleness threshold.
    pub fn lease_renewal_interval(&self) -> Duration {
        (self.stranded_running_after / 3).max(Duration::from_millis(100))
    }

    /// Returns how many purchase locks (EC2, Redshift) the process may hold at once,
    /// each on its own connection: one per concurrent account run, as when an account's
    /// items went one at a time, and never more than the purchases in flight.
    pub fn purchase_lock_slots(&self) -> usize {
        self.max_account_parallelism.min(self.max_purchase_calls)
    }

    /// Returns the size of the executor's connection pool: the lock slots, plus
    /// connections for statements. Statements are short, so their share stays small
    /// however wide the fan-out (waiting for one is queueing, not failure), and the
    /// pool never grows with the item parallelism: a Postgres shared by every service
    /// and replica has room for it.
    pub fn database_connections(&self) -> u32 {
        let statements =
            self.max_account_parallelism.min(STATEMENT_CONNECTIONS) + SPARE_CONNECTIONS;
        u32::try_from(self.purchase_lock_slots() + statements).unwrap_or(u32::MAX / 2)
    }

    /// Reads the runner settings over their defaults.
    pub fn read(env: &Env) -> ConfigResult<Self> {
        let defaults = Self::default();
        let settings = Self {
            max_account_parallelism: env.parse(
                "CUDLY_MAX_ACCOUNT_PARALLELISM",
                defaults.max_account_parallelism,
            )?,
            max_item_parallelism: env
                .parse("CUDLY_MAX_ITEM_PARALLELISM", defaults.max_item_parallelism)?,
            max_purchase_calls: env
                .parse("CUDLY_MAX_PURCHASE_CALLS", defaults.max_purchase_calls)?,
            approval_ttl: env.duration("CUDLY_APPROVAL_TTL", defaults.approval_ttl)?,
            stranded_running_after: env.duration(
                "CUDLY_STRANDED_RUNNING_AFTER",
                defaults.stranded_running_after,
            )?,
            stranded_approved_after: env.duration(
                "CUDLY_STRANDED_APPROVED_AFTER",
                defaults.stranded_approved_after,
            )?,
            poll_interval: env.duration("CUDLY_EXECUTOR_POLL_INTERVAL", defaults.poll_interval)?,
            settle_margin: env.duration("CUDLY_PURCHASE_SETTLE_MARGIN", defaults.settle_margin)?,
            guardrail_defaults: GuardrailDefaults {
                require_different_approver: !env.is_dev_mode(),
                price_tolerance_percent: read_tolerance(env)?,
            },
            auto_purchase_needs_window_limit: !env.is_dev_mode(),
            ..defaults
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Fails naming the first setting out of range.
    pub fn validate(&self) -> ConfigResult<()> {
        for (name, bound) in [
            (
                "CUDLY_MAX_ACCOUNT_PARALLELISM",
                self.max_account_parallelism,
            ),
            ("CUDLY_MAX_ITEM_PARALLELISM", self.max_item_parallelism),
            ("CUDLY_MAX_PURCHASE_CALLS", self.max_purchase_calls),
        ] {
            if bound == 0 {
                return Err(ConfigError::new(name, "must be at least 1"));
            }
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

/// Reads `CUDLY_PRICE_TOLERANCE`, a percentage (`1`, `1%` or `0.5 %`), default 1 %.
fn read_tolerance(env: &Env) -> ConfigResult<f64> {
    const NAME: &str = "CUDLY_PRICE_TOLERANCE";
    let Some(text) = env.var(NAME) else {
        return Ok(GuardrailDefaults::default().price_tolerance_percent);
    };
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(percent) if percent.is_finite() && (0.0..=100.0).contains(&percent) => Ok(percent),
        _ => Err(ConfigError::new(
            NAME,
            "must be a percentage from 0 to 100, e.g. 1 or 1%",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_defaults_in_dev_mode_and_is_needed_in_production_with_notifications() {
        let alone = Layout::Standalone;
        let dev = read_public_url(&Env::empty(), alone, true)
            .unwrap()
            .unwrap();
        assert_eq!(dev.as_str(), "http://127.0.0.1:8080/");
        let production = Env::from_pairs([("CUDLY_ENV", "production")]);
        assert_eq!(read_public_url(&production, alone, false).unwrap(), None);
        assert_eq!(
            read_public_url(&production, alone, true)
                .unwrap_err()
                .variable,
            "CUDLY_PUBLIC_URL"
        );
        // Inside cudly the stack fills in its gateway's address.
        assert_eq!(
            read_public_url(&production, Layout::AllInOne, true).unwrap(),
            None
        );
        let bad = Env::from_pairs([("CUDLY_PUBLIC_URL", "ftp://cudly")]);
        assert!(read_public_url(&bad, alone, true).is_err());
        let set = Env::from_pairs([
            ("CUDLY_ENV", "production"),
            ("CUDLY_PUBLIC_URL", "https://cudly.example.com/base"),
        ]);
        assert_eq!(
            read_public_url(&set, alone, true)
                .unwrap()
                .unwrap()
                .as_str(),
            "https://cudly.example.com/base"
        );
    }

    #[test]
    fn the_lease_is_renewed_every_third_of_the_staleness_threshold() {
        let settings = RunnerSettings::default();
        assert_eq!(settings.lease_renewal_interval(), Duration::from_secs(200));
    }

    #[test]
    fn the_pool_holds_the_lock_slots_and_a_bounded_share_for_statements() {
        let settings = RunnerSettings::default();
        assert_eq!(settings.purchase_lock_slots(), 20);
        assert_eq!(settings.database_connections(), 50);
        let wide = RunnerSettings {
            max_account_parallelism: 200,
            max_item_parallelism: 8,
            max_purchase_calls: 16,
            ..RunnerSettings::default()
        };
        assert_eq!(wide.purchase_lock_slots(), 16);
        assert_eq!(wide.database_connections(), 46);
    }

    #[test]
    fn a_bound_of_zero_is_refused() {
        let zeroed = [
            RunnerSettings {
                max_account_parallelism: 0,
                ..RunnerSettings::default()
            },
            RunnerSettings {
                max_item_parallelism: 0,
                ..RunnerSettings::default()
            },
            RunnerSettings {
                max_purchase_calls: 0,
                ..RunnerSettings::default()
            },
        ];
        for settings in zeroed {
            assert!(settings.validate().is_err(), "{settings:?}");
        }
        assert!(RunnerSettings::default().validate().is_ok());
    }
}
