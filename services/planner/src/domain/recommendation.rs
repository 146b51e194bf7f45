//! Recommendations (API.md "Recommendation"): validation of a purchase list, and the
//! standing list of a plan filtered to its services and scaled to one ramp step
//! (DOMAIN.md "Plans").

use std::collections::BTreeMap;

use cudly_common::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::plan::{AWS_SERVICES, Provider, RampSchedule, ServiceConfig, service_key};
use super::ramp;

/// Most recommendations one list may hold.
pub const MAX_RECOMMENDATIONS: usize = 1000;
/// Largest count of one recommendation.
pub const MAX_COUNT: u32 = 100_000;
/// Longest free-text field (resource type, engine, platform, ids).
const MAX_TEXT_CHARS: usize = 128;
/// Savings Plans types (also their resource_type).
pub const SAVINGS_PLAN_TYPES: &[&str] = &["Compute", "EC2Instance", "SageMaker"];

/// A recommendation as received, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecommendationInput {
    pub provider: String,
    pub service: String,
    pub region: String,
    pub resource_type: String,
    pub engine: Option<String>,
    pub platform: Option<String>,
    pub count: u32,
    pub term: u32,
    pub payment: String,
    pub cloud_account_id: Option<String>,
    pub all_accounts: bool,
    pub details: RecommendationDetails,
    pub upfront_cost: Option<f64>,
    pub monthly_savings: Option<f64>,
}

/// A validated recommendation: one line of a purchase list. Stored as JSON in the plan's
/// standing list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub provider: Provider,
    pub service: String,
    pub region: String,
    pub resource_type: String,
    #[serde(default)]
    pub engine: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    pub count: u32,
    pub term: u32,
    pub payment: String,
    #[serde(default)]
    pub cloud_account_id: Option<Uuid>,
    #[serde(default)]
    pub all_accounts: bool,
    #[serde(default)]
    pub details: RecommendationDetails,
    /// Estimated upfront cost of the whole line (all of `count`).
    #[serde(default)]
    pub upfront_cost: Option<f64>,
    #[serde(default)]
    pub monthly_savings: Option<f64>,
}

/// Service-specific details; absent fields take the service defaults on validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecommendationDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offering_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_commitment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offering_id: Option<String>,
}

/// Returns the validated list, service defaults applied, or a 400 naming the first
/// field at fault (`recommendations[2].term`).
pub fn validate_recommendations(
    inputs: Vec<RecommendationInput>,
) -> Result<Vec<Recommendation>, ApiError> {
    if inputs.len() > MAX_RECOMMENDATIONS {
        return Err(ApiError::invalid_field(
            "recommendations",
            format!("at most {MAX_RECOMMENDATIONS} recommendations are allowed"),
        ));
    }
    inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| validate_recommendation(index, input))
        .collect()
}

fn field(index: usize, name: &str) -> String {
    format!("recommendations[{index}].{name}")
}

