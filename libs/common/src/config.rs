//! Configuration loading from the environment (ARCHITECTURE.md, Configuration names).
//!
//! Every service builds a typed config from these helpers at start-up and fails with a
//! message naming the variable; secrets stay wrapped in [`SecretString`] so that a
//! `Debug` print of a config never shows them.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

/// Default database of every service when neither its own URL nor `DATABASE_URL` is set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/cudly";
/// Default Redis used by the sweeper's locks.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// A configuration error: the variable and what is wrong with it, never its value when
/// the variable holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}

pub type ConfigResult<T> = Result<T, ConfigError>;

/// Returns the variable's value when it is set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Returns the variable as a secret when it is set and not empty.
pub fn secret_var(name: &str) -> Option<SecretString> {
    var(name).map(SecretString::from)
}

/// Parses a duration such as `30s`, `15m` or `7d`, or returns `default` when unset.
pub fn duration_var(name: &str, default: Duration) -> ConfigResult<Duration> {
    match var(name) {
        None => Ok(default),
        Some(text) => parse_duration(&text).map_err(|problem| {
            ConfigError::new(name, format!("{problem} (expected e.g. 30s, 15m, 7d)"))
        }),
    }
}

/// Parses a humantime duration (`30s`, `15m`, `7d`, `1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| error.to_string())
}

/// Parses the variable with `FromStr`, or returns `default` when unset.
pub fn parse_var<T>(name: &str, default: T) -> ConfigResult<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|error: T::Err| ConfigError::new(name, format!("invalid value: {error}"))),
    }
}

/// Parses a socket address variable, or returns `default`.
pub fn addr_var(name: &str, default: &str) -> ConfigResult<SocketAddr> {
    let text = var(name).unwrap_or_else(|| default.to_owned());
    text.parse()
        .map_err(|_| ConfigError::new(name, format!("not a socket address: {text}")))
}

/// Returns the database URL of `service`: `CUDLY_<SERVICE>_DATABASE_URL`, else
/// `DATABASE_URL`, else the local default.
pub fn database_url(service: &str) -> SecretString {
    let own = format!("CUDLY_{}_DATABASE_URL", service.to_ascii_uppercase());
    secret_var(&own)
        .or_else(|| secret_var("DATABASE_URL"))
        .unwrap_or_else(|| SecretString::from(DEFAULT_DATABASE_URL))
}

/// Returns `REDIS_URL` or the local default.
pub fn redis_url() -> SecretString {
    secret_var("REDIS_URL").unwrap_or_else(|| SecretString::from(DEFAULT_REDIS_URL))
}

/// Returns true unless `CUDLY_ENV=production`.
pub fn is_dev_mode() -> bool {
    !matches!(var("CUDLY_ENV").as_deref(), Some("production"))
}

/// The services of the system, in the spelling of their variables.
pub const SERVICES: [&str; 5] = ["accounts", "planner", "executor", "sweeper", "gateway"];

/// Every `CUDLY_*` variable the system reads. `*` stands for a service or task name.
const KNOWN: &[&str] = &[
    "CUDLY_ENV",
    "CUDLY_LOG_FORMAT",
    "CUDLY_*_DATABASE_URL",
    "CUDLY_*_ADDR",
    "CUDLY_*_METRICS_ADDR",
    "CUDLY_*_URL",
    "CUDLY_BOOTSTRAP_ADMIN_KEY",
    "CUDLY_INTERNAL_TOKEN_*",
    "CUDLY_CREDENTIAL_KEY",
    "CUDLY_CREDENTIAL_KEY_FILE",
    "CUDLY_CREDENTIAL_OLD_KEY",
    "CUDLY_CREDENTIAL_OLD_KEY_FILE",
    "CUDLY_MAX_ACCOUNT_PARALLELISM",
    "CUDLY_APPROVAL_TTL",
    "CUDLY_STRANDED_APPROVED_AFTER",
    "CUDLY_STRANDED_RUNNING_AFTER",
    "CUDLY_REDRIVE_MAX_ATTEMPTS",
    "CUDLY_SWEEP_INTERVAL",
    "CUDLY_SWEEP_INTERVAL_*",
    "CUDLY_LOCK_TTL",
    "CUDLY_LOCK_KEY_PREFIX",
    "CUDLY_GRPC_TLS_*",
    "CUDLY_DEV_DIR",
    "CUDLY_HEALTH_INTERVAL",
    "CUDLY_REQUEST_TIMEOUT",
    "CUDLY_AWS_CALL_TIMEOUT",
    "CUDLY_EXECUTOR_POLL_INTERVAL",
    "CUDLY_PURCHASE_SETTLE_MARGIN",
];

fn matches_pattern(name: &str, pattern: &str) -> bool {
    match pattern.split_once('*') {
        None => name == pattern,
        Some((prefix, suffix)) => {
            name.len() > prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
    }
}

/// Returns the names of set `CUDLY_*` variables the system does not know, so that a
/// typo such as `CUDLY_APROVAL_TTL` is reported at start-up instead of silently ignored.
pub fn unknown_cudly_vars() -> Vec<String> {
    let mut unknown: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("CUDLY_"))
        .filter(|name| !KNOWN.iter().any(|pattern| matches_pattern(name, pattern)))
        .collect();
    unknown.sort();
    unknown
}

/// Logs a warning for each unknown `CUDLY_*` variable.
pub fn warn_unknown_vars() {
    for name in unknown_cudly_vars() {
        tracing::warn!(variable = %name, "unknown configuration variable ignored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_documented_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn patterns_match_service_and_task_names() {
        assert!(matches_pattern(
            "CUDLY_ACCOUNTS_DATABASE_URL",
            "CUDLY_*_DATABASE_URL"
        ));
        assert!(matches_pattern(
            "CUDLY_SWEEP_INTERVAL_EXPIRE_PENDING",
            "CUDLY_SWEEP_INTERVAL_*"
        ));
        assert!(!matches_pattern("CUDLY_APROVAL_TTL", "CUDLY_APPROVAL_TTL"));
        assert!(!matches_pattern("CUDLY__URL", "CUDLY_*_URL"));
    }
}
