//! A plan's standing list filtered to its services and scaled to one ramp step
//! (docs/design/DOMAIN.md "Plans"). What a valid line is lives in `cudly-vocabulary`.

use std::collections::BTreeMap;

use cudly_vocabulary::Recommendation;

use super::plan::{RampSchedule, ServiceConfig, service_key};
use super::ramp;

/// The part of a plan's standing list that one step buys.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSelection {
    /// Items of the standing list that the plan's enabled services and filters accept.
    pub applicable: usize,
    /// What the step buys: the applicable items with their count scaled to the step's
    /// increment, items reaching 0 dropped, in standing-list order.
    pub items: Vec<Recommendation>,
}

/// Returns the service of `services` that accepts `recommendation`: the enabled service
/// of its key whose include/exclude lists let its region and type through and whose term
/// and payment are the recommendation's (a plan buys only what it says it buys).
pub fn accepting_service<'a>(
    services: &'a BTreeMap<String, ServiceConfig>,
    recommendation: &Recommendation,
) -> Option<&'a ServiceConfig> {
    let config = services.get(&service_key(
        recommendation.provider,
        recommendation.service.name(),
    ))?;
    let region = recommendation.region.as_str();
    let resource_type = recommendation.resource_type.as_str();
    let listed = |list: &[String], value: &str| list.iter().any(|entry| entry == value);
    let accepted = config.enabled
        && (config.include_regions.is_empty() || listed(&config.include_regions, region))
        && !listed(&config.exclude_regions, region)
        && (config.include_types.is_empty() || listed(&config.include_types, resource_type))
        && !listed(&config.exclude_types, resource_type)
        && config.term == recommendation.term
        && config.payment == recommendation.payment;
    accepted.then_some(config)
}