/// Returns the trimmed text when it is a plain name of 1 to 128 characters.
fn plain_text(
    index: usize,
    name: &str,
    value: &str,
    spaces_allowed: bool,
) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid_field(&field(index, name), "is required"));
    }
    let bad_char = |c: char| c.is_control() || (!spaces_allowed && c.is_whitespace());
    if trimmed.chars().count() > MAX_TEXT_CHARS || trimmed.chars().any(bad_char) {
        return Err(ApiError::invalid_field(
            &field(index, name),
            format!("must be a name of at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Returns the trimmed optional text; an empty string counts as absent.
fn optional_text(
    index: usize,
    name: &str,
    value: Option<String>,
    spaces_allowed: bool,
) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if !text.trim().is_empty() => {
            plain_text(index, name, &text, spaces_allowed).map(Some)
        }
        _ => Ok(None),
    }
}

/// Returns true for an AWS region name such as `us-east-1` or `us-gov-west-1`.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// Returns true for a positive decimal such as `1.00` (at most 8 decimals).
fn is_positive_decimal(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |part: &str| part.chars().all(|c| c.is_ascii_digit());
    !whole.is_empty()
        && whole.len() <= 12
        && digits_only(whole)
        && digits_only(fraction)
        && fraction.len() <= 8
        && text.contains('.') != fraction.is_empty()
        && text.chars().any(|c| ('1'..='9').contains(&c))
}

fn refuse_detail(index: usize, name: &str, set: bool, service: &str) -> Result<(), ApiError> {
    if set {
        return Err(ApiError::invalid_field(
            &field(index, &format!("details.{name}")),
            format!("is not used by {service}"),
        ));
    }
    Ok(())
}

fn validate_recommendation(
    index: usize,
    input: RecommendationInput,
) -> Result<Recommendation, ApiError> {
    let provider = match Provider::parse(&input.provider) {
        Some(Provider::Aws) => Provider::Aws,
        Some(other) => {
            return Err(ApiError::invalid_field(
                &field(index, "provider"),
                format!("{other} recommendations are not supported yet"),
            ));
        }
        None => {
            return Err(ApiError::invalid_field(
                &field(index, "provider"),
                "must be aws",
            ));
        }
    };
    let service = input.service.trim().to_owned();
    if !AWS_SERVICES.contains(&service.as_str()) {
        return Err(ApiError::invalid_field(
            &field(index, "service"),
            format!("must be one of {}", AWS_SERVICES.join(", ")),
        ));
    }
    let region = input.region.trim().to_owned();
    if !is_region(&region) {
        return Err(ApiError::invalid_field(
            &field(index, "region"),
            "must be a region such as us-east-1",
        ));
    }
    let resource_type = plain_text(index, "resource_type", &input.resource_type, false)?;
    if service == "savingsplans" && !SAVINGS_PLAN_TYPES.contains(&resource_type.as_str()) {
        return Err(ApiError::invalid_field(
            &field(index, "resource_type"),
            format!(
                "must be a savings plan type: {}",
                SAVINGS_PLAN_TYPES.join(", ")
            ),
        ));
    }
    let engine = optional_text(index, "engine", input.engine, false)?;
    let platform = optional_text(index, "platform", input.platform, true)?;
    if input.count == 0 || input.count > MAX_COUNT {
        return Err(ApiError::invalid_field(
            &field(index, "count"),
            format!("must be between 1 and {MAX_COUNT}"),
        ));
    }
    if input.term != 1 && input.term != 3 {
        return Err(ApiError::invalid_field(
            &field(index, "term"),
            "must be 1 or 3",
        ));
    }
    let payments = provider.payment_options();
    if !payments.contains(&input.payment.as_str()) {
        return Err(ApiError::invalid_field(
            &field(index, "payment"),
            format!("must be one of {}", payments.join(", ")),
        ));
    }
    let cloud_account_id = match input.cloud_account_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(Uuid::parse_str(text).map_err(|_| {
            ApiError::invalid_field(&field(index, "cloud_account_id"), "must be an account uuid")
        })?),
    };
    if cloud_account_id.is_some() && input.all_accounts {
        return Err(ApiError::invalid_field(
            &field(index, "all_accounts"),
            "must not be set together with cloud_account_id",
        ));
    }
    let details = validate_details(index, &service, &region, &resource_type, input.details)?;
    for (name, value) in [
        ("upfront_cost", input.upfront_cost),
        ("monthly_savings", input.monthly_savings),
    ] {
        if let Some(amount) = value
            && (!amount.is_finite() || amount < 0.0)
        {
            return Err(ApiError::invalid_field(
                &field(index, name),
                "must be a number of at least 0",
            ));
        }
    }
    Ok(Recommendation {
        provider,
        service,
        region,
        resource_type,
        engine,
        platform,
        count: input.count,
        term: input.term,
        payment: input.payment,
        cloud_account_id,
        all_accounts: input.all_accounts,
        details,
        upfront_cost: input.upfront_cost,
        monthly_savings: input.monthly_savings,
    })
}

fn validate_details(
    index: usize,
    service: &str,
    region: &str,
    resource_type: &str,
    details: RecommendationDetails,
) -> Result<RecommendationDetails, ApiError> {
    let is_ec2 = service == "ec2";
    let is_rds = service == "rds";
    let is_savings_plan = service == "savingsplans";
    refuse_detail(
        index,
        "tenancy",
        !is_ec2 && details.tenancy.is_some(),
        service,
    )?;
    refuse_detail(
        index,
        "offering_class",
        !is_ec2 && details.offering_class.is_some(),
        service,
    )?;
    refuse_detail(
        index,
        "availability_zone",
        !is_ec2 && details.availability_zone.is_some(),
        service,
    )?;
    refuse_detail(
        index,
        "multi_az",
        !is_rds && details.multi_az.is_some(),
        service,
    )?;
    refuse_detail(
        index,
        "plan_type",
        !is_savings_plan && details.plan_type.is_some(),
        service,
    )?;
    refuse_detail(
        index,
        "hourly_commitment",
        !is_savings_plan && details.hourly_commitment.is_some(),
        service,
    )?;
    refuse_detail(
        index,
        "offering_id",
        !is_savings_plan && details.offering_id.is_some(),
        service,
    )?;
    let mut validated = RecommendationDetails::default();
    if is_ec2 {
        let tenancy = details.tenancy.unwrap_or_else(|| "default".to_owned());
        if tenancy != "default" && tenancy != "dedicated" {
            return Err(ApiError::invalid_field(
                &field(index, "details.tenancy"),
                "must be default or dedicated",
            ));
        }
        let offering_class = details
            .offering_class
            .unwrap_or_else(|| "standard".to_owned());
        if offering_class != "standard" && offering_class != "convertible" {
            return Err(ApiError::invalid_field(
                &field(index, "details.offering_class"),
                "must be standard or convertible",
            ));
        }
        if let Some(zone) = &details.availability_zone {
            let suffix = zone.strip_prefix(region).unwrap_or_default();
            let is_zone = !suffix.is_empty()
                && suffix.len() <= 3
                && suffix.chars().all(|c| c.is_ascii_lowercase());
            if !is_zone {
                return Err(ApiError::invalid_field(
                    &field(index, "details.availability_zone"),
                    "must be a zone of the region, such as us-east-1a",
                ));
            }
        }
        validated.tenancy = Some(tenancy);
        validated.offering_class = Some(offering_class);
        validated.availability_zone = details.availability_zone;
    }
    if is_rds {
        validated.multi_az = Some(details.multi_az.unwrap_or(false));
    }
    if is_savings_plan {
        let plan_type = details
            .plan_type
            .unwrap_or_else(|| resource_type.to_owned());
        if plan_type != resource_type {
            return Err(ApiError::invalid_field(
                &field(index, "details.plan_type"),
                "must equal resource_type (the plan type)",
            ));
        }
        let commitment = details.hourly_commitment.ok_or_else(|| {
            ApiError::invalid_field(
                &field(index, "details.hourly_commitment"),
                "is required for savingsplans",
            )
        })?;
        if !is_positive_decimal(&commitment) {
            return Err(ApiError::invalid_field(
                &field(index, "details.hourly_commitment"),
                "must be a positive decimal such as \"1.00\"",
            ));
        }
        validated.plan_type = Some(plan_type);
        validated.hourly_commitment = Some(commitment);
        validated.offering_id =
            optional_text(index, "details.offering_id", details.offering_id, false)?;
    }
    Ok(validated)
}

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
        &recommendation.service,
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

    use super::*;
    use crate::domain::plan::RampType;

    fn input(service: &str, resource_type: &str) -> RecommendationInput {
        RecommendationInput {
            provider: "aws".into(),
            service: service.into(),
            region: "us-east-1".into(),
            resource_type: resource_type.into(),
            count: 2,
            term: 1,
            payment: "all-upfront".into(),
            ..RecommendationInput::default()
        }
    }

    fn savings_plan() -> RecommendationInput {
        let mut plan = input("savingsplans", "Compute");
        plan.details.hourly_commitment = Some("1.00".into());
        plan
    }

    fn error_field(input: RecommendationInput) -> String {
        let error = validate_recommendations(vec![input]).expect_err("refused");
        assert_eq!(error.http_status(), 400);
        error.field.unwrap_or_default()
    }

    #[test]
    fn every_recommendation_rule_names_its_field() {
        let cases: Vec<(&str, RecommendationInput, &str)> = vec![
            (
                "azure",
                RecommendationInput {
                    provider: "azure".into(),
                    ..input("rds", "db.r6g.large")
                },
                "provider",
            ),
            (
                "unknown provider",
                RecommendationInput {
                    provider: "oci".into(),
                    ..input("rds", "db.r6g.large")
                },
                "provider",
            ),
            ("unknown service", input("lambda", "x"), "service"),
            (
                "bad region",
                RecommendationInput {
                    region: "US East".into(),
                    ..input("rds", "db.r6g.large")
                },
                "region",
            ),
            (
                "region without number",
                RecommendationInput {
                    region: "us-east".into(),
                    ..input("rds", "db.r6g.large")
                },
                "region",
            ),
            ("empty type", input("rds", " "), "resource_type"),
            ("type with space", input("rds", "db r6g"), "resource_type"),
            (
                "savings plan of unknown type",
                {
                    let mut p = savings_plan();
                    p.resource_type = "Lambda".into();
                    p
                },
                "resource_type",
            ),
            (
                "count 0",
                RecommendationInput {
                    count: 0,
                    ..input("rds", "db.r6g.large")
                },
                "count",
            ),
            (
                "huge count",
                RecommendationInput {
                    count: MAX_COUNT + 1,
                    ..input("rds", "db.r6g.large")
                },
                "count",
            ),
            (
                "term 2",
                RecommendationInput {
                    term: 2,
                    ..input("rds", "db.r6g.large")
                },
                "term",
            ),
            (
                "azure payment",
                RecommendationInput {
                    payment: "monthly".into(),
                    ..input("rds", "db.r6g.large")
                },
                "payment",
            ),
            (
                "bad account id",
                RecommendationInput {
                    cloud_account_id: Some("acct-1".into()),
                    ..input("rds", "db.r6g.large")
                },
                "cloud_account_id",
            ),
            (
                "account and all accounts",
                RecommendationInput {
                    cloud_account_id: Some(Uuid::new_v4().to_string()),
                    all_accounts: true,
                    ..input("rds", "db.r6g.large")
                },
                "all_accounts",
            ),
            (
                "tenancy on rds",
                {
                    let mut r = input("rds", "db.r6g.large");
                    r.details.tenancy = Some("default".into());
                    r
                },
                "details.tenancy",
            ),
            (
                "multi_az on ec2",
                {
                    let mut r = input("ec2", "m5.large");
                    r.details.multi_az = Some(true);
                    r
                },
                "details.multi_az",
            ),
            (
                "commitment on ec2",
                {
                    let mut r = input("ec2", "m5.large");
                    r.details.hourly_commitment = Some("1".into());
                    r
                },
                "details.hourly_commitment",
            ),
            (
                "bad tenancy",
                {
                    let mut r = input("ec2", "m5.large");
                    r.details.tenancy = Some("shared".into());
                    r
                },
                "details.tenancy",
            ),
            (
                "bad offering class",
                {
                    let mut r = input("ec2", "m5.large");
                    r.details.offering_class = Some("premium".into());
                    r
                },
                "details.offering_class",
            ),
            (
                "zone of another region",
                {
                    let mut r = input("ec2", "m5.large");
                    r.details.availability_zone = Some("eu-west-1a".into());
                    r
                },
                "details.availability_zone",
            ),
            (
                "savings plan without commitment",
                input("savingsplans", "Compute"),
                "details.hourly_commitment",
            ),
            (
                "negative commitment",
                {
                    let mut p = savings_plan();
                    p.details.hourly_commitment = Some("-1".into());
                    p
                },
                "details.hourly_commitment",
            ),
            (
                "zero commitment",
                {
                    let mut p = savings_plan();
                    p.details.hourly_commitment = Some("0.00".into());
                    p
                },
                "details.hourly_commitment",
            ),
            (
                "commitment with a dangling dot",
                {
                    let mut p = savings_plan();
                    p.details.hourly_commitment = Some("1.".into());
                    p
                },
                "details.hourly_commitment",
            ),
            (
                "plan type differs",
                {
                    let mut p = savings_plan();
                    p.details.plan_type = Some("SageMaker".into());
                    p
                },
                "details.plan_type",
            ),
            (
                "negative upfront",
                RecommendationInput {
                    upfront_cost: Some(-5.0),
                    ..input("rds", "db.r6g.large")
                },
                "upfront_cost",
            ),
            (
                "infinite savings",
                RecommendationInput {
                    monthly_savings: Some(f64::INFINITY),
                    ..input("rds", "db.r6g.large")
                },
                "monthly_savings",
            ),
        ];
        for (case, recommendation, expected) in cases {
            assert_eq!(
                error_field(recommendation),
                format!("recommendations[0].{expected}"),
                "{case}"
            );
        }
    }

    #[test]
    fn the_error_names_the_index_of_the_bad_item() {
        let bad = RecommendationInput {
            term: 5,
            ..input("rds", "db.r6g.large")
        };
        let error = validate_recommendations(vec![input("rds", "db.r6g.large"), bad]).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("recommendations[1].term"));
    }

    #[test]
    fn too_many_recommendations_are_refused() {
        let list = vec![input("rds", "db.r6g.large"); MAX_RECOMMENDATIONS + 1];
        assert_eq!(
            validate_recommendations(list).unwrap_err().field.as_deref(),
            Some("recommendations")
        );
    }

    #[test]
    fn service_defaults_are_applied() {
        let list = validate_recommendations(vec![
            input("ec2", "m5.large"),
            input("rds", "db.r6g.large"),
            savings_plan(),
            input("redshift", "ra3.xlplus"),
        ])
        .unwrap();
        assert_eq!(list[0].details.tenancy.as_deref(), Some("default"));
        assert_eq!(list[0].details.offering_class.as_deref(), Some("standard"));
        assert_eq!(list[1].details.multi_az, Some(false));
        assert_eq!(list[2].details.plan_type.as_deref(), Some("Compute"));
        assert_eq!(list[3].details, RecommendationDetails::default());
    }

    #[test]
    fn valid_edge_values_are_accepted() {
        let mut zonal = input("ec2", "m5.large");
        zonal.details.availability_zone = Some("us-east-1a".into());
        zonal.platform = Some("Red Hat Enterprise Linux".into());
        let mut gov = input("rds", "db.r6g.large");
        gov.region = "us-gov-west-1".into();
        gov.engine = Some("postgresql".into());
        gov.cloud_account_id = Some(Uuid::new_v4().to_string());
        let mut precise = savings_plan();
        precise.details.hourly_commitment = Some("0.001".into());
        let list = validate_recommendations(vec![zonal, gov, precise]).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].engine.as_deref(), Some("postgresql"));
    }

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
        let mut raw = input(service, resource_type);
        raw.region = region.into();
        raw.count = count;
        if service == "savingsplans" {
            raw.details.hourly_commitment = Some("1.00".into());
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
