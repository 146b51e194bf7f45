//! Cost Explorer (awsJson1_1): GetReservationPurchaseRecommendation and
//! GetSavingsPlansPurchaseRecommendation, answered from the recommendations seeded with
//! `POST /_sandbox/recommendations` (docs/design/SANDBOX.md "Cost Explorer"): the seeds
//! of the accounts in the call's scope that match its service or plan type, term and
//! payment, in seeding order, [`PAGE_SIZE`] details a page, all of a page in one
//! recommendation.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::protocol::{AwsError, Reply};
use crate::recommendations::{Payment, PlanType, Recommendation, Term};
use crate::service::Service;
use crate::services::{CallContext, paginate, xml_time};
use crate::state::SandboxState;

/// Details per page: few, so that a handful of seeds exercises a client's paging.
/// `PageSize` is accepted and not honoured; AWS too may answer fewer than asked.
const PAGE_SIZE: usize = 5;
const CURRENCY: &str = "USD";
const DEFAULT_LOOKBACK: &str = "THIRTY_DAYS";
const DEFAULT_EC2_PLATFORM: &str = "Linux/UNIX";

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "GetReservationPurchaseRecommendation" => reservations(context, state),
        "GetSavingsPlansPurchaseRecommendation" => savings_plans(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

fn reservations(context: &CallContext<'_>, state: &SandboxState) -> Result<Reply, AwsError> {
    let service = required_choice(
        context,
        "Service",
        reserved_service,
        "a Cost Explorer service name such as Amazon Relational Database Service",
    )?;
    let selection = Selection::read(context, state)?;
    let seeds = selection.select(state, |seed| seed.service == service);
    let (page, next) = page_of(context, &seeds)?;
    let mut recommendations = Vec::new();
    if !page.is_empty() {
        let mut recommendation = selection.header(context);
        if let Some(specification) = context
            .json
            .get("ServiceSpecification")
            .filter(|specification| specification.is_object())
        {
            recommendation["ServiceSpecification"] = specification.clone();
        }
        recommendation["RecommendationDetails"] =
            page.into_iter().map(reservation_detail).collect();
        recommendation["RecommendationSummary"] = json!({
            "TotalEstimatedMonthlySavingsAmount": decimal(total(&seeds, |seed| seed.monthly_savings)),
            "CurrencyCode": CURRENCY,
        });
        recommendations.push(recommendation);
    }
    Ok(answer(
        context,
        json!({ "Recommendations": recommendations }),
        next,
    ))
}

fn savings_plans(context: &CallContext<'_>, state: &SandboxState) -> Result<Reply, AwsError> {
    let plan_type = required_choice(
        context,
        "SavingsPlansType",
        PlanType::from_aws_name,
        "COMPUTE_SP, EC2_INSTANCE_SP or SAGEMAKER_SP",
    )?;
    let selection = Selection::read(context, state)?;
    let seeds = selection.select(state, |seed| {
        seed.service == Service::Savingsplans && seed.plan_type == Some(plan_type)
    });
    let (page, next) = page_of(context, &seeds)?;
    let mut recommendation = selection.header(context);
    recommendation["SavingsPlansType"] = json!(plan_type.aws_name());
    recommendation["SavingsPlansPurchaseRecommendationDetails"] =
        page.into_iter().map(savings_plan_detail).collect();
    recommendation["SavingsPlansPurchaseRecommendationSummary"] = json!({
        "TotalRecommendationCount": seeds.len().to_string(),
        "HourlyCommitmentToPurchase": decimal(total(&seeds, |seed| {
            seed.hourly_commitment.as_deref().and_then(|commitment| commitment.parse().ok())
        })),
        "EstimatedMonthlySavingsAmount": decimal(total(&seeds, |seed| seed.monthly_savings)),
        "CurrencyCode": CURRENCY,
    });
    Ok(answer(
        context,
        json!({ "SavingsPlansPurchaseRecommendation": recommendation }),
        next,
    ))
}

/// Returns the service a `Service` of GetReservationPurchaseRecommendation names, by
/// Cost Explorer's names (and the former ones of MemoryDB and OpenSearch).
fn reserved_service(name: &str) -> Option<Service> {
    match name {
        "Amazon Elastic Compute Cloud - Compute" => Some(Service::Ec2),
        "Amazon Relational Database Service" => Some(Service::Rds),
        "Amazon ElastiCache" => Some(Service::Elasticache),
        "Amazon MemoryDB Service" | "Amazon MemoryDB" => Some(Service::Memorydb),
        "Amazon OpenSearch Service" | "Amazon Elasticsearch Service" => Some(Service::Opensearch),
        "Amazon Redshift" => Some(Service::Redshift),
        _ => None,
    }
}

/// Returns what the required member `name` names, read by `parse`; a member that is
/// missing or that `parse` does not know is a ValidationException naming the
/// `expected` values.
fn required_choice<T>(
    context: &CallContext<'_>,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, AwsError> {
    let value = context.json_required(name)?;
    parse(value).ok_or_else(|| {
        AwsError::invalid_parameter(context.service, format!("{name} must be {expected}"))
    })
}

/// What both operations select seeds by, besides the service or plan type.
struct Selection {
    account_scope: &'static str,
    accounts: BTreeSet<String>,
    term: Term,
    payment: Payment,
}

impl Selection {
    /// Reads `TermInYears`, `PaymentOption` (both required), `AccountScope` (PAYER when
    /// absent) and `AccountId` (narrows the scope to that account; outside it, to none).
    fn read(context: &CallContext<'_>, state: &SandboxState) -> Result<Selection, AwsError> {
        let term = required_choice(
            context,
            "TermInYears",
            Term::from_aws_name,
            "ONE_YEAR or THREE_YEARS",
        )?;
        let payment = required_choice(
            context,
            "PaymentOption",
            Payment::from_aws_name,
            "NO_UPFRONT, PARTIAL_UPFRONT or ALL_UPFRONT",
        )?;
        let account_scope = match context.json_str("AccountScope") {
            None | Some("PAYER") => "PAYER",
            Some("LINKED") => "LINKED",
            Some(_) => {
                return Err(AwsError::invalid_parameter(
                    context.service,
                    "AccountScope must be PAYER or LINKED",
                ));
            }
        };
        let caller = context.principal()?.account_id.as_str();
        let mut accounts = accounts_in_scope(state, caller, account_scope == "LINKED");
        if let Some(account_id) = context.json_str("AccountId") {
            accounts.retain(|candidate| candidate == account_id);
        }
        Ok(Selection {
            account_scope,
            accounts,
            term,
            payment,
        })
    }

    /// Returns, in seeding order, the seeds of the accounts in scope with the term and
    /// payment asked for that `wanted` keeps.
    fn select<'a>(
        &self,
        state: &'a SandboxState,
        wanted: impl Fn(&Recommendation) -> bool,
    ) -> Vec<&'a Recommendation> {
        state
            .recommendations
            .iter()
            .filter(|seed| {
                self.accounts.contains(&seed.account_id)
                    && seed.term == self.term
                    && seed.payment == self.payment
                    && wanted(seed)
            })
            .collect()
    }

    /// Returns the members of the recommendation both operations answer with.
    fn header(&self, context: &CallContext<'_>) -> Value {
        json!({
            "AccountScope": self.account_scope,
            "LookbackPeriodInDays": context.json_str("LookbackPeriodInDays").unwrap_or(DEFAULT_LOOKBACK),
            "TermInYears": self.term.aws_name(),
            "PaymentOption": self.payment.aws_name(),
        })
    }
}

