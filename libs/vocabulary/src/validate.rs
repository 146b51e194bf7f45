//! What a valid recommendation is: the one validation of a purchase list, used by the
//! planner when it stores a list and by the executor when it creates an execution, so
//! that nothing one accepts is refused by the other.

use crate::error::FieldError;
use crate::limits::{MAX_COUNT, MAX_RECOMMENDATIONS, MAX_TEXT_CHARS};
use crate::provider::{Provider, TERMS_YEARS};
use crate::recommendation::{Recommendation, RecommendationDetails, RecommendationInput};
use crate::savings_plan::{HourlyCommitment, SAVINGS_PLAN_TYPES};
use crate::service::{AWS_SERVICE_NAMES, AwsService};

/// Returns the validated list, service defaults applied, or an error naming the first
/// field at fault (`recommendations[2].term`). An empty list is valid here: whether a
/// list may be empty is the caller's rule.
pub fn validate_recommendations(
    inputs: Vec<RecommendationInput>,
) -> Result<Vec<Recommendation>, FieldError> {
    if inputs.len() > MAX_RECOMMENDATIONS {
        return Err(FieldError::new(
            "recommendations",
            format!("at most {MAX_RECOMMENDATIONS} recommendations are allowed"),
        ));
    }
    inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| Line { index }.validate(input))
        .collect()
}

/// Returns true for an AWS region name such as `us-east-1` or `us-gov-west-1`.
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, names)) = parts.split_last() else {
        return false;
    };
    parts.len() >= 3
        && parts[0].len() == 2
        && names
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Returns true for a zone of `region`: the region followed by one to three lowercase
/// letters (`us-east-1a`).
fn is_zone_of(zone: &str, region: &str) -> bool {
    let suffix = zone.strip_prefix(region).unwrap_or_default();
    !suffix.is_empty() && suffix.len() <= 3 && suffix.bytes().all(|b| b.is_ascii_lowercase())
}

/// The line being validated: names its fields.
struct Line {
    index: usize,
}

impl Line {
    fn error(&self, name: &str, problem: impl Into<String>) -> FieldError {
        FieldError::new(format!("recommendations[{}].{name}", self.index), problem)
    }

