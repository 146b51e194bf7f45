//! Identity: which account a request belongs to, from the access key id of its SigV4
//! credential scope, and whether the session that signed it may make it. Signatures
//! are not verified; the key id is enough to attribute a call, which is all the system
//! under test depends on. Session policies are enforced, so a test can prove the
//! credentials a component holds are scoped.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::{Decision, SessionPolicy};
use crate::protocol::AwsError;
use crate::service::Service;
use crate::state::SandboxState;

/// Session credentials handed out by STS.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub account_id: String,
    /// The ARN GetCallerIdentity reports for the session.
    pub arn: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
    /// The session policy it was opened with: the session may make only the calls it
    /// allows. `None`: no session policy, every call is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<SessionPolicy>,
    /// The session tags it was opened with; every call it signs carries them into the
    /// ledger.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Who the session acts for (AssumeRole's SourceIdentity), kept across chained
    /// sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("arn", &self.arn)
            .field("expires_at", &self.expires_at)
            .field("policy", &self.policy)
            .field("tags", &self.tags)
            .field("source_identity", &self.source_identity)
            .finish_non_exhaustive()
    }
}

/// Who signed a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Principal {
    pub account_id: String,
    pub arn: String,
    pub user_id: String,
    pub access_key_id: String,
    /// Whether the key is a long-lived one (GetSessionToken refuses session keys).
    pub long_lived: bool,
    /// The signing session's policy (`None`: long-lived keys, or a session opened
    /// without one).
    pub policy: Option<SessionPolicy>,
    /// The signing session's tags (empty for long-lived keys).
    pub session_tags: BTreeMap<String, String>,
    /// The signing session's source identity.
    pub source_identity: Option<String>,
}

impl Principal {
    /// Whether the caller is a federated user (a GetFederationToken session).
    pub fn is_federated(&self) -> bool {
        self.arn.contains(":federated-user/")
    }
}

