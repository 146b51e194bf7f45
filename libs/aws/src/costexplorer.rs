//! Cost Explorer: the reservation and Savings Plans purchases AWS recommends from an
//! account's usage (docs/design/DOMAIN.md "Recommendations and sizing"), read into the
//! shared vocabulary.
//!
//! Cost Explorer bills every call, so a refresh asks once per (service, term, payment)
//! from an organization root with [`AccountScope::Linked`] (one answer for every member)
//! and spends from one [`CallBudget`]: a call the budget does not cover is never sent.
//! Throttling (`LimitExceededException`) is retried with back-off by the SDK's standard
//! retry mode ([`crate::sdk::config_with_credentials`]). A detail that cannot be read
//! into the vocabulary is skipped with a warning naming the field, so one odd shape does
//! not cost the whole refresh.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::operation::get_reservation_purchase_recommendation::GetReservationPurchaseRecommendationOutput;
use aws_sdk_costexplorer::operation::get_savings_plans_purchase_recommendation::GetSavingsPlansPurchaseRecommendationOutput;
use aws_sdk_costexplorer::types::{
    AccountScope as AwsAccountScope, Ec2InstanceDetails, Ec2Specification,
    ElastiCacheInstanceDetails, EsInstanceDetails, InstanceDetails, LookbackPeriodInDays,
    MemoryDbInstanceDetails, OfferingClass, PaymentOption, RdsInstanceDetails,
    RedshiftInstanceDetails, ReservationPurchaseRecommendationDetail,
    SavingsPlansPurchaseRecommendationDetail, ServiceSpecification, SupportedSavingsPlansType,
    TermInYears,
};
pub use cudly_vocabulary::CollectedRecommendation;
use cudly_vocabulary::{AwsService, HourlyCommitment, RecommendationDetails, is_region};

use crate::error::AwsFailure;
use crate::sdk::{AwsSettings, SessionCredentials, config_with_credentials};

/// Cost Explorer has one endpoint, in us-east-1, whatever the caller's default region.
const ENDPOINT_REGION: &str = "us-east-1";
/// The region a Compute Savings Plan is recorded under: it applies in every region, and
/// one fixed key keeps a refresh replacing the plans it collected before.
const GLOBAL_PLAN_REGION: &str = "us-east-1";
/// Pages read at most per query, so an endpoint that keeps answering a next token
/// cannot keep a caller busy forever; the call budget bounds what a refresh spends.
const MAX_PAGES: usize = 5_000;
/// Most decimals of an hourly commitment AWS accepts in CreateSavingsPlan; Cost
/// Explorer may recommend more.
const COMMITMENT_DECIMALS: usize = 5;

const RESERVATIONS: &str = "GetReservationPurchaseRecommendation";
const SAVINGS_PLANS: &str = "GetSavingsPlansPurchaseRecommendation";

/// Whose recommendations a call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountScope {
    /// From an organization root: one answer per member account (details carry
    /// AccountId).
    Linked,
    /// The caller's own account.
    Payer,
}

/// One (service, term, payment) combination a refresh asks about. For savingsplans one
/// query makes two calls: Compute and EC2Instance plans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecommendationQuery {
    pub service: AwsService,
    /// Years: 1 or 3.
    pub term: u32,
    /// no-upfront | partial-upfront | all-upfront.
    pub payment: String,
}

/// Cost Explorer bills every call: the most calls one refresh may make, shared by all
/// the scopes a refresh collects.
#[derive(Debug)]
pub struct CallBudget {
    limit: u32,
    used: AtomicU32,
}

impl CallBudget {
    /// Returns a budget of `limit` calls, none used.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            used: AtomicU32::new(0),
        }
    }

    /// Returns the calls spent so far.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    /// Returns the calls still allowed.
    pub fn remaining(&self) -> u32 {
        self.limit.saturating_sub(self.used())
    }

    /// Spends one call, or refuses when none is left (then nothing is spent), so
    /// concurrent collections never overspend together.
    fn spend(&self, operation: &'static str) -> Result<(), AwsFailure> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.limit).then_some(used.saturating_add(1))
            })
            .map(|_| ())
            .map_err(|_| {
                AwsFailure::not_sent(
                    operation,
                    format!(
                        "Cost Explorer call budget of {} calls exhausted",
                        self.limit
                    ),
                )
            })
    }
}

/// A Cost Explorer client bound to one identity.
#[derive(Clone, Debug)]
pub struct CostExplorer {
    client: Client,
}

impl CostExplorer {
    /// Returns a client signing with exactly `credentials`. Cost Explorer's endpoint is
    /// in us-east-1 whatever the default region.
    pub fn with_credentials(settings: &AwsSettings, credentials: &SessionCredentials) -> Self {
        let config = config_with_credentials(settings, credentials, ENDPOINT_REGION);
        Self {
            client: Client::new(&config),
        }
    }