/// Returns the accounts whose seeds a call sees: an organization root asking for
/// `LINKED` sees its organization's (itself and its members), any other call its own
/// account's. AWS answers a root's `PAYER` call with the organization's usage
/// aggregated into the root's recommendations; the sandbox answers the root's own
/// seeds there, so a test tells the two scopes apart by what it seeded.
fn accounts_in_scope(state: &SandboxState, caller: &str, linked: bool) -> BTreeSet<String> {
    let mut accounts = BTreeSet::from([caller.to_string()]);
    if linked && state.organization_root_of(caller) == Some(caller) {
        let members = state
            .account(caller)
            .and_then(|root| root.organization_members.as_ref());
        accounts.extend(
            members
                .into_iter()
                .flatten()
                .map(|member| member.account_id.clone()),
        );
    }
    accounts
}

/// Returns the page of `seeds` the call's `NextPageToken` asks for, and the token of the
/// next page when there is one.
fn page_of<'a>(
    context: &CallContext<'_>,
    seeds: &[&'a Recommendation],
) -> Result<(Vec<&'a Recommendation>, Option<String>), AwsError> {
    paginate(
        context.service,
        seeds,
        context.json_str("NextPageToken"),
        None,
        PAGE_SIZE,
    )
    .map_err(|_| AwsError::bad_request("InvalidNextTokenException", "the page token is invalid"))
}

/// Completes a reply with the metadata of a fresh generation and the next page's token.
fn answer(context: &CallContext<'_>, mut body: Value, next: Option<String>) -> Reply {
    body["Metadata"] = json!({
        "RecommendationId": uuid::Uuid::new_v4().to_string(),
        "GenerationTimestamp": xml_time(context.aws_now),
    });
    if let Some(next) = next {
        body["NextPageToken"] = json!(next);
    }
    Reply::Json(body)
}

fn reservation_detail(seed: &Recommendation) -> Value {
    let mut detail = detail_base(seed);
    detail["InstanceDetails"] = instance_details(seed);
    detail["RecommendedNumberOfInstancesToPurchase"] =
        json!(decimal(seed.recommended_count.unwrap_or_default()));
    detail
}

/// Returns a Savings Plans detail; only EC2Instance plans are bound to a region and an
/// instance family, as in AWS.
fn savings_plan_detail(seed: &Recommendation) -> Value {
    let mut plan = json!({});
    if seed.plan_type == Some(PlanType::Ec2Instance) {
        set_some(&mut plan, "Region", seed.region.as_deref());
        set_some(&mut plan, "InstanceFamily", seed.instance_family.as_deref());
    }
    set_some(&mut plan, "OfferingId", seed.offering_id.as_deref());
    let mut detail = detail_base(seed);
    detail["SavingsPlansDetails"] = plan;
    detail["HourlyCommitmentToPurchase"] = json!(seed.hourly_commitment);
    detail
}

