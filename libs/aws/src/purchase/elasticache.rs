//! ElastiCache reserved cache nodes. The purchase names its ReservedCacheNodeId (the
//! token's reservation id), so re-sending it cannot buy twice: AWS answers
//! ReservedCacheNodeAlreadyExists and the existing reservation is returned.

use std::time::Instant;

use aws_sdk_elasticache::types::{ReservedCacheNode, ReservedCacheNodesOffering, Tag};
use cudly_common::idempotency::{TAG_KEY, reservation_id};

use super::quote::{Charge, Listed};
use super::support::{
    MAX_PAGES, Payment, Resend, SendFailure, count_of, logged, only_offering, required_engine,
    resource_type, same_text, send_mutation, term_seconds, to_utc,
};
use super::{Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser, Quote};
use crate::error::AwsFailure;

const SERVICE: &str = "elasticache";
const PREFIX: &str = "elasticache-id-";
const NOT_FOUND: &str = "ReservedCacheNodeNotFound";
const ALREADY_EXISTS: &str = "ReservedCacheNodeAlreadyExists";

fn commitment(reserved: &ReservedCacheNode) -> Commitment {
    Commitment {
        commitment_id: reserved
            .reserved_cache_node_id()
            .unwrap_or_default()
            .to_owned(),
        offering_id: reserved
            .reserved_cache_nodes_offering_id()
            .map(str::to_owned),
        count: reserved
            .cache_node_count()
            .and_then(|count| u32::try_from(count).ok())
            .unwrap_or(0),
        created_at: reserved.start_time().and_then(to_utc),
        state: reserved.state().map(str::to_owned),
        token_tag: None,
    }
}

/// Returns the reservation `id`, `None` when ElastiCache does not know it.
async fn describe_by_id(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    id: &str,
) -> Result<Option<Commitment>, AwsFailure> {
    let described = logged(
        SERVICE,
        "DescribeReservedCacheNodes",
        Some(&spec.token),
        purchaser
            .clients
            .elasticache()
            .describe_reserved_cache_nodes()
            .reserved_cache_node_id(id)
            .send(),
    )
    .await;
    match described {
        Ok(output) => Ok(output
            .reserved_cache_nodes()
            .iter()
            .find(|reserved| reserved.reserved_cache_node_id() == Some(id))
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
    const OPERATION: &str = "DescribeReservedCacheNodesOfferings";
    let node_type = resource_type(spec)?;
    let engine = required_engine(spec, "engine (product description)")?;
    let term = term_seconds(spec)?;
    let payment = Payment::of(spec)?;
    let mut matches = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .elasticache()
                .describe_reserved_cache_nodes_offerings()
                .cache_node_type(node_type)
                .product_description(engine)
                .duration(term.to_string())
                .offering_type(payment.spaced())
                .max_records(100)
                .set_marker(marker.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        matches.extend(
            output
                .reserved_cache_nodes_offerings()
                .iter()
                .filter(|offering| {
                    offering.cache_node_type() == Some(node_type)
                        && offering.duration().map(i64::from) == Some(term)
                        && offering
                            .product_description()
                            .is_some_and(|product| same_text(product, engine))
                        && offering
                            .offering_type()
                            .is_some_and(|kind| same_text(kind, payment.spaced()))
                })
                .filter_map(|offering| {
                    offering
                        .reserved_cache_nodes_offering_id()
                        .map(|id| (id.to_owned(), offering.clone()))
                }),
        );
        match output.marker().filter(|marker| !marker.is_empty()) {
            Some(next) => marker = Some(next.to_owned()),
            None => {
                let what = format!("{node_type} {engine} {} {term}s", payment.spaced());
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

/// Reads the price of the offering `offering_id` as ElastiCache lists it: the API
/// names no currency, so it is USD.
fn priced(
    spec: &PurchaseSpec,
    operation: &'static str,
    offering_id: String,
    offering: &ReservedCacheNodesOffering,
) -> Result<Quote, PurchaseError> {
    Listed {
        operation,
        offering_id,
        currency: None,
        fixed_price: offering.fixed_price(),
        usage_price: offering.usage_price(),
        charges: offering
            .recurring_charges()
            .iter()
            .map(|charge| Charge {
                amount: charge.recurring_charge_amount(),
                frequency: charge.recurring_charge_frequency(),
            })
            .collect(),
        duration_seconds: offering.duration().map(i64::from).unwrap_or_default(),
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
    let client = purchaser.clients.elasticache();
    let token = spec.token.as_str();
    let sent = send_mutation(
        &purchaser.retry,
        Resend::WhileOutcomeUnknown,
        Some(ALREADY_EXISTS),
        deadline,
        move || {
            logged(
                SERVICE,
                "PurchaseReservedCacheNodesOffering",
                Some(token),
                client
                    .purchase_reserved_cache_nodes_offering()
                    .reserved_cache_nodes_offering_id(offering_id)
                    .reserved_cache_node_id(reservation)
                    .cache_node_count(count)
                    .tags(Tag::builder().key(TAG_KEY).value(token).build())
                    .customize()
                    .config_override(
                        aws_sdk_elasticache::config::Builder::default()
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
                .reserved_cache_node()
                .filter(|reserved| reserved.reserved_cache_node_id().is_some())
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