    /// Every query, every page, over the last 30 days of usage. Refuses to start a call
    /// `budget` does not cover. Details without an AccountId are `own_account_id`'s.
    /// A query naming a term or payment AWS does not sell fails before any call.
    pub async fn recommendations(
        &self,
        scope: AccountScope,
        own_account_id: &str,
        queries: &[RecommendationQuery],
        budget: &CallBudget,
    ) -> Result<Vec<CollectedRecommendation>, AwsFailure> {
        let mut collected = Vec::new();
        for query in queries {
            let asked = Asked::of(query, scope, own_account_id)?;
            if query.service == AwsService::SavingsPlans {
                for plan in PLAN_TYPES {
                    collected.extend(self.savings_plans(&asked, plan, budget).await?);
                }
            } else {
                collected.extend(self.reservations(&asked, budget).await?);
            }
        }
        Ok(collected)
    }

    /// GetReservationPurchaseRecommendation for one query, every page.
    async fn reservations(
        &self,
        asked: &Asked<'_>,
        budget: &CallBudget,
    ) -> Result<Vec<CollectedRecommendation>, AwsFailure> {
        let service_name = ce_service_name(asked.query.service)
            .ok_or_else(|| AwsFailure::not_sent(RESERVATIONS, "not a reservation service"))?;
        every_page(RESERVATIONS, budget, |token| async move {
            self.client
                .get_reservation_purchase_recommendation()
                .service(service_name)
                .account_scope(asked.scope.clone())
                .lookback_period_in_days(LookbackPeriodInDays::ThirtyDays)
                .term_in_years(asked.term.clone())
                .payment_option(asked.payment.clone())
                .set_service_specification(service_specification(asked.query.service))
                .set_next_page_token(token)
                .send()
                .await
                .map(|output| reservation_page(asked, &output))
                .map_err(|error| AwsFailure::from_sdk(RESERVATIONS, &error))
        })
        .await
    }

    /// GetSavingsPlansPurchaseRecommendation for one query and plan type, every page.
    async fn savings_plans(
        &self,
        asked: &Asked<'_>,
        plan: &PlanType,
        budget: &CallBudget,
    ) -> Result<Vec<CollectedRecommendation>, AwsFailure> {
        every_page(SAVINGS_PLANS, budget, |token| async move {
            self.client
                .get_savings_plans_purchase_recommendation()
                .savings_plans_type(SupportedSavingsPlansType::from(plan.aws))
                .account_scope(asked.scope.clone())
                .lookback_period_in_days(LookbackPeriodInDays::ThirtyDays)
                .term_in_years(asked.term.clone())
                .payment_option(asked.payment.clone())
                .set_next_page_token(token)
                .send()
                .await
                .map(|output| savings_plans_page(asked, plan, &output))
                .map_err(|error| AwsFailure::from_sdk(SAVINGS_PLANS, &error))
        })
        .await
    }
}

/// What one page yields: its recommendations and the token of the next page.
struct Page {
    recommendations: Vec<CollectedRecommendation>,
    next_token: Option<String>,
}

/// Returns the readable reservation details of one page.
fn reservation_page(
    asked: &Asked<'_>,
    output: &GetReservationPurchaseRecommendationOutput,
) -> Page {
    Page {
        recommendations: output
            .recommendations()
            .iter()
            .flat_map(|recommendation| recommendation.recommendation_details())
            .filter_map(|detail| asked.kept(reservation(asked, detail)))
            .collect(),
        next_token: output.next_page_token().map(str::to_owned),
    }
}

/// Returns the readable Savings Plans details of one page.
fn savings_plans_page(
    asked: &Asked<'_>,
    plan: &PlanType,
    output: &GetSavingsPlansPurchaseRecommendationOutput,
) -> Page {
    Page {
        recommendations: output
            .savings_plans_purchase_recommendation()
            .map(|recommendation| recommendation.savings_plans_purchase_recommendation_details())
            .unwrap_or_default()
            .iter()
            .filter_map(|detail| asked.kept(savings_plan(asked, plan, detail)))
            .collect(),
        next_token: output.next_page_token().map(str::to_owned),
    }
}

/// Calls `page` with each next-page token (none first) until a page names no next one,
/// spending one call of `budget` before each.
async fn every_page<F, Fut>(
    operation: &'static str,
    budget: &CallBudget,
    mut page: F,
) -> Result<Vec<CollectedRecommendation>, AwsFailure>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page, AwsFailure>>,
{
    let mut collected = Vec::new();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        budget.spend(operation)?;
        let answered = page(next_token.take()).await?;
        collected.extend(answered.recommendations);
        match answered.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => return Ok(collected),
        }
    }
    Err(AwsFailure::malformed_reply(operation, "last page"))
}

