//! SDK configuration from explicit settings: region, an optional endpoint override
//! (tests and the sandbox), and either static (session) credentials or the default
//! provider chain. Clients built here never fall back to the default chain when
//! credentials are given.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{ConnectorBuilder, tls};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_types::SdkConfig;
use aws_types::region::Region;
use chrono::{DateTime, Utc};
use cudly_common::config::{ConfigError, ConfigResult, Env};
use secrecy::{ExposeSecret, SecretString};

/// Settings shared by every SDK client of a service.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Region used when a call names none (STS, Organizations).
    pub default_region: String,
    /// Endpoint override for every service (the sandbox). `None` keeps the SDK's own
    /// resolution, which honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`.
    pub endpoint_url: Option<String>,
    /// Longest one API call attempt may take.
    pub call_timeout: Duration,
    /// Attempts for calls that may be retried (look-ups, tagging, purchases carrying
    /// their own idempotency); purchases without idempotency are never retried by the SDK.
    pub max_attempts: u32,
    /// The HTTPS client every SDK client built from these settings shares (see
    /// [`https_client`]); clones of the settings share it too.
    pub http_client: SharedHttpClient,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            default_region: "us-east-1".to_owned(),
            endpoint_url: None,
            call_timeout: Duration::from_secs(30),
            max_attempts: 3,
            http_client: https_client(),
        }
    }
}

impl AwsSettings {
    /// Reads `AWS_REGION` (else `AWS_DEFAULT_REGION`, default us-east-1) and
    /// `CUDLY_AWS_CALL_TIMEOUT`; the endpoint overrides stay with the SDK's own
    /// environment handling.
    pub fn read(env: &Env) -> ConfigResult<Self> {
        let mut settings = Self::default();
        if let Some(region) = env
            .var("AWS_REGION")
            .or_else(|| env.var("AWS_DEFAULT_REGION"))
        {
            settings.default_region = region.trim().to_owned();
        }
        settings.call_timeout = env.duration("CUDLY_AWS_CALL_TIMEOUT", settings.call_timeout)?;
        if settings.call_timeout.is_zero() {
            return Err(ConfigError::new(
                "CUDLY_AWS_CALL_TIMEOUT",
                "must be longer than zero",
            ));
        }
        Ok(settings)
    }

    /// Returns the settings pointed at `endpoint` (a test sandbox).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint_url = Some(endpoint.into());
        self
    }

    fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(self.call_timeout)
            .build()
    }
}

/// Temporary session credentials, as the accounts service hands them to the executor.
#[derive(Clone)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
    pub expiration: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &"[redacted]")
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl SessionCredentials {
    fn to_sdk(&self) -> Credentials {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose_secret().to_owned(),
            self.session_token
                .as_ref()
                .map(|token| token.expose_secret().to_owned()),
            self.expiration.map(std::time::SystemTime::from),
            "cudly",
        )
    }
}

/// Returns an SDK configuration that uses exactly `credentials` in `region`.
pub fn config_with_credentials(
    settings: &AwsSettings,
    credentials: &SessionCredentials,
    region: &str,
) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials.to_sdk()),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .timeout_config(settings.timeouts())
        .sleep_impl(
            aws_smithy_async::rt::sleep::default_async_sleep().expect("tokio sleep is available"),
        )
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .http_client(settings.http_client.clone());
    if let Some(endpoint) = &settings.endpoint_url {
        builder = builder.endpoint_url(endpoint.clone());
    } else {
        // `SdkConfig::builder()` reads no environment: without this the standard
        // endpoint overrides would only apply to the ambient (default chain) config.
        builder = builder.service_config(EnvEndpointUrls);
    }
    builder.build()
}

/// Returns a new HTTPS client for the SDK clients of one service instance.
///
/// Without a shared one each SDK client (eight per account and region) builds its own:
/// its own TLS context (the system's root certificates parsed again) and its own
/// connection pool, so every account run would pay for new connections. Requests are
/// signed per SDK client, so sharing connections between accounts shares no
/// credentials. Same stack as the SDK's default (hyper 1, rustls with aws-lc, proxies
/// from the environment). One per settings value rather than one per process: a pooled
/// connection lives on the tokio runtime that opened it.
pub fn https_client() -> SharedHttpClient {
    let pooled = aws_smithy_http_client::Builder::new().build_with_connector_fn(
        |settings, runtime_components| {
            let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = runtime_components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        },
    );
    SharedHttpClient::new(BuiltOnFirstUse(pooled))
}

