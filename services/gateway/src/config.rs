//! Configuration of the gateway: every variable it reads, read in [`Config::read`]
//! (alone and inside the all-in-one `cudly`); [`Config::new`] builds one from values for
//! tests.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use cudly_common::config::{ConfigError, ConfigResult, Env, Layout, SecretSource, defaults};
use cudly_common::grpc::{Caller, refuse_foreign_tokens};
use cudly_common::tls::GrpcTls;
use secrecy::{ExposeSecret, SecretString};

use crate::limits::PerMinute;
use crate::serve::ConnectionLimits;

/// Default time a request may take before the gateway answers 504.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest accepted request body (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default time a verified API key is trusted before it is looked up again.
pub const DEFAULT_API_KEY_CACHE_TTL: Duration = crate::key_cache::DEFAULT_TTL;
/// Shortest bootstrap admin key accepted, so a guessable key is refused at start-up.
pub const MIN_BOOTSTRAP_KEY_LEN: usize = 16;

/// The gRPC addresses of the backend services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendUrls {
    pub accounts: String,
    pub planner: String,
    pub executor: String,
    pub sweeper: String,
}

impl Default for BackendUrls {
    /// Returns the addresses the services listen on when run alone on one host.
    fn default() -> Self {
        Self::read(&Env::empty(), Layout::Standalone)
    }
}

impl BackendUrls {
    /// Reads `CUDLY_{ACCOUNTS,PLANNER,EXECUTOR,SWEEPER}_URL`, each defaulting to the
    /// standalone address of its service; inside `cudly` the stack wires them.
    pub fn read(env: &Env, layout: Layout) -> Self {
        Self {
            accounts: env.peer_url("accounts", layout),
            planner: env.peer_url("planner", layout),
            executor: env.peer_url("executor", layout),
            sweeper: env.peer_url("sweeper", layout),
        }
    }
}

/// Configuration of one gateway. Secrets are wrapped so `Debug` never prints them.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`CUDLY_GATEWAY_ADDR`); [`crate::App::from_listener`] ignores it.
    pub addr: SocketAddr,
    /// The gateway's Postgres (`CUDLY_GATEWAY_DATABASE_URL`, else `DATABASE_URL`); its
    /// tables live in the schema `gateway`.
    pub database_url: SecretString,
    /// Largest number of pooled database connections.
    pub max_db_connections: u32,
    /// The first admin key (`CUDLY_BOOTSTRAP_ADMIN_KEY`); it acts as the admin named
    /// `bootstrap`. Optional: without it only keys made through `/api/keys` work.
    pub bootstrap_admin_key: Option<SecretString>,
    /// The gateway's internal token for calls to the backends
    /// (`CUDLY_INTERNAL_TOKEN_GATEWAY`).
    pub internal_token: SecretString,
    /// The backends' gRPC addresses.
    pub backends: BackendUrls,
    /// Longest a request may take (`CUDLY_REQUEST_TIMEOUT`); also the deadline of each
    /// backend call.
    pub request_timeout: Duration,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Longest one readiness probe of a dependency may take.
    pub readiness_timeout: Duration,
    /// How often the dependencies are checked for `/health/readyz`
    /// (`CUDLY_HEALTH_INTERVAL`), which answers from the last check.
    pub health_interval: Duration,
    /// What a client address may do a minute: fail to authenticate
    /// (`CUDLY_AUTH_FAILURES_PER_MINUTE`; then it is locked out for a while), call the
    /// approval-token routes (`CUDLY_TOKEN_REQUESTS_PER_MINUTE`), and test credentials
    /// or discover an organization (`CUDLY_AWS_CHECKS_PER_MINUTE`).
    pub per_minute: PerMinute,
    /// Bounds on the connections clients hold open.
    pub connections: ConnectionLimits,
    /// Where `/metrics` is served (`CUDLY_GATEWAY_METRICS_ADDR`): its own listener, so
    /// an ingress in front of the API never exposes it.
    pub metrics_addr: SocketAddr,
    /// TLS of the calls to the backends (`CUDLY_GRPC_TLS_*`), when configured.
    pub grpc_tls: Option<GrpcTls>,
    /// How long a verified API key is trusted without looking it up again
    /// (`CUDLY_API_KEY_CACHE_TTL`; zero: every request looks its key up). Revoking a
    /// key or disabling the bootstrap key takes effect at once on the replica that did
    /// it, on the others within this time ([`crate::key_cache`]).
    pub api_key_cache_ttl: Duration,
}

