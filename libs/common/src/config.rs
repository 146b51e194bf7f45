//! Configuration from the environment (docs/design/ARCHITECTURE.md "Configuration").
//!
//! Each service reads its own variables in one function that takes an [`Env`], and the
//! all-in-one `cudly` calls those same readers. [`Env`] remembers every variable asked
//! for, so a binary reports each `CUDLY_*` variable that nothing read (a typo such as
//! `CUDLY_APROVAL_TTL`, or a variable another service reads) instead of ignoring it
//! silently. [`defaults`] is the one table of the ports, timeouts and intervals several
//! services share. Secrets stay wrapped in [`SecretString`] so that a `Debug` print of a
//! configuration never shows them, and errors name the variable, never a secret value.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::SecretString;

use crate::grpc::{Caller, TokenDigest};
use crate::grpc_limits::GrpcLimits;
use crate::tls::GrpcTls;

/// Default database of every service when neither its own URL nor `DATABASE_URL` is set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/cudly";
/// Default Redis used by the sweeper's locks.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// The defaults several services share: one table, so two services can never disagree
/// on a port or a timeout.
pub mod defaults {
    use std::time::Duration;

    /// How often a service re-checks its dependencies (`CUDLY_HEALTH_INTERVAL`).
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
    /// Deadline of one internal gRPC call (`CUDLY_INTERNAL_CALL_TIMEOUT`).
    pub const INTERNAL_CALL_TIMEOUT: Duration = Duration::from_secs(30);
    /// Deadline a gRPC server puts on a request (`CUDLY_GRPC_REQUEST_TIMEOUT`): past
    /// every caller's own deadline, so it ends only work nobody waits for.
    pub const GRPC_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// Requests a gRPC server handles at once (`CUDLY_GRPC_MAX_CONCURRENT_REQUESTS`).
    pub const GRPC_MAX_CONCURRENT_REQUESTS: usize = 512;
    /// Deadline of a recommendations refresh and of the Cost Explorer collections it
    /// makes (gateway, sweeper and planner): an organization's answer may take many
    /// pages, each a billed, throttled call.
    pub const RECOMMENDATION_REFRESH_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    /// An approved root untouched this long is stranded (`CUDLY_STRANDED_APPROVED_AFTER`,
    /// executor and sweeper).
    pub const STRANDED_APPROVED_AFTER: Duration = Duration::from_secs(15 * 60);
    /// A running root whose lease is this old is stranded
    /// (`CUDLY_STRANDED_RUNNING_AFTER`, executor and sweeper).
    pub const STRANDED_RUNNING_AFTER: Duration = Duration::from_secs(10 * 60);
    /// The gateway's listen address when run alone (`CUDLY_GATEWAY_ADDR`).
    pub const GATEWAY_ADDR: &str = "127.0.0.1:8080";
    /// The port of the gateway's `/metrics` listener (`CUDLY_GATEWAY_METRICS_ADDR`): on
    /// every interface when run alone, on loopback inside `cudly`, where it serves the
    /// figures of all five services.
    pub const GATEWAY_METRICS_PORT: u16 = 9095;

    /// The ports a back-end service listens on when run alone: gRPC and `/metrics`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Ports {
        pub service: &'static str,
        pub grpc: u16,
        pub metrics: u16,
    }

    #[rustfmt::skip]
    pub const PORTS: [Ports; 4] = [
        Ports { service: "accounts", grpc: 50051, metrics: 9091 },
        Ports { service: "planner", grpc: 50052, metrics: 9092 },
        Ports { service: "executor", grpc: 50053, metrics: 9093 },
        Ports { service: "sweeper", grpc: 50054, metrics: 9094 },
    ];

    /// Returns the standalone ports of `service` (accounts, planner, executor, sweeper).
    pub fn ports(service: &str) -> Ports {
        PORTS
            .into_iter()
            .find(|ports| ports.service == service)
            .unwrap_or_else(|| panic!("{service} is not a back-end service"))
    }
}

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

/// Where a service listens and finds its peers: alone (its documented ports on every
/// interface, peers from `CUDLY_<PEER>_URL`) or inside the all-in-one `cudly` (loopback,
/// any free port, peers wired by the stack once every listener is bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Standalone,
    AllInOne,
}

/// The environment a configuration is read from: a snapshot of the process environment,
/// or given pairs (tests). Every variable asked for is remembered.
#[derive(Debug, Default)]
pub struct Env {
    values: BTreeMap<String, String>,
    asked: Mutex<BTreeSet<String>>,
}

