//! A recommendation: one line of a purchase list (docs/design/API.md "Recommendation"),
//! as received and as validated.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::provider::Provider;
use crate::service::AwsService;

/// A recommendation as a client sends it, before validation: the JSON body of the REST
/// routes, and what the planner and the executor read from gRPC.
///
/// Optional fields stay `Option` (not defaulted) so a request hashes the same as it
/// always did for the Idempotency-Key check.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecommendationInput {
    /// `aws` (other providers: 400 for now).
    pub provider: String,
    /// ec2 | savingsplans | rds | elasticache | memorydb | opensearch | redshift.
    pub service: String,
    /// An AWS region such as `us-east-1`.
    pub region: String,
    /// Instance or node type; for savingsplans the plan type.
    pub resource_type: String,
    /// Database or cache engine, e.g. `postgresql`.
    #[serde(default)]
    pub engine: Option<String>,
    /// ec2: the product description, e.g. "Linux/UNIX".
    #[serde(default)]
    pub platform: Option<String>,
    /// Instances or nodes (savingsplans: multiplier of the hourly commitment), 1 to
    /// 10 000.
    pub count: u32,
    /// Years: 1 or 3.
    pub term: u32,
    /// no-upfront | partial-upfront | all-upfront.
    pub payment: String,
    /// Only this account buys the line.
    #[serde(default)]
    pub cloud_account_id: Option<Uuid>,
    /// With several target accounts and no cloud_account_id: every target buys it.
    #[serde(default)]
    pub all_accounts: Option<bool>,
    #[serde(default)]
    pub details: Option<RecommendationDetails>,
    /// The requester's estimate of the upfront cost of the whole line, at least 0.
    #[serde(default)]
    pub upfront_cost: Option<f64>,
    /// The requester's estimate of the monthly savings, at least 0.
    #[serde(default)]
    pub monthly_savings: Option<f64>,
}

/// Service-specific details of a recommendation (docs/design/API.md "details by
/// service"). A field another service uses is refused; absent fields take the
/// service's defaults on validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecommendationDetails {
    /// ec2: default | dedicated (default "default").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<String>,
    /// ec2: standard | convertible (default "standard").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offering_class: Option<String>,
    /// ec2: a zonal reservation in this zone of the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// rds (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
    /// savingsplans: Compute | EC2Instance | SageMaker, equal to resource_type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_type: Option<String>,
    /// savingsplans: USD per hour per unit as decimal text, e.g. "1.00" (at most 5
    /// decimals; times count at most 1 000 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_commitment: Option<String>,
    /// savingsplans: a specific offering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offering_id: Option<String>,
}

/// A validated recommendation: one line of a purchase list, service defaults applied.
/// Stored as JSON in a plan's standing list and on an execution's root and items, and
/// shown as such by the REST routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    pub provider: Provider,
    pub service: AwsService,
    pub region: String,
    /// Instance or node type; for savingsplans the plan type.
    pub resource_type: String,
    #[serde(default)]
    pub engine: Option<String>,
    /// ec2: the product description.
    #[serde(default)]
    pub platform: Option<String>,
    pub count: u32,
    /// Years: 1 or 3.
    pub term: u32,
    pub payment: String,
    #[serde(default)]
    pub cloud_account_id: Option<Uuid>,
    #[serde(default)]
    pub all_accounts: bool,
    #[serde(default)]
    pub details: RecommendationDetails,
    /// The requester's estimate of the upfront cost of the whole line.
    #[serde(default)]
    pub upfront_cost: Option<f64>,
    /// The requester's estimate of the monthly savings.
    #[serde(default)]
    pub monthly_savings: Option<f64>,
}

impl From<Recommendation> for RecommendationInput {
    /// Returns the line as a client would send it; validating it again gives it back.
    fn from(recommendation: Recommendation) -> Self {
        Self {
            provider: recommendation.provider.as_str().to_owned(),
            service: recommendation.service.name().to_owned(),
            region: recommendation.region,
            resource_type: recommendation.resource_type,
            engine: recommendation.engine,
            platform: recommendation.platform,
            count: recommendation.count,
            term: recommendation.term,
            payment: recommendation.payment,
            cloud_account_id: recommendation.cloud_account_id,
            all_accounts: Some(recommendation.all_accounts),
            details: Some(recommendation.details),
            upfront_cost: recommendation.upfront_cost,
            monthly_savings: recommendation.monthly_savings,
        }
    }
}

/// A purchase recommendation AWS Cost Explorer made for one account, in the shared
/// vocabulary: what `libs/aws` collects, the accounts service hands over, and the
/// planner stores and sizes plans from (docs/design/DOMAIN.md "Recommendations and
/// sizing").
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedRecommendation {
    /// The 12-digit account the recommendation is for: the detail's AccountId, else the
    /// caller's own.
    pub account_id: String,
    pub service: AwsService,
    /// A region code; Compute Savings Plans, which have none, are `us-east-1`.
    pub region: String,
    /// Instance or node type; savingsplans: the plan type (`Compute`, `EC2Instance`).
    pub resource_type: String,
    /// rds: the product description the purchase asks for (`postgresql`,
    /// `oracle-se2(byol)`); elasticache: the cache engine (`redis`).
    pub engine: Option<String>,
    /// ec2: the platform (product description), e.g. `Linux/UNIX`.
    pub platform: Option<String>,
    pub term: u32,
    pub payment: String,
    /// Instances or nodes to buy (Cost Explorer may recommend fractions of a size-flexible
    /// family); savingsplans: 1.
    pub recommended_count: f64,
    /// Upfront cost of the whole recommendation, 0 when AWS gives none.
    pub upfront_cost: f64,
    /// Estimated monthly savings, 0 when AWS gives none.
    pub monthly_savings: f64,
    pub details: RecommendationDetails,
}
