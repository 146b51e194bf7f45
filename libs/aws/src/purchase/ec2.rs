//! EC2 reserved instances. PurchaseReservedInstancesOffering carries no idempotency:
//! it is re-sent only after a throttling rejection, and the token lives in a tag
//! written after the purchase. A reserved instance names no offering id, so the
//! reconciliation matches the offering's attributes instead.

use std::time::Instant;

use aws_sdk_ec2::operation::purchase_reserved_instances_offering::builders::PurchaseReservedInstancesOfferingFluentBuilder;
use aws_sdk_ec2::types::{
    CurrencyCodeValues, Filter, InstanceType, OfferingClassType, OfferingTypeValues,
    RecurringChargeFrequency, ReservedInstanceLimitPrice, ReservedInstances,
    ReservedInstancesOffering, RiProductDescription, Scope, Tag, Tenancy,
};
use chrono::{DateTime, Utc};
use cudly_common::idempotency::TAG_KEY;

use super::quote::{Charge, Listed, widen};
use super::support::{
    MAX_PAGES, Payment, Resend, SendFailure, count_of, logged, only_offering, resource_type,
    same_text, send_mutation, term_seconds, to_utc,
};
use super::{Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser, Quote};
use crate::error::AwsFailure;

const SERVICE: &str = "ec2";
/// States of a reserved instance that count as bought (docs/design/DOMAIN.md).
const BOUGHT_STATES: [&str; 2] = ["active", "payment-pending"];

fn filter<I, V>(name: &str, values: I) -> Filter
where
    I: IntoIterator<Item = V>,
    V: Into<String>,
{
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

fn no_sdk_retry(purchaser: &Purchaser) -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(purchaser.no_sdk_retry())
}

async fn describe_reserved(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    filters: Vec<Filter>,
) -> Result<Vec<ReservedInstances>, PurchaseError> {
    const OPERATION: &str = "DescribeReservedInstances";
    let output = logged(
        SERVICE,
        OPERATION,
        Some(&spec.token),
        purchaser
            .clients
            .ec2()
            .describe_reserved_instances()
            .set_filters(Some(filters))
            .send(),
    )
    .await
    .map_err(PurchaseError::LookupFailed)?;
    let reserved = output.reserved_instances().to_vec();
    if reserved
        .iter()
        .any(|instance| instance.reserved_instances_id().is_none_or(str::is_empty))
    {
        return Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
            OPERATION,
            "reserved instances id on every reserved instance",
        )));
    }
    Ok(reserved)
}

fn token_tag(reserved: &ReservedInstances) -> Option<String> {
    reserved
        .tags()
        .iter()
        .find(|tag| tag.key() == Some(TAG_KEY))
        .map(|tag| tag.value().unwrap_or_default().to_owned())
}

fn commitment(reserved: &ReservedInstances, offering_id: Option<&str>) -> Commitment {
    Commitment {
        commitment_id: reserved
            .reserved_instances_id()
            .unwrap_or_default()
            .to_owned(),
        offering_id: offering_id.map(str::to_owned),
        count: reserved
            .instance_count()
            .and_then(|count| u32::try_from(count).ok())
            .unwrap_or(0),
        created_at: reserved.start().and_then(to_utc),
        state: reserved.state().map(|state| state.as_str().to_owned()),
        token_tag: token_tag(reserved),
    }
}

/// Returns the earliest of `found`; several mean a double purchase already happened,
/// which is logged loudly.
fn earliest(spec: &PurchaseSpec, found: &[ReservedInstances]) -> Option<Commitment> {
    let mut commitments: Vec<Commitment> = found
        .iter()
        .map(|reserved| commitment(reserved, None))
        .collect();
    commitments.sort_by(|left, right| {
        (left.created_at, &left.commitment_id).cmp(&(right.created_at, &right.commitment_id))
    });
    if commitments.len() > 1 {
        tracing::error!(
            service = SERVICE,
            token = %cudly_common::idempotency::mask_token(&spec.token),
            count = commitments.len(),
            "several reserved instances belong to one token"
        );
    }
    commitments.into_iter().next()
}

