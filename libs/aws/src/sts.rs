//! STS: session credentials and caller identity, as plain Rust types.
//!
//! An [`Sts`] client is bound to one identity: the service's ambient credentials (the
//! default provider chain, loaded once) or explicit credentials (an account's stored
//! keys, or session credentials obtained before). Every error is an [`AwsFailure`],
//! sanitised.

use std::time::Duration;

use aws_sdk_sts::Client;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::error::AwsFailure;
use crate::sdk::{AwsSettings, SessionCredentials, ambient_config, config_with_credentials};

/// Who STS says the caller is (GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account id.
    pub account: String,
    /// The caller's ARN, e.g. `arn:aws:sts::123456789012:assumed-role/CUDly/cudly-6f1c2a3b`.
    pub arn: String,
    pub user_id: String,
}

/// What AssumeRole needs.
#[derive(Debug, Clone, Copy)]
pub struct AssumeRole<'a> {
    pub role_arn: &'a str,
    /// Sent as ExternalId when set.
    pub external_id: Option<&'a str>,
    pub session_name: &'a str,
    pub duration: Duration,
    /// Narrows the session to what the caller needs (see [`Scoping`]).
    pub scoping: Option<&'a Scoping>,
}

/// What narrows a session and says, in CloudTrail, who it acts for: an inline session
/// policy, session tags, and (AssumeRole only) a SourceIdentity, which AWS keeps across
/// role chaining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoping {
    /// The inline session policy (IAM JSON).
    pub policy: String,
    pub tags: Vec<(String, String)>,
    pub source_identity: Option<String>,
}

