//! Session policies: the inline IAM policy a caller may pass when it opens a session
//! (AssumeRole, AssumeRoleWithWebIdentity, GetFederationToken). A session opened with
//! one may make only the calls it allows ([`crate::identity::authorize`]), so a test
//! can prove that the credentials a component is handed are scoped. Only each
//! statement's `Effect` and `Action` count: `Resource` and `Condition` are taken as
//! `*`, since the sandbox has no resource-level permissions to scope.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::AwsError;
use crate::services::glob_match;

/// The longest policy text STS accepts, in characters.
pub(crate) const MAX_POLICY_CHARS: usize = 2048;

/// The policy language versions IAM knows.
const POLICY_VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// The actions a session policy allows and denies, as lowercase patterns in which `*`
/// is any run of characters and `?` any one (IAM's action wildcards), so matching is
/// case-insensitive as in IAM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionPolicy {
    /// The actions of the `Allow` statements.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The actions of the `Deny` statements; they win over any `Allow`.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// What a session policy says of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    /// A `Deny` statement names the action, whatever the `Allow` statements say.
    ExplicitDeny,
    /// No statement allows the action.
    ImplicitDeny,
}

impl SessionPolicy {
    /// Parses a policy document the way STS checks one: longer than
    /// [`MAX_POLICY_CHARS`] is `PackedPolicyTooLarge`; no JSON, or JSON that is no IAM
    /// policy (no `Statement`, an `Effect` other than `Allow`/`Deny`, an action without
    /// a service prefix), is `MalformedPolicyDocument`. `NotAction` is refused too
    /// rather than silently misread: the sandbox does not model it.
    pub fn parse(text: &str) -> Result<SessionPolicy, AwsError> {
        let size = packed_policy_size(text);
        if size > 100 {
            return Err(AwsError::bad_request(
                "PackedPolicyTooLarge",
                format!(
                    "Packed policy consumes {size}% of allotted space, please use smaller policy."
                ),
            ));
        }
        let document: Value =
            serde_json::from_str(text).map_err(|_| malformed("Syntax errors in policy."))?;
        let Some(document) = document.as_object() else {
            return Err(malformed("The policy must be a JSON object."));
        };
        if let Some(version) = document.get("Version")
            && !version
                .as_str()
                .is_some_and(|version| POLICY_VERSIONS.contains(&version))
        {
            return Err(malformed(
                "The policy failed legacy parsing: invalid Version.",
            ));
        }
        let statements = match document.get("Statement") {
            Some(Value::Array(statements)) => statements.as_slice(),
            Some(statement @ Value::Object(_)) => std::slice::from_ref(statement),
            _ => return Err(malformed("Missing required field Statement.")),
        };
        let mut policy = SessionPolicy::default();
        for statement in statements {
            policy.add_statement(statement)?;
        }
        Ok(policy)
    }

    /// Adds the actions of one statement to its effect's list.
    fn add_statement(&mut self, statement: &Value) -> Result<(), AwsError> {
        let Some(statement) = statement.as_object() else {
            return Err(malformed("Each policy statement must be a JSON object."));
        };
        if statement.contains_key("NotAction") {
            return Err(malformed(
                "The sandbox does not model NotAction: name the actions a statement covers.",
            ));
        }
        let patterns = actions(statement.get("Action"))?;
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Allow") => self.allow.extend(patterns),
            Some("Deny") => self.deny.extend(patterns),
            _ => {
                return Err(malformed(
                    "Invalid effect: a statement's Effect is Allow or Deny.",
                ));
            }
        }
        Ok(())
    }

    /// Tells whether the policy allows `action` (`ec2:DescribeReservedInstances`).
    pub fn decide(&self, action: &str) -> Decision {
        let action = action.to_ascii_lowercase();
        let names =
            |patterns: &[String]| patterns.iter().any(|pattern| glob_match(pattern, &action));
        if names(self.deny.as_slice()) {
            Decision::ExplicitDeny
        } else if names(self.allow.as_slice()) {
            Decision::Allowed
        } else {
            Decision::ImplicitDeny
        }
    }
}

/// Returns the share of STS's allotment a policy text takes, in percent rounded up,
/// as `PackedPolicySize` reports it (over 100 is refused). AWS measures a compressed
/// form of the policy and the session tags; the sandbox measures the policy's
/// characters against [`MAX_POLICY_CHARS`], so 0 (no policy) and the limit are the
/// faithful values.
pub(crate) fn packed_policy_size(text: &str) -> u32 {
    let chars = text.chars().count();
    let percent = chars.saturating_mul(100).div_ceil(MAX_POLICY_CHARS);
    u32::try_from(percent).unwrap_or(u32::MAX)
}