pub(super) async fn find_by_token(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    recorded_ids: &[String],
) -> Result<Option<Commitment>, PurchaseError> {
    let tagged = describe_reserved(
        purchaser,
        spec,
        vec![
            filter(format!("tag:{TAG_KEY}").as_str(), [spec.token.as_str()]),
            filter("state", BOUGHT_STATES),
        ],
    )
    .await?;
    if let Some(found) = earliest(spec, &tagged) {
        return Ok(Some(found));
    }
    if recorded_ids.is_empty() {
        return Ok(None);
    }
    let recorded = describe_reserved(
        purchaser,
        spec,
        vec![
            filter("reserved-instances-id", recorded_ids.iter().cloned()),
            filter("state", BOUGHT_STATES),
        ],
    )
    .await?;
    Ok(earliest(spec, &recorded))
}

/// The attributes an offering must have to be the recommendation's.
struct Wanted<'a> {
    instance_type: &'a str,
    product: &'a str,
    tenancy: &'a str,
    class: &'a str,
    payment: Payment,
    term: i64,
    availability_zone: Option<&'a str>,
}

impl Wanted<'_> {
    fn matches(&self, offering: &ReservedInstancesOffering) -> bool {
        let zone_ok = match self.availability_zone {
            Some(zone) => offering.availability_zone() == Some(zone),
            None => {
                offering.scope() != Some(&Scope::AvailabilityZone)
                    && offering.availability_zone().is_none()
            }
        };
        offering.instance_type().map(InstanceType::as_str) == Some(self.instance_type)
            && offering.duration() == Some(self.term)
            && offering
                .product_description()
                .is_some_and(|product| same_text(product.as_str(), self.product))
            && offering
                .offering_type()
                .is_some_and(|payment| same_text(payment.as_str(), self.payment.spaced()))
            && offering
                .offering_class()
                .is_some_and(|class| same_text(class.as_str(), self.class))
            && offering
                .instance_tenancy()
                .is_none_or(|tenancy| same_text(tenancy.as_str(), self.tenancy))
            && offering.marketplace() != Some(true)
            && zone_ok
    }

    fn describe(&self) -> String {
        format!(
            "{} {} tenancy {} class {} {} {}s{}",
            self.instance_type,
            self.product,
            self.tenancy,
            self.class,
            self.payment.spaced(),
            self.term,
            self.availability_zone
                .map(|zone| format!(" in {zone}"))
                .unwrap_or_default()
        )
    }
}

fn choice<'a>(
    value: Option<&'a str>,
    default: &'a str,
    allowed: &[&str],
    what: &str,
) -> Result<&'a str, PurchaseError> {
    let value = value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .unwrap_or(default);
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(PurchaseError::Invalid(format!(
            "ec2 {what} must be one of {}, not {:?}",
            allowed.join(", "),
            crate::error::scrub(value)
        )))
    }
}