impl Env {
    /// Returns a snapshot of the process environment.
    pub fn process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// Returns an environment holding only `pairs`.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            asked: Mutex::default(),
        }
    }

    /// Returns an empty environment: every reader gives its defaults.
    pub fn empty() -> Self {
        Self::default()
    }

    fn asked(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the variable's value when it is set and not empty.
    pub fn var(&self, name: &str) -> Option<String> {
        self.asked().insert(name.to_owned());
        self.values
            .get(name)
            .filter(|value| !value.trim().is_empty())
            .cloned()
    }

    /// Returns the variable as a secret when it is set and not empty.
    pub fn secret(&self, name: &str) -> Option<SecretString> {
        self.var(name).map(SecretString::from)
    }

    /// Returns the secret given inline in `name` or in the file `<name>_FILE` (trimmed);
    /// both set is an error, neither is `None`.
    pub fn secret_or_file(&self, name: &str) -> ConfigResult<Option<SecretString>> {
        let file_variable = format!("{name}_FILE");
        match (self.secret(name), self.var(&file_variable)) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                format!("{name} and {file_variable}"),
                "set only one of them",
            )),
            (Some(secret), None) => Ok(Some(secret)),
            (None, Some(path)) => read_secret_file(Path::new(&path))
                .map(Some)
                .map_err(|problem| ConfigError::new(file_variable, problem)),
            (None, None) => Ok(None),
        }
    }

    /// Parses a duration such as `30s`, `15m` or `7d`, or returns `default` when unset.
    pub fn duration(&self, name: &str, default: Duration) -> ConfigResult<Duration> {
        match self.var(name) {
            None => Ok(default),
            Some(text) => parse_duration(&text).map_err(|problem| {
                ConfigError::new(name, format!("{problem} (expected e.g. 30s, 15m, 7d)"))
            }),
        }
    }

    /// Parses the variable with `FromStr`, or returns `default` when unset.
    pub fn parse<T>(&self, name: &str, default: T) -> ConfigResult<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.var(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map_err(|error: T::Err| ConfigError::new(name, format!("invalid value: {error}"))),
        }
    }

    /// Parses a socket address variable, or returns `default`.
    pub fn addr(&self, name: &str, default: &str) -> ConfigResult<SocketAddr> {
        let text = self.var(name).unwrap_or_else(|| default.to_owned());
        text.trim()
            .parse()
            .map_err(|_| ConfigError::new(name, format!("not a socket address: {text}")))
    }

    /// Returns the gRPC listen address of `service` (`CUDLY_<SERVICE>_ADDR`): by default
    /// its documented port on every interface when alone, any free loopback port inside
    /// `cudly`.
    pub fn listen_addr(&self, service: &str, layout: Layout) -> ConfigResult<SocketAddr> {
        let default = match layout {
            Layout::Standalone => format!("0.0.0.0:{}", defaults::ports(service).grpc),
            Layout::AllInOne => "127.0.0.1:0".to_owned(),
        };
        self.addr(&format!("CUDLY_{}_ADDR", upper(service)), &default)
    }

    /// Returns where to reach the gRPC service `service` (`CUDLY_<SERVICE>_URL`, by
    /// default its documented port on this host). Inside `cudly` the stack wires peers
    /// itself and nothing is read: an empty URL until then.
    pub fn peer_url(&self, service: &str, layout: Layout) -> String {
        match layout {
            Layout::AllInOne => String::new(),
            Layout::Standalone => self
                .var(&format!("CUDLY_{}_URL", upper(service)))
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", defaults::ports(service).grpc)),
        }
    }

    /// Returns the database URL of `service`: `CUDLY_<SERVICE>_DATABASE_URL`, else
    /// `DATABASE_URL`, else the local default.
    pub fn database_url(&self, service: &str) -> SecretString {
        self.secret(&format!("CUDLY_{}_DATABASE_URL", upper(service)))
            .or_else(|| self.secret("DATABASE_URL"))
            .unwrap_or_else(|| SecretString::from(DEFAULT_DATABASE_URL))
    }

    /// Returns `REDIS_URL` or the local default.
    pub fn redis_url(&self) -> SecretString {
        self.secret("REDIS_URL")
            .unwrap_or_else(|| SecretString::from(DEFAULT_REDIS_URL))
    }

    /// Returns true unless `CUDLY_ENV=production`.
    pub fn is_dev_mode(&self) -> bool {
        !matches!(self.var("CUDLY_ENV").as_deref(), Some("production"))
    }

    /// Returns the set `CUDLY_*` variables that no reader asked for, sorted.
    /// `read_elsewhere` names variables read outside [`Env`] (the log format, read by
    /// the telemetry set-up before any configuration).
    pub fn unused_cudly_vars(&self, read_elsewhere: &[&str]) -> Vec<String> {
        let asked = self.asked();
        self.values
            .keys()
            .filter(|name| name.starts_with("CUDLY_"))
            .filter(|name| !asked.contains(*name) && !read_elsewhere.contains(&name.as_str()))
            .cloned()
            .collect()
    }

    /// Logs a warning for each set `CUDLY_*` variable that nothing read. Call it once
    /// every reader of the binary has run.
    pub fn report_unused_vars(&self) {
        for name in self.unused_cudly_vars(cudly_telemetry::VARIABLES) {
            tracing::warn!(variable = %name, "configuration variable not used by this binary");
        }
    }
}

