//! EC2 (ec2 query): reserved instance offerings, purchases, descriptions and tags.
//! Offerings are regional (scope `Region`) unless a describe names an availability
//! zone of the region, which answers zonal ones (scope `Availability Zone`). A purchase
//! honours `LimitPrice` (the most the whole order may cost upfront) and `DryRun`.

use std::collections::BTreeMap;

use crate::catalogue::{Offering, OfferingQuery};
use crate::ledger::Commitment;
use crate::protocol::{AwsError, Params, Reply, XmlWriter};
use crate::services::{
    CallContext, build_commitment, commit, glob_match, new_commitment_id, paginate, query_tags,
    xml_time,
};
use crate::state::SandboxState;

/// The currency EC2 accepts in `LimitPrice.CurrencyCode`, the only one it knows.
const LIMIT_PRICE_CURRENCY: &str = "USD";
/// How far a total order may pass its limit price and still be within it: the same
/// decimal prices multiplied in two places can differ in their last bits.
const LIMIT_PRICE_SLACK: f64 = 1e-6;

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    // A dry-run purchase is checked like a real one before it answers, so it tells
    // whether the purchase would be accepted; other dry runs answer at once.
    if context.operation != "PurchaseReservedInstancesOffering"
        && context.boolean("DryRun")? == Some(true)
    {
        return Err(dry_run_operation());
    }
    match context.operation {
        "DescribeReservedInstancesOfferings" => describe_offerings(context, state),
        "PurchaseReservedInstancesOffering" => purchase(context, state),
        "DescribeReservedInstances" => describe_reserved_instances(context, state),
        "CreateTags" => create_tags(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

/// One `Filter.N` of a describe call.
struct Filter {
    name: String,
    values: Vec<String>,
}

impl Filter {
    fn matches(&self, value: &str) -> bool {
        self.values.iter().any(|pattern| glob_match(pattern, value))
    }
}

fn filters(params: &Params) -> Vec<Filter> {
    params
        .structs("Filter")
        .into_iter()
        .map(|filter| Filter {
            name: filter.get("Name").unwrap_or_default().to_string(),
            values: filter.list("Value"),
        })
        .collect()
}

/// The scope EC2 reports for an offering and the reserved instances bought from it.
fn scope(offering: &Offering) -> &'static str {
    if offering.availability_zone.is_some() {
        "Availability Zone"
    } else {
        "Region"
    }
}

/// Whether an `availability-zone` filter matches an offering: only a zonal one can.
fn zone_matches(filter: &Filter, offering: &Offering) -> bool {
    offering
        .availability_zone
        .as_deref()
        .is_some_and(|zone| filter.matches(zone))
}

fn invalid_filter(context: &CallContext<'_>, name: &str) -> AwsError {
    AwsError::invalid_parameter(context.service, format!("the filter '{name}' is invalid"))
}

fn describe_offerings(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let filters = filters(context.params);
    let offering_ids = context.params.list("ReservedInstancesOfferingId");
    let tenancy = context.params.get("InstanceTenancy").unwrap_or("default");
    let min_duration = context.integer("MinDuration")?;
    let max_duration = context.integer("MaxDuration")?;
    let availability_zone = context.params.non_empty("AvailabilityZone");

    let mut offerings: Vec<Offering> = if !offering_ids.is_empty() {
        offering_ids
            .iter()
            .filter_map(|id| state.find_offering(context.service, &context.region, id))
            .collect()
    } else {
        let types: Vec<Option<String>> = match context.params.non_empty("InstanceType") {
            Some(instance_type) => vec![Some(instance_type.to_string())],
            None => match filters.iter().find(|filter| filter.name == "instance-type") {
                Some(filter)
                    if filter
                        .values
                        .iter()
                        .all(|value| !value.contains(['*', '?'])) =>
                {
                    filter.values.iter().cloned().map(Some).collect()
                }
                _ => vec![None],
            },
        };
        let mut generated = Vec::new();
        for instance_type in types {
            let query = OfferingQuery {
                instance_type,
                product: context
                    .params
                    .non_empty("ProductDescription")
                    .map(str::to_string),
                durations: None,
                payment: context.params.non_empty("OfferingType").map(str::to_string),
                class: context
                    .params
                    .non_empty("OfferingClass")
                    .map(str::to_string),
                multi_az: None,
                availability_zone: availability_zone.map(str::to_string),
            };
            generated.extend(state.describe_offerings(context.service, &context.region, &query));
        }
        generated
    };

    if tenancy != "default" {
        offerings.clear();
    }
    // Offerings asked for by id are of the zone asked for too, when there is one.
    if let Some(zone) = availability_zone {
        offerings.retain(|offering| offering.availability_zone.as_deref() == Some(zone));
    }
    offerings.retain(|offering| {
        min_duration.is_none_or(|min| offering.duration_seconds >= min)
            && max_duration.is_none_or(|max| offering.duration_seconds <= max)
    });
    for filter in &filters {
        let keep: fn(&Filter, &Offering) -> bool = match filter.name.as_str() {
            "instance-type" => |filter, offering| filter.matches(&offering.instance_type),
            "product-description" => |filter, offering| filter.matches(&offering.product),
            "duration" => |filter, offering| filter.matches(&offering.duration_seconds.to_string()),
            "reserved-instances-offering-id" => {
                |filter, offering| filter.matches(&offering.offering_id)
            }
            "scope" => |filter, offering| filter.matches(scope(offering)),
            "marketplace" => |filter, _| filter.matches("false"),
            "fixed-price" => |filter, offering| filter.matches(&offering.fixed_price.to_string()),
            "usage-price" => |filter, offering| filter.matches(&offering.usage_price.to_string()),
            "availability-zone" => zone_matches,
            other => return Err(invalid_filter(context, other)),
        };
        offerings.retain(|offering| keep(filter, offering));
    }

    let (page, next) = paginate(
        context.service,
        &offerings,
        context.params.get("NextToken"),
        context.integer("MaxResults")?,
        100,
    )?;
    let mut xml = XmlWriter::new();
    xml.open("reservedInstancesOfferingsSet");
    for offering in &page {
        xml.open("item")
            .element("reservedInstancesOfferingId", &offering.offering_id);
        write_offering_fields(&mut xml, offering);
        xml.element("marketplace", false)
            .open("pricingDetailsSet")
            .close("pricingDetailsSet")
            .close("item");
    }
    xml.close("reservedInstancesOfferingsSet")
        .optional("nextToken", next);
    Ok(Reply::Xml(xml.finish()))
}

/// Writes the attributes an offering and a reserved instance share.
fn write_offering_fields(xml: &mut XmlWriter, offering: &Offering) {
    xml.element("instanceType", &offering.instance_type)
        .element("duration", offering.duration_seconds)
        .element("fixedPrice", offering.fixed_price)
        .element("usagePrice", offering.usage_price)
        .element("productDescription", &offering.product)
        .element("instanceTenancy", "default")
        .element("currencyCode", &offering.currency)
        .element("offeringType", &offering.payment)
        .open("recurringCharges");
    if offering.recurring_hourly > 0.0 {
        xml.open("item")
            .element("frequency", "Hourly")
            .element("amount", offering.recurring_hourly)
            .close("item");
    }
    xml.close("recurringCharges")
        .element("offeringClass", &offering.class)
        .element("scope", scope(offering))
        .optional("availabilityZone", offering.availability_zone.as_deref());
}

/// The answer to a dry run that would have succeeded, in EC2's own words.
fn dry_run_operation() -> AwsError {
    AwsError::new(
        412,
        "DryRunOperation",
        "Request would have succeeded, but DryRun flag is set.",
    )
}

/// Returns the purchase's `LimitPrice.Amount`, checked: a finite amount of at least 0,
/// in the one currency EC2 accepts.
fn limit_price(context: &CallContext<'_>) -> Result<Option<f64>, AwsError> {
    if let Some(currency) = context.params.non_empty("LimitPrice.CurrencyCode")
        && currency != LIMIT_PRICE_CURRENCY
    {
        return Err(AwsError::invalid_parameter(
            context.service,
            format!("LimitPrice.CurrencyCode must be {LIMIT_PRICE_CURRENCY}, not {currency}"),
        ));
    }
    context
        .params
        .non_empty("LimitPrice.Amount")
        .map(|amount| {
            amount
                .parse::<f64>()
                .ok()
                .filter(|parsed| parsed.is_finite() && *parsed >= 0.0)
                .ok_or_else(|| {
                    AwsError::invalid_parameter(
                        context.service,
                        format!("LimitPrice.Amount must be an amount of at least 0, not {amount}"),
                    )
                })
        })
        .transpose()
}

/// Refuses an order whose upfront total (fixed price times count) is above the limit
/// price, with the code EC2 documents for it, so nothing is bought at a price the buyer
/// did not agree to.
fn check_limit_price(offering: &Offering, count: i64, limit: f64) -> Result<(), AwsError> {
    let total = offering.fixed_price * count as f64;
    if total > limit + LIMIT_PRICE_SLACK {
        return Err(AwsError::bad_request(
            "LimitPriceExceeded",
            format!(
                "the total order price {total} {} is greater than the limit price {limit}",
                offering.currency
            ),
        ));
    }
    Ok(())
}

fn purchase(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let offering_id = context.required("ReservedInstancesOfferingId")?.to_string();
    let count = match context.integer("InstanceCount")? {
        Some(count) if count >= 1 => count,
        Some(_) => {
            return Err(AwsError::invalid_parameter(
                context.service,
                "InstanceCount must be at least 1",
            ));
        }
        None => {
            return Err(AwsError::missing_parameter(
                context.service,
                "InstanceCount",
            ));
        }
    };
    let limit_opt = limit_price(context)?;
    let offering = state
        .find_offering(context.service, &context.region, &offering_id)
        .ok_or_else(|| {
            AwsError::bad_request(
                "InvalidReservedInstancesOfferingId",
                format!("the reserved instances offering id '{offering_id}' does not exist"),
            )
        })?;
    if let Some(limit) = limit_opt {
        check_limit_price(&offering, count, limit)?;
    }
    if context.boolean("DryRun")? == Some(true) {
        return Err(dry_run_operation());
    }
    let commitment_id = new_commitment_id();
    let commitment = build_commitment(
        context,
        offering,
        commitment_id.clone(),
        count,
        BTreeMap::new(),
    );
    commit(context, state, commitment);
    let mut xml = XmlWriter::new();
    xml.element("reservedInstancesId", &commitment_id);
    Ok(Reply::Xml(xml.finish()))
}

fn describe_reserved_instances(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let filters = filters(context.params);
    let ids = context.params.list("ReservedInstancesId");
    let offering_class = context.params.non_empty("OfferingClass");
    let offering_type = context.params.non_empty("OfferingType");
    for filter in &filters {
        let known = filter.name.starts_with("tag:")
            || matches!(
                filter.name.as_str(),
                "tag-key"
                    | "state"
                    | "reserved-instances-id"
                    | "instance-type"
                    | "product-description"
                    | "duration"
                    | "scope"
                    | "fixed-price"
                    | "usage-price"
                    | "start"
                    | "end"
                    | "availability-zone"
            );
        if !known {
            return Err(invalid_filter(context, &filter.name));
        }
    }
    let matching: Vec<&Commitment> = state
        .commitments_in(&context.account_id, &context.region, context.service)
        .filter(|commitment| ids.is_empty() || ids.contains(&commitment.commitment_id))
        .filter(|commitment| offering_class.is_none_or(|class| class == commitment.offering.class))
        .filter(|commitment| {
            offering_type.is_none_or(|payment| payment == commitment.offering.payment)
        })
        .filter(|commitment| {
            filters
                .iter()
                .all(|filter| reserved_instance_matches(filter, commitment))
        })
        .collect();

    let mut xml = XmlWriter::new();
    xml.open("reservedInstancesSet");
    for commitment in matching {
        let offering = &commitment.offering;
        let end = commitment.created_at + chrono::Duration::seconds(offering.duration_seconds);
        xml.open("item")
            .element("reservedInstancesId", &commitment.commitment_id)
            .element("start", xml_time(commitment.created_at))
            .element("end", xml_time(end))
            .element("instanceCount", commitment.count)
            .element("state", &commitment.state);
        write_offering_fields(&mut xml, offering);
        xml.open("tagSet");
        for (key, value) in &commitment.tags {
            xml.open("item")
                .element("key", key)
                .element("value", value)
                .close("item");
        }
        xml.close("tagSet").close("item");
    }
    xml.close("reservedInstancesSet");
    Ok(Reply::Xml(xml.finish()))
}

fn reserved_instance_matches(filter: &Filter, commitment: &Commitment) -> bool {
    if let Some(key) = filter.name.strip_prefix("tag:") {
        return commitment
            .tags
            .get(key)
            .is_some_and(|value| filter.matches(value));
    }
    let offering = &commitment.offering;
    match filter.name.as_str() {
        "tag-key" => commitment.tags.keys().any(|key| filter.matches(key)),
        "state" => filter.matches(&commitment.state),
        "reserved-instances-id" => filter.matches(&commitment.commitment_id),
        "instance-type" => filter.matches(&offering.instance_type),
        "product-description" => filter.matches(&offering.product),
        "duration" => filter.matches(&offering.duration_seconds.to_string()),
        "scope" => filter.matches(scope(offering)),
        "availability-zone" => zone_matches(filter, offering),
        "fixed-price" => filter.matches(&offering.fixed_price.to_string()),
        "usage-price" => filter.matches(&offering.usage_price.to_string()),
        "start" => filter.matches(&xml_time(commitment.created_at)),
        _ => false,
    }
}

fn create_tags(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let resources = context.params.list("ResourceId");
    if resources.is_empty() {
        return Err(AwsError::missing_parameter(context.service, "ResourceId"));
    }
    let tags = query_tags(context.params, "Tag");
    if tags.is_empty() {
        return Err(AwsError::missing_parameter(context.service, "Tag"));
    }
    // Every resource is checked before any is tagged, so a bad id changes nothing.
    for resource in &resources {
        let exists = state
            .commitments_in(&context.account_id, &context.region, context.service)
            .any(|commitment| &commitment.commitment_id == resource);
        if !exists {
            return Err(AwsError::bad_request(
                "InvalidID",
                format!("the id '{resource}' is not valid"),
            ));
        }
    }
    for resource in &resources {
        state.update_commitment(
            &context.account_id,
            &context.region,
            context.service,
            resource,
            |commitment| {
                commitment
                    .tags
                    .extend(tags.iter().map(|(key, value)| (key.clone(), value.clone())));
            },
        );
    }
    context.note.note_tags(&tags);
    context.note.commitment_id = resources.first().cloned();
    let mut xml = XmlWriter::new();
    xml.element("return", true);
    Ok(Reply::Xml(xml.finish()))
}