/// Returns the quote of the one offering that matches `spec`, read from the same
/// answer that names the offering (fixed price, hourly recurring charges or usage
/// price, currency, duration). EC2 sends prices as `f32`: see [`widen`].
pub(super) async fn quote(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
) -> Result<Quote, PurchaseError> {
    const OPERATION: &str = "DescribeReservedInstancesOfferings";
    let product = spec
        .platform
        .as_deref()
        .or(spec.engine.as_deref())
        .map(str::trim)
        .filter(|product| !product.is_empty())
        .ok_or_else(|| {
            PurchaseError::Invalid(
                "ec2 recommendation has no platform (product description)".to_owned(),
            )
        })?;
    let wanted = Wanted {
        instance_type: resource_type(spec)?,
        product,
        tenancy: choice(
            spec.details.tenancy.as_deref(),
            "default",
            &["default", "dedicated"],
            "tenancy",
        )?,
        class: choice(
            spec.details.offering_class.as_deref(),
            "standard",
            &["standard", "convertible"],
            "offering class",
        )?,
        payment: Payment::of(spec)?,
        term: term_seconds(spec)?,
        availability_zone: spec
            .details
            .availability_zone
            .as_deref()
            .map(str::trim)
            .filter(|zone| !zone.is_empty()),
    };
    let mut matches = Vec::new();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .ec2()
                .describe_reserved_instances_offerings()
                .instance_type(InstanceType::from(wanted.instance_type))
                .product_description(RiProductDescription::from(wanted.product))
                .instance_tenancy(Tenancy::from(wanted.tenancy))
                .offering_class(OfferingClassType::from(wanted.class))
                .offering_type(OfferingTypeValues::from(wanted.payment.spaced()))
                .min_duration(wanted.term)
                .max_duration(wanted.term)
                .include_marketplace(false)
                .set_availability_zone(wanted.availability_zone.map(str::to_owned))
                .max_results(100)
                .set_next_token(next_token.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        matches.extend(
            output
                .reserved_instances_offerings()
                .iter()
                .filter(|offering| wanted.matches(offering))
                .filter_map(|offering| {
                    offering
                        .reserved_instances_offering_id()
                        .map(|id| (id.to_owned(), offering.clone()))
                }),
        );
        match output.next_token().filter(|token| !token.is_empty()) {
            Some(token) => next_token = Some(token.to_owned()),
            None => {
                let (offering_id, offering) = only_offering(spec, wanted.describe(), matches)?;
                return priced(spec, OPERATION, offering_id, &offering);
            }
        }
    }
    Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
        OPERATION,
        "last page",
    )))
}

/// Reads the price of the offering `offering_id` as EC2 lists it.
fn priced(
    spec: &PurchaseSpec,
    operation: &'static str,
    offering_id: String,
    offering: &ReservedInstancesOffering,
) -> Result<Quote, PurchaseError> {
    Listed {
        operation,
        offering_id,
        currency: offering.currency_code().map(CurrencyCodeValues::as_str),
        fixed_price: offering.fixed_price().map(widen),
        usage_price: offering.usage_price().map(widen),
        charges: offering
            .recurring_charges()
            .iter()
            .map(|charge| Charge {
                amount: charge.amount(),
                frequency: charge.frequency().map(RecurringChargeFrequency::as_str),
            })
            .collect(),
        duration_seconds: offering.duration().unwrap_or_default(),
    }
    .quote(spec)
}

/// Returns the purchase's LimitPrice: the most the whole order may cost upfront.
fn limit_price(spec: &PurchaseSpec) -> Option<ReservedInstanceLimitPrice> {
    spec.limit_price.as_ref().map(|limit| {
        ReservedInstanceLimitPrice::builder()
            .amount(limit.amount)
            .currency_code(CurrencyCodeValues::from(
                limit.currency.to_ascii_uppercase().as_str(),
            ))
            .build()
    })
}

/// Returns the purchase request of `count` units of `offering_id`, with the spec's
/// LimitPrice: the one shape of the request, real or dry run.
fn purchase_request(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    offering_id: &str,
    count: i32,
) -> PurchaseReservedInstancesOfferingFluentBuilder {
    purchaser
        .clients
        .ec2()
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id(offering_id)
        .instance_count(count)
        .set_limit_price(limit_price(spec))
}

/// Sends the purchase with DryRun: EC2 answers `DryRunOperation` when it would be
/// accepted, `UnauthorizedOperation` (or the purchase's own refusal) when not. Nothing
/// is bought either way.
pub(super) async fn check_purchase(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    offering_id: &str,
) -> Result<(), PurchaseError> {
    const OPERATION: &str = "PurchaseReservedInstancesOffering";
    let count = count_of(spec)?;
    let answer = logged(
        SERVICE,
        OPERATION,
        Some(&spec.token),
        purchase_request(purchaser, spec, offering_id, count)
            .dry_run(true)
            .send(),
    )
    .await;
    match answer {
        Err(failure) if failure.has_code("DryRunOperation") => Ok(()),
        Err(failure) if failure.is_refusal() => Err(PurchaseError::Rejected(failure)),
        Err(failure) => Err(PurchaseError::LookupFailed(failure)),
        // A dry run never buys; an answer without the DryRunOperation error is not one
        // this code understands, so it is no proof of permission.
        Ok(_) => Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
            OPERATION,
            "DryRunOperation error for a dry run",
        ))),
    }
}