fn upper(service: &str) -> String {
    service.to_ascii_uppercase()
}

fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    std::fs::read_to_string(path)
        .map(|text| SecretString::from(text.trim().to_owned()))
        .map_err(|error| format!("cannot read {}: {}", path.display(), error.kind()))
}

/// Parses a humantime duration (`30s`, `15m`, `7d`, `1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| error.to_string())
}

/// Settings every gRPC service reads the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSettings {
    /// How often dependencies are re-checked (`CUDLY_HEALTH_INTERVAL`).
    pub health_interval: Duration,
    /// Deadline of each call to another service (`CUDLY_INTERNAL_CALL_TIMEOUT`).
    pub internal_call_timeout: Duration,
    /// What the service's gRPC server takes on at once, and for how long.
    pub grpc_limits: GrpcLimits,
    /// Whether the server answers gRPC reflection (`CUDLY_GRPC_REFLECTION`; by default
    /// in dev mode only: it lists every RPC to whoever can connect).
    pub grpc_reflection: bool,
    /// TLS of the gRPC server and clients (`CUDLY_GRPC_TLS_*`), when configured.
    pub grpc_tls: Option<GrpcTls>,
}

impl Default for CommonSettings {
    fn default() -> Self {
        Self {
            health_interval: defaults::HEALTH_INTERVAL,
            internal_call_timeout: defaults::INTERNAL_CALL_TIMEOUT,
            grpc_limits: GrpcLimits::default(),
            grpc_reflection: false,
            grpc_tls: None,
        }
    }
}

impl CommonSettings {
    /// Reads the shared settings over their defaults.
    pub fn read(env: &Env) -> ConfigResult<Self> {
        let settings = Self {
            health_interval: env.duration("CUDLY_HEALTH_INTERVAL", defaults::HEALTH_INTERVAL)?,
            internal_call_timeout: env.duration(
                "CUDLY_INTERNAL_CALL_TIMEOUT",
                defaults::INTERNAL_CALL_TIMEOUT,
            )?,
            grpc_limits: GrpcLimits::read(env)?,
            grpc_reflection: env.parse("CUDLY_GRPC_REFLECTION", env.is_dev_mode())?,
            grpc_tls: GrpcTls::read(env)?,
        };
        if settings.health_interval.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_HEALTH_INTERVAL",
                "must be positive",
            ));
        }
        if settings.internal_call_timeout.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_INTERNAL_CALL_TIMEOUT",
                "must be longer than zero",
            ));
        }
        Ok(settings)
    }
}

/// Where a service's secrets come from: the environment (a service binary runs in
/// production mode and requires them), or the all-in-one `cudly`, which in dev mode
/// generates whatever is missing.
pub trait SecretSource {
    /// Returns the internal token of `caller`: read by that caller only.
    fn internal_token(&self, caller: Caller) -> ConfigResult<SecretString>;
    /// Returns the digest of `caller`'s token: read by the services it calls.
    fn internal_token_digest(&self, caller: Caller) -> ConfigResult<TokenDigest>;
    /// Returns the variables holding the token of a caller other than `own`: a service
    /// given one could pass for that caller.
    fn foreign_token_vars(&self, own: Option<Caller>) -> Vec<String>;
    /// Returns the credential key as 64 hex characters (accounts).
    fn credential_key(&self) -> ConfigResult<SecretString>;
    /// Returns the bootstrap admin key, if there is one (gateway).
    fn bootstrap_admin_key(&self) -> Option<SecretString>;
    /// Returns the key of notification channels and the outbox, 64 hex characters
    /// (executor); none: notifications are off.
    fn notify_key(&self) -> ConfigResult<Option<SecretString>>;
}

impl SecretSource for Env {
    fn internal_token(&self, caller: Caller) -> ConfigResult<SecretString> {
        self.secret(&caller.token_var())
            .ok_or_else(|| ConfigError::new(caller.token_var(), "must be set"))
    }