/// Resolves the account of `access_key_id`, refusing unknown, disabled and expired
/// keys the way AWS does.
pub(crate) fn authenticate(
    state: &SandboxState,
    access_key_id: &str,
    session_token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Principal, AwsError> {
    if let Some((account_id, key)) = state.long_lived_key(access_key_id) {
        if key.disabled {
            return Err(AwsError::invalid_client_token_id());
        }
        return Ok(Principal {
            account_id: account_id.to_string(),
            arn: user_arn(account_id),
            user_id: stable_id("AIDA", access_key_id),
            access_key_id: access_key_id.to_string(),
            long_lived: true,
            policy: None,
            session_tags: BTreeMap::new(),
            source_identity: None,
        });
    }
    let Some(session) = state.sessions.get(access_key_id) else {
        return Err(AwsError::invalid_client_token_id());
    };
    if session_token.is_some_and(|token| token != session.session_token) {
        return Err(AwsError::invalid_client_token_id());
    }
    if session.expires_at <= now {
        return Err(AwsError::expired_token());
    }
    Ok(Principal {
        account_id: session.account_id.clone(),
        arn: session.arn.clone(),
        user_id: session.user_id.clone(),
        access_key_id: access_key_id.to_string(),
        long_lived: false,
        policy: session.policy.clone(),
        session_tags: session.tags.clone(),
        source_identity: session.source_identity.clone(),
    })
}

/// Refuses a call its signer may not make, in the service's own access-denied code
/// (`AccessDenied`; EC2 `UnauthorizedOperation`; the JSON services
/// `AccessDeniedException`) with AWS's message: a session opened with a session policy
/// may make only the calls the policy allows (a Deny winning over any Allow), and a
/// federated user no STS call. GetCallerIdentity is always allowed, as in AWS.
pub(crate) fn authorize(
    principal: &Principal,
    service: Service,
    operation: &str,
) -> Result<(), AwsError> {
    if service == Service::Sts && operation == "GetCallerIdentity" {
        return Ok(());
    }
    let action = service.iam_action(operation);
    let reason = if service == Service::Sts && principal.is_federated() {
        "because a federated user may call no STS operation but GetCallerIdentity".to_string()
    } else {
        let Some(policy) = &principal.policy else {
            return Ok(());
        };
        match policy.decide(&action) {
            Decision::Allowed => return Ok(()),
            Decision::ExplicitDeny => "with an explicit deny in a session policy".to_string(),
            Decision::ImplicitDeny => {
                format!("because no session policy allows the {action} action")
            }
        }
    };
    Err(AwsError::access_denied(
        service,
        format!(
            "User: {} is not authorized to perform: {action} {reason}",
            principal.arn
        ),
    ))
}

/// The ARN of the IAM user that owns an account's long-lived keys.
pub(crate) fn user_arn(account_id: &str) -> String {
    format!("arn:aws:iam::{account_id}:user/sandbox")
}

/// Returns `prefix` followed by 17 characters derived from `seed`, the shape of IAM
/// unique ids (`AIDA...`, `AROA...`).
pub(crate) fn stable_id(prefix: &str, seed: &str) -> String {
    let digest = hex::encode_upper(Sha256::digest(seed.as_bytes()));
    format!("{prefix}{}", &digest[..17])
}

/// Creates session credentials for `account_id` that expire after `seconds`.
pub(crate) fn new_session(
    account_id: &str,
    arn: String,
    user_id: String,
    seconds: u64,
    now: DateTime<Utc>,
) -> Session {
    let mut rng = rand::rng();
    let key_suffix: String = (0..16)
        .map(|_| {
            let index = rng.random_range(0..36u8);
            char::from(if index < 10 {
                b'0' + index
            } else {
                b'A' + index - 10
            })
        })
        .collect();
    let secret: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let token: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(120)
        .map(char::from)
        .collect();
    let lifetime = chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000));
    Session {
        access_key_id: format!("ASIA{key_suffix}"),
        secret_access_key: secret,
        session_token: format!("SANDBOX{token}"),
        account_id: account_id.to_string(),
        arn,
        user_id,
        expires_at: now + lifetime,
        policy: None,
        tags: BTreeMap::new(),
        source_identity: None,
    }
}

