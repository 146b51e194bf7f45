//! MemoryDB (awsJson1_1): reserved node offerings, purchases and descriptions. The
//! client chooses the ReservationId, so a repeated purchase is refused with
//! ReservedNodeAlreadyExistsFault.

use serde_json::{Value, json};

use crate::catalogue::{Offering, OfferingQuery};
use crate::ledger::Commitment;
use crate::protocol::{AwsError, Reply};
use crate::services::{
    CallContext, build_commitment, commit, duration_filter, epoch_seconds, json_tags, paginate,
    purchase_count,
};
use crate::state::SandboxState;

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "DescribeReservedNodesOfferings" => describe_offerings(context, state),
        "PurchaseReservedNodesOffering" => purchase(context, state),
        "DescribeReservedNodes" => describe_reserved(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

fn offering_not_found(offering_id: &str) -> AwsError {
    AwsError::new(
        404,
        "ReservedNodesOfferingNotFoundFault",
        format!("specified offering {offering_id} does not exist"),
    )
}

/// The Duration member, a string of years or seconds (a number is accepted too).
fn duration(context: &CallContext<'_>) -> Result<Option<Vec<i64>>, AwsError> {
    match context.json.get("Duration") {
        Some(Value::Number(number)) => {
            duration_filter(context.service, Some(number.to_string().as_str()))
        }
        Some(Value::String(text)) => duration_filter(context.service, Some(text)),
        _ => Ok(None),
    }
}

fn recurring_charges(offering: &Offering) -> Value {
    if offering.recurring_hourly > 0.0 {
        json!([{
            "RecurringChargeAmount": offering.recurring_hourly,
            "RecurringChargeFrequency": "Hourly",
        }])
    } else {
        json!([])
    }
}

fn offering_json(offering: &Offering) -> Value {
    json!({
        "ReservedNodesOfferingId": offering.offering_id,
        "NodeType": offering.instance_type,
        "Duration": offering.duration_seconds,
        "FixedPrice": offering.fixed_price,
        "OfferingType": offering.payment,
        "RecurringCharges": recurring_charges(offering),
    })
}

fn reserved_json(commitment: &Commitment) -> Value {
    let offering = &commitment.offering;
    json!({
        "ReservationId": commitment.commitment_id,
        "ReservedNodesOfferingId": commitment.offering_id,
        "NodeType": offering.instance_type,
        "StartTime": epoch_seconds(commitment.created_at),
        "Duration": offering.duration_seconds,
        "FixedPrice": offering.fixed_price,
        "NodeCount": commitment.count,
        "OfferingType": offering.payment,
        "State": commitment.state,
        "RecurringCharges": recurring_charges(offering),
        "ARN": format!(
            "arn:aws:memorydb:{}:{}:reservednode/{}",
            commitment.region, commitment.account_id, commitment.commitment_id
        ),
    })
}

fn describe_offerings(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let offerings: Vec<Offering> = match context.json_str("ReservedNodesOfferingId") {
        Some(offering_id) => vec![
            state
                .find_offering(context.service, &context.region, offering_id)
                .ok_or_else(|| offering_not_found(offering_id))?,
        ],
        None => {
            let query = OfferingQuery {
                instance_type: context.json_str("NodeType").map(str::to_string),
                product: None,
                durations: duration(context)?,
                payment: context.json_str("OfferingType").map(str::to_string),
                class: None,
                multi_az: None,
                availability_zone: None,
            };
            state.describe_offerings(context.service, &context.region, &query)
        }
    };
    let (page, next) = paginate(
        context.service,
        &offerings,
        context.json_str("NextToken"),
        context.json_integer("MaxResults")?,
        100,
    )?;
    let mut reply = json!({
        "ReservedNodesOfferings": page.iter().map(offering_json).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        reply["NextToken"] = json!(next);
    }
    Ok(Reply::Json(reply))
}

fn purchase(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let offering_id = context
        .json_required("ReservedNodesOfferingId")?
        .to_string();
    let reservation_id = context.json_str("ReservationId").map(str::to_string);
    let tags = json_tags(context.json.get("Tags"));
    context.note.reservation_id = reservation_id.clone();
    context.note.note_tags(&tags);
    let count = purchase_count(context.service, context.json_integer("NodeCount")?)?;
    let offering = state
        .find_offering(context.service, &context.region, &offering_id)
        .ok_or_else(|| offering_not_found(&offering_id))?;
    let commitment_id = match &reservation_id {
        Some(reservation_id) => {
            let exists = state
                .commitments_in(&context.account_id, &context.region, context.service)
                .any(|commitment| &commitment.commitment_id == reservation_id);
            if exists {
                return Err(AwsError::bad_request(
                    "ReservedNodeAlreadyExistsFault",
                    format!("reserved node {reservation_id} already exists"),
                ));
            }
            reservation_id.clone()
        }
        None => format!("ri-{}", uuid::Uuid::new_v4().simple()),
    };
    let mut commitment = build_commitment(context, offering, commitment_id, count, tags);
    commitment.reservation_id = reservation_id;
    let reply = json!({ "ReservedNode": reserved_json(&commitment) });
    commit(context, state, commitment);
    Ok(Reply::Json(reply))
}

fn describe_reserved(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let reservation_id = context.json_str("ReservationId");
    let offering_id = context.json_str("ReservedNodesOfferingId");
    let node_type = context.json_str("NodeType");
    let durations = duration(context)?;
    let payment = context.json_str("OfferingType");
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
        .filter(|commitment| payment.is_none_or(|payment| payment == commitment.offering.payment))
        .cloned()
        .collect();
    if let Some(reservation_id) = reservation_id
        && matching.is_empty()
    {
        return Err(AwsError::new(
            404,
            "ReservedNodeNotFoundFault",
            format!("reserved node {reservation_id} not found"),
        ));
    }
    let (page, next) = paginate(
        context.service,
        &matching,
        context.json_str("NextToken"),
        context.json_integer("MaxResults")?,
        100,
    )?;
    let mut reply = json!({
        "ReservedNodes": page.iter().map(reserved_json).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        reply["NextToken"] = json!(next);
    }
    Ok(Reply::Json(reply))
}
