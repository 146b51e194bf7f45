//! Recommendations (API.md "Recommendation"): the executor's own copy of a purchase line,
//! stored as JSON on roots and items, its validation, and the purchase it turns into.

use cudly_aws::purchase::{AwsService, PurchaseDetails, PurchaseSpec};
use cudly_common::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// AWS payment options.
pub const AWS_PAYMENTS: [&str; 3] = ["no-upfront", "partial-upfront", "all-upfront"];
/// Savings Plans plan types.
pub const PLAN_TYPES: [&str; 3] = ["Compute", "EC2Instance", "SageMaker"];
/// Largest count of one line.
const MAX_COUNT: u32 = 10_000;
/// Longest free-text field (types, engines, platforms, ids).
const MAX_TEXT: usize = 128;

/// One line of a purchase list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub provider: String,
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
    /// Estimated upfront cost of the whole line, when known.
    #[serde(default)]
    pub upfront_cost: Option<f64>,
    #[serde(default)]
    pub monthly_savings: Option<f64>,
}

/// Service-specific details (API.md "details by service").
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

impl Recommendation {
    /// Returns the AWS service of a validated line.
    pub fn aws_service(&self) -> Option<AwsService> {
        AwsService::from_name(&self.service)
    }

    /// Returns the purchase this line makes with `token`.
    pub fn to_purchase_spec(&self, token: &str) -> Result<PurchaseSpec, String> {
        let service = self
            .aws_service()
            .ok_or_else(|| format!("unknown service {}", self.service))?;
        Ok(PurchaseSpec {
            service,
            region: self.region.clone(),
            resource_type: self.resource_type.clone(),
            engine: self.engine.clone(),
            platform: self.platform.clone(),
            count: self.count,
            term_years: self.term,
            payment: self.payment.clone(),
            details: PurchaseDetails {
                tenancy: self.details.tenancy.clone(),
                offering_class: self.details.offering_class.clone(),
                availability_zone: self.details.availability_zone.clone(),
                multi_az: self.details.multi_az,
                plan_type: self.details.plan_type.clone(),
                hourly_commitment: self.details.hourly_commitment.clone(),
                offering_id: self.details.offering_id.clone(),
            },
            token: token.to_owned(),
        })
    }
}

/// Checks a purchase list; the first problem is a 400 naming the field
/// (`recommendations[2].term`), never echoing the value.
pub fn validate_recommendations(recommendations: &[Recommendation]) -> Result<(), ApiError> {
    if recommendations.is_empty() {
        return Err(ApiError::invalid_field(
            "recommendations",
            "must not be empty",
        ));
    }
    for (index, recommendation) in recommendations.iter().enumerate() {
        validate_one(&format!("recommendations[{index}]"), recommendation)?;
    }
    Ok(())
}

