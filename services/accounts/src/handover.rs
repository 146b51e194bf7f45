//! The sessions handed to the executor (docs/design/DOMAIN.md "Cloud accounts"):
//! narrowed by an inline session policy to what the executor does with them (describe
//! to quote, describe, buy and tag to purchase), lasting 15 minutes (the executor
//! renews them), and naming the execution and its approver in session tags and, where
//! AWS takes one, a SourceIdentity, so that CloudTrail ties each purchase to a person.

use std::time::Duration;

use cudly_aws::session_policy::{SessionScope, session_policy};
use cudly_aws::sts::Scoping;
use uuid::Uuid;

/// Lifetime of a handed-over session: AWS's shortest, since the executor renews a
/// session that could expire during a purchase.
pub const HANDOVER_DURATION: Duration = Duration::from_secs(15 * 60);

/// Session tag keys (CloudTrail shows them on every call the session makes).
pub const TAG_SCOPE: &str = "cudly:scope";
pub const TAG_EXECUTION: &str = "cudly:execution-id";
pub const TAG_APPROVED_BY: &str = "cudly:approved-by";

/// What a session handed to the executor is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handover {
    pub scope: SessionScope,
    /// The execution the session buys for (none while pricing a new one).
    pub execution_id: Option<Uuid>,
    /// Who approved it (`key:<name>`, `token`, ...).
    pub approved_by: Option<String>,
}

impl Handover {
    /// Returns the policy, tags and SourceIdentity of the session.
    pub fn scoping(&self) -> Scoping {
        let mut tags = vec![(TAG_SCOPE.to_owned(), self.scope.name().to_owned())];
        if let Some(execution_id) = self.execution_id {
            tags.push((TAG_EXECUTION.to_owned(), execution_id.to_string()));
        }
        let approver = self.approved_by.as_deref().map(tag_value);
        if let Some(approver) = &approver {
            tags.push((TAG_APPROVED_BY.to_owned(), approver.clone()));
        }
        Scoping {
            policy: session_policy(self.scope),
            tags,
            source_identity: self.approved_by.as_deref().map(source_identity),
        }
    }

    /// Returns the federated user name of an access-keys session (2 to 32 characters):
    /// `cudly-<scope>-<first 8 of the execution id>`.
    pub fn federation_name(&self) -> String {
        match self.execution_id {
            Some(id) => format!(
                "cudly-{}-{}",
                self.scope.name(),
                &id.simple().to_string()[..8]
            ),
            None => format!("cudly-{}", self.scope.name()),
        }
    }
}

/// Returns `text` with what a session tag value may not hold replaced by `_` (letters,
/// digits, spaces and `_ . : / = + - @` are allowed), at most 256 characters.
fn tag_value(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

/// Returns `approver` as a SourceIdentity: 2 to 64 of `[A-Za-z0-9_+=,.@-]`, others
/// replaced by `=` (so `key:alice` reads `key=alice`).
fn source_identity(approver: &str) -> String {
    let mut identity: String = approver
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '='
            }
        })
        .take(64)
        .collect();
    while identity.len() < 2 {
        identity.push('-');
    }
    identity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purchase_session_names_the_execution_and_approver() {
        let id = Uuid::parse_str("6f1c2a3b-1111-4222-8333-944455556666").unwrap();
        let handover = Handover {
            scope: SessionScope::Purchase,
            execution_id: Some(id),
            approved_by: Some("key:alice (finops)".to_owned()),
        };
        let scoping = handover.scoping();
        assert!(
            scoping
                .tags
                .contains(&(TAG_EXECUTION.to_owned(), id.to_string()))
        );
        assert!(
            scoping
                .tags
                .contains(&(TAG_APPROVED_BY.to_owned(), "key:alice _finops_".to_owned()))
        );
        assert_eq!(
            scoping.source_identity.as_deref(),
            Some("key=alice==finops=")
        );
        assert!(
            scoping
                .policy
                .contains("ec2:PurchaseReservedInstancesOffering")
        );
        assert_eq!(handover.federation_name(), "cudly-purchase-6f1c2a3b");
    }

    #[test]
    fn a_quote_session_may_only_describe_and_names_no_one() {
        let handover = Handover {
            scope: SessionScope::Quote,
            execution_id: None,
            approved_by: None,
        };
        let scoping = handover.scoping();
        assert!(!scoping.policy.contains("Purchase"));
        assert_eq!(scoping.source_identity, None);
        assert_eq!(scoping.tags, [(TAG_SCOPE.to_owned(), "quote".to_owned())]);
        assert_eq!(handover.federation_name(), "cudly-quote");
        assert_eq!(source_identity("x"), "x-");
    }
}
