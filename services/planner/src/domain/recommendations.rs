//! Cost Explorer recommendations as the planner keeps them (docs/design/DOMAIN.md
//! "Recommendations and sizing"): what a refresh asks about, where it collects (once at
//! each organization root, per account elsewhere), and the list filters.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_vocabulary::{AWS_PAYMENT_OPTIONS, AwsService, CollectedRecommendation, is_region};
use uuid::Uuid;

use super::plan::{Plan, PlanSource};

/// What a refresh asks about when no enabled plan names a service: every service at
/// one year without upfront payment, the most common first purchase.
const DEFAULT_TERM: u32 = 1;
const DEFAULT_PAYMENT: &str = "no-upfront";

/// One (service, term, payment) combination a refresh asks Cost Explorer about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Query {
    pub service: AwsService,
    pub term: u32,
    pub payment: String,
}

/// A recommendation as stored for a registered account.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecommendation {
    pub id: Uuid,
    pub cloud_account_id: Uuid,
    pub account_external_id: String,
    pub recommendation: CollectedRecommendation,
    pub collected_at: DateTime<Utc>,
}

/// An enabled AWS account as a refresh sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectableAccount {
    pub id: Uuid,
    /// The account's name, as people know it.
    pub name: String,
    /// The 12-digit AWS account id.
    pub external_id: String,
    pub is_org_root: bool,
    /// The account it reaches AWS through (discovered members: their root).
    pub bastion_id: Option<Uuid>,
}

/// Returns the combinations the enabled services of enabled plans use, or the default
/// (every service, one year, no upfront) when none does: Cost Explorer bills each call,
/// so a refresh never asks about every term and payment blindly.
pub fn queries_for(plans: &[Plan]) -> Vec<Query> {
    let used: BTreeSet<Query> = plans
        .iter()
        .filter(|plan| plan.enabled)
        .flat_map(|plan| plan.services.values())
        .filter(|config| config.enabled)
        .filter_map(|config| {
            Some(Query {
                service: AwsService::from_name(&config.service)?,
                term: config.term,
                payment: config.payment.clone(),
            })
        })
        .collect();
    if !used.is_empty() {
        return used.into_iter().collect();
    }
    AwsService::ALL
        .into_iter()
        .map(|service| Query {
            service,
            term: DEFAULT_TERM,
            payment: DEFAULT_PAYMENT.to_owned(),
        })
        .collect()
}

/// Returns whether any enabled plan sizes its runs from recommendations.
pub fn any_sized_plan(plans: &[Plan]) -> bool {
    plans
        .iter()
        .any(|plan| plan.enabled && plan.source == PlanSource::Recommendations)
}

/// The registered accounts one organization root's collection covers: every enabled
/// account whose AWS id the organization lists, the root included.
pub fn covered_by_root(
    accounts: &[CollectableAccount],
    organization_account_ids: &[String],
) -> Vec<Uuid> {
    let listed: HashSet<&str> = organization_account_ids
        .iter()
        .map(String::as_str)
        .collect();
    accounts
        .iter()
        .filter(|account| listed.contains(account.external_id.as_str()))
        .map(|account| account.id)
        .collect()
}

/// Returns the collected details per registered account among `covered`, keyed by the
/// account's uuid; details for accounts not registered (or not covered) are dropped.
pub fn assign_to_accounts(
    accounts: &[CollectableAccount],
    covered: &[Uuid],
    collected: Vec<CollectedRecommendation>,
) -> HashMap<Uuid, Vec<CollectedRecommendation>> {
    let by_external: HashMap<&str, Uuid> = accounts
        .iter()
        .filter(|account| covered.contains(&account.id))
        .map(|account| (account.external_id.as_str(), account.id))
        .collect();
    let mut sets: HashMap<Uuid, Vec<CollectedRecommendation>> =
        covered.iter().map(|id| (*id, Vec::new())).collect();
    for detail in collected {
        if let Some(id) = by_external.get(detail.account_id.as_str()) {
            sets.entry(*id).or_default().push(detail);
        }
    }
    sets
}

/// The filters of a list request, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecommendationFilter {
    /// Empty: every enabled account.
    pub account_ids: Vec<Uuid>,
    pub service: Option<AwsService>,
    pub region: Option<String>,
    pub term: Option<u32>,
    pub payment: Option<String>,
}

/// The list filters as received.
#[derive(Debug, Clone, Default)]
pub struct FilterInput {
    pub account_ids: Vec<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub term: Option<u32>,
    pub payment: Option<String>,
}

