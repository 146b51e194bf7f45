//! Configuration of the accounts service: every variable it reads, read in
//! [`Config::read`] (alone and inside the all-in-one `cudly`).

use std::net::SocketAddr;

use cudly_common::config::{CommonSettings, ConfigResult, Env, Layout, SecretSource};
use cudly_common::grpc::{Caller, InternalAuth};
use secrecy::SecretString;

pub use crate::crypto::{CredentialKey, CredentialKeys};
pub use cudly_aws::sdk::{AwsSettings, SessionCredentials};

/// The callers this service accepts (docs/design/ARCHITECTURE.md "Who calls whom").
pub const ACCEPTED_CALLERS: &[Caller] = &[Caller::Gateway, Caller::Planner, Caller::Executor];

#[derive(Clone)]
pub struct Config {
    /// gRPC listen address (`CUDLY_ACCOUNTS_ADDR`).
    pub addr: SocketAddr,
    /// Database URL (`CUDLY_ACCOUNTS_DATABASE_URL`, else `DATABASE_URL`).
    pub database_url: SecretString,
    /// Tokens of the accepted callers (`CUDLY_INTERNAL_TOKEN_<CALLER>`).
    pub auth: InternalAuth,
    /// Health interval (the internal call timeout is unused: accounts calls no service).
    pub common: CommonSettings,
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
    /// The credential key is required (only `cudly`'s dev mode generates one).
    pub fn read(env: &Env, secrets: &impl SecretSource, layout: Layout) -> ConfigResult<Self> {
        Ok(Self {
            addr: env.listen_addr("accounts", layout)?,
            database_url: env.database_url("accounts"),
            auth: InternalAuth::from_source(None, ACCEPTED_CALLERS, secrets)?,
            common: CommonSettings::read(env)?,
            credential_keys: CredentialKeys::read(env, secrets)?,
            aws: AwsSettings::read(env)?,
            aws_ambient_credentials: None,
        })
    }
}

/// What the `rotate-credential-key` command needs: the database and both keys.
#[derive(Clone)]
pub struct RotationConfig {
    pub database_url: SecretString,
    pub credential_keys: CredentialKeys,
}

impl RotationConfig {
    pub fn read(env: &Env) -> ConfigResult<Self> {
        Ok(Self {
            database_url: env.database_url("accounts"),
            credential_keys: CredentialKeys::read(env, env)?,
        })
    }
}