/// One query as Cost Explorer is asked it, with what its details are read against.
struct Asked<'a> {
    query: &'a RecommendationQuery,
    own_account_id: &'a str,
    scope: AwsAccountScope,
    term: TermInYears,
    payment: PaymentOption,
}

impl<'a> Asked<'a> {
    /// Returns the query in Cost Explorer's terms, or an error (no call made) for a term
    /// or payment it does not sell.
    fn of(
        query: &'a RecommendationQuery,
        scope: AccountScope,
        own_account_id: &'a str,
    ) -> Result<Self, AwsFailure> {
        let operation = if query.service == AwsService::SavingsPlans {
            SAVINGS_PLANS
        } else {
            RESERVATIONS
        };
        let term = lookup(TERMS, &query.term)
            .ok_or_else(|| AwsFailure::not_sent(operation, "the term must be 1 or 3 years"))?;
        let payment = lookup(PAYMENTS, &query.payment.as_str()).ok_or_else(|| {
            AwsFailure::not_sent(
                operation,
                "the payment must be no-upfront, partial-upfront or all-upfront",
            )
        })?;
        Ok(Self {
            query,
            own_account_id,
            scope: match scope {
                AccountScope::Linked => AwsAccountScope::Linked,
                AccountScope::Payer => AwsAccountScope::Payer,
            },
            term: TermInYears::from(term),
            payment: PaymentOption::from(payment),
        })
    }

    /// Returns the read recommendation, or logs why its detail was skipped.
    fn kept(
        &self,
        read: Result<CollectedRecommendation, Unreadable>,
    ) -> Option<CollectedRecommendation> {
        read.map_err(|unreadable| {
            tracing::warn!(
                service = %self.query.service,
                term = self.query.term,
                payment = %self.query.payment,
                field = unreadable.field,
                problem = unreadable.problem,
                "cost explorer recommendation detail skipped"
            );
        })
        .ok()
    }

    /// Returns the recommendation of `shape` with the fields every detail shares.
    fn recommendation(&self, shape: Shape, amounts: Amounts) -> CollectedRecommendation {
        CollectedRecommendation {
            account_id: amounts.account_id,
            service: self.query.service,
            region: shape.region,
            resource_type: shape.resource_type,
            engine: shape.engine,
            platform: shape.platform,
            term: self.query.term,
            payment: self.query.payment.clone(),
            recommended_count: amounts.count,
            upfront_cost: amounts.upfront_cost,
            monthly_savings: amounts.monthly_savings,
            details: shape.details,
        }
    }
}

/// Why a detail was skipped: the AWS field at fault and what is wrong with it (never
/// its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unreadable {
    field: &'static str,
    problem: &'static str,
}

impl Unreadable {
    const fn missing(field: &'static str) -> Self {
        Self {
            field,
            problem: "is missing",
        }
    }

    const fn unknown(field: &'static str) -> Self {
        Self {
            field,
            problem: "is not a value CUDly knows",
        }
    }
}

/// What is bought: everything of a recommendation but its account, count and amounts.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    region: String,
    resource_type: String,
    engine: Option<String>,
    platform: Option<String>,
    details: RecommendationDetails,
}

impl Shape {
    fn new(region: String, resource_type: String) -> Self {
        Self {
            region,
            resource_type,
            engine: None,
            platform: None,
            details: RecommendationDetails::default(),
        }
    }
}

/// The account, count and money of a detail.
struct Amounts {
    account_id: String,
    count: f64,
    upfront_cost: f64,
    monthly_savings: f64,
}

impl Amounts {
    /// Reads the members both kinds of detail carry: AccountId (else the caller's),
    /// UpfrontCost and EstimatedMonthlySavingsAmount (absent: 0).
    fn read(
        asked: &Asked<'_>,
        account: Option<&str>,
        count: f64,
        upfront_cost: Option<&str>,
        monthly_savings: Option<&str>,
    ) -> Result<Self, Unreadable> {
        Ok(Self {
            account_id: account_id(account, asked.own_account_id)?,
            count,
            upfront_cost: amount("UpfrontCost", upfront_cost)?,
            monthly_savings: amount("EstimatedMonthlySavingsAmount", monthly_savings)?,
        })
    }
}

/// Reads one reservation detail of `asked`'s service.
fn reservation(
    asked: &Asked<'_>,
    detail: &ReservationPurchaseRecommendationDetail,
) -> Result<CollectedRecommendation, Unreadable> {
    let shape = reservation_shape(asked.query.service, detail.instance_details())?;
    let amounts = Amounts::read(
        asked,
        detail.account_id(),
        count(detail.recommended_number_of_instances_to_purchase())?,
        detail.upfront_cost(),
        detail.estimated_monthly_savings_amount(),
    )?;
    Ok(asked.recommendation(shape, amounts))
}