/// Default of [`Config::per_minute`].
pub const DEFAULT_PER_MINUTE: PerMinute = PerMinute {
    failed_authentications: NonZeroU32::new(20).unwrap(),
    token_requests: NonZeroU32::new(60).unwrap(),
    aws_checks: NonZeroU32::new(10).unwrap(),
};

impl Config {
    /// Returns a configuration with the defaults and the given database and internal
    /// token; tests and the all-in-one binary adjust the public fields afterwards.
    pub fn new(database_url: SecretString, internal_token: SecretString) -> Self {
        Self {
            addr: defaults::GATEWAY_ADDR
                .parse()
                .expect("the default address parses"),
            database_url,
            max_db_connections: 10,
            bootstrap_admin_key: None,
            internal_token,
            backends: BackendUrls::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            readiness_timeout: Duration::from_secs(2),
            health_interval: defaults::HEALTH_INTERVAL,
            per_minute: DEFAULT_PER_MINUTE,
            connections: ConnectionLimits::default(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc_tls: None,
            api_key_cache_ttl: DEFAULT_API_KEY_CACHE_TTL,
        }
    }

    /// Returns the configuration with `key` as bootstrap admin key.
    pub fn with_bootstrap_admin_key(mut self, key: impl Into<String>) -> Self {
        self.bootstrap_admin_key = Some(SecretString::from(key.into()));
        self
    }

    /// Returns the configuration with other backend addresses.
    pub fn with_backends(mut self, backends: BackendUrls) -> Self {
        self.backends = backends;
        self
    }

    /// Reads the configuration. The internal token is required (a standalone gateway
    /// runs in production mode); the bootstrap key is optional.
    pub fn read(env: &Env, secrets: &impl SecretSource, layout: Layout) -> ConfigResult<Self> {
        refuse_foreign_tokens(Some(Caller::Gateway), secrets)?;
        let mut config = Self::new(
            env.database_url("gateway"),
            secrets.internal_token(Caller::Gateway)?,
        );
        config.addr = env.addr("CUDLY_GATEWAY_ADDR", defaults::GATEWAY_ADDR)?;
        let metrics_host = match layout {
            Layout::Standalone => "0.0.0.0",
            Layout::AllInOne => "127.0.0.1",
        };
        config.metrics_addr = env.addr(
            "CUDLY_GATEWAY_METRICS_ADDR",
            &format!("{metrics_host}:{}", defaults::GATEWAY_METRICS_PORT),
        )?;
        config.bootstrap_admin_key = secrets.bootstrap_admin_key();
        check_not_public_default(config.bootstrap_admin_key.as_ref(), env.is_dev_mode())?;
        config.backends = BackendUrls::read(env, layout);
        config.request_timeout = env.duration("CUDLY_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)?;
        config.health_interval =
            env.duration("CUDLY_HEALTH_INTERVAL", defaults::HEALTH_INTERVAL)?;
        config.grpc_tls = GrpcTls::read(env)?;
        config.api_key_cache_ttl =
            env.duration("CUDLY_API_KEY_CACHE_TTL", DEFAULT_API_KEY_CACHE_TTL)?;
        config.per_minute = PerMinute {
            failed_authentications: env.parse(
                "CUDLY_AUTH_FAILURES_PER_MINUTE",
                DEFAULT_PER_MINUTE.failed_authentications,
            )?,
            token_requests: env.parse(
                "CUDLY_TOKEN_REQUESTS_PER_MINUTE",
                DEFAULT_PER_MINUTE.token_requests,
            )?,
            aws_checks: env.parse("CUDLY_AWS_CHECKS_PER_MINUTE", DEFAULT_PER_MINUTE.aws_checks)?,
        };
        let connections = ConnectionLimits::default();
        config.connections = ConnectionLimits {
            header_read_timeout: env
                .duration("CUDLY_HEADER_READ_TIMEOUT", connections.header_read_timeout)?,
            max_connections: env.parse("CUDLY_MAX_CONNECTIONS", connections.max_connections)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that [`Config::new`] cannot: a usable timeout and a bootstrap
    /// key that is not trivially guessable. Errors never contain a secret.
    pub fn validate(&self) -> ConfigResult<()> {
        if self.request_timeout.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_REQUEST_TIMEOUT",
                "must be longer than zero",
            ));
        }
        if let Some(key) = &self.bootstrap_admin_key
            && key.expose_secret().trim().len() < MIN_BOOTSTRAP_KEY_LEN
        {
            return Err(ConfigError::new(
                "CUDLY_BOOTSTRAP_ADMIN_KEY",
                format!("must be at least {MIN_BOOTSTRAP_KEY_LEN} characters long"),
            ));
        }
        if self.internal_token.expose_secret().is_empty() {
            return Err(ConfigError::new(Caller::Gateway.token_var(), "must be set"));
        }
        if self.health_interval.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_HEALTH_INTERVAL",
                "must be positive",
            ));
        }
        if self.connections.header_read_timeout.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_HEADER_READ_TIMEOUT",
                "must be longer than zero",
            ));
        }
        if self.connections.max_connections == 0 {
            return Err(ConfigError::new(
                "CUDLY_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if self.body_limit == 0 {
            return Err(ConfigError::new("body_limit", "must be larger than zero"));
        }
        Ok(())
    }
}