/// The pooled client without its eager check.
///
/// The SDK's hyper client builds a throwaway TLS connector, parsing every system root
/// certificate again, each time an SDK client is created with it
/// (`validate_base_client_config`, meant to load certificates at start-up). With one
/// shared client and SDK clients built per account, that was about a tenth of the
/// executor's CPU in the fan-out benchmark. The connectors it hands out are built once
/// per timeout setting and cached, so nothing is lost by skipping the check.
#[derive(Debug)]
struct BuiltOnFirstUse(SharedHttpClient);

impl HttpClient for BuiltOnFirstUse {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The standard endpoint overrides of the environment, for configurations built
/// without `aws_config`'s loader: `AWS_ENDPOINT_URL_<SERVICE ID>` (e.g.
/// `AWS_ENDPOINT_URL_STS`), else `AWS_ENDPOINT_URL`; none when
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`. (Profile-file `endpoint_url` keys are
/// honoured by [`ambient_config`] only.)
#[derive(Debug)]
struct EnvEndpointUrls;

impl aws_types::service_config::LoadServiceConfig for EnvEndpointUrls {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        endpoint_override(key.env(), key.service_id(), |name| std::env::var(name).ok())
    }
}

/// Returns the value of `<variable>_<SERVICE ID>` or else `<variable>`, as `lookup`
/// finds them; nothing when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true.
fn endpoint_override(
    variable: &str,
    service_id: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let non_empty = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    if non_empty("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    {
        return None;
    }
    let service = service_id.to_ascii_uppercase().replace(' ', "_");
    non_empty(&format!("{variable}_{service}")).or_else(|| non_empty(variable))
}

/// Returns an SDK configuration with the service's ambient credentials (the default
/// provider chain: environment, profile, web identity, container or instance role).
pub async fn ambient_config(settings: &AwsSettings, region: &str) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .timeout_config(settings.timeouts())
        .http_client(settings.http_client.clone());
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint.clone());
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_follow_the_sdk_environment_conventions() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        let both = env(&[
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_ENDPOINT_URL_STS", "http://sts"),
        ]);
        assert_eq!(
            endpoint_override("AWS_ENDPOINT_URL", "STS", both).as_deref(),
            Some("http://sts")
        );
        assert_eq!(
            endpoint_override("AWS_ENDPOINT_URL", "Organizations", both).as_deref(),
            Some("http://global")
        );
        let spaced = env(&[
            ("AWS_ENDPOINT_URL_SAVINGSPLANS", "http://sp"),
            ("AWS_ENDPOINT_URL_ELASTICACHE", ""),
        ]);
        assert_eq!(
            endpoint_override("AWS_ENDPOINT_URL", "savingsplans", spaced).as_deref(),
            Some("http://sp")
        );
        assert_eq!(
            endpoint_override("AWS_ENDPOINT_URL", "ElastiCache", spaced),
            None
        );
        let ignored = env(&[
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(endpoint_override("AWS_ENDPOINT_URL", "STS", ignored), None);
    }

    #[test]
    fn session_credentials_debug_shows_no_secret() {
        let credentials = SessionCredentials {
            access_key_id: "ASIAEXAMPLEKEY".to_owned(),
            secret_access_key: SecretString::from("very-secret-value"),
            session_token: Some(SecretString::from("session-token-value")),
            expiration: None,
        };
        let printed = format!("{credentials:?}");
        assert!(!printed.contains("ASIAEXAMPLEKEY"));
        assert!(!printed.contains("very-secret-value"));
        assert!(!printed.contains("session-token-value"));
    }

    #[test]
    fn settings_read_the_region_and_the_call_timeout() {
        let env = Env::from_pairs([
            ("AWS_REGION", "eu-west-3"),
            ("CUDLY_AWS_CALL_TIMEOUT", "250ms"),
        ]);
        let settings = AwsSettings::read(&env).unwrap();
        assert_eq!(settings.default_region, "eu-west-3");
        assert_eq!(settings.call_timeout, Duration::from_millis(250));
        let env = Env::from_pairs([("CUDLY_AWS_CALL_TIMEOUT", "soon")]);
        assert_eq!(
            AwsSettings::read(&env).unwrap_err().variable,
            "CUDLY_AWS_CALL_TIMEOUT"
        );
    }
}