pub(super) async fn purchase(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    offering_id: &str,
    deadline: Option<Instant>,
) -> Result<PurchaseOutcome, PurchaseError> {
    const OPERATION: &str = "PurchaseReservedInstancesOffering";
    let count = count_of(spec)?;
    let token = spec.token.as_str();
    let output = send_mutation(
        &purchaser.retry,
        Resend::AfterThrottlingOnly,
        None,
        deadline,
        move || {
            logged(
                SERVICE,
                OPERATION,
                Some(token),
                purchase_request(purchaser, spec, offering_id, count)
                    .customize()
                    .config_override(no_sdk_retry(purchaser))
                    .send(),
            )
        },
    )
    .await
    .map_err(SendFailure::into_purchase_error)?;
    let commitment_id = output
        .reserved_instances_id()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            PurchaseError::Ambiguous(AwsFailure::malformed_reply(
                OPERATION,
                "reserved instances id",
            ))
        })?;
    Ok(PurchaseOutcome::Bought(Commitment {
        commitment_id: commitment_id.to_owned(),
        offering_id: Some(offering_id.to_owned()),
        count: spec.count,
        created_at: None,
        state: None,
        token_tag: None,
    }))
}

pub(super) async fn tag(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    commitment_id: &str,
) -> Result<(), PurchaseError> {
    let client = purchaser.clients.ec2();
    let token = spec.token.as_str();
    send_mutation(
        &purchaser.retry,
        Resend::WhileOutcomeUnknown,
        None,
        None,
        move || {
            logged(
                SERVICE,
                "CreateTags",
                Some(token),
                client
                    .create_tags()
                    .resources(commitment_id)
                    .tags(Tag::builder().key(TAG_KEY).value(token).build())
                    .customize()
                    .config_override(no_sdk_retry(purchaser))
                    .send(),
            )
        },
    )
    .await
    .map(|_| ())
    .map_err(SendFailure::into_purchase_error)
}

/// True unless both values are known and differ: an unknown attribute keeps a
/// candidate (more doubt, never a second purchase).
fn compatible(left: Option<&str>, right: Option<&str>) -> bool {
    match (left, right) {
        (Some(left), Some(right)) => same_text(left, right),
        _ => true,
    }
}

/// Where a reservation applies: a region, or one zone of it. Compared strictly: a
/// regional and a zonal reservation of one shape are different purchases, so neither
/// may stand in for the other in a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    Region,
    Zone(String),
}

impl Placement {
    /// Returns the placement of a reservation or offering from its scope, or from
    /// whether it names a zone when AWS leaves the scope out.
    fn of(scope: Option<&Scope>, zone: Option<&str>) -> Self {
        let zone = zone.map(str::trim).filter(|zone| !zone.is_empty());
        match (scope, zone) {
            (Some(Scope::Regional), _) | (None, None) => Placement::Region,
            (_, Some(zone)) => Placement::Zone(zone.to_ascii_lowercase()),
            // Zonal without a zone: matches no zone, so nothing is adopted by mistake.
            (Some(_), None) => Placement::Zone(String::new()),
        }
    }
}

/// Returns what identifies a purchase of `spec` among untagged reservations: exactly
/// the attributes [`untagged_candidates`] compares, so purchases that could be taken
/// for one another share a key (and the executor's purchase lock).
pub(super) fn candidate_shape(spec: &PurchaseSpec) -> String {
    let text = |value: Option<&str>, default: &str| {
        value
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .unwrap_or(default)
            .to_ascii_lowercase()
    };
    let placement = match text(spec.details.availability_zone.as_deref(), "").as_str() {
        "" => "region".to_owned(),
        zone => format!("zone:{zone}"),
    };
    let payment = Payment::of(spec).map_or_else(
        |_| text(Some(&spec.payment), ""),
        |payment| payment.spaced().to_ascii_lowercase(),
    );
    format!(
        "{}|{}|{}|{}|{payment}|{}y|{placement}|{}",
        text(Some(&spec.resource_type), ""),
        text(spec.platform.as_deref().or(spec.engine.as_deref()), ""),
        text(spec.details.tenancy.as_deref(), "default"),
        text(spec.details.offering_class.as_deref(), "standard"),
        spec.term_years,
        spec.count
    )
}