/// Returns the validated filters, or a 400 naming the first one at fault.
pub fn validate_filter(input: FilterInput) -> Result<RecommendationFilter, ApiError> {
    let account_ids = input
        .account_ids
        .iter()
        .map(|id| {
            Uuid::parse_str(id.trim())
                .map_err(|_| ApiError::invalid_field("account_ids", "must be account uuids"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let service = input
        .service
        .map(|name| {
            AwsService::from_name(&name)
                .ok_or_else(|| ApiError::invalid_field("service", "is not a known aws service"))
        })
        .transpose()?;
    if let Some(region) = &input.region
        && !is_region(region)
    {
        return Err(ApiError::invalid_field(
            "region",
            "is not a region such as us-east-1",
        ));
    }
    if let Some(term) = input.term
        && !cudly_vocabulary::TERMS_YEARS.contains(&term)
    {
        return Err(ApiError::invalid_field("term", "must be 1 or 3"));
    }
    if let Some(payment) = &input.payment
        && !AWS_PAYMENT_OPTIONS.contains(&payment.as_str())
    {
        return Err(ApiError::invalid_field(
            "payment",
            format!("must be one of {}", AWS_PAYMENT_OPTIONS.join(", ")),
        ));
    }
    Ok(RecommendationFilter {
        account_ids,
        service,
        region: input.region,
        term: input.term,
        payment: input.payment,
    })
}

/// Returns the accounts a list answers for: the asked ones that are enabled (a disabled
/// or unknown account is never listed), or every enabled account.
pub fn listed_accounts(filter: &RecommendationFilter, enabled: &[Uuid]) -> Vec<Uuid> {
    if filter.account_ids.is_empty() {
        return enabled.to_vec();
    }
    filter
        .account_ids
        .iter()
        .copied()
        .filter(|id| enabled.contains(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use cudly_vocabulary::RecommendationDetails;

    use super::*;

    fn account(id: u128, external: &str, root: bool) -> CollectableAccount {
        CollectableAccount {
            id: Uuid::from_u128(id),
            name: format!("account {id}"),
            external_id: external.into(),
            is_org_root: root,
            bastion_id: None,
        }
    }

    fn detail(aws_account_id: &str) -> CollectedRecommendation {
        CollectedRecommendation {
            account_id: aws_account_id.into(),
            service: AwsService::Rds,
            region: "us-east-1".into(),
            resource_type: "db.r6g.large".into(),
            engine: Some("postgresql".into()),
            platform: None,
            term: 1,
            payment: "no-upfront".into(),
            recommended_count: 4.0,
            upfront_cost: 0.0,
            monthly_savings: 10.0,
            details: RecommendationDetails::default(),
        }
    }

    #[test]
    fn a_root_covers_the_registered_accounts_its_organization_lists() {
        let accounts = [
            account(1, "111111111111", true),
            account(2, "222222222222", false),
            account(3, "333333333333", false),
        ];
        let listed = [
            "111111111111".to_owned(),
            "222222222222".to_owned(),
            "999999999999".to_owned(),
        ];
        assert_eq!(
            covered_by_root(&accounts, &listed),
            vec![Uuid::from_u128(1), Uuid::from_u128(2)]
        );
    }

    #[test]
    fn details_go_to_covered_accounts_only_and_covered_accounts_get_a_set_even_if_empty() {
        let accounts = [
            account(1, "111111111111", true),
            account(2, "222222222222", false),
        ];
        let covered = [Uuid::from_u128(1), Uuid::from_u128(2)];
        let sets = assign_to_accounts(
            &accounts,
            &covered,
            vec![
                detail("222222222222"),
                detail("222222222222"),
                detail("999999999999"),
            ],
        );
        assert_eq!(sets[&Uuid::from_u128(2)].len(), 2);
        assert!(sets[&Uuid::from_u128(1)].is_empty());
        assert_eq!(sets.len(), 2);
    }

    #[test]
    fn filters_name_the_field_at_fault() {
        let bad = |input: FilterInput| validate_filter(input).unwrap_err().field;
        let field = |name: &str| Some(name.to_owned());
        assert_eq!(
            bad(FilterInput {
                account_ids: vec!["nope".into()],
                ..FilterInput::default()
            }),
            field("account_ids")
        );
        assert_eq!(
            bad(FilterInput {
                service: Some("lambda".into()),
                ..FilterInput::default()
            }),
            field("service")
        );
        assert_eq!(
            bad(FilterInput {
                region: Some("moon".into()),
                ..FilterInput::default()
            }),
            field("region")
        );
        assert_eq!(
            bad(FilterInput {
                term: Some(2),
                ..FilterInput::default()
            }),
            field("term")
        );
        assert_eq!(
            bad(FilterInput {
                payment: Some("later".into()),
                ..FilterInput::default()
            }),
            field("payment")
        );
    }

    #[test]
    fn a_disabled_account_is_never_listed_even_when_asked_for() {
        let enabled = [Uuid::from_u128(1), Uuid::from_u128(2)];
        let filter = RecommendationFilter {
            account_ids: vec![Uuid::from_u128(2), Uuid::from_u128(3)],
            ..RecommendationFilter::default()
        };
        assert_eq!(listed_accounts(&filter, &enabled), vec![Uuid::from_u128(2)]);
        assert_eq!(
            listed_accounts(&RecommendationFilter::default(), &enabled),
            enabled.to_vec()
        );
    }
}
