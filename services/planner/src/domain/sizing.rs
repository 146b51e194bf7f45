//! What a step of a plan sized from Cost Explorer recommendations buys
//! (docs/design/DOMAIN.md "Recommendations and sizing"): in each target account and
//! enabled service, `floor(recommended × coverage(n) / 100)` minus what was already
//! bought of that shape, by the plan's earlier runs or by anyone within the cooldown
//! (Cost Explorer lags 24 to 48 hours behind purchases). Each purchase counts once even
//! when both rules name it. Data older than the maximum age refuses the run.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use cudly_vocabulary::{
    AwsService, Recommendation, RecommendationInput, limits, validate_recommendations,
};
use uuid::Uuid;

use super::plan::Plan;
use super::ramp::effective_coverage;
use super::recommendations::StoredRecommendation;
use super::run::NothingToRun;
use super::selection::accepting_service;

/// Savings Plans are sized in thousandths of a dollar per hour, the smallest commitment
/// AWS sells.
const SP_UNITS_PER_USD: f64 = 1000.0;
/// Guards a floor against binary rounding (0.29 × 100 is 28.999…).
const FLOOR_EPSILON: f64 = 1e-9;

/// The shape a recommendation and a purchase are compared by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    pub account_id: Uuid,
    pub service: AwsService,
    pub region: String,
    pub resource_type: String,
    pub engine: Option<String>,
    pub platform: Option<String>,
    pub term: u32,
    pub payment: String,
}

impl Shape {
    fn of(account_id: Uuid, recommendation: &Recommendation) -> Self {
        Self {
            account_id,
            service: recommendation.service,
            region: recommendation.region.clone(),
            resource_type: recommendation.resource_type.clone(),
            engine: recommendation.engine.clone(),
            platform: recommendation.platform.clone(),
            term: recommendation.term,
            payment: recommendation.payment.clone(),
        }
    }
}

/// A past purchase (the executor's history), in the units sizing counts: instances or
/// nodes, and for Savings Plans USD per hour.
#[derive(Debug, Clone, PartialEq)]
pub struct PastPurchase {
    pub shape: Shape,
    pub plan_id: Option<Uuid>,
    pub amount: f64,
    pub purchased_at: DateTime<Utc>,
}

/// The operator's sizing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizingRules {
    /// Purchases this recent are subtracted whoever made them
    /// (`CUDLY_RECOMMENDATION_COOLDOWN`).
    pub cooldown: TimeDelta,
    /// Recommendations older than this refuse the run (`CUDLY_RECOMMENDATION_MAX_AGE`).
    pub max_age: TimeDelta,
}

/// What one sized step buys, and when the oldest set it was sized from was collected.
#[derive(Debug, Clone, PartialEq)]
pub struct SizedStep {
    pub items: Vec<Recommendation>,
    pub sized_from: DateTime<Utc>,
}

/// The facts a sizing reads.
#[derive(Debug, Clone, Copy)]
pub struct SizingInput<'a> {
    pub plan: &'a Plan,
    pub step: u32,
    pub targets: &'a [Uuid],
    pub recommendations: &'a [StoredRecommendation],
    /// When each account's set was last collected.
    pub collected_at: &'a HashMap<Uuid, DateTime<Utc>>,
    pub purchases: &'a [PastPurchase],
    pub rules: SizingRules,
    pub now: DateTime<Utc>,
}

/// Returns what step `input.step` buys, or why it buys nothing.
pub fn size_step(input: SizingInput<'_>) -> Result<SizedStep, NothingToRun> {
    let sized_from = check_fresh(&input)?;
    let bought = already_bought(&input);
    let mut applicable = 0;
    let mut items = Vec::new();
    for stored in input
        .recommendations
        .iter()
        .filter(|stored| input.targets.contains(&stored.cloud_account_id))
    {
        let Some(candidate) = candidate(stored) else {
            continue;
        };
        let Some(config) = accepting_service(&input.plan.services, &candidate) else {
            continue;
        };
        applicable += 1;
        let ramp = &input.plan.ramp;
        let coverage = effective_coverage(
            ramp.ramp_type,
            ramp.percent_per_step,
            config.coverage,
            input.step,
        );
        let held = bought
            .get(&Shape::of(stored.cloud_account_id, &candidate))
            .copied()
            .unwrap_or(0.0);
        if let Some(item) = increment(stored, candidate, coverage, held) {
            items.push(item);
        }
    }
    if applicable == 0 {
        return Err(NothingToRun::NoRecommendations);
    }
    if items.is_empty() {
        return Err(NothingToRun::EmptyIncrement { step: input.step });
    }
    Ok(SizedStep { items, sized_from })
}