/// How the compose file's public defaults begin (`${VAR:-dev-only-...}`).
const PUBLIC_DEFAULT_PREFIX: &str = "dev-only";

/// Refuses, outside dev mode, a bootstrap key that is the compose file's public
/// default: anyone who read the file would hold an admin key.
fn check_not_public_default(key: Option<&SecretString>, dev_mode: bool) -> ConfigResult<()> {
    match key {
        Some(key)
            if !dev_mode
                && key
                    .expose_secret()
                    .trim()
                    .starts_with(PUBLIC_DEFAULT_PREFIX) =>
        {
            Err(ConfigError::new(
                "CUDLY_BOOTSTRAP_ADMIN_KEY",
                "is the compose file's public dev-only default: set a key of your own \
                 outside dev mode",
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new(
            SecretString::from("postgres://u:pw@db/cudly"),
            SecretString::from("token"),
        )
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = config().with_bootstrap_admin_key("a-very-secret-bootstrap-key");
        let printed = format!("{config:?}");
        assert!(!printed.contains("pw@"));
        assert!(!printed.contains("a-very-secret-bootstrap-key"));
    }

    #[test]
    fn a_short_bootstrap_key_is_refused_without_echoing_it() {
        let error = config()
            .with_bootstrap_admin_key("short")
            .validate()
            .unwrap_err();
        assert_eq!(error.variable, "CUDLY_BOOTSTRAP_ADMIN_KEY");
        assert!(!error.to_string().contains("short"));
    }

    #[test]
    fn the_compose_default_key_is_refused_outside_dev_mode_only() {
        let public = SecretString::from("dev-only-bootstrap-admin-key-change-me");
        let error = check_not_public_default(Some(&public), false).unwrap_err();
        assert_eq!(error.variable, "CUDLY_BOOTSTRAP_ADMIN_KEY");
        assert!(!error.to_string().contains("change-me"));
        check_not_public_default(Some(&public), true).unwrap();
        let own = SecretString::from("a-key-of-our-own-0123456789");
        check_not_public_default(Some(&own), false).unwrap();
        check_not_public_default(None, false).unwrap();
    }

    #[test]
    fn the_api_key_cache_ttl_is_read_and_zero_turns_the_cache_off() {
        let read = |ttl: Option<&str>| {
            let mut pairs = vec![(Caller::Gateway.token_var(), "token".to_owned())];
            if let Some(ttl) = ttl {
                pairs.push(("CUDLY_API_KEY_CACHE_TTL".to_owned(), ttl.to_owned()));
            }
            let env = Env::from_pairs(pairs);
            Config::read(&env, &env, Layout::Standalone).map(|config| config.api_key_cache_ttl)
        };
        assert_eq!(read(None).unwrap(), DEFAULT_API_KEY_CACHE_TTL);
        assert_eq!(read(Some("0")).unwrap(), Duration::ZERO);
        assert_eq!(read(Some("1s 500ms")).unwrap(), Duration::from_millis(1500));
        assert_eq!(
            read(Some("soon")).unwrap_err().variable,
            "CUDLY_API_KEY_CACHE_TTL"
        );
    }

    #[test]
    fn the_defaults_are_valid() {
        config().validate().unwrap();
        assert_eq!(config().backends.executor, "http://127.0.0.1:50053");
    }
}