/// Reads one Savings Plans detail of `plan`'s type.
fn savings_plan(
    asked: &Asked<'_>,
    plan: &PlanType,
    detail: &SavingsPlansPurchaseRecommendationDetail,
) -> Result<CollectedRecommendation, Unreadable> {
    let region = if plan.regional {
        region(
            detail
                .savings_plans_details()
                .and_then(|details| details.region()),
        )?
    } else {
        GLOBAL_PLAN_REGION.to_owned()
    };
    let mut shape = Shape::new(region, plan.vocabulary.to_owned());
    shape.details.plan_type = Some(plan.vocabulary.to_owned());
    shape.details.hourly_commitment =
        Some(hourly_commitment(detail.hourly_commitment_to_purchase())?);
    // One plan of the recommended hourly commitment.
    let amounts = Amounts::read(
        asked,
        detail.account_id(),
        1.0,
        detail.upfront_cost(),
        detail.estimated_monthly_savings_amount(),
    )?;
    Ok(asked.recommendation(shape, amounts))
}

/// Reads the InstanceDetails kind of `service`.
fn reservation_shape(
    service: AwsService,
    details: Option<&InstanceDetails>,
) -> Result<Shape, Unreadable> {
    let details = details.ok_or(Unreadable::missing("InstanceDetails"))?;
    match service {
        AwsService::Ec2 => details
            .ec2_instance_details()
            .ok_or(Unreadable::missing("EC2InstanceDetails"))
            .and_then(ec2_shape),
        AwsService::Rds => details
            .rds_instance_details()
            .ok_or(Unreadable::missing("RDSInstanceDetails"))
            .and_then(rds_shape),
        AwsService::ElastiCache => details
            .elasti_cache_instance_details()
            .ok_or(Unreadable::missing("ElastiCacheInstanceDetails"))
            .and_then(elasticache_shape),
        AwsService::MemoryDb => details
            .memory_db_instance_details()
            .ok_or(Unreadable::missing("MemoryDBInstanceDetails"))
            .and_then(memorydb_shape),
        AwsService::OpenSearch => details
            .es_instance_details()
            .ok_or(Unreadable::missing("ESInstanceDetails"))
            .and_then(opensearch_shape),
        AwsService::Redshift => details
            .redshift_instance_details()
            .ok_or(Unreadable::missing("RedshiftInstanceDetails"))
            .and_then(redshift_shape),
        // Savings Plans are never asked as reservations.
        AwsService::SavingsPlans => Err(Unreadable::unknown("InstanceDetails")),
    }
}

fn ec2_shape(details: &Ec2InstanceDetails) -> Result<Shape, Unreadable> {
    let mut shape = Shape::new(
        region(details.region())?,
        text("InstanceType", details.instance_type())?,
    );
    shape.platform = Some(text("Platform", details.platform())?);
    let tenancy = match details
        .tenancy()
        .map(str::trim)
        .filter(|tenancy| !tenancy.is_empty())
    {
        // Cost Explorer leaves it out for shared (default) tenancy.
        None => "default",
        Some(reported) => lookup_text(TENANCIES, reported).ok_or(Unreadable::unknown("Tenancy"))?,
    };
    shape.details.tenancy = Some(tenancy.to_owned());
    shape.details.offering_class = Some("standard".to_owned());
    shape.details.availability_zone = details
        .availability_zone()
        .map(str::trim)
        .filter(|zone| !zone.is_empty())
        .map(str::to_owned);
    Ok(shape)
}

fn rds_shape(details: &RdsInstanceDetails) -> Result<Shape, Unreadable> {
    let mut shape = Shape::new(
        region(details.region())?,
        text("InstanceType", details.instance_type())?,
    );
    shape.engine = Some(rds_engine(
        &text("DatabaseEngine", details.database_engine())?,
        details.database_edition(),
        details.license_model(),
    )?);
    shape.details.multi_az = Some(
        details
            .deployment_option()
            .is_some_and(|option| option.contains("Multi-AZ")),
    );
    Ok(shape)
}

fn elasticache_shape(details: &ElastiCacheInstanceDetails) -> Result<Shape, Unreadable> {
    let mut shape = Shape::new(
        region(details.region())?,
        text("NodeType", details.node_type())?,
    );
    shape.engine = Some(text("ProductDescription", details.product_description())?.to_lowercase());
    Ok(shape)
}

fn memorydb_shape(details: &MemoryDbInstanceDetails) -> Result<Shape, Unreadable> {
    Ok(Shape::new(
        region(details.region())?,
        text("NodeType", details.node_type())?,
    ))
}

fn opensearch_shape(details: &EsInstanceDetails) -> Result<Shape, Unreadable> {
    let class = text("InstanceClass", details.instance_class())?;
    let size = text("InstanceSize", details.instance_size())?;
    Ok(Shape::new(
        region(details.region())?,
        opensearch_type(&class, &size),
    ))
}

