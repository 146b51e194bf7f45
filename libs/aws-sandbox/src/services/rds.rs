//! RDS (awsQuery): reserved DB instance offerings, purchases and descriptions. The
//! client chooses the reservation id, so a repeated purchase is refused with
//! ReservedDBInstanceAlreadyExists.

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
        "DescribeReservedDBInstancesOfferings" => describe_offerings(context, state),
        "PurchaseReservedDBInstancesOffering" => purchase(context, state),
        "DescribeReservedDBInstances" => describe_reserved(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

fn offering_not_found(offering_id: &str) -> AwsError {
    AwsError::new(
        404,
        "ReservedDBInstancesOfferingNotFound",
        format!("specified offering {offering_id} does not exist"),
    )
}

fn describe_offerings(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let offerings: Vec<Offering> = match context.params.non_empty("ReservedDBInstancesOfferingId") {
        Some(offering_id) => vec![
            state
                .find_offering(context.service, &context.region, offering_id)
                .ok_or_else(|| offering_not_found(offering_id))?,
        ],
        None => {
            let query = OfferingQuery {
                instance_type: context
                    .params
                    .non_empty("DBInstanceClass")
                    .map(str::to_string),
                product: context
                    .params
                    .non_empty("ProductDescription")
                    .map(str::to_string),
                durations: duration_filter(context.service, context.params.get("Duration"))?,
                payment: context.params.non_empty("OfferingType").map(str::to_string),
                class: None,
                multi_az: context.boolean("MultiAZ")?,
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
    xml.open("ReservedDBInstancesOfferings");
    for offering in &page {
        xml.open("ReservedDBInstancesOffering")
            .element("ReservedDBInstancesOfferingId", &offering.offering_id);
        write_offering_fields(&mut xml, offering);
        xml.close("ReservedDBInstancesOffering");
    }
    xml.close("ReservedDBInstancesOfferings")
        .optional("Marker", marker);
    Ok(Reply::Xml(xml.finish()))
}

fn write_offering_fields(xml: &mut XmlWriter, offering: &Offering) {
    xml.element("DBInstanceClass", &offering.instance_type)
        .element("Duration", offering.duration_seconds)
        .element("FixedPrice", offering.fixed_price)
        .element("UsagePrice", offering.usage_price)
        .element("CurrencyCode", &offering.currency)
        .element("ProductDescription", &offering.product)
        .element("OfferingType", &offering.payment)
        .element("MultiAZ", offering.multi_az)
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
    xml.open("ReservedDBInstance")
        .element("ReservedDBInstanceId", &commitment.commitment_id)
        .element("ReservedDBInstancesOfferingId", &commitment.offering_id)
        .element("StartTime", xml_time(commitment.created_at))
        .element("DBInstanceCount", commitment.count)
        .element("State", &commitment.state)
        .element(
            "ReservedDBInstanceArn",
            format!(
                "arn:aws:rds:{}:{}:ri:{}",
                commitment.region, commitment.account_id, commitment.commitment_id
            ),
        )
        .element("LeaseId", lease_id(commitment));
    write_offering_fields(xml, &commitment.offering);
    xml.close("ReservedDBInstance");
}

/// A lease id stable per reservation.
fn lease_id(commitment: &Commitment) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(commitment.commitment_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn purchase(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let offering_id = context
        .required("ReservedDBInstancesOfferingId")?
        .to_string();
    let reservation_id = context
        .params
        .non_empty("ReservedDBInstanceId")
        .map(str::to_string);
    let tags = query_tags(context.params, "Tags.Tag");
    context.note.reservation_id = reservation_id.clone();
    context.note.note_tags(&tags);
    let count = purchase_count(context.service, context.integer("DBInstanceCount")?)?;
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
                    "ReservedDBInstanceAlreadyExists",
                    format!("reserved db instance {reservation_id} already exists"),
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
    let reservation_id = context.params.non_empty("ReservedDBInstanceId");
    let offering_id = context.params.non_empty("ReservedDBInstancesOfferingId");
    let class = context.params.non_empty("DBInstanceClass");
    let durations = duration_filter(context.service, context.params.get("Duration"))?;
    let product = context.params.non_empty("ProductDescription");
    let payment = context.params.non_empty("OfferingType");
    let multi_az = context.boolean("MultiAZ")?;
    let lease = context.params.non_empty("LeaseId");
    let matching: Vec<Commitment> = state
        .commitments_in(&context.account_id, &context.region, context.service)
        .filter(|commitment| reservation_id.is_none_or(|id| id == commitment.commitment_id))
        .filter(|commitment| offering_id.is_none_or(|id| id == commitment.offering_id))
        .filter(|commitment| class.is_none_or(|class| class == commitment.offering.instance_type))
        .filter(|commitment| {
            durations
                .as_ref()
                .is_none_or(|durations| durations.contains(&commitment.offering.duration_seconds))
        })
        .filter(|commitment| product.is_none_or(|product| product == commitment.offering.product))
        .filter(|commitment| payment.is_none_or(|payment| payment == commitment.offering.payment))
        .filter(|commitment| {
            multi_az.is_none_or(|multi_az| multi_az == commitment.offering.multi_az)
        })
        .filter(|commitment| lease.is_none_or(|lease| lease == lease_id(commitment)))
        .cloned()
        .collect();
    if let Some(reservation_id) = reservation_id
        && matching.is_empty()
    {
        return Err(AwsError::new(
            404,
            "ReservedDBInstanceNotFound",
            format!("reserved db instance {reservation_id} not found"),
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
    xml.open("ReservedDBInstances");
    for commitment in &page {
        write_reserved(&mut xml, commitment);
    }
    xml.close("ReservedDBInstances").optional("Marker", marker);
    Ok(Reply::Xml(xml.finish()))
}
