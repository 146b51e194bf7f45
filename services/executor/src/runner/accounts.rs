//! Session credentials of an account, from the accounts service (ResolveCredentials;
//! only the executor may call it). Secrets stay in `SessionCredentials`, whose `Debug`
//! redacts them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cudly_aws::sdk::SessionCredentials;
use cudly_common::ApiError;
use cudly_common::grpc::AuthChannel;
use cudly_proto::accounts::v1::ResolveCredentialsRequest;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Pauses between attempts while the accounts service is unavailable.
const UNAVAILABLE_BACKOFF: [Duration; 5] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// What the session is for: the accounts service narrows it to that (a quote session
/// may only describe) and tags a purchase session with its execution and approver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    Quote,
    DryRun,
    Purchase {
        execution_id: Uuid,
        approved_by: String,
    },
}

impl Purpose {
    fn fill(&self, request: &mut ResolveCredentialsRequest) {
        match self {
            Purpose::Quote => request.scope = "quote".to_owned(),
            Purpose::DryRun => request.scope = "dry_run".to_owned(),
            Purpose::Purchase {
                execution_id,
                approved_by,
            } => {
                request.scope = "purchase".to_owned();
                request.execution_id = execution_id.to_string();
                request.approved_by = approved_by.clone();
            }
        }
    }
}

/// An account ready to buy: its external id and session credentials.
#[derive(Debug, Clone)]
pub struct ResolvedAccount {
    pub external_id: String,
    pub credentials: SessionCredentials,
}

/// Why an account cannot buy; the text is sanitised and names no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveFailure {
    /// The accounts service refused (deleted, disabled, no credentials, STS failed).
    Refused(String),
    /// The accounts service stayed unavailable through every retry.
    Unavailable,
    /// Shutdown began while waiting for the accounts service.
    Stopped,
}

/// Resolves the credentials of `account_id`, valid for at least `valid_for` where the
/// session lifetime allows, retrying a while when the accounts service is unavailable;
/// past that, [`ResolveFailure::Unavailable`] (the run leaves the child for a re-drive
/// rather than failing it).
pub async fn resolve(
    client: &AccountsServiceClient<AuthChannel>,
    account_id: Uuid,
    purpose: &Purpose,
    valid_for: Duration,
    stop: &CancellationToken,
) -> Result<ResolvedAccount, ResolveFailure> {
    let mut pauses = UNAVAILABLE_BACKOFF.iter();
    loop {
        match resolve_once(client, account_id, purpose, valid_for).await {
            Err(ResolveFailure::Unavailable) => {
                let Some(pause) = pauses.next() else {
                    return Err(ResolveFailure::Unavailable);
                };
                tracing::warn!(%account_id, "accounts service unavailable, retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Err(ResolveFailure::Stopped),
                    _ = tokio::time::sleep(*pause) => {}
                }
            }
            resolved => return resolved,
        }
    }
}

/// Resolves the credentials of `account_id` with one call: an outage is
/// [`ResolveFailure::Unavailable`] at once (a creation pricing its items tries another
/// account rather than waiting).
pub async fn resolve_once(
    client: &AccountsServiceClient<AuthChannel>,
    account_id: Uuid,
    purpose: &Purpose,
    valid_for: Duration,
) -> Result<ResolvedAccount, ResolveFailure> {
    let mut request = ResolveCredentialsRequest {
        account_id: account_id.to_string(),
        min_validity_seconds: u32::try_from(valid_for.as_secs()).unwrap_or(u32::MAX),
        ..Default::default()
    };
    purpose.fill(&mut request);
    match client.clone().resolve_credentials(request).await {
        Ok(response) => into_resolved(response.into_inner()),
        Err(status) if is_outage(&status) => {
            tracing::debug!(%account_id, code = ?status.code(), "accounts service unavailable");
            Err(ResolveFailure::Unavailable)
        }
        Err(status) => Err(ResolveFailure::Refused(describe(&status))),
    }
}

fn into_resolved(
    response: cudly_proto::accounts::v1::ResolveCredentialsResponse,
) -> Result<ResolvedAccount, ResolveFailure> {
    if response.provider != "aws" {
        return Err(ResolveFailure::Refused(format!(
            "{} accounts cannot buy yet",
            cudly_aws::error::scrub(&response.provider)
        )));
    }
    if !response.enabled {
        return Err(ResolveFailure::Refused(
            "the account is disabled".to_owned(),
        ));
    }
    if response.access_key_id.is_empty() || response.secret_access_key.is_empty() {
        return Err(ResolveFailure::Refused(
            "the accounts service returned no credentials".to_owned(),
        ));
    }
    let expiration = response.expiration.and_then(|ts| {
        DateTime::<Utc>::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
    });
    Ok(ResolvedAccount {
        external_id: response.external_id,
        credentials: SessionCredentials {
            access_key_id: response.access_key_id,
            secret_access_key: SecretString::from(response.secret_access_key),
            session_token: (!response.session_token.is_empty())
                .then(|| SecretString::from(response.session_token)),
            expiration,
        },
    })
}

/// Returns whether a failed call says nothing about the account, so the run waits and
/// retries rather than failing its items: the call never reached the accounts
/// service's logic, whatever the code (a connection reset mid-call is `Unknown`
/// "transport error"), since the service answers every refusal with error details; or
/// the service answered UNAVAILABLE (its database or STS is down), which says nothing
/// about the account either.
fn is_outage(status: &tonic::Status) -> bool {
    status.details().is_empty() || status.code() == tonic::Code::Unavailable
}

/// Describes a refusal of the accounts service without any secret.
fn describe(status: &tonic::Status) -> String {
    let error = ApiError::from_status(status);
    let detail = cudly_aws::error::scrub(&error.message);
    match status.code() {
        tonic::Code::NotFound => "the account does not exist any more".to_owned(),
        _ => format!("credentials could not be resolved: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_cut_off_in_transport_is_an_outage_whatever_its_code() {
        for code in [
            tonic::Code::Unknown,
            tonic::Code::Unavailable,
            tonic::Code::Internal,
            tonic::Code::Cancelled,
        ] {
            assert!(
                is_outage(&tonic::Status::new(code, "transport error")),
                "{code:?}"
            );
        }
    }

    #[test]
    fn the_accounts_service_saying_its_database_is_down_is_an_outage() {
        // The crash-injection run lost items to this answer during a Postgres restart.
        let answer = tonic::Status::from(ApiError::unavailable("database unavailable"));
        assert!(!answer.details().is_empty());
        assert!(is_outage(&answer));
    }

    #[test]
    fn a_refusal_of_the_accounts_service_is_not_an_outage() {
        let refusals = [
            ApiError::not_found("account not found"),
            ApiError::unauthenticated("unknown internal token"),
        ];
        for refusal in refusals {
            assert!(
                !is_outage(&tonic::Status::from(refusal.clone())),
                "{refusal:?}"
            );
        }
    }
}