/// Returns what step `step` of the ramp buys from the standing list: the items the
/// plan's services accept, each scaled to
/// `floor(count × coverage(step)) − floor(count × coverage(step − 1))`, zeros dropped.
/// Estimated costs scale with the count.
pub fn select_for_step(
    standing: &[Recommendation],
    services: &BTreeMap<String, ServiceConfig>,
    ramp: &RampSchedule,
    step: u32,
) -> StepSelection {
    let mut applicable = 0;
    let mut items = Vec::new();
    for recommendation in standing {
        let Some(config) = accepting_service(services, recommendation) else {
            continue;
        };
        applicable += 1;
        let units = ramp::step_units(
            recommendation.count,
            config.coverage,
            ramp.ramp_type,
            ramp.percent_per_step,
            step,
        );
        if units == 0 {
            continue;
        }
        let share = f64::from(units) / f64::from(recommendation.count);
        let mut scaled = recommendation.clone();
        scaled.count = units;
        scaled.upfront_cost = recommendation.upfront_cost.map(|cost| cost * share);
        scaled.monthly_savings = recommendation
            .monthly_savings
            .map(|savings| savings * share);
        items.push(scaled);
    }
    StepSelection { applicable, items }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cudly_vocabulary::testing::example;
    use cudly_vocabulary::{Provider, RecommendationDetails, validate_recommendations};

    use super::*;
    use crate::domain::plan::RampType;

    fn config(service: &str, coverage: f64) -> ServiceConfig {
        ServiceConfig {
            provider: Provider::Aws,
            service: service.into(),
            enabled: true,
            term: 1,
            payment: "all-upfront".into(),
            coverage,
            include_regions: vec![],
            exclude_regions: vec![],
            include_types: vec![],
            exclude_types: vec![],
        }
    }

    fn standing(service: &str, region: &str, resource_type: &str, count: u32) -> Recommendation {
        let mut raw = example(service, resource_type);
        raw.region = region.into();
        raw.count = count;
        if service == "savingsplans" {
            raw.details = Some(RecommendationDetails {
                hourly_commitment: Some("1.00".into()),
                ..RecommendationDetails::default()
            });
        }
        validate_recommendations(vec![raw]).unwrap().remove(0)
    }

    fn ramp(ramp_type: RampType, percent_per_step: f64, total_steps: u32) -> RampSchedule {
        RampSchedule {
            ramp_type,
            percent_per_step,
            step_interval_days: 7,
            current_step: 0,
            total_steps,
            start_date: Utc::now(),
        }
    }

    #[test]
    fn only_items_the_plan_services_accept_are_kept() {
        let mut ec2 = config("ec2", 100.0);
        ec2.include_regions = vec!["us-east-1".into(), "eu-west-1".into()];
        ec2.exclude_regions = vec!["eu-west-1".into()];
        ec2.exclude_types = vec!["m5.24xlarge".into()];
        let mut rds = config("rds", 100.0);
        rds.include_types = vec!["db.r6g.large".into()];
        let mut redshift = config("redshift", 100.0);
        redshift.enabled = false;
        let mut elasticache = config("elasticache", 100.0);
        elasticache.term = 3;
        let services = BTreeMap::from([
            ("aws/ec2".to_owned(), ec2),
            ("aws/rds".to_owned(), rds),
            ("aws/redshift".to_owned(), redshift),
            ("aws/elasticache".to_owned(), elasticache),
        ]);
        // (case, item, accepted)
        let cases = [
            (
                "included region",
                standing("ec2", "us-east-1", "m5.large", 1),
                true,
            ),
            (
                "region not included",
                standing("ec2", "ap-south-1", "m5.large", 1),
                false,
            ),
            (
                "excluded wins over included",
                standing("ec2", "eu-west-1", "m5.large", 1),
                false,
            ),
            (
                "excluded type",
                standing("ec2", "us-east-1", "m5.24xlarge", 1),
                false,
            ),
            (
                "included type",
                standing("rds", "eu-west-1", "db.r6g.large", 1),
                true,
            ),
            (
                "type not included",
                standing("rds", "eu-west-1", "db.m5.large", 1),
                false,
            ),
            (
                "disabled service",
                standing("redshift", "us-east-1", "ra3.xlplus", 1),
                false,
            ),
            (
                "service not in the plan",
                standing("memorydb", "us-east-1", "db.r6g.large", 1),
                false,
            ),
            (
                "term the plan does not buy",
                standing("elasticache", "us-east-1", "cache.r6g.large", 1),
                false,
            ),
        ];
        for (case, item, accepted) in cases {
            assert_eq!(
                accepting_service(&services, &item).is_some(),
                accepted,
                "{case}"
            );
        }
        let mut other_payment = standing("ec2", "us-east-1", "m5.large", 1);
        other_payment.payment = "no-upfront".into();
        assert!(
            accepting_service(&services, &other_payment).is_none(),
            "payment the plan does not buy"
        );
    }

    #[test]
    fn each_step_buys_the_increment_of_each_item() {
        let services = BTreeMap::from([
            ("aws/ec2".to_owned(), config("ec2", 80.0)),
            ("aws/rds".to_owned(), config("rds", 100.0)),
        ]);
        let list = vec![
            standing("ec2", "us-east-1", "m5.large", 10),
            standing("rds", "us-east-1", "db.r6g.large", 3),
            standing("memorydb", "us-east-1", "db.r6g.large", 8),
        ];
        // (ramp, step, expected (resource type, count) bought)
        let weekly = ramp(RampType::Weekly25Pct, 25.0, 4);
        let immediate = ramp(RampType::Immediate, 100.0, 1);
        let monthly = ramp(RampType::Monthly10Pct, 10.0, 10);
        let custom = ramp(RampType::Custom, 50.0, 2);
        type Case<'a> = (&'a RampSchedule, u32, Vec<(&'a str, u32)>);
        let cases: Vec<Case> = vec![
            (&immediate, 1, vec![("m5.large", 8), ("db.r6g.large", 3)]),
            (&weekly, 1, vec![("m5.large", 2)]),
            (&weekly, 2, vec![("m5.large", 2), ("db.r6g.large", 1)]),
            (&weekly, 3, vec![("m5.large", 2), ("db.r6g.large", 1)]),
            (&weekly, 4, vec![("m5.large", 2), ("db.r6g.large", 1)]),
            (&monthly, 1, vec![]),
            (&monthly, 2, vec![("m5.large", 1)]),
            (&monthly, 4, vec![("m5.large", 1), ("db.r6g.large", 1)]),
            (&custom, 1, vec![("m5.large", 4), ("db.r6g.large", 1)]),
            (&custom, 2, vec![("m5.large", 4), ("db.r6g.large", 2)]),
        ];
        for (ramp, step, expected) in cases {
            let selection = select_for_step(&list, &services, ramp, step);
            assert_eq!(selection.applicable, 2, "the memorydb item is filtered out");
            let got: Vec<(&str, u32)> = selection
                .items
                .iter()
                .map(|item| (item.resource_type.as_str(), item.count))
                .collect();
            assert_eq!(got, expected, "{} step {step}", ramp.ramp_type.as_str());
        }
    }

    #[test]
    fn an_empty_increment_keeps_the_applicable_count() {
        let services = BTreeMap::from([("aws/rds".to_owned(), config("rds", 100.0))]);
        let list = vec![standing("rds", "us-east-1", "db.r6g.large", 1)];
        let selection = select_for_step(&list, &services, &ramp(RampType::Weekly25Pct, 25.0, 4), 1);
        assert_eq!(selection.applicable, 1);
        assert!(selection.items.is_empty());
    }

    #[test]
    fn scaled_items_keep_their_fields_and_scale_their_costs() {
        let services =
            BTreeMap::from([("aws/savingsplans".to_owned(), config("savingsplans", 50.0))]);
        let mut item = standing("savingsplans", "us-east-1", "Compute", 4);
        item.upfront_cost = Some(400.0);
        item.monthly_savings = Some(40.0);
        let selection = select_for_step(
            &[item.clone()],
            &services,
            &ramp(RampType::Immediate, 100.0, 1),
            1,
        );
        let scaled = &selection.items[0];
        assert_eq!(scaled.count, 2);
        assert_eq!(scaled.upfront_cost, Some(200.0));
        assert_eq!(scaled.monthly_savings, Some(20.0));
        assert_eq!(scaled.details, item.details);
        assert_eq!(scaled.region, item.region);
    }

    #[test]
    fn standing_items_survive_a_json_round_trip() {
        let item = standing("ec2", "us-east-1", "m5.large", 3);
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["provider"], "aws");
        let back: Recommendation = serde_json::from_value(json).unwrap();
        assert_eq!(back, item);
    }
}
