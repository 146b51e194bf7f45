//! Savings Plans (restJson1): offerings and their usage rates, CreateSavingsPlan with
//! client-token idempotency (a retry returns the same plan; the same token with other
//! parameters is a ValidationException, as AWS does) and DescribeSavingsPlans. As in
//! AWS an offering carries no price: the buyer chooses the hourly commitment, and
//! DescribeSavingsPlansOfferingRates answers what an hour of covered usage costs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::catalogue::{self, Offering, OfferingQuery};
use crate::ledger::Commitment;
use crate::protocol::{AwsError, Reply};
use crate::services::{CallContext, build_commitment, commit, new_commitment_id, paginate};
use crate::state::SandboxState;

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "DescribeSavingsPlansOfferings" => describe_offerings(context, state),
        "DescribeSavingsPlansOfferingRates" => describe_offering_rates(context, state),
        "CreateSavingsPlan" => create(context, state),
        "DescribeSavingsPlans" => describe(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::bad_request("ValidationException", message)
}

fn years(offering: &Offering) -> i64 {
    offering.duration_seconds / catalogue::ONE_YEAR_SECONDS
}

fn service_code(offering: &Offering) -> &'static str {
    match offering.instance_type.as_str() {
        "Compute" => "ComputeSavingsPlans",
        "EC2Instance" => "EC2InstanceSavingsPlans",
        _ => "MachineLearningSavingsPlans",
    }
}

fn usage_type(offering: &Offering) -> String {
    let payment: String = offering.payment.split_whitespace().collect();
    format!(
        "{}SP:{}yr{payment}",
        offering.instance_type,
        years(offering)
    )
}

fn description(offering: &Offering) -> String {
    let unit = if years(offering) == 1 {
        "year"
    } else {
        "years"
    };
    format!(
        "{} {unit} {} {} Savings Plan",
        years(offering),
        offering.payment,
        offering.instance_type
    )
}

fn offering_json(offering: &Offering) -> Value {
    json!({
        "offeringId": offering.offering_id,
        "productTypes": offering.savings_plan_product_types(),
        "planType": offering.instance_type,
        "description": description(offering),
        "paymentOption": offering.payment,
        "durationSeconds": offering.duration_seconds,
        "currency": offering.currency,
        "serviceCode": service_code(offering),
        "usageType": usage_type(offering),
        "operation": "",
        "properties": [],
    })
}

