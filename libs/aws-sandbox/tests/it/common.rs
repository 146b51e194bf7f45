//! Shared fixtures: a sandbox with an organization, a standalone account and roles,
//! and SDK configs pointed at it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use cudly_aws_sandbox::{AccountSpec, RoleSpec, Sandbox, SandboxConfig, SandboxHandle};

pub const ROOT: &str = "111111111111";
pub const MEMBER_A: &str = "222222222222";
pub const MEMBER_B: &str = "333333333333";
pub const SOLO: &str = "444444444444";

pub const ROOT_KEY: &str = "AKIAROOT000000000001";
pub const SOLO_KEY: &str = "AKIASOLO000000000001";
pub const DISABLED_KEY: &str = "AKIADISABLED00000001";
pub const MEMBER_KEY: &str = "AKIAMEMBER0000000001";
pub const SECRET: &str = "sandbox-secret";
pub const EXTERNAL_ID: &str = "ext-123";
pub const REGION: &str = "us-east-1";

/// The accounts every test starts with.
pub fn accounts() -> Vec<AccountSpec> {
    let mut disabled = cudly_aws_sandbox::AccessKeySpec::new(DISABLED_KEY, SECRET);
    disabled.disabled = true;
    let mut solo = AccountSpec::new(SOLO)
        .with_name("solo")
        .with_access_key(SOLO_KEY, SECRET)
        .with_role(RoleSpec::new("Purchaser", ROOT).with_external_id(EXTERNAL_ID))
        .with_role(RoleSpec::new("WebRole", ROOT).with_web_identity())
        .with_role(RoleSpec::new("ShortRole", ROOT).with_session_seconds(1));
    solo.access_keys.push(disabled);
    vec![
        AccountSpec::new(ROOT)
            .with_name("root")
            .with_access_key(ROOT_KEY, SECRET)
            .with_member(MEMBER_A, "member a")
            .with_member(MEMBER_B, "member b"),
        AccountSpec::new(MEMBER_A).with_access_key(MEMBER_KEY, SECRET),
        solo,
    ]
}

pub fn config() -> SandboxConfig {
    accounts()
        .into_iter()
        .fold(SandboxConfig::default(), SandboxConfig::with_account)
}

pub async fn start() -> SandboxHandle {
    Sandbox::start(config()).await.expect("sandbox starts")
}

/// Standard retries with a short backoff, so throttling tests stay fast.
pub fn quick_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(5))
}

pub async fn sdk_config_with(
    handle: &SandboxHandle,
    access_key_id: &str,
    secret: &str,
    session_token: Option<String>,
    region: &str,
    retry: RetryConfig,
) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(handle.endpoint())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(
            access_key_id,
            secret,
            session_token,
            None,
            "test",
        ))
        .retry_config(retry)
        .load()
        .await
}

/// The root account's long-lived key in us-east-1.
pub async fn root_config(handle: &SandboxHandle) -> SdkConfig {
    sdk_config_with(handle, ROOT_KEY, SECRET, None, REGION, quick_retries()).await
}

/// The root account with retries disabled, to see every fault as it is.
pub async fn root_config_no_retry(handle: &SandboxHandle) -> SdkConfig {
    sdk_config_with(
        handle,
        ROOT_KEY,
        SECRET,
        None,
        REGION,
        RetryConfig::disabled(),
    )
    .await
}

pub async fn key_config(handle: &SandboxHandle, access_key_id: &str) -> SdkConfig {
    sdk_config_with(
        handle,
        access_key_id,
        SECRET,
        None,
        REGION,
        RetryConfig::disabled(),
    )
    .await
}

/// Returns the AWS error code of a failed call ("" when it is no service error).
pub fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    error
        .as_service_error()
        .and_then(|service_error| service_error.code())
        .unwrap_or_default()
        .to_string()
}

/// Whether the call failed because the connection closed without a response: an IO
/// error, or hyper's incomplete message (which the SDK reports as a transient
/// connector error), never an HTTP status.
pub fn is_dropped<E, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::DispatchFailure(failure) => {
            failure.is_io()
                || failure.as_other() == Some(aws_smithy_types::retry::ErrorKind::TransientError)
        }
        _ => false,
    }
}

/// A 64-hex idempotency token, as docs/design/DOMAIN.md derives them (SHA-256 of a lineage key
/// and an index).
pub fn token(seed: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(seed.as_bytes()))
}

/// The reservation id docs/design/DOMAIN.md derives from a token: prefix plus its first 40 hex.
pub fn reservation_id(prefix: &str, token: &str) -> String {
    format!("{prefix}{}", &token[..40])
}