impl Scoping {
    fn sdk_tags(&self) -> Option<Vec<aws_sdk_sts::types::Tag>> {
        let tags = self
            .tags
            .iter()
            .filter_map(|(key, value)| {
                aws_sdk_sts::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        (!tags.is_empty()).then_some(tags)
    }
}

/// An STS client bound to one identity.
#[derive(Clone, Debug)]
pub struct Sts {
    client: Client,
}

impl Sts {
    /// Returns a client using the service's ambient credentials (the default provider
    /// chain: environment, profile, web identity, container or instance role). Loads the
    /// chain, so build it once and keep it.
    pub async fn ambient(settings: &AwsSettings) -> Self {
        let config = ambient_config(settings, &settings.default_region).await;
        Self {
            client: Client::new(&config),
        }
    }

    /// Returns a client signing with exactly `credentials` (never the default chain).
    pub fn with_credentials(settings: &AwsSettings, credentials: &SessionCredentials) -> Self {
        let config = config_with_credentials(settings, credentials, &settings.default_region);
        Self {
            client: Client::new(&config),
        }
    }

    /// GetSessionToken: temporary credentials for the long-lived keys this client signs
    /// with.
    pub async fn get_session_token(
        &self,
        duration: Duration,
    ) -> Result<SessionCredentials, AwsFailure> {
        const OPERATION: &str = "GetSessionToken";
        let output = self
            .client
            .get_session_token()
            .duration_seconds(duration_seconds(duration))
            .send()
            .await
            .map_err(|error| AwsFailure::from_sdk(OPERATION, &error))?;
        session_credentials(OPERATION, output.credentials())
    }

    /// AssumeRole from the identity this client signs with.
    pub async fn assume_role(
        &self,
        request: AssumeRole<'_>,
    ) -> Result<SessionCredentials, AwsFailure> {
        const OPERATION: &str = "AssumeRole";
        let scoping = request.scoping;
        let output = self
            .client
            .assume_role()
            .role_arn(request.role_arn)
            .role_session_name(request.session_name)
            .set_external_id(request.external_id.map(str::to_owned))
            .duration_seconds(duration_seconds(request.duration))
            .set_policy(scoping.map(|scoping| scoping.policy.clone()))
            .set_tags(scoping.and_then(Scoping::sdk_tags))
            .set_source_identity(scoping.and_then(|scoping| scoping.source_identity.clone()))
            .send()
            .await
            .map_err(|error| AwsFailure::from_sdk(OPERATION, &error))?;
        session_credentials(OPERATION, output.credentials())
    }

    /// GetFederationToken: temporary credentials of a federated user `name` for the
    /// long-lived keys this client signs with, narrowed by `scoping` (AWS takes no
    /// SourceIdentity here; the tags name who the session acts for).
    pub async fn get_federation_token(
        &self,
        name: &str,
        scoping: &Scoping,
        duration: Duration,
    ) -> Result<SessionCredentials, AwsFailure> {
        const OPERATION: &str = "GetFederationToken";
        let output = self
            .client
            .get_federation_token()
            .name(name)
            .policy(&scoping.policy)
            .set_tags(scoping.sdk_tags())
            .duration_seconds(duration_seconds(duration))
            .send()
            .await
            .map_err(|error| AwsFailure::from_sdk(OPERATION, &error))?;
        session_credentials(OPERATION, output.credentials())
    }

    /// AssumeRoleWithWebIdentity with `token` (the call is not signed; the token is the
    /// proof), narrowed by `policy` when given (AWS takes no session tags here: they
    /// come from the token).
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &SecretString,
        duration: Duration,
        policy: Option<&str>,
    ) -> Result<SessionCredentials, AwsFailure> {
        const OPERATION: &str = "AssumeRoleWithWebIdentity";
        let output = self
            .client
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .web_identity_token(token.expose_secret())
            .duration_seconds(duration_seconds(duration))
            .set_policy(policy.map(str::to_owned))
            .send()
            .await
            .map_err(|error| AwsFailure::from_sdk(OPERATION, &error))?;
        session_credentials(OPERATION, output.credentials())
    }

    /// GetCallerIdentity: the account and ARN this client's credentials belong to.
    pub async fn get_caller_identity(&self) -> Result<CallerIdentity, AwsFailure> {
        const OPERATION: &str = "GetCallerIdentity";
        let output = self
            .client
            .get_caller_identity()
            .send()
            .await
            .map_err(|error| AwsFailure::from_sdk(OPERATION, &error))?;
        let account = output
            .account()
            .ok_or_else(|| AwsFailure::malformed_reply(OPERATION, "account"))?;
        let arn = output
            .arn()
            .ok_or_else(|| AwsFailure::malformed_reply(OPERATION, "arn"))?;
        Ok(CallerIdentity {
            account: account.to_owned(),
            arn: arn.to_owned(),
            user_id: output.user_id().unwrap_or_default().to_owned(),
        })
    }
}

/// STS takes whole seconds between 900 and 43200 (role sessions: up to the role's
/// maximum); out-of-range requests are clamped rather than refused.
fn duration_seconds(duration: Duration) -> i32 {
    duration.as_secs().clamp(900, 43_200) as i32
}

fn session_credentials(
    operation: &'static str,
    credentials: Option<&aws_sdk_sts::types::Credentials>,
) -> Result<SessionCredentials, AwsFailure> {
    let credentials =
        credentials.ok_or_else(|| AwsFailure::malformed_reply(operation, "credentials"))?;
    let expiration = credentials.expiration();
    let expiration = DateTime::<Utc>::from_timestamp(expiration.secs(), expiration.subsec_nanos())
        .ok_or_else(|| AwsFailure::malformed_reply(operation, "valid expiration"))?;
    Ok(SessionCredentials {
        access_key_id: credentials.access_key_id().to_owned(),
        secret_access_key: SecretString::from(credentials.secret_access_key().to_owned()),
        session_token: Some(SecretString::from(credentials.session_token().to_owned())),
        expiration: Some(expiration),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_clamped_to_what_sts_accepts() {
        assert_eq!(duration_seconds(Duration::from_secs(60)), 900);
        assert_eq!(duration_seconds(Duration::from_secs(3600)), 3600);
        assert_eq!(duration_seconds(Duration::from_secs(86_400)), 43_200);
    }
}