/// Returns the oldest collection time of the targets' sets, refusing when a target's
/// set is missing or older than the maximum age.
fn check_fresh(input: &SizingInput<'_>) -> Result<DateTime<Utc>, NothingToRun> {
    let oldest_allowed = input.now - input.rules.max_age;
    let mut sized_from = input.now;
    for target in input.targets {
        let Some(collected_at) = input.collected_at.get(target).copied() else {
            return Err(NothingToRun::StaleRecommendations(format!(
                "account {target} has no recommendations collected yet"
            )));
        };
        if collected_at < oldest_allowed {
            return Err(NothingToRun::StaleRecommendations(format!(
                "account {target} was last collected at {}, more than {} hours ago",
                collected_at.to_rfc3339(),
                input.rules.max_age.num_hours()
            )));
        }
        sized_from = sized_from.min(collected_at);
    }
    Ok(sized_from)
}

/// Sums, per shape, what the plan ever bought and what anyone bought within the
/// cooldown; a purchase both rules name counts once.
fn already_bought(input: &SizingInput<'_>) -> HashMap<Shape, f64> {
    let recent = input.now - input.rules.cooldown;
    let mut bought: HashMap<Shape, f64> = HashMap::new();
    for purchase in input.purchases {
        if purchase.plan_id == Some(input.plan.id) || purchase.purchased_at >= recent {
            *bought.entry(purchase.shape.clone()).or_default() += purchase.amount;
        }
    }
    bought
}

/// Returns the stored recommendation as a one-unit line of its account, validated by
/// the shared vocabulary; a detail the vocabulary refuses is skipped.
fn candidate(stored: &StoredRecommendation) -> Option<Recommendation> {
    let collected = &stored.recommendation;
    let input = RecommendationInput {
        provider: "aws".to_owned(),
        service: collected.service.name().to_owned(),
        region: collected.region.clone(),
        resource_type: collected.resource_type.clone(),
        engine: collected.engine.clone(),
        platform: collected.platform.clone(),
        count: 1,
        term: collected.term,
        payment: collected.payment.clone(),
        cloud_account_id: Some(stored.cloud_account_id),
        all_accounts: Some(false),
        details: Some(collected.details.clone()),
        upfront_cost: None,
        monthly_savings: None,
    };
    match validate_recommendations(vec![input]) {
        Ok(mut valid) => valid.pop(),
        Err(error) => {
            tracing::warn!(recommendation_id = %stored.id, error = %error, "recommendation skipped: not a valid purchase line");
            None
        }
    }
}

/// Returns the line buying the increment of `candidate` at `coverage` percent given
/// `held` already bought, or none when nothing is left to buy.
fn increment(
    stored: &StoredRecommendation,
    mut candidate: Recommendation,
    coverage: f64,
    held: f64,
) -> Option<Recommendation> {
    let collected = &stored.recommendation;
    let share_of = |amount: f64, whole: f64| if whole > 0.0 { amount / whole } else { 0.0 };
    let share = if collected.service == AwsService::SavingsPlans {
        let hourly: f64 = collected
            .details
            .hourly_commitment
            .as_deref()?
            .parse()
            .ok()?;
        let wanted = floor_units(hourly * coverage / 100.0 * SP_UNITS_PER_USD);
        let missing = wanted - (held * SP_UNITS_PER_USD).round();
        if missing < 1.0 {
            return None;
        }
        candidate.details.hourly_commitment = Some(format!(
            "{}.{:03}",
            (missing / SP_UNITS_PER_USD).trunc(),
            missing % SP_UNITS_PER_USD
        ));
        share_of(missing / SP_UNITS_PER_USD, hourly)
    } else {
        let wanted = floor_units(collected.recommended_count * coverage / 100.0);
        let missing = (wanted - held.round()).min(f64::from(limits::MAX_COUNT));
        if missing < 1.0 {
            return None;
        }
        candidate.count = missing as u32;
        share_of(missing, collected.recommended_count)
    };
    candidate.upfront_cost = Some(collected.upfront_cost * share);
    candidate.monthly_savings = Some(collected.monthly_savings * share);
    Some(candidate)
}