fn redshift_shape(details: &RedshiftInstanceDetails) -> Result<Shape, Unreadable> {
    Ok(Shape::new(
        region(details.region())?,
        text("NodeType", details.node_type())?,
    ))
}

/// Returns the OpenSearch instance type (`r6g.large.search`) of a class (`r6g`) and a
/// size, which Cost Explorer gives either bare (`large.search`) or already prefixed.
fn opensearch_type(class: &str, size: &str) -> String {
    if size.starts_with(&format!("{class}.")) {
        size.to_owned()
    } else {
        format!("{class}.{size}")
    }
}

/// Returns the trimmed text of a required field.
fn text(field: &'static str, value: Option<&str>) -> Result<String, Unreadable> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .ok_or(Unreadable::missing(field))
}

/// Returns the detail's account: its AccountId when given (12 digits), else the caller's.
fn account_id(reported: Option<&str>, own_account_id: &str) -> Result<String, Unreadable> {
    match reported.map(str::trim).filter(|id| !id.is_empty()) {
        None => Ok(own_account_id.to_owned()),
        Some(id) if id.len() == 12 && id.bytes().all(|byte| byte.is_ascii_digit()) => {
            Ok(id.to_owned())
        }
        Some(_) => Err(Unreadable {
            field: "AccountId",
            problem: "is not a 12-digit account id",
        }),
    }
}

/// Returns a decimal string of AWS as a finite number of at least 0.
fn decimal(field: &'static str, value: &str) -> Result<f64, Unreadable> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite() && *number >= 0.0)
        .ok_or(Unreadable {
            field,
            problem: "is not a number of at least 0",
        })
}

/// Returns an amount of money, 0 when AWS gives none.
fn amount(field: &'static str, value: Option<&str>) -> Result<f64, Unreadable> {
    match value.map(str::trim).filter(|value| !value.is_empty()) {
        Some(value) => decimal(field, value),
        None => Ok(0.0),
    }
}

/// Returns the recommended number of instances, which must be above 0: a detail that
/// recommends buying nothing is no recommendation.
fn count(value: Option<&str>) -> Result<f64, Unreadable> {
    const FIELD: &str = "RecommendedNumberOfInstancesToPurchase";
    let number = decimal(FIELD, &text(FIELD, value)?)?;
    if number > 0.0 {
        Ok(number)
    } else {
        Err(Unreadable {
            field: FIELD,
            problem: "is not above 0",
        })
    }
}

/// Returns the hourly commitment as decimal text with at most 5 decimals (truncated,
/// never rounded up past what AWS recommends) that one plan may commit.
fn hourly_commitment(value: Option<&str>) -> Result<String, Unreadable> {
    const FIELD: &str = "HourlyCommitmentToPurchase";
    let reported = text(FIELD, value)?;
    let truncated = match reported.split_once('.') {
        Some((whole, fraction)) => {
            let kept: String = fraction.chars().take(COMMITMENT_DECIMALS).collect();
            format!("{whole}.{kept}")
        }
        None => reported.clone(),
    };
    HourlyCommitment::parse(&truncated)
        .and_then(|commitment| commitment.check_plan_range().map(|()| commitment))
        .map(|commitment| commitment.to_string())
        .map_err(|problem| Unreadable {
            field: FIELD,
            problem,
        })
}

/// Returns the region code of a Cost Explorer region: a code as is, or the price-list
/// name Cost Explorer reports (`US East (N. Virginia)`, `EU (Ireland)`).
fn region(value: Option<&str>) -> Result<String, Unreadable> {
    let reported = text("Region", value)?;
    if is_region(&reported) {
        return Ok(reported);
    }
    // The price list renamed "EU (...)" to "Europe (...)"; either may be reported.
    let named = reported
        .strip_prefix("EU (")
        .map(|rest| format!("Europe ({rest}"))
        .unwrap_or(reported);
    lookup_text(REGION_NAMES, &named)
        .map(str::to_owned)
        .ok_or(Unreadable::unknown("Region"))
}

/// Returns the RDS product description (our engine) of Cost Explorer's engine, edition
/// and license model: `PostgreSQL` is `postgresql`, Oracle Standard Two with its own
/// license `oracle-se2(byol)`.
fn rds_engine(
    engine: &str,
    edition: Option<&str>,
    license: Option<&str>,
) -> Result<String, Unreadable> {
    let edition = edition.map(str::trim).unwrap_or_default();
    let (_, sold_per_edition, product) = RDS_ENGINES
        .iter()
        .find(|(name, by_edition, _)| {
            name.eq_ignore_ascii_case(engine)
                && by_edition.is_none_or(|wanted| wanted.eq_ignore_ascii_case(edition))
        })
        .ok_or(Unreadable::unknown("DatabaseEngine"))?;
    if sold_per_edition.is_none() {
        return Ok((*product).to_owned());
    }
    let license = license
        .map(str::trim)
        .and_then(|license| lookup_text(RDS_LICENSES, license))
        .ok_or(Unreadable::unknown("LicenseModel"))?;
    Ok(format!("{product}({license})"))
}

