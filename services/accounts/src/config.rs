//! Configuration of the accounts service, read from the environment at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use cudly_common::config::{self, ConfigError, ConfigResult};
use cudly_common::grpc::{Caller, InternalAuth};
use secrecy::SecretString;

pub use crate::crypto::{CredentialKey, CredentialKeys};
pub use cudly_aws::sdk::{AwsSettings, SessionCredentials};

/// The callers this service accepts (ARCHITECTURE.md, who calls whom).
pub const ACCEPTED_CALLERS: &[Caller] = &[Caller::Gateway, Caller::Planner, Caller::Executor];

#[derive(Clone)]
pub struct Config {
    /// gRPC listen address (`CUDLY_ACCOUNTS_ADDR`).
    pub addr: SocketAddr,
    /// Database URL (`CUDLY_ACCOUNTS_DATABASE_URL`, else `DATABASE_URL`).
    pub database_url: SecretString,
    /// Tokens of the accepted callers (`CUDLY_INTERNAL_TOKEN_<CALLER>`).
    pub auth: InternalAuth,
    /// How often dependencies are checked for health.
    pub health_interval: Duration,
    /// The key credentials are encrypted with (`CUDLY_CREDENTIAL_KEY` or
    /// `CUDLY_CREDENTIAL_KEY_FILE`) and, during a rotation, the previous one
    /// (`CUDLY_CREDENTIAL_OLD_KEY` or `CUDLY_CREDENTIAL_OLD_KEY_FILE`).
    pub credential_keys: CredentialKeys,
    /// Region, endpoint override and timeouts of AWS calls (`AWS_REGION`,
    /// `CUDLY_AWS_CALL_TIMEOUT`; `AWS_ENDPOINT_URL[_<SERVICE>]` apply through the SDK).
    pub aws: AwsSettings,
    /// The service's own credentials for AssumeRole (role_arn mode). `None`, the
    /// default: the SDK's default provider chain (environment, profile, web identity,
    /// container or instance role). Tests set it to keys of the AWS sandbox.
    pub aws_ambient_credentials: Option<SessionCredentials>,
}

impl Config {
    /// Reads the configuration; fails naming the first missing or invalid variable.
    /// The credential key is required: only the all-in-one `cudly` binary has a dev
    /// mode that generates one.
    pub fn from_env() -> ConfigResult<Self> {
        Ok(Self {
            addr: config::addr_var("CUDLY_ACCOUNTS_ADDR", "0.0.0.0:50051")?,
            database_url: config::database_url("accounts"),
            auth: InternalAuth::from_env(ACCEPTED_CALLERS)?,
            health_interval: config::duration_var("CUDLY_HEALTH_INTERVAL", Duration::from_secs(2))?,
            credential_keys: CredentialKeys::from_env()?,
            aws: aws_settings_from_env()?,
            aws_ambient_credentials: None,
        })
    }
}

/// Reads the AWS settings of the environment.
pub fn aws_settings_from_env() -> ConfigResult<AwsSettings> {
    AwsSettings::from_env().map_err(|problem| ConfigError::new("AWS settings", problem))
}

/// What the `rotate-credential-key` command needs: the database and both keys.
#[derive(Clone)]
pub struct RotationConfig {
    pub database_url: SecretString,
    pub credential_keys: CredentialKeys,
}

impl RotationConfig {
    pub fn from_env() -> ConfigResult<Self> {
        Ok(Self {
            database_url: config::database_url("accounts"),
            credential_keys: CredentialKeys::from_env()?,
        })
    }
}
