//! ElastiCache (awsQuery): reserved cache node offerings, purchases and descriptions.
//! The client chooses the reservation id, so a repeated purchase is refused with
//! ReservedCacheNodeAlreadyExists.

use crate::catalogue::{Offering, OfferingQuery};
use crate::ledger::Commitment;
use crate::protocol::{AwsError, Reply, XmlWriter};
use crate::services::{
    CallContext, build_commitment, commit, duration_filter, paginate, purchase_count, query_tags,
    xml_time,
};
use crate::state::SandboxState;

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "DescribeReservedCacheNodesOfferings" => describe_offerings(context, state),
        "PurchaseReservedCacheNodesOffering" => purchase(context, state),
        "DescribeReservedCacheNodes" => describe_reserved(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

fn offering_not_found(offering_id: &str) -> AwsError {
    AwsError::new(
        404,
        "ReservedCacheNodesOfferingNotFound",
        format!("specified offering {offering_id} does not exist"),
    )
}

fn describe_offerings(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let offerings: Vec<Offering> = match context.params.non_empty("ReservedCacheNodesOfferingId") {
        Some(offering_id) => vec![
            state
                .find_offering(context.service, &context.region, offering_id)
                .ok_or_else(|| offering_not_found(offering_id))?,
        ],
        None => {
            let query = OfferingQuery {
                instance_type: context
                    .params
                    .non_empty("CacheNodeType")
                    .map(str::to_string),
                product: context
                    .params
                    .non_empty("ProductDescription")
                    .map(str::to_string),
                durations: duration_filter(context.service, context.params.get("Duration"))?,
                payment: context.params.non_empty("OfferingType").map(str::to_string),
                class: None,
                multi_az: None,
                availability_zone: None,
            };
            state.describe_offerings(context.service, &context.region, &query)
        }
    };
    let (page, marker) = paginate(
        context.service,
        &offerings,
        context.params.get("Marker"),
        context.integer("MaxRecords")?,
        100,
    )?;
    let mut xml = XmlWriter::new();
    xml.open("ReservedCacheNodesOfferings");
    for offering in &page {
        xml.open("ReservedCacheNodesOffering")
            .element("ReservedCacheNodesOfferingId", &offering.offering_id);
        write_offering_fields(&mut xml, offering);
        xml.close("ReservedCacheNodesOffering");
    }
    xml.close("ReservedCacheNodesOfferings")
        .optional("Marker", marker);
    Ok(Reply::Xml(xml.finish()))
}

fn write_offering_fields(xml: &mut XmlWriter, offering: &Offering) {
    xml.element("CacheNodeType", &offering.instance_type)
        .element("Duration", offering.duration_seconds)
        .element("FixedPrice", offering.fixed_price)
        .element("UsagePrice", offering.usage_price)
        .element("ProductDescription", &offering.product)
        .element("OfferingType", &offering.payment)
        .open("RecurringCharges");
    if offering.recurring_hourly > 0.0 {
        xml.open("RecurringCharge")
            .element("RecurringChargeAmount", offering.recurring_hourly)
            .element("RecurringChargeFrequency", "Hourly")
            .close("RecurringCharge");
    }
    xml.close("RecurringCharges");
}

fn write_reserved(xml: &mut XmlWriter, commitment: &Commitment) {
    xml.open("ReservedCacheNode")
        .element("ReservedCacheNodeId", &commitment.commitment_id)
        .element("ReservedCacheNodesOfferingId", &commitment.offering_id)
        .element("StartTime", xml_time(commitment.created_at))
        .element("CacheNodeCount", commitment.count)
        .element("State", &commitment.state)
        .element(
            "ReservationARN",
            format!(
                "arn:aws:elasticache:{}:{}:reserved-instance:{}",
                commitment.region, commitment.account_id, commitment.commitment_id
            ),
        );
    write_offering_fields(xml, &commitment.offering);
    xml.close("ReservedCacheNode");
}

fn purchase(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let offering_id = context
        .required("ReservedCacheNodesOfferingId")?
        .to_string();
    let reservation_id = context
        .params
        .non_empty("ReservedCacheNodeId")
        .map(str::to_string);
    let tags = query_tags(context.params, "Tags.Tag");
    context.note.reservation_id = reservation_id.clone();
    context.note.note_tags(&tags);
    let count = purchase_count(context.service, context.integer("CacheNodeCount")?)?;
    let offering = state
        .find_offering(context.service, &context.region, &offering_id)
        .ok_or_else(|| offering_not_found(&offering_id))?;
    let commitment_id = match &reservation_id {
        Some(reservation_id) => {
            let exists = state
                .commitments_in(&context.account_id, &context.region, context.service)
                .any(|commitment| &commitment.commitment_id == reservation_id);
            if exists {
                return Err(AwsError::new(
                    404,
                    "ReservedCacheNodeAlreadyExists",
                    format!("reserved cache node {reservation_id} already exists"),
                ));
            }
            reservation_id.clone()
        }
        None => format!("ri-{}", uuid::Uuid::new_v4().simple()),
    };
    let mut commitment = build_commitment(context, offering, commitment_id, count, tags);
    commitment.reservation_id = reservation_id;
    let mut xml = XmlWriter::new();
    write_reserved(&mut xml, &commitment);
    commit(context, state, commitment);
    Ok(Reply::Xml(xml.finish()))
}

fn describe_reserved(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let reservation_id = context.params.non_empty("ReservedCacheNodeId");
    let offering_id = context.params.non_empty("ReservedCacheNodesOfferingId");
    let node_type = context.params.non_empty("CacheNodeType");
    let durations = duration_filter(context.service, context.params.get("Duration"))?;
    let product = context.params.non_empty("ProductDescription");
    let payment = context.params.non_empty("OfferingType");
    let matching: Vec<Commitment> = state
        .commitments_in(&context.account_id, &context.region, context.service)
        .filter(|commitment| reservation_id.is_none_or(|id| id == commitment.commitment_id))
        .filter(|commitment| offering_id.is_none_or(|id| id == commitment.offering_id))
        .filter(|commitment| {
            node_type.is_none_or(|node_type| node_type == commitment.offering.instance_type)
        })
        .filter(|commitment| {
            durations
                .as_ref()
                .is_none_or(|durations| durations.contains(&commitment.offering.duration_seconds))
        })
        .filter(|commitment| product.is_none_or(|product| product == commitment.offering.product))
        .filter(|commitment| payment.is_none_or(|payment| payment == commitment.offering.payment))
        .cloned()
        .collect();
    if let Some(reservation_id) = reservation_id
        && matching.is_empty()
    {
        return Err(AwsError::new(
            404,
            "ReservedCacheNodeNotFound",
            format!("reserved cache node {reservation_id} not found"),
        ));
    }
    let (page, marker) = paginate(
        context.service,
        &matching,
        context.params.get("Marker"),
        context.integer("MaxRecords")?,
        100,
    )?;
    let mut xml = XmlWriter::new();
    xml.open("ReservedCacheNodes");
    for commitment in &page {
        write_reserved(&mut xml, commitment);
    }
    xml.close("ReservedCacheNodes").optional("Marker", marker);
    Ok(Reply::Xml(xml.finish()))
}