/// Returns the members every detail has: whose it is, and what it costs and saves when
/// the seed says.
fn detail_base(seed: &Recommendation) -> Value {
    let mut detail = json!({ "AccountId": seed.account_id, "CurrencyCode": CURRENCY });
    set_some(&mut detail, "UpfrontCost", seed.upfront_cost.map(decimal));
    set_some(
        &mut detail,
        "EstimatedMonthlySavingsAmount",
        seed.monthly_savings.map(decimal),
    );
    detail
}

/// Returns the `InstanceDetails` of a reservation seed, under its service's member.
fn instance_details(seed: &Recommendation) -> Value {
    let resource_type = seed.resource_type.as_deref().unwrap_or_default();
    let (member, mut details) = match seed.service {
        Service::Ec2 => (
            "EC2InstanceDetails",
            json!({
                "Family": resource_type.split_once('.').map_or(resource_type, |(family, _)| family),
                "InstanceType": resource_type,
                "Platform": seed.platform.as_deref().unwrap_or(DEFAULT_EC2_PLATFORM),
                "Tenancy": "default",
            }),
        ),
        Service::Rds => {
            let deployment = if seed.multi_az == Some(true) {
                "Multi-AZ"
            } else {
                "Single-AZ"
            };
            let mut rds = json!({ "InstanceType": resource_type, "DeploymentOption": deployment });
            set_some(
                &mut rds,
                "DatabaseEngine",
                seed.engine.as_deref().map(rds_engine_name),
            );
            ("RDSInstanceDetails", rds)
        }
        Service::Elasticache => {
            let mut cache = json!({ "NodeType": resource_type });
            set_some(&mut cache, "ProductDescription", seed.engine.as_deref());
            ("ElastiCacheInstanceDetails", cache)
        }
        Service::Memorydb => (
            "MemoryDBInstanceDetails",
            json!({ "NodeType": resource_type }),
        ),
        Service::Opensearch => {
            // Split so that InstanceClass "." InstanceSize rebuilds the type:
            // r6g.large.search is class r6g, size large.search.
            let (class, size) = resource_type.split_once('.').unwrap_or((resource_type, ""));
            (
                "ESInstanceDetails",
                json!({ "InstanceClass": class, "InstanceSize": size }),
            )
        }
        Service::Redshift => (
            "RedshiftInstanceDetails",
            json!({ "NodeType": resource_type }),
        ),
        // No Cost Explorer service name selects seeds of another service.
        _ => return json!({}),
    };
    set_some(&mut details, "Region", seed.region.as_deref());
    let mut instance = serde_json::Map::new();
    instance.insert(member.to_string(), details);
    Value::Object(instance)
}

/// Returns Cost Explorer's name of an RDS engine the seed names as the RDS API does
/// (`postgresql` is `PostgreSQL`); any other name is answered as given.
fn rds_engine_name(engine: &str) -> &str {
    match engine {
        "postgresql" | "postgres" => "PostgreSQL",
        "mysql" => "MySQL",
        "mariadb" => "MariaDB",
        "aurora-postgresql" => "Aurora PostgreSQL",
        "aurora-mysql" | "aurora" => "Aurora MySQL",
        other => other,
    }
}

/// Sets `key` on the object `value` when there is a `member`: AWS leaves out what it
/// has no value for.
fn set_some(value: &mut Value, key: &str, member: Option<impl Into<Value>>) {
    if let Some(member) = member {
        value[key] = member.into();
    }
}

/// Adds up an amount of the seeds, an absent one counting 0.
fn total(seeds: &[&Recommendation], amount: impl Fn(&Recommendation) -> Option<f64>) -> f64 {
    seeds.iter().copied().filter_map(amount).sum()
}

/// Formats an amount as Cost Explorer's string members carry them: decimal text without
/// trailing zeros ("3", "2.5", "0.125").
fn decimal(amount: f64) -> String {
    let fixed = format!("{amount:.6}");
    fixed
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_plain_decimal_text() {
        assert_eq!(decimal(3.0), "3");
        assert_eq!(decimal(2.5), "2.5");
        assert_eq!(decimal(0.0), "0");
        assert_eq!(decimal(10.0), "10");
        assert_eq!(decimal(0.1 + 0.2), "0.3");
    }

    #[test]
    fn every_reserved_service_has_its_cost_explorer_name() {
        for (name, service) in [
            ("Amazon Elastic Compute Cloud - Compute", Service::Ec2),
            ("Amazon Relational Database Service", Service::Rds),
            ("Amazon ElastiCache", Service::Elasticache),
            ("Amazon MemoryDB", Service::Memorydb),
            ("Amazon Elasticsearch Service", Service::Opensearch),
            ("Amazon Redshift", Service::Redshift),
        ] {
            assert_eq!(reserved_service(name), Some(service));
        }
        assert_eq!(reserved_service("Amazon EC2"), None);
    }
}
