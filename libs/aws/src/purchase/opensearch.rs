//! OpenSearch reserved instances. The purchase names its ReservationName (the token's
//! reservation id), which the reservation keeps, so a look-up by name after the call
//! settled tells whether it was bought. AWS documents no uniqueness of that name, so an
//! unknown outcome is never re-sent blindly (the executor reconciles it first); where AWS
//! does answer ResourceAlreadyExistsException, the reservation of that name is returned.
//! The describe call cannot filter by name, so the guard pages every reservation.

use std::time::Instant;

use aws_sdk_opensearch::types::{ReservedInstance, ReservedInstanceOffering};
use cudly_common::idempotency::reservation_id;

use super::quote::listed_charges;
use super::support::{
    MAX_PAGES, Payment, Resend, SendFailure, count_of, logged, only_offering, resource_type,
    send_mutation, term_seconds, to_utc,
};
use super::{Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser, Quote};
use crate::error::AwsFailure;

const SERVICE: &str = "opensearch";
const PREFIX: &str = "opensearch-id-";
const ALREADY_EXISTS: &str = "ResourceAlreadyExistsException";

fn commitment(reserved: &ReservedInstance) -> Commitment {
    Commitment {
        commitment_id: reserved
            .reserved_instance_id()
            .unwrap_or_default()
            .to_owned(),
        offering_id: reserved.reserved_instance_offering_id().map(str::to_owned),
        count: u32::try_from(reserved.instance_count()).unwrap_or(0),
        created_at: reserved.start_time().and_then(to_utc),
        state: reserved.state().map(str::to_owned),
        token_tag: None,
    }
}

/// Returns the reservation named `name`, or one whose id is in `recorded_ids`.
async fn find(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    name: &str,
    recorded_ids: &[String],
) -> Result<Option<Commitment>, AwsFailure> {
    const OPERATION: &str = "DescribeReservedInstances";
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .opensearch()
                .describe_reserved_instances()
                .max_results(100)
                .set_next_token(next_token.take())
                .send(),
        )
        .await?;
        let found = output.reserved_instances().iter().find(|reserved| {
            reserved.reservation_name() == Some(name)
                || reserved
                    .reserved_instance_id()
                    .is_some_and(|id| recorded_ids.iter().any(|recorded| recorded == id))
        });
        if let Some(found) = found {
            return Ok(Some(commitment(found)));
        }
        match output.next_token().filter(|token| !token.is_empty()) {
            Some(next) => next_token = Some(next.to_owned()),
            None => return Ok(None),
        }
    }
    Err(AwsFailure::malformed_reply(OPERATION, "last page"))
}

pub(super) async fn find_by_token(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    recorded_ids: &[String],
) -> Result<Option<Commitment>, PurchaseError> {
    let name = reservation_id(PREFIX, &spec.token);
    find(purchaser, spec, &name, recorded_ids)
        .await
        .map_err(PurchaseError::LookupFailed)
}

/// Returns the quote of the one offering that matches `spec`, read from the same
/// answer that names the offering.
pub(super) async fn quote(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
) -> Result<Quote, PurchaseError> {
    const OPERATION: &str = "DescribeReservedInstanceOfferings";
    let instance_type = resource_type(spec)?;
    let term = term_seconds(spec)?;
    let payment = Payment::of(spec)?;
    let mut matches = Vec::new();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .opensearch()
                .describe_reserved_instance_offerings()
                .max_results(100)
                .set_next_token(next_token.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        matches.extend(
            output
                .reserved_instance_offerings()
                .iter()
                .filter(|offering| {
                    offering.instance_type().map(|kind| kind.as_str()) == Some(instance_type)
                        && i64::from(offering.duration()) == term
                        && offering.payment_option().map(|option| option.as_str())
                            == Some(payment.upper_snake())
                })
                .filter_map(|offering| {
                    offering
                        .reserved_instance_offering_id()
                        .map(|id| (id.to_owned(), offering.clone()))
                }),
        );
        match output.next_token().filter(|token| !token.is_empty()) {
            Some(next) => next_token = Some(next.to_owned()),
            None => {
                let what = format!("{instance_type} {} {term}s", payment.upper_snake());
                let (offering_id, offering) = only_offering(spec, what, matches)?;
                return priced(spec, OPERATION, offering_id, &offering);
            }
        }
    }
    Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
        OPERATION,
        "last page",
    )))
}

/// Reads the price of the offering `offering_id` as OpenSearch lists it.
fn priced(
    spec: &PurchaseSpec,
    operation: &'static str,
    offering_id: String,
    offering: &ReservedInstanceOffering,
) -> Result<Quote, PurchaseError> {
    listed_charges!(
        operation,
        offering_id,
        offering,
        i64::from(offering.duration())
    )
    .quote(spec)
}

pub(super) async fn purchase(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    offering_id: &str,
    deadline: Option<Instant>,
) -> Result<PurchaseOutcome, PurchaseError> {
    let count = count_of(spec)?;
    let name = reservation_id(PREFIX, &spec.token);
    let reservation_name = name.as_str();
    let client = purchaser.clients.opensearch();
    let token = spec.token.as_str();
    // AWS documents no uniqueness of the reservation name: an unknown outcome is never
    // re-sent here, the executor reconciles it by name once it settled.
    let sent = send_mutation(
        &purchaser.retry,
        Resend::AfterThrottlingOnly,
        Some(ALREADY_EXISTS),
        deadline,
        move || {
            logged(
                SERVICE,
                "PurchaseReservedInstanceOffering",
                Some(token),
                client
                    .purchase_reserved_instance_offering()
                    .reserved_instance_offering_id(offering_id)
                    .reservation_name(reservation_name)
                    .instance_count(count)
                    .customize()
                    .config_override(
                        aws_sdk_opensearch::config::Builder::default()
                            .retry_config(purchaser.no_sdk_retry()),
                    )
                    .send(),
            )
        },
    )
    .await;
    let recover = |failure: AwsFailure| async move {
        match find(purchaser, spec, &name, &[]).await {
            Ok(Some(existing)) => Ok(existing),
            Ok(None) => Err(PurchaseError::Ambiguous(failure)),
            Err(lookup) => Err(PurchaseError::Ambiguous(lookup)),
        }
    };
    match sent {
        Ok(output) => match output.reserved_instance_id().filter(|id| !id.is_empty()) {
            Some(id) => Ok(PurchaseOutcome::Bought(Commitment {
                commitment_id: id.to_owned(),
                offering_id: Some(offering_id.to_owned()),
                count: spec.count,
                created_at: None,
                state: None,
                token_tag: None,
            })),
            None => recover(AwsFailure::malformed_reply(
                "PurchaseReservedInstanceOffering",
                "reserved instance id",
            ))
            .await
            .map(PurchaseOutcome::Bought),
        },
        Err(SendFailure::AlreadyExists(already)) => {
            recover(already).await.map(PurchaseOutcome::AlreadyExisted)
        }
        Err(failure) => Err(failure.into_purchase_error()),
    }
}