fn validate_one(prefix: &str, rec: &Recommendation) -> Result<(), ApiError> {
    let field = |name: &str| format!("{prefix}.{name}");
    match rec.provider.as_str() {
        "aws" => {}
        "azure" | "gcp" => {
            return Err(ApiError::invalid_field(
                &field("provider"),
                "only aws recommendations can be bought for now",
            ));
        }
        _ => {
            return Err(ApiError::invalid_field(
                &field("provider"),
                "unknown provider, expected aws, azure or gcp",
            ));
        }
    }
    let Some(service) = AwsService::from_name(&rec.service) else {
        return Err(ApiError::invalid_field(
            &field("service"),
            "unknown service, expected ec2, savingsplans, rds, elasticache, memorydb, opensearch or redshift",
        ));
    };
    let region_ok = !rec.region.is_empty()
        && rec.region.len() <= 32
        && rec
            .region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        return Err(ApiError::invalid_field(
            &field("region"),
            "must be a region name such as us-east-1",
        ));
    }
    check_text(&field("resource_type"), Some(&rec.resource_type), true)?;
    check_text(&field("engine"), rec.engine.as_ref(), false)?;
    check_text(&field("platform"), rec.platform.as_ref(), false)?;
    if rec.count == 0 || rec.count > MAX_COUNT {
        return Err(ApiError::invalid_field(
            &field("count"),
            format!("must be between 1 and {MAX_COUNT}"),
        ));
    }
    if rec.term != 1 && rec.term != 3 {
        return Err(ApiError::invalid_field(&field("term"), "must be 1 or 3"));
    }
    if !AWS_PAYMENTS.contains(&rec.payment.as_str()) {
        return Err(ApiError::invalid_field(
            &field("payment"),
            "unknown payment, expected no-upfront, partial-upfront or all-upfront",
        ));
    }
    if let Some(cost) = rec.upfront_cost
        && (!cost.is_finite() || cost < 0.0)
    {
        return Err(ApiError::invalid_field(
            &field("upfront_cost"),
            "must be a non-negative number",
        ));
    }
    if let Some(savings) = rec.monthly_savings
        && !savings.is_finite()
    {
        return Err(ApiError::invalid_field(
            &field("monthly_savings"),
            "must be a number",
        ));
    }
    let details = &rec.details;
    if let Some(tenancy) = &details.tenancy
        && !["default", "dedicated"].contains(&tenancy.as_str())
    {
        return Err(ApiError::invalid_field(
            &field("details.tenancy"),
            "expected default or dedicated",
        ));
    }
    if let Some(class) = &details.offering_class
        && !["standard", "convertible"].contains(&class.as_str())
    {
        return Err(ApiError::invalid_field(
            &field("details.offering_class"),
            "expected standard or convertible",
        ));
    }
    check_text(
        &field("details.availability_zone"),
        details.availability_zone.as_ref(),
        false,
    )?;
    check_text(
        &field("details.offering_id"),
        details.offering_id.as_ref(),
        false,
    )?;
    if service == AwsService::SavingsPlans {
        if !PLAN_TYPES.contains(&rec.resource_type.as_str()) {
            return Err(ApiError::invalid_field(
                &field("resource_type"),
                "must be the plan type: Compute, EC2Instance or SageMaker",
            ));
        }
        if let Some(plan_type) = &details.plan_type
            && plan_type != &rec.resource_type
        {
            return Err(ApiError::invalid_field(
                &field("details.plan_type"),
                "must equal resource_type",
            ));
        }
        match &details.hourly_commitment {
            Some(text) if is_positive_decimal(text) => {}
            Some(_) => {
                return Err(ApiError::invalid_field(
                    &field("details.hourly_commitment"),
                    "must be a positive decimal such as \"1.00\"",
                ));
            }
            None => {
                return Err(ApiError::invalid_field(
                    &field("details.hourly_commitment"),
                    "is required for savingsplans",
                ));
            }
        }
    }
    Ok(())
}

