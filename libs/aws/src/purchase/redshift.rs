//! Redshift reserved nodes. PurchaseReservedNodeOffering carries no idempotency: it is
//! re-sent only after a throttling rejection. The guard looks at the node ids recorded
//! on earlier attempts first, then at every node's tags. AWS documents no reserved-node
//! resource type for Redshift tags, so tagging is best effort and nothing depends on it:
//! a tag call AWS refuses means "no tag" (the guard then rests on the recorded ids, the
//! reconciliation on the recorded ids and the time-windowed untagged candidates).

use std::time::Instant;

use aws_sdk_redshift::types::{ReservedNode, ReservedNodeOffering, ReservedNodeOfferingType, Tag};
use chrono::{DateTime, Utc};
use cudly_common::idempotency::{TAG_KEY, mask_token};

use super::quote::listed_charges;
use super::support::{
    MAX_PAGES, Payment, Resend, SendFailure, count_of, logged, only_offering, resource_type,
    same_text, send_mutation, term_seconds, to_utc,
};
use super::{Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser, Quote};
use crate::error::AwsFailure;

const SERVICE: &str = "redshift";
const NOT_FOUND: &str = "ReservedNodeNotFound";

fn commitment(node: &ReservedNode, token_tag: Option<String>) -> Commitment {
    Commitment {
        commitment_id: node.reserved_node_id().unwrap_or_default().to_owned(),
        offering_id: node.reserved_node_offering_id().map(str::to_owned),
        count: node
            .node_count()
            .and_then(|count| u32::try_from(count).ok())
            .unwrap_or(0),
        created_at: node.start_time().and_then(to_utc),
        state: node.state().map(str::to_owned),
        token_tag,
    }
}

/// Returns the ARN Redshift's tag calls name a reserved node by.
async fn node_arn(purchaser: &Purchaser, node_id: &str) -> Result<String, PurchaseError> {
    let identity = purchaser.identity().await?;
    Ok(format!(
        "arn:{}:redshift:{}:{}:reservednode:{node_id}",
        identity.partition, purchaser.region, identity.account_id
    ))
}

async fn node_by_id(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    node_id: &str,
) -> Result<Option<ReservedNode>, PurchaseError> {
    let described = logged(
        SERVICE,
        "DescribeReservedNodes",
        Some(&spec.token),
        purchaser
            .clients
            .redshift()
            .describe_reserved_nodes()
            .reserved_node_id(node_id)
            .send(),
    )
    .await;
    match described {
        Ok(output) => Ok(output
            .reserved_nodes()
            .iter()
            .find(|node| node.reserved_node_id() == Some(node_id))
            .cloned()),
        Err(failure) if failure.has_code(NOT_FOUND) => Ok(None),
        Err(failure) => Err(PurchaseError::LookupFailed(failure)),
    }
}

async fn all_nodes(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
) -> Result<Vec<ReservedNode>, PurchaseError> {
    const OPERATION: &str = "DescribeReservedNodes";
    let mut nodes = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .redshift()
                .describe_reserved_nodes()
                .max_records(100)
                .set_marker(marker.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        let page = output.reserved_nodes();
        if page
            .iter()
            .any(|node| node.reserved_node_id().is_none_or(str::is_empty))
        {
            return Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
                OPERATION,
                "reserved node id on every node",
            )));
        }
        nodes.extend_from_slice(page);
        match output.marker().filter(|marker| !marker.is_empty()) {
            Some(next) => marker = Some(next.to_owned()),
            None => return Ok(nodes),
        }
    }
    Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
        OPERATION,
        "last page",
    )))
}

/// Returns the value of the node's token tag, `None` when it has none.
async fn token_tag_of(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    node_id: &str,
) -> Result<Option<String>, PurchaseError> {
    const OPERATION: &str = "DescribeTags";
    let arn = node_arn(purchaser, node_id).await?;
    let mut marker: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .redshift()
                .describe_tags()
                .resource_name(&arn)
                .tag_keys(TAG_KEY)
                .set_marker(marker.take())
                .send(),
        )
        .await;
        let output = match output {
            Ok(output) => output,
            // A reserved node AWS will not tag has no tag: the look-up answered.
            Err(failure) if failure.is_refusal() => return Ok(None),
            Err(failure) => return Err(PurchaseError::LookupFailed(failure)),
        };
        let found = output
            .tagged_resources()
            .iter()
            .filter(|tagged| tagged.resource_name().is_none_or(|name| name == arn))
            .filter_map(|tagged| tagged.tag())
            .find(|tag| tag.key() == Some(TAG_KEY));
        if let Some(tag) = found {
            return Ok(Some(tag.value().unwrap_or_default().to_owned()));
        }
        match output.marker().filter(|marker| !marker.is_empty()) {
            Some(next) => marker = Some(next.to_owned()),
            None => return Ok(None),
        }
    }
    Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
        OPERATION,
        "last page",
    )))
}