/// The parts of a role ARN `arn:aws:iam::ACCOUNT:role/[PATH/]NAME`.
pub(crate) fn parse_role_arn(role_arn: &str) -> Option<(String, String)> {
    let rest = role_arn.strip_prefix("arn:aws:iam::")?;
    let (account_id, resource) = rest.split_once(':')?;
    let role_path = resource.strip_prefix("role/")?;
    let role_name = role_path.rsplit('/').next()?;
    if account_id.is_empty() || role_name.is_empty() {
        return None;
    }
    Some((account_id.to_string(), role_name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_with_paths_name_the_last_segment() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/service/Purchaser"),
            Some(("123456789012".into(), "Purchaser".into()))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/x"), None);
    }

    fn session_principal(policy: Option<SessionPolicy>) -> Principal {
        Principal {
            account_id: "444444444444".into(),
            arn: "arn:aws:sts::444444444444:assumed-role/Purchaser/cudly".into(),
            user_id: "AROAEXAMPLE:cudly".into(),
            access_key_id: "ASIAEXAMPLE".into(),
            long_lived: false,
            policy,
            session_tags: BTreeMap::new(),
            source_identity: None,
        }
    }

    fn scoped(document: &str) -> Option<SessionPolicy> {
        Some(SessionPolicy::parse(document).unwrap())
    }

    #[test]
    fn a_session_policy_refuses_what_it_does_not_allow() {
        let principal = session_principal(scoped(
            r#"{"Statement":{"Effect":"Allow","Action":"ec2:Describe*"}}"#,
        ));
        assert!(authorize(&principal, Service::Ec2, "DescribeReservedInstances").is_ok());
        let refused = authorize(
            &principal,
            Service::Ec2,
            "PurchaseReservedInstancesOffering",
        )
        .unwrap_err();
        assert_eq!(refused.status, 403);
        assert_eq!(refused.code, "UnauthorizedOperation");
        assert_eq!(
            refused.message,
            "User: arn:aws:sts::444444444444:assumed-role/Purchaser/cudly is not authorized to \
             perform: ec2:PurchaseReservedInstancesOffering because no session policy allows \
             the ec2:PurchaseReservedInstancesOffering action"
        );
        let rds = authorize(&principal, Service::Rds, "DescribeReservedDBInstances").unwrap_err();
        assert_eq!(rds.code, "AccessDenied");
        let opensearch =
            authorize(&principal, Service::Opensearch, "DescribeReservedInstances").unwrap_err();
        assert_eq!(opensearch.code, "AccessDeniedException");
        assert!(opensearch.message.contains("es:DescribeReservedInstances"));
    }

    #[test]
    fn an_explicit_deny_says_so() {
        let principal = session_principal(scoped(
            r#"{"Statement":[{"Effect":"Allow","Action":"*"},{"Effect":"Deny","Action":"rds:Purchase*"}]}"#,
        ));
        let refused = authorize(
            &principal,
            Service::Rds,
            "PurchaseReservedDBInstancesOffering",
        )
        .unwrap_err();
        assert!(
            refused
                .message
                .ends_with("with an explicit deny in a session policy")
        );
        assert!(authorize(&principal, Service::Rds, "DescribeReservedDBInstances").is_ok());
    }

    #[test]
    fn get_caller_identity_is_always_allowed() {
        let denied_everything =
            session_principal(scoped(r#"{"Statement":{"Effect":"Deny","Action":"*"}}"#));
        assert!(authorize(&denied_everything, Service::Sts, "GetCallerIdentity").is_ok());
        assert!(authorize(&denied_everything, Service::Sts, "AssumeRole").is_err());
        let nothing_allowed = session_principal(Some(SessionPolicy::default()));
        assert!(authorize(&nothing_allowed, Service::Sts, "GetCallerIdentity").is_ok());
    }

    #[test]
    fn without_a_session_policy_every_call_is_allowed() {
        let principal = session_principal(None);
        assert!(authorize(&principal, Service::Savingsplans, "CreateSavingsPlan").is_ok());
    }

    #[test]
    fn a_federated_user_may_call_no_sts_operation_but_get_caller_identity() {
        let mut principal =
            session_principal(scoped(r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#));
        principal.arn = "arn:aws:sts::444444444444:federated-user/executor".into();
        assert!(authorize(&principal, Service::Sts, "GetCallerIdentity").is_ok());
        assert!(authorize(&principal, Service::Ec2, "DescribeReservedInstances").is_ok());
        let refused = authorize(&principal, Service::Sts, "AssumeRole").unwrap_err();
        assert_eq!(refused.code, "AccessDenied");
    }

    #[test]
    fn sessions_saved_before_scoping_still_load() {
        let saved = r#"{"access_key_id":"ASIA1","secret_access_key":"s","session_token":"t",
            "account_id":"1","arn":"arn","user_id":"id","expires_at":"2030-01-01T00:00:00Z"}"#;
        let session: Session = serde_json::from_str(saved).unwrap();
        assert_eq!(session.policy, None);
        assert!(session.tags.is_empty());
        assert_eq!(session.source_identity, None);
    }

    #[test]
    fn session_debug_names_the_scope_but_no_secret() {
        let mut session = new_session("1", "arn".into(), "id".into(), 60, Utc::now());
        session.source_identity = Some("alice".into());
        let debug = format!("{session:?}");
        assert!(debug.contains("alice"));
        assert!(!debug.contains(&session.secret_access_key));
        assert!(!debug.contains(&session.session_token));
    }

    #[test]
    fn session_keys_look_like_aws_session_keys() {
        let session = new_session("1", "arn".into(), "id".into(), 60, Utc::now());
        assert!(session.access_key_id.starts_with("ASIA"));
        assert_eq!(session.access_key_id.len(), 20);
        assert_eq!(session.secret_access_key.len(), 40);
    }
}