/// Returns the Cost Explorer `Service` name of a reservation service.
fn ce_service_name(service: AwsService) -> Option<&'static str> {
    lookup(RESERVATION_SERVICES, &service)
}

/// EC2 is asked for standard reservations: what CUDly buys by default, and the class
/// the recommendations are sized for.
fn service_specification(service: AwsService) -> Option<ServiceSpecification> {
    (service == AwsService::Ec2).then(|| {
        ServiceSpecification::builder()
            .ec2_specification(
                Ec2Specification::builder()
                    .offering_class(OfferingClass::Standard)
                    .build(),
            )
            .build()
    })
}

/// Returns the value `key` maps to in `table`.
fn lookup<K: PartialEq, V: Copy>(table: &[(K, V)], key: &K) -> Option<V> {
    table
        .iter()
        .find(|(candidate, _)| candidate == key)
        .map(|(_, value)| *value)
}

/// Returns the value `key` maps to in `table`, ignoring ASCII case.
fn lookup_text(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(candidate, _)| candidate.eq_ignore_ascii_case(key))
        .map(|(_, value)| *value)
}

/// A Savings Plans type Cost Explorer recommends and how it is recorded.
struct PlanType {
    /// The vocabulary's plan type, also the recommendation's resource type.
    vocabulary: &'static str,
    /// Cost Explorer's SavingsPlansType.
    aws: &'static str,
    /// EC2Instance plans apply in one region; Compute plans in all.
    regional: bool,
}

/// The Savings Plans types a savingsplans query asks for, one call each.
const PLAN_TYPES: &[PlanType] = &[
    PlanType {
        vocabulary: "Compute",
        aws: "COMPUTE_SP",
        regional: false,
    },
    PlanType {
        vocabulary: "EC2Instance",
        aws: "EC2_INSTANCE_SP",
        regional: true,
    },
];

/// Cost Explorer's `Service` name per reservation service (AWS names MemoryDB
/// "Amazon MemoryDB Service" here, unlike elsewhere).
const RESERVATION_SERVICES: &[(AwsService, &str)] = &[
    (AwsService::Ec2, "Amazon Elastic Compute Cloud - Compute"),
    (AwsService::Rds, "Amazon Relational Database Service"),
    (AwsService::ElastiCache, "Amazon ElastiCache"),
    (AwsService::MemoryDb, "Amazon MemoryDB Service"),
    (AwsService::OpenSearch, "Amazon OpenSearch Service"),
    (AwsService::Redshift, "Amazon Redshift"),
];

/// Terms in years and Cost Explorer's TermInYears.
const TERMS: &[(u32, &str)] = &[(1, "ONE_YEAR"), (3, "THREE_YEARS")];

/// The vocabulary's payment options and Cost Explorer's PaymentOption.
const PAYMENTS: &[(&str, &str)] = &[
    ("no-upfront", "NO_UPFRONT"),
    ("partial-upfront", "PARTIAL_UPFRONT"),
    ("all-upfront", "ALL_UPFRONT"),
];

/// Cost Explorer's EC2 tenancy and the vocabulary's; host tenancy has no reservation.
const TENANCIES: &[(&str, &str)] = &[
    ("shared", "default"),
    ("default", "default"),
    ("dedicated", "dedicated"),
];

/// Cost Explorer's RDS engine, the edition for engines sold per edition, and the RDS
/// product description the purchase asks for (with the license appended for those).
const RDS_ENGINES: &[(&str, Option<&str>, &str)] = &[
    ("MySQL", None, "mysql"),
    ("PostgreSQL", None, "postgresql"),
    ("MariaDB", None, "mariadb"),
    ("Aurora MySQL", None, "aurora-mysql"),
    ("Aurora PostgreSQL", None, "aurora-postgresql"),
    ("Oracle", Some("Standard Two"), "oracle-se2"),
    ("Oracle", Some("Standard One"), "oracle-se1"),
    ("Oracle", Some("Standard"), "oracle-se"),
    ("Oracle", Some("Enterprise"), "oracle-ee"),
    ("SQL Server", Some("Standard"), "sqlserver-se"),
    ("SQL Server", Some("Enterprise"), "sqlserver-ee"),
    ("SQL Server", Some("Web"), "sqlserver-web"),
    ("SQL Server", Some("Express"), "sqlserver-ex"),
];

/// Cost Explorer's RDS license model and the suffix of the product description.
const RDS_LICENSES: &[(&str, &str)] = &[
    ("License included", "li"),
    ("Bring your own license", "byol"),
];