fn describe_offerings(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let offering_ids = context.json_strings("offeringIds");
    let payments = context.json_strings("paymentOptions");
    let plan_types = context.json_strings("planTypes");
    let currencies = context.json_strings("currencies");
    let descriptions = context.json_strings("descriptions");
    let service_codes = context.json_strings("serviceCodes");
    let usage_types = context.json_strings("usageTypes");
    let product_type = context.json_str("productType").map(str::to_string);
    let durations: Vec<i64> = context
        .json
        .get("durations")
        .and_then(Value::as_array)
        .map(|values| values.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();

    let all = state.describe_offerings(context.service, &context.region, &OfferingQuery::default());
    let matching: Vec<Offering> = all
        .into_iter()
        .filter(|offering| offering_ids.is_empty() || offering_ids.contains(&offering.offering_id))
        .filter(|offering| payments.is_empty() || payments.contains(&offering.payment))
        .filter(|offering| plan_types.is_empty() || plan_types.contains(&offering.instance_type))
        .filter(|offering| currencies.is_empty() || currencies.contains(&offering.currency))
        .filter(|offering| descriptions.is_empty() || descriptions.contains(&description(offering)))
        .filter(|offering| {
            service_codes.is_empty()
                || service_codes
                    .iter()
                    .any(|code| code == service_code(offering))
        })
        .filter(|offering| usage_types.is_empty() || usage_types.contains(&usage_type(offering)))
        .filter(|offering| durations.is_empty() || durations.contains(&offering.duration_seconds))
        .filter(|offering| {
            product_type
                .as_deref()
                .is_none_or(|product| offering.savings_plan_product_types().contains(&product))
        })
        .collect();
    let (page, next) = paginate(
        context.service,
        &matching,
        context.json_str("nextToken"),
        context.json_integer("maxResults")?,
        1000,
    )?;
    let mut reply = json!({ "searchResults": page.iter().map(offering_json).collect::<Vec<_>>() });
    if let Some(next) = next {
        reply["nextToken"] = json!(next);
    }
    Ok(Reply::Json(reply))
}

/// The service code, usage type and operation of the usage a plan covers, per product
/// type: one representative usage each, since the sandbox prices no individual
/// instance types under a plan.
fn rate_usage(product_type: &str) -> (&'static str, &'static str, &'static str) {
    match product_type {
        "EC2" => ("AmazonEC2", "BoxUsage", "RunInstances"),
        "Fargate" => ("AmazonECS", "Fargate-vCPU-Hours:perCPU", "FargateTask"),
        "Lambda" => ("AWSLambda", "Lambda-GB-Second", "Invoke"),
        _ => ("AmazonSageMaker", "ml.m5.large-Hosting", "RunInstance"),
    }
}

/// One usage rate of an offering: the offering's effective hourly price, per hour of
/// the product type's usage.
fn rate_json(offering: &Offering, product_type: &str) -> Value {
    let (service_code, usage_type, operation) = rate_usage(product_type);
    json!({
        "savingsPlanOffering": {
            "offeringId": offering.offering_id,
            "paymentOption": offering.payment,
            "planType": offering.instance_type,
            "durationSeconds": offering.duration_seconds,
            "currency": offering.currency,
            "planDescription": description(offering),
        },
        "rate": offering.effective_hourly().to_string(),
        "unit": "Hrs",
        "productType": product_type,
        "serviceCode": service_code,
        "usageType": usage_type,
        "operation": operation,
        "properties": [],
    })
}

/// The filter names DescribeSavingsPlansOfferingRates accepts. The sandbox's rates carry
/// no properties, so a known filter is accepted and narrows nothing.
const RATE_FILTER_NAMES: [&str; 6] = [
    "region",
    "instanceFamily",
    "instanceType",
    "productDescription",
    "tenancy",
    "productId",
];

/// Whether `value` is among the `wanted` values of a request list (an empty list wants
/// any).
fn listed(wanted: &[String], value: &str) -> bool {
    wanted.is_empty() || wanted.iter().any(|candidate| candidate == value)
}

fn describe_offering_rates(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let offering_ids = context.json_strings("savingsPlanOfferingIds");
    let payments = context.json_strings("savingsPlanPaymentOptions");
    let plan_types = context.json_strings("savingsPlanTypes");
    let products = context.json_strings("products");
    let service_codes = context.json_strings("serviceCodes");
    let usage_types = context.json_strings("usageTypes");
    let operations = context.json_strings("operations");
    let filter_names: Vec<String> = context
        .json
        .get("filters")
        .and_then(Value::as_array)
        .map(|filters| {
            filters
                .iter()
                .map(|filter| {
                    filter
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(unknown) = filter_names
        .iter()
        .find(|name| !RATE_FILTER_NAMES.contains(&name.as_str()))
    {
        return Err(validation(format!("invalid filter name {unknown}")));
    }

    let offerings =
        state.describe_offerings(context.service, &context.region, &OfferingQuery::default());
    let rates: Vec<Value> = offerings
        .iter()
        .filter(|offering| listed(&offering_ids, &offering.offering_id))
        .filter(|offering| listed(&payments, &offering.payment))
        .filter(|offering| listed(&plan_types, &offering.instance_type))
        .flat_map(|offering| {
            offering
                .savings_plan_product_types()
                .into_iter()
                .map(move |product_type| (offering, product_type))
        })
        .filter(|(_, product_type)| {
            let (service_code, usage_type, operation) = rate_usage(product_type);
            listed(&products, product_type)
                && listed(&service_codes, service_code)
                && listed(&usage_types, usage_type)
                && listed(&operations, operation)
        })
        .map(|(offering, product_type)| rate_json(offering, product_type))
        .collect();
    let (page, next) = paginate(
        context.service,
        &rates,
        context.json_str("nextToken"),
        context.json_integer("maxResults")?,
        1000,
    )?;
    let mut reply = json!({ "searchResults": page });
    if let Some(next) = next {
        reply["nextToken"] = json!(next);
    }
    Ok(Reply::Json(reply))
}

/// Parses a positive USD amount given as a decimal string.
fn amount(name: &str, value: &str) -> Result<f64, AwsError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|amount| amount.is_finite() && *amount >= 0.0)
        .ok_or_else(|| validation(format!("{name} must be a non-negative decimal amount")))
}

fn create(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let offering_id = context.json_required("savingsPlanOfferingId")?.to_string();
    let hourly = context.json_required("commitment")?.to_string();
    let upfront = context.json_str("upfrontPaymentAmount").map(str::to_string);
    let client_token = context.json_str("clientToken").map(str::to_string);
    let purchase_time = context
        .json
        .get("purchaseTime")
        .cloned()
        .unwrap_or(Value::Null);
    let tags: BTreeMap<String, String> = context
        .json
        .get("tags")
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    context.note.client_token = client_token.clone();
    context.note.note_tags(&tags);

    if amount("commitment", &hourly)? <= 0.0 {
        return Err(validation("commitment must be greater than zero"));
    }
    if let Some(upfront) = &upfront {
        amount("upfrontPaymentAmount", upfront)?;
    }
    let fingerprint = {
        let canonical = json!({
            "offering": offering_id,
            "commitment": hourly,
            "upfront": upfront,
            "purchaseTime": purchase_time,
            "tags": tags,
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    };

    if let Some(token) = &client_token {
        let previous = state
            .commitments_in(&context.account_id, &context.region, context.service)
            .find(|commitment| commitment.client_token.as_deref() == Some(token.as_str()));
        if let Some(previous) = previous {
            if previous.request_fingerprint.as_deref() != Some(fingerprint.as_str()) {
                return Err(validation(
                    "the client token was already used with different parameters",
                ));
            }
            context.note.commitment_id = Some(previous.commitment_id.clone());
            return Ok(Reply::Json(
                json!({ "savingsPlanId": previous.commitment_id }),
            ));
        }
    }

    let offering = state
        .find_offering(context.service, &context.region, &offering_id)
        .ok_or_else(|| {
            AwsError::new(
                404,
                "ResourceNotFoundException",
                format!("savings plan offering {offering_id} not found"),
            )
        })?;
    let queued_until = purchase_time
        .as_f64()
        .and_then(|seconds| DateTime::<Utc>::from_timestamp(seconds as i64, 0))
        .filter(|time| *time > context.aws_now);
    let commitment_id = new_commitment_id();
    let mut commitment = build_commitment(context, offering, commitment_id.clone(), 1, tags);
    commitment.client_token = client_token;
    commitment.hourly_commitment = Some(hourly);
    commitment.upfront_payment_amount = upfront;
    commitment.request_fingerprint = Some(fingerprint);
    if let Some(start) = queued_until {
        commitment.state = "queued".to_string();
        commitment.created_at = start;
    }
    commit(context, state, commitment);
    Ok(Reply::Json(json!({ "savingsPlanId": commitment_id })))
}

fn plan_arn(commitment: &Commitment) -> String {
    format!(
        "arn:aws:savingsplans::{}:savingsplan/{}",
        commitment.account_id, commitment.commitment_id
    )
}

fn plan_json(commitment: &Commitment) -> Value {
    let offering = &commitment.offering;
    let hourly: f64 = commitment
        .hourly_commitment
        .as_deref()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    let hours = (offering.duration_seconds / 3600) as f64;
    let (default_upfront, recurring) = match offering.payment.as_str() {
        "All Upfront" => (hourly * hours, 0.0),
        "Partial Upfront" => (hourly * hours / 2.0, hourly / 2.0),
        _ => (0.0, hourly),
    };
    let upfront = commitment
        .upfront_payment_amount
        .clone()
        .unwrap_or_else(|| format!("{default_upfront:.2}"));
    let end = commitment.created_at + chrono::Duration::seconds(offering.duration_seconds);
    json!({
        "offeringId": commitment.offering_id,
        "savingsPlanId": commitment.commitment_id,
        "savingsPlanArn": plan_arn(commitment),
        "description": description(offering),
        "start": commitment.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "state": commitment.state,
        "region": commitment.region,
        "savingsPlanType": offering.instance_type,
        "paymentOption": offering.payment,
        "productTypes": offering.savings_plan_product_types(),
        "currency": offering.currency,
        "commitment": commitment.hourly_commitment,
        "upfrontPaymentAmount": upfront,
        "recurringPaymentAmount": format!("{recurring:.4}"),
        "termDurationInSeconds": offering.duration_seconds,
        "tags": commitment.tags,
    })
}

fn describe(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let ids = context.json_strings("savingsPlanIds");
    let arns = context.json_strings("savingsPlanArns");
    let states = context.json_strings("states");
    let filters: Vec<(String, Vec<String>)> = context
        .json
        .get("filters")
        .and_then(Value::as_array)
        .map(|filters| {
            filters
                .iter()
                .map(|filter| {
                    let name = filter
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let values = filter
                        .get("values")
                        .and_then(Value::as_array)
                        .map(|values| {
                            values
                                .iter()
                                .filter_map(|value| value.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    (name.to_string(), values)
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, _) in &filters {
        if !matches!(
            name.as_str(),
            "region"
                | "commitment"
                | "term"
                | "savings-plan-type"
                | "payment-option"
                | "upfront"
                | "ec2-instance-family"
                | "start"
                | "end"
        ) {
            return Err(validation(format!("invalid filter name {name}")));
        }
    }
    let matching: Vec<Commitment> = state
        .commitments_in(&context.account_id, &context.region, context.service)
        .filter(|commitment| ids.is_empty() || ids.contains(&commitment.commitment_id))
        .filter(|commitment| arns.is_empty() || arns.contains(&plan_arn(commitment)))
        .filter(|commitment| states.is_empty() || states.contains(&commitment.state))
        .filter(|commitment| {
            filters.iter().all(|(name, values)| {
                let value = match name.as_str() {
                    "region" => commitment.region.clone(),
                    "commitment" => commitment.hourly_commitment.clone().unwrap_or_default(),
                    "term" => years(&commitment.offering).to_string(),
                    "savings-plan-type" => commitment.offering.instance_type.clone(),
                    "payment-option" => commitment.offering.payment.clone(),
                    "upfront" => commitment
                        .upfront_payment_amount
                        .clone()
                        .unwrap_or_default(),
                    _ => return true,
                };
                values.contains(&value)
            })
        })
        .cloned()
        .collect();
    let (page, next) = paginate(
        context.service,
        &matching,
        context.json_str("nextToken"),
        context.json_integer("maxResults")?,
        1000,
    )?;
    let mut reply = json!({ "savingsPlans": page.iter().map(plan_json).collect::<Vec<_>>() });
    if let Some(next) = next {
        reply["nextToken"] = json!(next);
    }
    Ok(Reply::Json(reply))
}