    fn internal_token_digest(&self, caller: Caller) -> ConfigResult<TokenDigest> {
        let variable = caller.digest_var();
        let text = self.var(&variable).ok_or_else(|| {
            ConfigError::new(
                &variable,
                format!(
                    "must be set: the SHA-256 of the {} token, 64 hex characters \
                     (printf %s \"$TOKEN\" | sha256sum)",
                    caller.name()
                ),
            )
        })?;
        TokenDigest::parse_hex(&text)
            .ok_or_else(|| ConfigError::new(variable, "must be 64 hex characters (a SHA-256)"))
    }

    fn foreign_token_vars(&self, own: Option<Caller>) -> Vec<String> {
        Caller::ALL
            .into_iter()
            .filter(|caller| Some(*caller) != own)
            .map(Caller::token_var)
            .filter(|variable| self.var(variable).is_some())
            .collect()
    }

    fn credential_key(&self) -> ConfigResult<SecretString> {
        self.secret_or_file("CUDLY_CREDENTIAL_KEY")?.ok_or_else(|| {
            ConfigError::new(
                "CUDLY_CREDENTIAL_KEY",
                "CUDLY_CREDENTIAL_KEY or CUDLY_CREDENTIAL_KEY_FILE must be set",
            )
        })
    }

    fn bootstrap_admin_key(&self) -> Option<SecretString> {
        self.secret("CUDLY_BOOTSTRAP_ADMIN_KEY")
    }

    fn notify_key(&self) -> ConfigResult<Option<SecretString>> {
        self.secret_or_file("CUDLY_NOTIFY_KEY")
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

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
    fn a_variable_nothing_read_is_reported_and_one_read_is_not() {
        let env = Env::from_pairs([
            ("CUDLY_APPROVAL_TTL", "1d"),
            ("CUDLY_APROVAL_TTL", "1d"),
            ("CUDLY_LOG_FORMAT", "json"),
            ("HOME", "/root"),
        ]);
        env.duration("CUDLY_APPROVAL_TTL", Duration::ZERO).unwrap();
        assert_eq!(
            env.unused_cudly_vars(&["CUDLY_LOG_FORMAT"]),
            ["CUDLY_APROVAL_TTL"]
        );
    }

    #[test]
    fn an_empty_value_counts_as_unset() {
        let env = Env::from_pairs([("CUDLY_HEALTH_INTERVAL", " "), ("CUDLY_ENV", "production")]);
        assert_eq!(
            CommonSettings::read(&env).unwrap(),
            CommonSettings::default()
        );
        // Reflection lists every RPC: on by default in dev mode only.
        assert!(CommonSettings::read(&Env::empty()).unwrap().grpc_reflection);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("CUDLY_INTERNAL_CALL_TIMEOUT", "soon")]);
        let error = CommonSettings::read(&env).unwrap_err();
        assert_eq!(error.variable, "CUDLY_INTERNAL_CALL_TIMEOUT");
    }

    #[test]
    fn listen_addresses_and_peers_follow_the_layout() {
        let env = Env::from_pairs([("CUDLY_EXECUTOR_URL", "http://executor:50053")]);
        assert_eq!(
            env.listen_addr("planner", Layout::Standalone).unwrap(),
            "0.0.0.0:50052".parse().unwrap()
        );
        assert_eq!(
            env.listen_addr("planner", Layout::AllInOne).unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            env.peer_url("executor", Layout::Standalone),
            "http://executor:50053"
        );
        assert_eq!(
            env.peer_url("accounts", Layout::Standalone),
            "http://127.0.0.1:50051"
        );
        // Inside cudly the stack wires peers; a URL set anyway is not read, so it is
        // reported as unused.
        let env = Env::from_pairs([("CUDLY_EXECUTOR_URL", "http://executor:50053")]);
        assert_eq!(env.peer_url("executor", Layout::AllInOne), "");
        assert_eq!(env.unused_cudly_vars(&[]), ["CUDLY_EXECUTOR_URL"]);
    }

    #[test]
    fn a_secret_comes_inline_or_from_a_file_never_both() {
        let dir = std::env::temp_dir().join(format!("cudly-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.display().to_string();
        let env = Env::from_pairs([("CUDLY_CREDENTIAL_KEY_FILE", path.as_str())]);
        assert_eq!(env.credential_key().unwrap().expose_secret(), "from-file");
        let both = Env::from_pairs([
            ("CUDLY_CREDENTIAL_KEY", "inline"),
            ("CUDLY_CREDENTIAL_KEY_FILE", path.as_str()),
        ]);
        assert!(both.credential_key().is_err());
        assert!(Env::empty().credential_key().is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