/// Price-list region names, as Cost Explorer reports them, and their codes.
const REGION_NAMES: &[(&str, &str)] = &[
    ("US East (N. Virginia)", "us-east-1"),
    ("US East (Ohio)", "us-east-2"),
    ("US West (N. California)", "us-west-1"),
    ("US West (Oregon)", "us-west-2"),
    ("AWS GovCloud (US)", "us-gov-west-1"),
    ("AWS GovCloud (US-West)", "us-gov-west-1"),
    ("AWS GovCloud (US-East)", "us-gov-east-1"),
    ("Africa (Cape Town)", "af-south-1"),
    ("Asia Pacific (Hong Kong)", "ap-east-1"),
    ("Asia Pacific (Taipei)", "ap-east-2"),
    ("Asia Pacific (Mumbai)", "ap-south-1"),
    ("Asia Pacific (Hyderabad)", "ap-south-2"),
    ("Asia Pacific (Tokyo)", "ap-northeast-1"),
    ("Asia Pacific (Seoul)", "ap-northeast-2"),
    ("Asia Pacific (Osaka)", "ap-northeast-3"),
    ("Asia Pacific (Singapore)", "ap-southeast-1"),
    ("Asia Pacific (Sydney)", "ap-southeast-2"),
    ("Asia Pacific (Jakarta)", "ap-southeast-3"),
    ("Asia Pacific (Melbourne)", "ap-southeast-4"),
    ("Asia Pacific (Malaysia)", "ap-southeast-5"),
    ("Asia Pacific (New Zealand)", "ap-southeast-6"),
    ("Asia Pacific (Thailand)", "ap-southeast-7"),
    ("Canada (Central)", "ca-central-1"),
    ("Canada West (Calgary)", "ca-west-1"),
    ("Europe (Frankfurt)", "eu-central-1"),
    ("Europe (Zurich)", "eu-central-2"),
    ("Europe (Ireland)", "eu-west-1"),
    ("Europe (London)", "eu-west-2"),
    ("Europe (Paris)", "eu-west-3"),
    ("Europe (Milan)", "eu-south-1"),
    ("Europe (Spain)", "eu-south-2"),
    ("Europe (Stockholm)", "eu-north-1"),
    ("Israel (Tel Aviv)", "il-central-1"),
    ("Middle East (Bahrain)", "me-south-1"),
    ("Middle East (UAE)", "me-central-1"),
    ("Mexico (Central)", "mx-central-1"),
    ("South America (Sao Paulo)", "sa-east-1"),
    ("South America (São Paulo)", "sa-east-1"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_codes_whether_aws_names_them_or_not() {
        assert_eq!(region(Some("eu-west-3")).unwrap(), "eu-west-3");
        assert_eq!(region(Some("US East (N. Virginia)")).unwrap(), "us-east-1");
        assert_eq!(region(Some("EU (Ireland)")).unwrap(), "eu-west-1");
        assert_eq!(
            region(Some(" Europe (Frankfurt) ")).unwrap(),
            "eu-central-1"
        );
        assert_eq!(
            region(Some("Atlantis (North)")),
            Err(Unreadable::unknown("Region"))
        );
        assert_eq!(region(None), Err(Unreadable::missing("Region")));
    }

    #[test]
    fn rds_engines_map_to_product_descriptions() {
        let engine = rds_engine;
        assert_eq!(engine("PostgreSQL", None, None).unwrap(), "postgresql");
        assert_eq!(engine("MySQL", Some(""), None).unwrap(), "mysql");
        assert_eq!(
            engine("Aurora PostgreSQL", None, None).unwrap(),
            "aurora-postgresql"
        );
        assert_eq!(
            engine(
                "Oracle",
                Some("Standard Two"),
                Some("Bring your own license")
            )
            .unwrap(),
            "oracle-se2(byol)"
        );
        assert_eq!(
            engine("SQL Server", Some("Web"), Some("License included")).unwrap(),
            "sqlserver-web(li)"
        );
        assert_eq!(
            engine("Oracle", Some("Enterprise"), None),
            Err(Unreadable::unknown("LicenseModel"))
        );
        assert_eq!(
            engine("Db2", None, None),
            Err(Unreadable::unknown("DatabaseEngine"))
        );
    }

    #[test]
    fn amounts_are_finite_non_negative_numbers_and_absent_is_zero() {
        assert_eq!(amount("UpfrontCost", Some("1234.5678")).unwrap(), 1234.5678);
        assert_eq!(amount("UpfrontCost", None).unwrap(), 0.0);
        assert_eq!(amount("UpfrontCost", Some(" ")).unwrap(), 0.0);
        for bad in ["abc", "NaN", "inf", "-1"] {
            assert_eq!(
                amount("UpfrontCost", Some(bad)).unwrap_err().field,
                "UpfrontCost"
            );
        }
        assert_eq!(count(Some("2.5")).unwrap(), 2.5);
        assert!(count(Some("0")).is_err());
        assert!(count(None).is_err());
    }

    #[test]
    fn hourly_commitments_are_truncated_to_five_decimals_and_range_checked() {
        let commitment = |text| hourly_commitment(Some(text));
        assert_eq!(commitment("1.25").unwrap(), "1.25");
        assert_eq!(commitment("0.123456789").unwrap(), "0.12345");
        assert_eq!(commitment("3").unwrap(), "3");
        for bad in ["0.0001", "-1", "1e3", "abc", "2000000"] {
            assert!(commitment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn account_ids_fall_back_to_the_callers_and_must_be_twelve_digits() {
        assert_eq!(
            account_id(Some("210987654321"), "123456789012").unwrap(),
            "210987654321"
        );
        assert_eq!(account_id(None, "123456789012").unwrap(), "123456789012");
        assert_eq!(
            account_id(Some(""), "123456789012").unwrap(),
            "123456789012"
        );
        assert!(account_id(Some("12345"), "123456789012").is_err());
    }

    #[test]
    fn ec2_tenancy_is_the_vocabularys_and_host_tenancy_is_skipped() {
        let details = |tenancy: Option<&str>| {
            Ec2InstanceDetails::builder()
                .instance_type("m5.large")
                .region("US West (Oregon)")
                .platform("Linux/UNIX")
                .set_tenancy(tenancy.map(str::to_owned))
                .build()
        };
        let shape = ec2_shape(&details(Some("Shared"))).unwrap();
        assert_eq!(shape.region, "us-west-2");
        assert_eq!(shape.platform.as_deref(), Some("Linux/UNIX"));
        assert_eq!(shape.details.tenancy.as_deref(), Some("default"));
        assert_eq!(shape.details.offering_class.as_deref(), Some("standard"));
        let absent = ec2_shape(&details(None)).unwrap();
        assert_eq!(absent.details.tenancy.as_deref(), Some("default"));
        let dedicated = ec2_shape(&details(Some("Dedicated"))).unwrap();
        assert_eq!(dedicated.details.tenancy.as_deref(), Some("dedicated"));
        assert_eq!(
            ec2_shape(&details(Some("host"))),
            Err(Unreadable::unknown("Tenancy"))
        );
    }

    #[test]
    fn opensearch_types_join_class_and_size_once() {
        assert_eq!(opensearch_type("r6g", "large.search"), "r6g.large.search");
        assert_eq!(
            opensearch_type("r6g", "r6g.large.search"),
            "r6g.large.search"
        );
    }

    #[test]
    fn rds_multi_az_comes_from_the_deployment_option() {
        let details = |deployment: &str| {
            RdsInstanceDetails::builder()
                .instance_type("db.r5.large")
                .region("us-east-1")
                .database_engine("PostgreSQL")
                .deployment_option(deployment)
                .build()
        };
        let multi = rds_shape(&details("Multi-AZ")).unwrap();
        assert_eq!(multi.engine.as_deref(), Some("postgresql"));
        assert_eq!(multi.details.multi_az, Some(true));
        assert_eq!(
            rds_shape(&details("Single-AZ")).unwrap().details.multi_az,
            Some(false)
        );
    }

    #[test]
    fn queries_outside_what_aws_sells_fail_before_any_call() {
        let query = |term, payment: &str| RecommendationQuery {
            service: AwsService::Rds,
            term,
            payment: payment.to_owned(),
        };
        assert!(
            Asked::of(
                &query(3, "all-upfront"),
                AccountScope::Linked,
                "123456789012"
            )
            .is_ok()
        );
        for bad in [query(2, "all-upfront"), query(1, "upfront")] {
            let failure = Asked::of(&bad, AccountScope::Payer, "123456789012")
                .err()
                .unwrap();
            assert_eq!(failure.operation, RESERVATIONS);
        }
    }

    #[test]
    fn a_budget_refuses_beyond_its_limit_and_counts_what_it_spent() {
        let budget = CallBudget::new(2);
        assert!(budget.spend(RESERVATIONS).is_ok());
        assert!(budget.spend(SAVINGS_PLANS).is_ok());
        let refused = budget.spend(RESERVATIONS).unwrap_err();
        assert_eq!(
            refused.detail,
            "Cost Explorer call budget of 2 calls exhausted"
        );
        assert_eq!((budget.used(), budget.remaining()), (2, 0));
    }

    #[test]
    fn every_reservation_service_has_a_cost_explorer_name() {
        for service in AwsService::ALL {
            assert_eq!(
                ce_service_name(service).is_some(),
                service != AwsService::SavingsPlans,
                "{service}"
            );
        }
    }
}