/// Returns the offering of an attempt by its id. The tenancy and class of the purchase
/// go with the id (AWS lists only default-tenancy offerings unless told otherwise), and
/// every page is read, so a dedicated or convertible offering is found too.
async fn offering_by_id(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    offering_id: &str,
) -> Result<ReservedInstancesOffering, PurchaseError> {
    const OPERATION: &str = "DescribeReservedInstancesOfferings";
    let tenancy = choice(
        spec.details.tenancy.as_deref(),
        "default",
        &["default", "dedicated"],
        "tenancy",
    )?;
    let class = choice(
        spec.details.offering_class.as_deref(),
        "standard",
        &["standard", "convertible"],
        "offering class",
    )?;
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .ec2()
                .describe_reserved_instances_offerings()
                .reserved_instances_offering_ids(offering_id)
                .instance_tenancy(Tenancy::from(tenancy))
                .offering_class(OfferingClassType::from(class))
                .set_next_token(next_token.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        if let Some(offering) = output
            .reserved_instances_offerings()
            .iter()
            .find(|offering| offering.reserved_instances_offering_id() == Some(offering_id))
        {
            return Ok(offering.clone());
        }
        match output.next_token().filter(|token| !token.is_empty()) {
            Some(token) => next_token = Some(token.to_owned()),
            None => break,
        }
    }
    Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
        OPERATION,
        "offering of the attempt",
    )))
}

pub(super) async fn untagged_candidates(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    offering_id: &str,
    not_before: DateTime<Utc>,
    exclude_ids: &[String],
) -> Result<Vec<Commitment>, PurchaseError> {
    let offering = offering_by_id(purchaser, spec, offering_id).await?;
    let (Some(instance_type), Some(duration)) = (offering.instance_type(), offering.duration())
    else {
        return Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
            "DescribeReservedInstancesOfferings",
            "instance type and duration",
        )));
    };
    let count = i32::try_from(spec.count).ok();
    let reserved = describe_reserved(
        purchaser,
        spec,
        vec![
            filter("instance-type", [instance_type.as_str()]),
            filter("duration", [duration.to_string()]),
            filter("state", BOUGHT_STATES),
        ],
    )
    .await?;
    let candidates = reserved
        .iter()
        .filter(|reserved| reserved.instance_count() == count)
        .filter(|reserved| {
            compatible(
                reserved
                    .product_description()
                    .map(RiProductDescription::as_str),
                offering
                    .product_description()
                    .map(RiProductDescription::as_str),
            ) && compatible(
                reserved.offering_type().map(OfferingTypeValues::as_str),
                offering.offering_type().map(OfferingTypeValues::as_str),
            ) && compatible(
                reserved.offering_class().map(OfferingClassType::as_str),
                offering.offering_class().map(OfferingClassType::as_str),
            ) && compatible(
                reserved.instance_tenancy().map(Tenancy::as_str),
                offering.instance_tenancy().map(Tenancy::as_str),
            ) && Placement::of(reserved.scope(), reserved.availability_zone())
                == Placement::of(offering.scope(), offering.availability_zone())
        })
        .filter(|reserved| {
            reserved
                .start()
                .and_then(to_utc)
                .is_none_or(|start| start >= not_before)
        })
        .filter(|reserved| reserved.tags().iter().all(|tag| tag.key() != Some(TAG_KEY)))
        .filter(|reserved| {
            reserved
                .reserved_instances_id()
                .is_some_and(|id| !exclude_ids.iter().any(|excluded| excluded == id))
        })
        .map(|reserved| commitment(reserved, Some(offering_id)))
        .collect();
    Ok(candidates)
}
