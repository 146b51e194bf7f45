//! MemoryDB reserved nodes. The purchase names its ReservationId (the token's
//! reservation id), so re-sending it cannot buy twice: AWS answers
//! ReservedNodeAlreadyExistsFault and the existing reservation is returned.

use std::time::Instant;

use aws_sdk_memorydb::types::{ReservedNode, ReservedNodesOffering, Tag};
use cudly_common::idempotency::{TAG_KEY, reservation_id};

use super::quote::{Charge, Listed};
use super::support::{
    MAX_PAGES, Payment, Resend, SendFailure, count_of, logged, only_offering, resource_type,
    same_text, send_mutation, term_seconds, to_utc,
};
use super::{Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser, Quote};
use crate::error::AwsFailure;

const SERVICE: &str = "memorydb";
const PREFIX: &str = "memorydb-id-";
const NOT_FOUND: &str = "ReservedNodeNotFoundFault";
const ALREADY_EXISTS: &str = "ReservedNodeAlreadyExistsFault";

fn commitment(reserved: &ReservedNode) -> Commitment {
    Commitment {
        commitment_id: reserved.reservation_id().unwrap_or_default().to_owned(),
        offering_id: reserved.reserved_nodes_offering_id().map(str::to_owned),
        count: u32::try_from(reserved.node_count()).unwrap_or(0),
        created_at: reserved.start_time().and_then(to_utc),
        state: reserved.state().map(str::to_owned),
        token_tag: None,
    }
}

/// Returns the reservation `id`, `None` when MemoryDB does not know it.
async fn describe_by_id(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    id: &str,
) -> Result<Option<Commitment>, AwsFailure> {
    let described = logged(
        SERVICE,
        "DescribeReservedNodes",
        Some(&spec.token),
        purchaser
            .clients
            .memorydb()
            .describe_reserved_nodes()
            .reservation_id(id)
            .send(),
    )
    .await;
    match described {
        Ok(output) => Ok(output
            .reserved_nodes()
            .iter()
            .find(|reserved| reserved.reservation_id() == Some(id))
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
    const OPERATION: &str = "DescribeReservedNodesOfferings";
    let node_type = resource_type(spec)?;
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
                .memorydb()
                .describe_reserved_nodes_offerings()
                .node_type(node_type)
                .duration(term.to_string())
                .offering_type(payment.spaced())
                .max_results(100)
                .set_next_token(next_token.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        matches.extend(
            output
                .reserved_nodes_offerings()
                .iter()
                .filter(|offering| {
                    offering.node_type() == Some(node_type)
                        && i64::from(offering.duration()) == term
                        && offering
                            .offering_type()
                            .is_some_and(|kind| same_text(kind, payment.spaced()))
                })
                .filter_map(|offering| {
                    offering
                        .reserved_nodes_offering_id()
                        .map(|id| (id.to_owned(), offering.clone()))
                }),
        );
        match output.next_token().filter(|token| !token.is_empty()) {
            Some(next) => next_token = Some(next.to_owned()),
            None => {
                let what = format!("{node_type} {} {term}s", payment.spaced());
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

/// Reads the price of the offering `offering_id` as MemoryDB lists it: the API names
/// no currency (USD) and no usage price, and its SDK reads an absent fixed price as 0.
fn priced(
    spec: &PurchaseSpec,
    operation: &'static str,
    offering_id: String,
    offering: &ReservedNodesOffering,
) -> Result<Quote, PurchaseError> {
    Listed {
        operation,
        offering_id,
        currency: None,
        fixed_price: Some(offering.fixed_price()),
        usage_price: None,
        charges: offering
            .recurring_charges()
            .iter()
            .map(|charge| Charge {
                amount: Some(charge.recurring_charge_amount()),
                frequency: charge.recurring_charge_frequency(),
            })
            .collect(),
        duration_seconds: i64::from(offering.duration()),
    }
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
    let client = purchaser.clients.memorydb();
    let token = spec.token.as_str();
    let sent = send_mutation(
        &purchaser.retry,
        Resend::WhileOutcomeUnknown,
        Some(ALREADY_EXISTS),
        deadline,
        move || {
            logged(
                SERVICE,
                "PurchaseReservedNodesOffering",
                Some(token),
                client
                    .purchase_reserved_nodes_offering()
                    .reserved_nodes_offering_id(offering_id)
                    .reservation_id(reservation)
                    .node_count(count)
                    .tags(Tag::builder().key(TAG_KEY).value(token).build())
                    .customize()
                    .config_override(
                        aws_sdk_memorydb::config::Builder::default()
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
                .reserved_node()
                .filter(|reserved| reserved.reservation_id().is_some())
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
