//! OpenSearch (restJson1): reserved instance offerings, purchases and descriptions.
//! The client names each reservation, so a repeated ReservationName is refused with
//! ResourceAlreadyExistsException, unless the `opensearch_unique_reservation_name`
//! behaviour switch is off, when it creates a second reservation of that name.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::catalogue::{Offering, OfferingQuery};
use crate::ledger::Commitment;
use crate::protocol::{AwsError, Reply};
use crate::services::{
    CallContext, build_commitment, commit, epoch_seconds, new_commitment_id, paginate,
    purchase_count,
};
use crate::state::SandboxState;

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "DescribeReservedInstanceOfferings" => describe_offerings(context, state),
        "PurchaseReservedInstanceOffering" => purchase(context, state),
        "DescribeReservedInstances" => describe_reserved(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

fn not_found(message: String) -> AwsError {
    AwsError::new(409, "ResourceNotFoundException", message)
}

/// A URL query integer such as `maxResults`.
fn query_integer(context: &CallContext<'_>, name: &str) -> Result<Option<i64>, AwsError> {
    context.integer(name)
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
        "ReservedInstanceOfferingId": offering.offering_id,
        "InstanceType": offering.instance_type,
        "Duration": offering.duration_seconds,
        "FixedPrice": offering.fixed_price,
        "UsagePrice": offering.usage_price,
        "CurrencyCode": offering.currency,
        "PaymentOption": offering.payment,
        "RecurringCharges": recurring_charges(offering),
    })
}

fn reserved_json(commitment: &Commitment) -> Value {
    let offering = &commitment.offering;
    let billing_digest = Sha256::digest(commitment.commitment_id.as_bytes());
    let billing_subscription_id = i64::from(u32::from_be_bytes([
        billing_digest[0],
        billing_digest[1],
        billing_digest[2],
        billing_digest[3],
    ]));
    json!({
        "ReservationName": commitment.reservation_id,
        "ReservedInstanceId": commitment.commitment_id,
        "BillingSubscriptionId": billing_subscription_id,
        "ReservedInstanceOfferingId": commitment.offering_id,
        "InstanceType": offering.instance_type,
        "StartTime": epoch_seconds(commitment.created_at),
        "Duration": offering.duration_seconds,
        "FixedPrice": offering.fixed_price,
        "UsagePrice": offering.usage_price,
        "CurrencyCode": offering.currency,
        "InstanceCount": commitment.count,
        "State": commitment.state,
        "PaymentOption": offering.payment,
        "RecurringCharges": recurring_charges(offering),
    })
}

fn describe_offerings(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let offerings: Vec<Offering> = match context.params.non_empty("offeringId") {
        Some(offering_id) => vec![
            state
                .find_offering(context.service, &context.region, offering_id)
                .ok_or_else(|| not_found(format!("offering {offering_id} not found")))?,
        ],
        None => {
            state.describe_offerings(context.service, &context.region, &OfferingQuery::default())
        }
    };
    let (page, next) = paginate(
        context.service,
        &offerings,
        context.params.get("nextToken"),
        query_integer(context, "maxResults")?,
        100,
    )?;
    let mut reply = json!({
        "ReservedInstanceOfferings": page.iter().map(offering_json).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        reply["NextToken"] = json!(next);
    }
    Ok(Reply::Json(reply))
}

fn purchase(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let offering_id = context
        .json_required("ReservedInstanceOfferingId")?
        .to_string();
    let reservation_name = context.json_required("ReservationName")?.to_string();
    context.note.reservation_id = Some(reservation_name.clone());
    let count = purchase_count(context.service, context.json_integer("InstanceCount")?)?;
    let offering = state
        .find_offering(context.service, &context.region, &offering_id)
        .ok_or_else(|| not_found(format!("offering {offering_id} not found")))?;
    let exists = state.behaviour.opensearch_unique_reservation_name
        && state
            .commitments_in(&context.account_id, &context.region, context.service)
            .any(|commitment| {
                commitment.reservation_id.as_deref() == Some(reservation_name.as_str())
            });
    if exists {
        return Err(AwsError::new(
            409,
            "ResourceAlreadyExistsException",
            format!("a reservation named {reservation_name} already exists"),
        ));
    }
    let commitment_id = new_commitment_id();
    let mut commitment = build_commitment(
        context,
        offering,
        commitment_id.clone(),
        count,
        Default::default(),
    );
    commitment.reservation_id = Some(reservation_name.clone());
    commit(context, state, commitment);
    Ok(Reply::Json(json!({
        "ReservedInstanceId": commitment_id,
        "ReservationName": reservation_name,
    })))
}

fn describe_reserved(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let reservation_id = context.params.non_empty("reservationId");
    let matching: Vec<Commitment> = state
        .commitments_in(&context.account_id, &context.region, context.service)
        .filter(|commitment| reservation_id.is_none_or(|id| id == commitment.commitment_id))
        .cloned()
        .collect();
    if let Some(reservation_id) = reservation_id
        && matching.is_empty()
    {
        return Err(not_found(format!(
            "reserved instance {reservation_id} not found"
        )));
    }
    let (page, next) = paginate(
        context.service,
        &matching,
        context.params.get("nextToken"),
        query_integer(context, "maxResults")?,
        100,
    )?;
    let mut reply = json!({
        "ReservedInstances": page.iter().map(reserved_json).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        reply["NextToken"] = json!(next);
    }
    Ok(Reply::Json(reply))
}
