//! The ledger: every AWS call the sandbox answered (or refused, or dropped) and every
//! commitment it created, with counters per idempotency token and per reservation id,
//! so a test can prove that something was bought exactly once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalogue::Offering;
use crate::service::Service;

/// Tag key carrying a purchase's idempotency token.
pub const IDEMPOTENCY_TAG_KEY: &str = "cudly-idempotency-token";

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Processed and answered.
    Ok,
    /// Answered with an AWS error (see `error_code`), by the service or by a fault.
    Error,
    /// Processed (any commitment exists), then the connection was closed unanswered.
    Dropped,
}

/// One AWS call as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerCall {
    pub at: DateTime<Utc>,
    /// Empty when the caller could not be identified.
    pub account_id: String,
    pub region: String,
    pub service: Service,
    pub operation: String,
    pub outcome: CallOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The `cudly-idempotency-token` tag value the call carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_token: Option<String>,
    /// The client-chosen reservation id or name the call carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// The commitment the call created, returned or tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment_id: Option<String>,
    /// The ARN of the caller, for every call that was authenticated (like CloudTrail's
    /// `userIdentity.arn`): `arn:aws:iam::<account>:user/sandbox` for long-lived keys,
    /// the assumed-role or federated-user ARN for sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_arn: Option<String>,
    /// The session tags of the session that signed the call, so a purchase names the
    /// execution and the approver it was made for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub session_tags: BTreeMap<String, String>,
    /// The source identity of the session that signed the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// A call opening a session (AssumeRole, AssumeRoleWithWebIdentity,
    /// GetFederationToken): the `Policy` text it asked for, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_policy: Option<String>,
    /// A call opening a session: the session tags it asked for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requested_tags: BTreeMap<String, String>,
    /// A call opening a session: the `SourceIdentity` it asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_source_identity: Option<String>,
    /// A call opening a session: the `DurationSeconds` it asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_duration_seconds: Option<i64>,
}

/// One commitment (reserved instance, reserved node, Savings Plan) that exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commitment {
    pub service: Service,
    pub account_id: String,
    pub region: String,
    /// The id AWS reports (RI id, reservation id, Savings Plan id).
    pub commitment_id: String,
    pub offering_id: String,
    /// Instances or nodes reserved; 1 for a Savings Plan.
    pub count: i64,
    pub created_at: DateTime<Utc>,
    /// Tags given at purchase plus any created later.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// The client-chosen id or name (RDS, ElastiCache, MemoryDB ids; OpenSearch name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    /// Savings Plans only: the hourly commitment in USD, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_commitment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upfront_payment_amount: Option<String>,
    pub state: String,
    pub offering: Offering,
    /// Digest of the purchase parameters, so a reused client token with other
    /// parameters is told apart from a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<String>,
}

impl Commitment {
    /// Returns the idempotency token tag value, if the commitment is tagged.
    pub fn idempotency_token(&self) -> Option<&str> {
        self.tags.get(IDEMPOTENCY_TAG_KEY).map(String::as_str)
    }

    /// Returns the distinct keys this commitment counts under in `by_token`: its token
    /// tag, its client token and its client-chosen reservation id.
    pub fn token_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for key in [
            self.idempotency_token(),
            self.client_token.as_deref(),
            self.reservation_id.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            if !keys.iter().any(|existing| existing == key) {
                keys.push(key.to_string());
            }
        }
        keys
    }
}

/// A view of the ledger, optionally filtered by account and service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub calls: Vec<LedgerCall>,
    pub commitments: Vec<Commitment>,
    /// Commitments per idempotency token: the token tag value, the Savings Plans client
    /// token and the client-chosen reservation id each count.
    #[serde(default)]
    pub by_token: BTreeMap<String, u64>,
    /// Commitments per client-chosen reservation id or name.
    #[serde(default)]
    pub by_reservation_id: BTreeMap<String, u64>,
}

impl Ledger {
    /// Builds a ledger view, computing the counters from the commitments.
    pub fn from_parts(calls: Vec<LedgerCall>, commitments: Vec<Commitment>) -> Ledger {
        let mut by_token = BTreeMap::new();
        let mut by_reservation_id = BTreeMap::new();
        for commitment in &commitments {
            for key in commitment.token_keys() {
                *by_token.entry(key).or_insert(0) += 1;
            }
            if let Some(reservation_id) = &commitment.reservation_id {
                *by_reservation_id.entry(reservation_id.clone()).or_insert(0) += 1;
            }
        }
        Ledger {
            calls,
            commitments,
            by_token,
            by_reservation_id,
        }
    }

    /// Returns how many commitments carry `token` (0 when none).
    pub fn commitments_for_token(&self, token: &str) -> u64 {
        self.by_token.get(token).copied().unwrap_or(0)
    }

    /// Returns the calls of one operation.
    pub fn calls_of<'a>(&'a self, operation: &'a str) -> impl Iterator<Item = &'a LedgerCall> {
        self.calls
            .iter()
            .filter(move |call| call.operation == operation)
    }

    /// Returns the commitments of one service.
    pub fn commitments_of(&self, service: Service) -> impl Iterator<Item = &Commitment> {
        self.commitments
            .iter()
            .filter(move |commitment| commitment.service == service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_recorded_before_session_scoping_still_load_and_empty_fields_are_left_out() {
        let saved = r#"{"at":"2030-01-01T00:00:00Z","account_id":"1","region":"us-east-1",
            "service":"ec2","operation":"DescribeReservedInstances","outcome":"ok"}"#;
        let call: LedgerCall = serde_json::from_str(saved).unwrap();
        assert_eq!(call.principal_arn, None);
        assert!(call.session_tags.is_empty());
        assert_eq!(call.requested_duration_seconds, None);
        let written = serde_json::to_value(&call).unwrap();
        for field in [
            "principal_arn",
            "session_tags",
            "source_identity",
            "session_policy",
            "requested_tags",
            "requested_source_identity",
            "requested_duration_seconds",
        ] {
            assert!(written.get(field).is_none(), "{field} written while empty");
        }
    }
}
