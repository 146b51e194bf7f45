//! What the process-level runs (crash injection, scale-out) buy and how they judge the
//! outcome: one line per AWS service, and a check of the database against the sandbox
//! ledger (every item bought exactly once, every execution terminal with its status
//! changes recorded, no commitment without an item).

use std::collections::{HashMap, HashSet};

use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_aws_sandbox::{Ledger, Service};
use cudly_proto::common::v1::{Recommendation, RecommendationDetails};
use sqlx::PgPool;
use uuid::Uuid;

/// One AWS service as the trials buy it: the recommendation, the sandbox service and
/// the purchase action.
pub struct Line {
    pub recommendation: Recommendation,
    pub service: Service,
    pub purchase: &'static str,
}

pub fn lines() -> Vec<Line> {
    let base = Recommendation {
        provider: "aws".to_owned(),
        region: "us-east-1".to_owned(),
        count: 1,
        term: 1,
        payment: "no-upfront".to_owned(),
        all_accounts: true,
        ..Recommendation::default()
    };
    let line = |service: &str, resource: &str, edit: &dyn Fn(&mut Recommendation)| {
        let mut recommendation = Recommendation {
            service: service.to_owned(),
            resource_type: resource.to_owned(),
            ..base.clone()
        };
        edit(&mut recommendation);
        Line {
            recommendation,
            service: sandbox_service(service),
            purchase: purchase_operation(service),
        }
    };
    vec![
        line("ec2", "m5.large", &|r| {
            r.platform = Some("Linux/UNIX".to_owned());
            r.details = Some(RecommendationDetails {
                tenancy: Some("default".to_owned()),
                offering_class: Some("standard".to_owned()),
                ..RecommendationDetails::default()
            });
        }),
        line("savingsplans", "Compute", &|r| {
            r.details = Some(RecommendationDetails {
                plan_type: Some("Compute".to_owned()),
                hourly_commitment: Some("1.25".to_owned()),
                ..RecommendationDetails::default()
            });
        }),
        line("rds", "db.r5.large", &|r| {
            r.engine = Some("postgresql".to_owned());
            r.payment = "all-upfront".to_owned();
        }),
        line("elasticache", "cache.m5.large", &|r| {
            r.engine = Some("redis".to_owned());
            r.payment = "partial-upfront".to_owned();
        }),
        line("memorydb", "db.r6g.large", &|_| {}),
        line("opensearch", "r6g.large.search", &|_| {}),
        line("redshift", "dc2.large", &|r| {
            r.payment = "all-upfront".to_owned();
        }),
    ]
}

#[derive(Debug, Default)]
pub struct Found {
    pub executions: usize,
    pub items: usize,
    pub double_purchases: usize,
    pub lost_items: usize,
    /// Why each lost item was not bought: its status and stored error.
    pub lost_reasons: Vec<String>,
    pub unterminated: usize,
    pub unrecorded_changes: usize,
    pub orphan_commitments: usize,
}

/// Compares the database with the sandbox ledger for the trial's `roots`, and every
/// commitment in the ledger with every item ever recorded.
pub async fn check(pool: &PgPool, ledger: &Ledger, roots: &[Uuid]) -> Found {
    let mut found = Found::default();
    let executions: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, status FROM executions WHERE id = ANY($1) OR parent_id = ANY($1)",
    )
    .bind(roots)
    .fetch_all(pool)
    .await
    .unwrap();
    found.executions = executions.len();
    for (id, status) in &executions {
        if matches!(status.as_str(), "pending" | "approved" | "running") {
            found.unterminated += 1;
        }
        // The transitions chain from creation to the current status, link by link.
        let chain: Vec<(Option<String>, String)> = sqlx::query_as(
            "SELECT from_status, to_status FROM status_transitions WHERE execution_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut previous: Option<&str> = None;
        let mut broken = chain.is_empty();
        for (from, to) in &chain {
            if from.as_deref() != previous {
                broken = true;
            }
            previous = Some(to.as_str());
        }
        if previous != Some(status.as_str()) {
            broken = true;
        }
        if broken {
            found.unrecorded_changes += 1;
        }
    }

    // Ledger commitments by every key they count under, and by id.
    let mut by_key: HashMap<String, HashSet<&str>> = HashMap::new();
    for commitment in &ledger.commitments {
        for key in commitment.token_keys() {
            by_key
                .entry(key)
                .or_default()
                .insert(commitment.commitment_id.as_str());
        }
    }
    let items: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT i.idempotency_token, i.status, i.commitment_id, i.error FROM execution_items i \
         JOIN executions c ON c.id = i.execution_id WHERE c.parent_id = ANY($1)",
    )
    .bind(roots)
    .fetch_all(pool)
    .await
    .unwrap();
    found.items = items.len();
    for (token, status, commitment_id, error) in &items {
        // The token tag (or Savings Plans client token) names the item's commitments;
        // reservation ids are shortened tokens, so the recorded id is matched as well.
        let mut commitments: HashSet<&str> = by_key.get(token).cloned().unwrap_or_default();
        if let Some(id) = commitment_id
            && let Some(commitment) = ledger.commitments.iter().find(|c| &c.commitment_id == id)
        {
            commitments.insert(commitment.commitment_id.as_str());
        }
        if commitments.len() > 1 {
            found.double_purchases += commitments.len() - 1;
        }
        if status != "bought" || commitments.is_empty() {
            found.lost_items += 1;
            found.lost_reasons.push(format!(
                "{status}: {}",
                error.as_deref().unwrap_or("no error")
            ));
        }
    }

    // Every commitment in the cloud belongs to a bought item (ever).
    let recorded: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT commitment_id FROM execution_items WHERE commitment_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    found.orphan_commitments = ledger
        .commitments
        .iter()
        .filter(|commitment| !recorded.contains(&commitment.commitment_id))
        .count();
    found
}