pub(super) async fn find_by_token(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    recorded_ids: &[String],
) -> Result<Option<Commitment>, PurchaseError> {
    for node_id in recorded_ids {
        if let Some(node) = node_by_id(purchaser, spec, node_id).await? {
            return Ok(Some(commitment(&node, None)));
        }
    }
    for node in all_nodes(purchaser, spec).await? {
        let node_id = node.reserved_node_id().unwrap_or_default();
        let tag = token_tag_of(purchaser, spec, node_id).await?;
        if tag.as_deref() == Some(spec.token.as_str()) {
            return Ok(Some(commitment(&node, tag)));
        }
    }
    Ok(None)
}

/// Returns what identifies a purchase of `spec` among untagged reserved nodes: the
/// offering's attributes and the count, which [`untagged_candidates`] compares.
pub(super) fn candidate_shape(spec: &PurchaseSpec) -> String {
    let payment = Payment::of(spec).map_or_else(
        |_| spec.payment.trim().to_ascii_lowercase(),
        |payment| payment.spaced().to_ascii_lowercase(),
    );
    format!(
        "{}|{payment}|{}y|{}",
        spec.resource_type.trim().to_ascii_lowercase(),
        spec.term_years,
        spec.count
    )
}

/// Returns the quote of the one offering that matches `spec`, read from the same
/// answer that names the offering.
pub(super) async fn quote(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
) -> Result<Quote, PurchaseError> {
    const OPERATION: &str = "DescribeReservedNodeOfferings";
    let node_type = resource_type(spec)?;
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
                .redshift()
                .describe_reserved_node_offerings()
                .max_records(100)
                .set_marker(marker.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        matches.extend(
            output
                .reserved_node_offerings()
                .iter()
                .filter(|offering| {
                    offering.node_type() == Some(node_type)
                        && offering.duration().map(i64::from) == Some(term)
                        && offering
                            .offering_type()
                            .is_some_and(|kind| same_text(kind, payment.spaced()))
                        && offering
                            .reserved_node_offering_type()
                            .is_none_or(|kind| *kind == ReservedNodeOfferingType::Regular)
                })
                .filter_map(|offering| {
                    offering
                        .reserved_node_offering_id()
                        .map(|id| (id.to_owned(), offering.clone()))
                }),
        );
        match output.marker().filter(|marker| !marker.is_empty()) {
            Some(next) => marker = Some(next.to_owned()),
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

/// Reads the price of the offering `offering_id` as Redshift lists it.
fn priced(
    spec: &PurchaseSpec,
    operation: &'static str,
    offering_id: String,
    offering: &ReservedNodeOffering,
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
    const OPERATION: &str = "PurchaseReservedNodeOffering";
    let count = count_of(spec)?;
    let client = purchaser.clients.redshift();
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
                client
                    .purchase_reserved_node_offering()
                    .reserved_node_offering_id(offering_id)
                    .node_count(count)
                    .customize()
                    .config_override(
                        aws_sdk_redshift::config::Builder::default()
                            .retry_config(purchaser.no_sdk_retry()),
                    )
                    .send(),
            )
        },
    )
    .await
    .map_err(SendFailure::into_purchase_error)?;
    let node = output
        .reserved_node()
        .filter(|node| node.reserved_node_id().is_some_and(|id| !id.is_empty()))
        .ok_or_else(|| {
            PurchaseError::Ambiguous(AwsFailure::malformed_reply(OPERATION, "reserved node"))
        })?;
    Ok(PurchaseOutcome::Bought(commitment(node, None)))
}

/// Tags the node with the token, best effort: a failure is logged, never returned.
pub(super) async fn tag(purchaser: &Purchaser, spec: &PurchaseSpec, commitment_id: &str) {
    let arn = match node_arn(purchaser, commitment_id).await {
        Ok(arn) => arn,
        Err(error) => {
            tracing::warn!(service = SERVICE, token = %mask_token(&spec.token), %error, "reserved node not tagged");
            return;
        }
    };
    let client = purchaser.clients.redshift();
    let token = spec.token.as_str();
    let resource_name = arn.as_str();
    let tagged = send_mutation(
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
                    .resource_name(resource_name)
                    .tags(Tag::builder().key(TAG_KEY).value(token).build())
                    .customize()
                    .config_override(
                        aws_sdk_redshift::config::Builder::default()
                            .retry_config(purchaser.no_sdk_retry()),
                    )
                    .send(),
            )
        },
    )
    .await;
    if let Err(failure) = tagged {
        let error = failure.into_purchase_error();
        tracing::warn!(service = SERVICE, token = %mask_token(&spec.token), %error, "reserved node not tagged");
    }
}

pub(super) async fn untagged_candidates(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    offering_id: &str,
    not_before: DateTime<Utc>,
    exclude_ids: &[String],
) -> Result<Vec<Commitment>, PurchaseError> {
    let count = i32::try_from(spec.count).ok();
    let mut candidates = Vec::new();
    for node in all_nodes(purchaser, spec).await? {
        let node_id = node.reserved_node_id().unwrap_or_default();
        let same_purchase = node.reserved_node_offering_id() == Some(offering_id)
            && node.node_count() == count
            && node
                .start_time()
                .and_then(to_utc)
                .is_none_or(|start| start >= not_before)
            && !exclude_ids.iter().any(|excluded| excluded == node_id);
        if !same_purchase {
            continue;
        }
        if token_tag_of(purchaser, spec, node_id).await?.is_none() {
            candidates.push(commitment(&node, None));
        }
    }
    Ok(candidates)
}