fn floor_units(value: f64) -> f64 {
    (value + FLOOR_EPSILON).floor().max(0.0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cudly_vocabulary::{Provider, RecommendationDetails};

    use super::*;
    use crate::domain::plan::{PlanSource, RampSchedule, RampType, ServiceConfig};
    use cudly_vocabulary::CollectedRecommendation;

    const ACCOUNT: Uuid = Uuid::from_u128(7);

    fn plan(coverage: f64, ramp_type: RampType, percent_per_step: f64) -> Plan {
        let now = Utc::now();
        let service = |name: &str, payment: &str| ServiceConfig {
            provider: Provider::Aws,
            service: name.into(),
            enabled: true,
            term: 1,
            payment: payment.into(),
            coverage,
            include_regions: vec![],
            exclude_regions: vec![],
            include_types: vec![],
            exclude_types: vec![],
        };
        Plan {
            id: Uuid::from_u128(99),
            name: "sized".into(),
            enabled: true,
            auto_purchase: false,
            notification_days_before: 0,
            services: BTreeMap::from([
                ("aws/rds".to_owned(), service("rds", "no-upfront")),
                (
                    "aws/savingsplans".to_owned(),
                    service("savingsplans", "no-upfront"),
                ),
            ]),
            ramp: RampSchedule {
                ramp_type,
                percent_per_step,
                step_interval_days: 7,
                current_step: 0,
                total_steps: 4,
                start_date: now,
            },
            all_enabled_accounts: true,
            next_execution_date: None,
            last_execution_date: None,
            step_fires: 0,
            paused_reason: None,
            max_commitment_per_run: None,
            editor: None,
            auto_purchase_requested_by: None,
            source: PlanSource::Recommendations,
            created_at: now,
            updated_at: now,
        }
    }

    fn rds(count: f64) -> StoredRecommendation {
        StoredRecommendation {
            id: Uuid::from_u128(1),
            cloud_account_id: ACCOUNT,
            account_external_id: "111111111111".into(),
            recommendation: CollectedRecommendation {
                account_id: "111111111111".into(),
                service: AwsService::Rds,
                region: "us-east-1".into(),
                resource_type: "db.r6g.large".into(),
                engine: Some("postgresql".into()),
                platform: None,
                term: 1,
                payment: "no-upfront".into(),
                recommended_count: count,
                upfront_cost: 0.0,
                monthly_savings: 100.0,
                details: RecommendationDetails::default(),
            },
            collected_at: Utc::now(),
        }
    }

    fn savings_plan(hourly: &str) -> StoredRecommendation {
        let mut stored = rds(1.0);
        stored.recommendation.service = AwsService::SavingsPlans;
        stored.recommendation.resource_type = "Compute".into();
        stored.recommendation.engine = None;
        stored.recommendation.details = RecommendationDetails {
            plan_type: Some("Compute".into()),
            hourly_commitment: Some(hourly.into()),
            ..RecommendationDetails::default()
        };
        stored
    }

    struct Case {
        plan: Plan,
        step: u32,
        recommendations: Vec<StoredRecommendation>,
        purchases: Vec<PastPurchase>,
        collected_at: DateTime<Utc>,
    }

    impl Case {
        fn new(plan: Plan, recommendations: Vec<StoredRecommendation>) -> Self {
            Self {
                plan,
                step: 1,
                recommendations,
                purchases: Vec::new(),
                collected_at: Utc::now(),
            }
        }

        fn size(&self) -> Result<SizedStep, NothingToRun> {
            let collected_at = HashMap::from([(ACCOUNT, self.collected_at)]);
            size_step(SizingInput {
                plan: &self.plan,
                step: self.step,
                targets: &[ACCOUNT],
                recommendations: &self.recommendations,
                collected_at: &collected_at,
                purchases: &self.purchases,
                rules: SizingRules {
                    cooldown: TimeDelta::days(3),
                    max_age: TimeDelta::hours(48),
                },
                now: Utc::now(),
            })
        }

        fn bought(&mut self, count: f64, plan_id: Option<Uuid>, days_ago: i64) {
            let line = candidate(&self.recommendations[0]).unwrap();
            self.purchases.push(PastPurchase {
                shape: Shape::of(ACCOUNT, &line),
                plan_id,
                amount: count,
                purchased_at: Utc::now() - TimeDelta::days(days_ago),
            });
        }
    }

    fn counts(sized: &SizedStep) -> Vec<u32> {
        sized.items.iter().map(|item| item.count).collect()
    }

    #[test]
    fn a_step_buys_the_floor_of_coverage_times_the_recommended_count() {
        let case = Case::new(plan(50.0, RampType::Immediate, 100.0), vec![rds(7.0)]);
        let sized = case.size().unwrap();
        assert_eq!(counts(&sized), vec![3]);
        assert_eq!(sized.items[0].cloud_account_id, Some(ACCOUNT));
        assert!((sized.items[0].monthly_savings.unwrap() - 100.0 * 3.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn a_later_step_buys_only_what_the_plan_has_not_bought_yet() {
        let mut case = Case::new(plan(100.0, RampType::Custom, 25.0), vec![rds(8.0)]);
        case.step = 2;
        case.bought(2.0, Some(Uuid::from_u128(99)), 10);
        assert_eq!(counts(&case.size().unwrap()), vec![2]);
    }

    #[test]
    fn a_purchase_within_the_cooldown_is_subtracted_once_and_an_older_one_of_another_plan_not_at_all()
     {
        let mut case = Case::new(plan(100.0, RampType::Immediate, 100.0), vec![rds(10.0)]);
        case.bought(3.0, Some(Uuid::from_u128(99)), 1);
        case.bought(2.0, None, 2);
        case.bought(4.0, None, 5);
        assert_eq!(counts(&case.size().unwrap()), vec![5]);
    }

    #[test]
    fn stale_or_missing_data_refuses_the_run() {
        let mut case = Case::new(plan(100.0, RampType::Immediate, 100.0), vec![rds(10.0)]);
        case.collected_at = Utc::now() - TimeDelta::hours(49);
        assert!(matches!(
            case.size(),
            Err(NothingToRun::StaleRecommendations(_))
        ));
        case.collected_at = Utc::now();
        let collected_at = HashMap::new();
        let refused = size_step(SizingInput {
            plan: &case.plan,
            step: 1,
            targets: &[ACCOUNT],
            recommendations: &case.recommendations,
            collected_at: &collected_at,
            purchases: &[],
            rules: SizingRules {
                cooldown: TimeDelta::days(3),
                max_age: TimeDelta::hours(48),
            },
            now: Utc::now(),
        });
        assert!(matches!(
            refused,
            Err(NothingToRun::StaleRecommendations(_))
        ));
    }

    #[test]
    fn everything_already_held_is_an_empty_increment_and_no_match_is_nothing_to_size() {
        let mut case = Case::new(plan(50.0, RampType::Immediate, 100.0), vec![rds(4.0)]);
        case.bought(2.0, Some(Uuid::from_u128(99)), 30);
        assert_eq!(case.size(), Err(NothingToRun::EmptyIncrement { step: 1 }));
        let mut other_term = rds(4.0);
        other_term.recommendation.term = 3;
        let case = Case::new(plan(50.0, RampType::Immediate, 100.0), vec![other_term]);
        assert_eq!(case.size(), Err(NothingToRun::NoRecommendations));
    }

    #[test]
    fn savings_plans_are_sized_in_thousandths_of_a_dollar_an_hour() {
        let mut case = Case::new(
            plan(50.0, RampType::Immediate, 100.0),
            vec![savings_plan("2.4567")],
        );
        let sized = case.size().unwrap();
        assert_eq!(sized.items[0].count, 1);
        assert_eq!(
            sized.items[0].details.hourly_commitment.as_deref(),
            Some("1.228")
        );
        case.bought(1.0, None, 1);
        let sized = case.size().unwrap();
        assert_eq!(
            sized.items[0].details.hourly_commitment.as_deref(),
            Some("0.228")
        );
    }
}
