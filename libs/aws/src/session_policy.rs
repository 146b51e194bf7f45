//! The inline session policies of the sessions handed to the executor: whatever the
//! role or user behind an account may do, a session made for a quote may only describe
//! offerings and commitments, and one made for a purchase may in addition buy and tag,
//! in the seven services and nothing else. AWS grants the intersection of the role's
//! policies and the session policy, so a leaked session cannot, say, start instances.

use serde_json::json;

/// What a session handed to the executor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionScope {
    /// Pricing items at creation: describe calls only.
    Quote,
    /// A dry run: describe, and the one purchase AWS can check without buying
    /// (EC2's DryRun).
    DryRun,
    /// An approved run: describe, buy and tag.
    Purchase,
}

impl SessionScope {
    pub fn name(self) -> &'static str {
        match self {
            SessionScope::Quote => "quote",
            SessionScope::DryRun => "dry_run",
            SessionScope::Purchase => "purchase",
        }
    }
}

/// The describe calls of the seven services (quotes, idempotency look-ups, settling).
const DESCRIBE_ACTIONS: &[&str] = &[
    "ec2:DescribeReservedInstancesOfferings",
    "ec2:DescribeReservedInstances",
    "savingsplans:DescribeSavingsPlansOfferings",
    "savingsplans:DescribeSavingsPlans",
    "rds:DescribeReservedDBInstancesOfferings",
    "rds:DescribeReservedDBInstances",
    "elasticache:DescribeReservedCacheNodesOfferings",
    "elasticache:DescribeReservedCacheNodes",
    "memorydb:DescribeReservedNodesOfferings",
    "memorydb:DescribeReservedNodes",
    "es:DescribeReservedInstanceOfferings",
    "es:DescribeReservedInstances",
    "redshift:DescribeReservedNodeOfferings",
    "redshift:DescribeReservedNodes",
    "redshift:DescribeTags",
];

/// The purchase calls, and the tagging each purchase's idempotency token needs.
const PURCHASE_ACTIONS: &[&str] = &[
    "ec2:PurchaseReservedInstancesOffering",
    "ec2:CreateTags",
    "savingsplans:CreateSavingsPlan",
    "savingsplans:TagResource",
    "rds:PurchaseReservedDBInstancesOffering",
    "rds:AddTagsToResource",
    "elasticache:PurchaseReservedCacheNodesOffering",
    "elasticache:AddTagsToResource",
    "memorydb:PurchaseReservedNodesOffering",
    "memorydb:TagResource",
    "es:PurchaseReservedInstanceOffering",
    "es:AddTags",
    "redshift:PurchaseReservedNodeOffering",
    "redshift:CreateTags",
];

/// The purchases AWS checks without buying (`DryRun`): all a dry run may attempt.
const DRY_RUN_ACTIONS: &[&str] = &["ec2:PurchaseReservedInstancesOffering"];

/// Returns the IAM actions a session of `scope` is allowed.
pub fn allowed_actions(scope: SessionScope) -> Vec<&'static str> {
    match scope {
        SessionScope::Quote => DESCRIBE_ACTIONS.to_vec(),
        SessionScope::DryRun => DESCRIBE_ACTIONS
            .iter()
            .chain(DRY_RUN_ACTIONS)
            .copied()
            .collect(),
        SessionScope::Purchase => DESCRIBE_ACTIONS
            .iter()
            .chain(PURCHASE_ACTIONS)
            .copied()
            .collect(),
    }
}

/// Returns the inline session policy of `scope` (compact JSON: AWS counts its
/// characters against a 2,048 limit).
pub fn session_policy(scope: SessionScope) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": format!("Cudly{}", capitalised(&scope.name().replace('_', ""))),
            "Effect": "Allow",
            "Action": allowed_actions(scope),
            "Resource": "*",
        }],
    })
    .to_string()
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purchase_session_may_describe_buy_and_tag_and_a_quote_session_only_describe() {
        let quote = allowed_actions(SessionScope::Quote);
        assert!(quote.iter().all(|action| action.contains(":Describe")));
        let purchase = allowed_actions(SessionScope::Purchase);
        assert!(purchase.contains(&"ec2:PurchaseReservedInstancesOffering"));
        assert!(purchase.contains(&"savingsplans:CreateSavingsPlan"));
        for prefix in [
            "ec2:",
            "savingsplans:",
            "rds:",
            "elasticache:",
            "memorydb:",
            "es:",
            "redshift:",
        ] {
            assert!(
                purchase
                    .iter()
                    .filter(|action| action.starts_with(prefix))
                    .count()
                    >= 3,
                "{prefix}"
            );
        }
        assert!(!purchase.iter().any(|action| action.contains('*')));
    }

    #[test]
    fn the_policies_fit_aws_limit_of_2048_characters() {
        for scope in [
            SessionScope::Quote,
            SessionScope::DryRun,
            SessionScope::Purchase,
        ] {
            let policy = session_policy(scope);
            assert!(policy.len() <= 2048, "{} characters", policy.len());
            let parsed: serde_json::Value = serde_json::from_str(&policy).unwrap();
            assert_eq!(parsed["Statement"][0]["Effect"], "Allow");
        }
    }
}
