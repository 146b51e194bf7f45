//! RDS reserved DB instances. The purchase names its ReservedDBInstanceId (the token's
//! reservation id), so re-sending it cannot buy twice: AWS answers
//! ReservedDBInstanceAlreadyExists and the existing reservation is returned.

use std::time::Instant;

use aws_sdk_rds::types::{ReservedDbInstance, ReservedDbInstancesOffering, Tag};
use cudly_common::idempotency::{TAG_KEY, reservation_id};

use super::quote::listed_charges;
use super::support::{
    MAX_PAGES, Payment, Resend, SendFailure, count_of, logged, only_offering, required_engine,
    resource_type, same_text, send_mutation, term_seconds, to_utc,
};
use super::{Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser, Quote};
use crate::error::AwsFailure;

const SERVICE: &str = "rds";
const PREFIX: &str = "rds-id-";
const NOT_FOUND: &str = "ReservedDBInstanceNotFound";
const ALREADY_EXISTS: &str = "ReservedDBInstanceAlreadyExists";

fn commitment(reserved: &ReservedDbInstance) -> Commitment {
    Commitment {
        commitment_id: reserved
            .reserved_db_instance_id()
            .unwrap_or_default()
            .to_owned(),
        offering_id: reserved
            .reserved_db_instances_offering_id()
            .map(str::to_owned),
        count: reserved
            .db_instance_count()
            .and_then(|count| u32::try_from(count).ok())
            .unwrap_or(0),
        created_at: reserved.start_time().and_then(to_utc),
        state: reserved.state().map(str::to_owned),
        token_tag: None,
    }
}

/// Returns the reservation `id`, `None` when RDS does not know it.
async fn describe_by_id(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    id: &str,
) -> Result<Option<Commitment>, AwsFailure> {
    let described = logged(
        SERVICE,
        "DescribeReservedDBInstances",
        Some(&spec.token),
        purchaser
            .clients
            .rds()
            .describe_reserved_db_instances()
            .reserved_db_instance_id(id)
            .send(),
    )
    .await;
    match described {
        Ok(output) => Ok(output
            .reserved_db_instances()
            .iter()
            .find(|reserved| reserved.reserved_db_instance_id() == Some(id))
            .map(commitment)),
        Err(failure) if failure.has_code(NOT_FOUND) => Ok(None),
        Err(failure) => Err(failure),
    }
}

pub(super) async fn find_by_token(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    recorded_ids: &[String],
) -> Result<Option<Commitment>, PurchaseError> {
    let own_id = reservation_id(PREFIX, &spec.token);
    let ids = std::iter::once(own_id.as_str()).chain(
        recorded_ids
            .iter()
            .map(String::as_str)
            .filter(|id| *id != own_id),
    );
    for id in ids {
        if let Some(found) = describe_by_id(purchaser, spec, id)
            .await
            .map_err(PurchaseError::LookupFailed)?
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Returns the quote of the one offering that matches `spec`, read from the same
/// answer that names the offering.
pub(super) async fn quote(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
) -> Result<Quote, PurchaseError> {
    const OPERATION: &str = "DescribeReservedDBInstancesOfferings";
    let instance_class = resource_type(spec)?;
    let engine = required_engine(spec, "engine (product description)")?;
    let term = term_seconds(spec)?;
    let payment = Payment::of(spec)?;
    let multi_az = spec.details.multi_az.unwrap_or(false);
    let mut matches = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .rds()
                .describe_reserved_db_instances_offerings()
                .db_instance_class(instance_class)
                .product_description(engine)
                .duration(term.to_string())
                .offering_type(payment.spaced())
                .multi_az(multi_az)
                .max_records(100)
                .set_marker(marker.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        matches.extend(
            output
                .reserved_db_instances_offerings()
                .iter()
                .filter(|offering| {
                    offering.db_instance_class() == Some(instance_class)
                        && offering.duration().map(i64::from) == Some(term)
                        && offering
                            .product_description()
                            .is_some_and(|product| same_text(product, engine))
                        && offering
                            .offering_type()
                            .is_some_and(|kind| same_text(kind, payment.spaced()))
                        && offering.multi_az().unwrap_or(false) == multi_az
                })
                .filter_map(|offering| {
                    offering
                        .reserved_db_instances_offering_id()
                        .map(|id| (id.to_owned(), offering.clone()))
                }),
        );
        match output.marker().filter(|marker| !marker.is_empty()) {
            Some(next) => marker = Some(next.to_owned()),
            None => {
                let what = format!(
                    "{instance_class} {engine} {} {term}s multi-az {multi_az}",
                    payment.spaced()
                );
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

/// Reads the price of the offering `offering_id` as RDS lists it.
fn priced(
    spec: &PurchaseSpec,
    operation: &'static str,
    offering_id: String,
    offering: &ReservedDbInstancesOffering,
) -> Result<Quote, PurchaseError> {
    listed_charges!(
        operation,
        offering_id,
        offering,
        offering.duration().map(i64::from).unwrap_or_default()
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
    let own_id = reservation_id(PREFIX, &spec.token);
    let reservation = own_id.as_str();
    let client = purchaser.clients.rds();
    let token = spec.token.as_str();
    let sent = send_mutation(
        &purchaser.retry,
        Resend::WhileOutcomeUnknown,
        Some(ALREADY_EXISTS),
        deadline,
        move || {
            logged(
                SERVICE,
                "PurchaseReservedDBInstancesOffering",
                Some(token),
                client
                    .purchase_reserved_db_instances_offering()
                    .reserved_db_instances_offering_id(offering_id)
                    .reserved_db_instance_id(reservation)
                    .db_instance_count(count)
                    .tags(Tag::builder().key(TAG_KEY).value(token).build())
                    .customize()
                    .config_override(
                        aws_sdk_rds::config::Builder::default()
                            .retry_config(purchaser.no_sdk_retry()),
                    )
                    .send(),
            )
        },
    )
    .await;
    match sent {
        Ok(output) => Ok(PurchaseOutcome::Bought(
            output
                .reserved_db_instance()
                .filter(|reserved| reserved.reserved_db_instance_id().is_some())
                .map(commitment)
                .unwrap_or_else(|| Commitment {
                    commitment_id: own_id.clone(),
                    offering_id: Some(offering_id.to_owned()),
                    count: spec.count,
                    created_at: None,
                    state: None,
                    token_tag: None,
                }),
        )),
        Err(SendFailure::AlreadyExists(already)) => {
            match describe_by_id(purchaser, spec, &own_id).await {
                Ok(Some(existing)) => Ok(PurchaseOutcome::AlreadyExisted(existing)),
                Ok(None) => Err(PurchaseError::Ambiguous(already)),
                Err(failure) => Err(PurchaseError::Ambiguous(failure)),
            }
        }
        Err(failure) => Err(failure.into_purchase_error()),
    }
}