    /// Returns the trimmed text when it is a name of 1 to 128 characters without control
    /// characters (and without spaces unless `spaces_allowed`).
    fn name(&self, field: &str, value: &str, spaces_allowed: bool) -> Result<String, FieldError> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(self.error(field, "is required"));
        }
        let bad_char = |c: char| c.is_control() || (!spaces_allowed && c.is_whitespace());
        if trimmed.chars().count() > MAX_TEXT_CHARS || trimmed.chars().any(bad_char) {
            return Err(self.error(
                field,
                format!("must be a name of at most {MAX_TEXT_CHARS} characters"),
            ));
        }
        Ok(trimmed.to_owned())
    }

    /// Returns the trimmed optional name; an empty string counts as absent.
    fn optional_name(
        &self,
        field: &str,
        value: Option<String>,
        spaces_allowed: bool,
    ) -> Result<Option<String>, FieldError> {
        match value {
            Some(text) if !text.trim().is_empty() => {
                self.name(field, &text, spaces_allowed).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn validate(&self, input: RecommendationInput) -> Result<Recommendation, FieldError> {
        let provider = match Provider::parse(&input.provider) {
            Some(provider) if provider.is_purchasable() => provider,
            Some(other) => {
                return Err(self.error(
                    "provider",
                    format!("{other} recommendations are not supported yet"),
                ));
            }
            None => return Err(self.error("provider", "must be aws")),
        };
        let service = AwsService::from_name(input.service.trim()).ok_or_else(|| {
            self.error(
                "service",
                format!("must be one of {}", AWS_SERVICE_NAMES.join(", ")),
            )
        })?;
        let region = input.region.trim().to_owned();
        if !is_region(&region) {
            return Err(self.error("region", "must be a region such as us-east-1"));
        }
        let resource_type = self.name("resource_type", &input.resource_type, false)?;
        if service == AwsService::SavingsPlans
            && !SAVINGS_PLAN_TYPES.contains(&resource_type.as_str())
        {
            return Err(self.error(
                "resource_type",
                format!(
                    "must be a savings plan type: {}",
                    SAVINGS_PLAN_TYPES.join(", ")
                ),
            ));
        }
        let engine = self.optional_name("engine", input.engine, false)?;
        let platform = self.optional_name("platform", input.platform, true)?;
        if input.count == 0 || input.count > MAX_COUNT {
            return Err(self.error("count", format!("must be between 1 and {MAX_COUNT}")));
        }
        if !TERMS_YEARS.contains(&input.term) {
            return Err(self.error("term", "must be 1 or 3"));
        }
        let payments = provider.payment_options();
        if !payments.contains(&input.payment.as_str()) {
            return Err(self.error("payment", format!("must be one of {}", payments.join(", "))));
        }
        let all_accounts = input.all_accounts.unwrap_or(false);
        if input.cloud_account_id.is_some() && all_accounts {
            return Err(self.error(
                "all_accounts",
                "must not be set together with cloud_account_id",
            ));
        }
        let details = self.details(
            service,
            &region,
            &resource_type,
            input.count,
            input.details.unwrap_or_default(),
        )?;
        for (name, value) in [
            ("upfront_cost", input.upfront_cost),
            ("monthly_savings", input.monthly_savings),
        ] {
            if let Some(amount) = value
                && (!amount.is_finite() || amount < 0.0)
            {
                return Err(self.error(name, "must be a number of at least 0"));
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
            cloud_account_id: input.cloud_account_id,
            all_accounts,
            details,
            upfront_cost: input.upfront_cost,
            monthly_savings: input.monthly_savings,
        })
    }

    /// Returns the details with the service's defaults, refusing fields the service does
    /// not use.
    fn details(
        &self,
        service: AwsService,
        region: &str,
        resource_type: &str,
        count: u32,
        details: RecommendationDetails,
    ) -> Result<RecommendationDetails, FieldError> {
        let is_ec2 = service == AwsService::Ec2;
        let is_rds = service == AwsService::Rds;
        let is_savings_plan = service == AwsService::SavingsPlans;
        let used_by = [
            ("tenancy", details.tenancy.is_some(), is_ec2),
            ("offering_class", details.offering_class.is_some(), is_ec2),
            (
                "availability_zone",
                details.availability_zone.is_some(),
                is_ec2,
            ),
            ("multi_az", details.multi_az.is_some(), is_rds),
            ("plan_type", details.plan_type.is_some(), is_savings_plan),
            (
                "hourly_commitment",
                details.hourly_commitment.is_some(),
                is_savings_plan,
            ),
            (
                "offering_id",
                details.offering_id.is_some(),
                is_savings_plan,
            ),
        ];
        if let Some((name, _, _)) = used_by.iter().find(|(_, set, used)| *set && !*used) {
            return Err(self.error(
                &format!("details.{name}"),
                format!("is not used by {service}"),
            ));
        }
        let mut validated = RecommendationDetails::default();
        if is_ec2 {
            let tenancy = details.tenancy.unwrap_or_else(|| "default".to_owned());
            if tenancy != "default" && tenancy != "dedicated" {
                return Err(self.error("details.tenancy", "must be default or dedicated"));
            }
            let offering_class = details
                .offering_class
                .unwrap_or_else(|| "standard".to_owned());
            if offering_class != "standard" && offering_class != "convertible" {
                return Err(self.error("details.offering_class", "must be standard or convertible"));
            }
            if let Some(zone) = &details.availability_zone
                && !is_zone_of(zone, region)
            {
                return Err(self.error(
                    "details.availability_zone",
                    "must be a zone of the region, such as us-east-1a",
                ));
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
                return Err(self.error(
                    "details.plan_type",
                    "must equal resource_type (the plan type)",
                ));
            }
            let commitment = details.hourly_commitment.ok_or_else(|| {
                self.error("details.hourly_commitment", "is required for savingsplans")
            })?;
            HourlyCommitment::parse(&commitment)
                .and_then(|hourly| {
                    hourly.check_plan_range()?;
                    hourly.times(count)
                })
                .map_err(|problem| self.error("details.hourly_commitment", problem))?;
            validated.plan_type = Some(plan_type);
            validated.hourly_commitment = Some(commitment);
            validated.offering_id =
                self.optional_name("details.offering_id", details.offering_id, false)?;
        }
        Ok(validated)
    }
}