/// Reads a statement's `Action`: one action or a non-empty array of them, each `*` or
/// `<service prefix>:<action pattern>`, lowercased for matching.
fn actions(value: Option<&Value>) -> Result<Vec<String>, AwsError> {
    let values: Vec<&Value> = match value {
        Some(Value::Array(values)) if !values.is_empty() => values.iter().collect(),
        Some(value @ Value::String(_)) => vec![value],
        _ => return Err(malformed("Policy statement must contain actions.")),
    };
    values
        .into_iter()
        .map(|value| {
            value
                .as_str()
                .filter(|action| is_action_pattern(action))
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| {
                    malformed(
                        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
                    )
                })
        })
        .collect()
}

/// Whether `action` is `*` or names a service prefix (letters, digits, `-`) and an
/// action pattern.
fn is_action_pattern(action: &str) -> bool {
    if action == "*" {
        return true;
    }
    action.split_once(':').is_some_and(|(prefix, name)| {
        !prefix.is_empty()
            && !name.is_empty()
            && prefix
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || character == '-')
    })
}

fn malformed(message: &str) -> AwsError {
    AwsError::bad_request("MalformedPolicyDocument", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(statements: &str) -> SessionPolicy {
        SessionPolicy::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":{statements}}}"#
        ))
        .unwrap()
    }

    fn code(text: &str) -> String {
        SessionPolicy::parse(text).unwrap_err().code
    }

    #[test]
    fn wildcards_match_whole_services_and_action_prefixes_whatever_the_case() {
        let scoped = policy(
            r#"[{"Effect":"Allow","Action":["ec2:Describe*","RDS:purchasereserveddbinstancesoffering"],"Resource":"*"}]"#,
        );
        assert_eq!(
            scoped.decide("ec2:DescribeReservedInstances"),
            Decision::Allowed
        );
        assert_eq!(
            scoped.decide("EC2:describereservedinstancesofferings"),
            Decision::Allowed
        );
        assert_eq!(
            scoped.decide("rds:PurchaseReservedDBInstancesOffering"),
            Decision::Allowed
        );
        assert_eq!(
            scoped.decide("ec2:PurchaseReservedInstancesOffering"),
            Decision::ImplicitDeny
        );
        assert_eq!(
            scoped.decide("rds:DescribeReservedDBInstances"),
            Decision::ImplicitDeny
        );

        let service = policy(r#"{"Effect":"Allow","Action":"savingsplans:*"}"#);
        assert_eq!(
            service.decide("savingsplans:CreateSavingsPlan"),
            Decision::Allowed
        );
        assert_eq!(service.decide("ec2:CreateTags"), Decision::ImplicitDeny);

        let everything = policy(r#"{"Effect":"Allow","Action":"*"}"#);
        assert_eq!(
            everything.decide("es:PurchaseReservedInstanceOffering"),
            Decision::Allowed
        );
    }

    #[test]
    fn a_deny_wins_over_any_allow() {
        let policy = policy(
            r#"[{"Effect":"Allow","Action":"*"},{"Effect":"Deny","Action":["ec2:Purchase*"]}]"#,
        );
        assert_eq!(
            policy.decide("ec2:PurchaseReservedInstancesOffering"),
            Decision::ExplicitDeny
        );
        assert_eq!(
            policy.decide("ec2:DescribeReservedInstances"),
            Decision::Allowed
        );
    }

    #[test]
    fn an_empty_policy_allows_nothing() {
        assert_eq!(
            SessionPolicy::default().decide("sts:GetCallerIdentity"),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn documents_that_are_no_iam_policy_are_malformed() {
        for text in [
            "not json",
            "[]",
            r#"{"Version":"2012-10-17"}"#,
            r#"{"Version":"2030-01-01","Statement":{"Effect":"Allow","Action":"*"}}"#,
            r#"{"Statement":{"Effect":"allow","Action":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":[]}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"DescribeReservedInstances"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":[3]}}"#,
            r#"{"Statement":{"Effect":"Allow","NotAction":"ec2:*"}}"#,
        ] {
            assert_eq!(code(text), "MalformedPolicyDocument", "{text}");
        }
    }

    #[test]
    fn a_policy_over_2048_characters_is_packed_policy_too_large() {
        let padding = " ".repeat(MAX_POLICY_CHARS);
        let text = format!(r#"{{"Statement":{{"Effect":"Allow","Action":"*"}}}}{padding}"#);
        assert_eq!(code(&text), "PackedPolicyTooLarge");
        assert_eq!(packed_policy_size(&" ".repeat(MAX_POLICY_CHARS)), 100);
        assert_eq!(packed_policy_size("x"), 1);
        assert_eq!(packed_policy_size(""), 0);
    }
}