fn check_text(field: &str, value: Option<&String>, required: bool) -> Result<(), ApiError> {
    match value {
        None if required => Err(ApiError::invalid_field(field, "is required")),
        None => Ok(()),
        Some(text) if text.trim().is_empty() => {
            Err(ApiError::invalid_field(field, "must not be empty"))
        }
        Some(text) if text.chars().count() > MAX_TEXT || text.chars().any(char::is_control) => {
            Err(ApiError::invalid_field(
                field,
                format!("must be at most {MAX_TEXT} printable characters"),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// True for decimal text such as `1`, `1.00`, `0.25` that is above zero.
fn is_positive_decimal(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_ok = !whole.is_empty()
        && whole.len() <= 9
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.len() <= 6
        && fraction.chars().all(|c| c.is_ascii_digit())
        && !(text.contains('.') && fraction.is_empty());
    digits_ok && text.chars().any(|c| c.is_ascii_digit() && c != '0')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rds() -> Recommendation {
        Recommendation {
            provider: "aws".to_owned(),
            service: "rds".to_owned(),
            region: "us-east-1".to_owned(),
            resource_type: "db.r6g.large".to_owned(),
            engine: Some("postgresql".to_owned()),
            platform: None,
            count: 2,
            term: 1,
            payment: "all-upfront".to_owned(),
            cloud_account_id: None,
            all_accounts: false,
            details: RecommendationDetails::default(),
            upfront_cost: Some(1234.5),
            monthly_savings: Some(210.0),
        }
    }

    fn field_of(rec: Recommendation) -> Option<String> {
        validate_recommendations(&[rec]).err().and_then(|e| e.field)
    }

    #[test]
    fn a_well_formed_line_is_accepted() {
        assert!(validate_recommendations(&[rds()]).is_ok());
    }

    #[test]
    fn an_empty_list_is_refused() {
        let error = validate_recommendations(&[]).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("recommendations"));
    }

    #[test]
    fn each_bad_field_is_named_with_its_index() {
        let mut rec = rds();
        rec.term = 2;
        assert_eq!(field_of(rec).as_deref(), Some("recommendations[0].term"));
        let mut rec = rds();
        rec.payment = "monthly".to_owned();
        assert_eq!(field_of(rec).as_deref(), Some("recommendations[0].payment"));
        let mut rec = rds();
        rec.count = 0;
        assert_eq!(field_of(rec).as_deref(), Some("recommendations[0].count"));
        let mut rec = rds();
        rec.service = "lambda".to_owned();
        assert_eq!(field_of(rec).as_deref(), Some("recommendations[0].service"));
        let mut rec = rds();
        rec.region = "US EAST".to_owned();
        assert_eq!(field_of(rec).as_deref(), Some("recommendations[0].region"));
        let mut rec = rds();
        rec.upfront_cost = Some(-1.0);
        assert_eq!(
            field_of(rec).as_deref(),
            Some("recommendations[0].upfront_cost")
        );
    }

    #[test]
    fn non_aws_lines_are_refused_plainly() {
        let mut rec = rds();
        rec.provider = "azure".to_owned();
        let error = validate_recommendations(&[rec]).unwrap_err();
        assert!(error.message.contains("only aws"), "{}", error.message);
    }

    #[test]
    fn savings_plans_need_a_plan_type_and_an_hourly_commitment() {
        let mut rec = rds();
        rec.service = "savingsplans".to_owned();
        rec.resource_type = "Compute".to_owned();
        rec.engine = None;
        assert_eq!(
            field_of(rec.clone()).as_deref(),
            Some("recommendations[0].details.hourly_commitment")
        );
        rec.details.hourly_commitment = Some("1.50".to_owned());
        assert!(validate_recommendations(std::slice::from_ref(&rec)).is_ok());
        rec.details.hourly_commitment = Some("0.00".to_owned());
        assert!(validate_recommendations(std::slice::from_ref(&rec)).is_err());
        rec.details.hourly_commitment = Some("1.".to_owned());
        assert!(validate_recommendations(std::slice::from_ref(&rec)).is_err());
        rec.details.hourly_commitment = Some("1.00".to_owned());
        rec.resource_type = "db.r6g.large".to_owned();
        assert_eq!(
            field_of(rec).as_deref(),
            Some("recommendations[0].resource_type")
        );
    }

    #[test]
    fn a_line_becomes_a_purchase_carrying_the_token() {
        let spec = rds().to_purchase_spec("abc").unwrap();
        assert_eq!(spec.service, AwsService::Rds);
        assert_eq!(spec.token, "abc");
        assert_eq!(spec.count, 2);
        assert_eq!(spec.term_years, 1);
    }

    #[test]
    fn stored_json_keeps_every_field() {
        let mut rec = rds();
        rec.cloud_account_id = Some(Uuid::new_v4());
        rec.details.multi_az = Some(true);
        let json = serde_json::to_value(&rec).unwrap();
        let back: Recommendation = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }
}
