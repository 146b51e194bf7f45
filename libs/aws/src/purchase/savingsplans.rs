//! Savings Plans. CreateSavingsPlan carries clientToken = token (AWS returns the same
//! plan for a repeated token) and the token tag. DescribeSavingsPlans has no tag
//! filter, so the guard pages every plan. One plan per item: its hourly commitment is
//! the recommendation's hourly commitment × count, so a found plan counts 1. An offering
//! has no price: its quote is the commitment the buyer chose.

use std::time::Instant;

use aws_sdk_savingsplans::types::{
    CurrencyCode, SavingsPlan, SavingsPlanPaymentOption, SavingsPlanType,
};
use chrono::{DateTime, Utc};
use cudly_common::idempotency::TAG_KEY;
use cudly_vocabulary::HourlyCommitment;

use super::quote::savings_plan as savings_plan_quote;
use super::support::{
    MAX_PAGES, Payment, Resend, SendFailure, logged, only_offering, send_mutation, term_seconds,
};
use super::{Commitment, PurchaseError, PurchaseOutcome, PurchaseSpec, Purchaser, Quote};
use crate::error::AwsFailure;

const SERVICE: &str = "savingsplans";

fn commitment(plan: &SavingsPlan) -> Commitment {
    Commitment {
        commitment_id: plan.savings_plan_id().unwrap_or_default().to_owned(),
        offering_id: plan.offering_id().map(str::to_owned),
        count: 1,
        created_at: plan
            .start()
            .and_then(|start| DateTime::parse_from_rfc3339(start).ok())
            .map(|start| start.with_timezone(&Utc)),
        state: plan.state().map(|state| state.as_str().to_owned()),
        token_tag: plan.tags().and_then(|tags| tags.get(TAG_KEY)).cloned(),
    }
}

pub(super) async fn find_by_token(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    recorded_ids: &[String],
) -> Result<Option<Commitment>, PurchaseError> {
    const OPERATION: &str = "DescribeSavingsPlans";
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let output = logged(
            SERVICE,
            OPERATION,
            Some(&spec.token),
            purchaser
                .clients
                .savingsplans()
                .describe_savings_plans()
                .max_results(1000)
                .set_next_token(next_token.take())
                .send(),
        )
        .await
        .map_err(PurchaseError::LookupFailed)?;
        let found = output.savings_plans().iter().find(|plan| {
            plan.tags()
                .and_then(|tags| tags.get(TAG_KEY))
                .is_some_and(|value| *value == spec.token)
                || plan
                    .savings_plan_id()
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
    Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
        OPERATION,
        "last page",
    )))
}

/// Returns the plan type of `spec`: `details.plan_type`, else the resource type; both
/// given must agree.
fn plan_type(spec: &PurchaseSpec) -> Result<SavingsPlanType, PurchaseError> {
    let from_details = spec
        .details
        .plan_type
        .as_deref()
        .map(str::trim)
        .filter(|kind| !kind.is_empty());
    let from_type = Some(spec.resource_type.trim()).filter(|kind| !kind.is_empty());
    let chosen = match (from_details, from_type) {
        (Some(details), Some(resource)) if details != resource => {
            return Err(PurchaseError::Invalid(format!(
                "savingsplans plan type {:?} differs from resource type {:?}",
                crate::error::scrub(details),
                crate::error::scrub(resource)
            )));
        }
        (Some(kind), _) | (None, Some(kind)) => kind,
        (None, None) => {
            return Err(PurchaseError::Invalid(
                "savingsplans recommendation has no plan type".to_owned(),
            ));
        }
    };
    if SavingsPlanType::values().contains(&chosen) {
        Ok(SavingsPlanType::from(chosen))
    } else {
        Err(PurchaseError::Invalid(format!(
            "savingsplans plan type must be one of {}, not {:?}",
            SavingsPlanType::values().join(", "),
            crate::error::scrub(chosen)
        )))
    }
}

/// Returns the plan's hourly commitment: the item's hourly commitment × count.
fn total_commitment(spec: &PurchaseSpec) -> Result<String, PurchaseError> {
    let hourly = spec.details.hourly_commitment.as_deref().ok_or_else(|| {
        PurchaseError::Invalid("savingsplans recommendation has no hourly commitment".to_owned())
    })?;
    HourlyCommitment::parse(hourly)
        .and_then(|commitment| commitment.times(spec.count))
        .map(|total| total.to_string())
        .map_err(|problem| {
            PurchaseError::Invalid(format!("savingsplans hourly commitment × count {problem}"))
        })
}

/// Returns the hourly commitment of one unit as a number, for the quote; the purchase
/// sends the exact decimal of [`total_commitment`], which this checks first.
fn hourly_per_unit(spec: &PurchaseSpec) -> Result<f64, PurchaseError> {
    total_commitment(spec)?;
    spec.details
        .hourly_commitment
        .as_deref()
        .and_then(|hourly| HourlyCommitment::parse(hourly).ok())
        .and_then(|hourly| hourly.to_string().parse::<f64>().ok())
        .ok_or_else(|| {
            PurchaseError::Invalid(
                "savingsplans hourly commitment is not a decimal number".to_owned(),
            )
        })
}

/// Returns the quote of the one offering that matches `spec` (or the given
/// `offering_id`), priced at the hourly commitment the recommendation chose.
pub(super) async fn quote(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
) -> Result<Quote, PurchaseError> {
    const OPERATION: &str = "DescribeSavingsPlansOfferings";
    let plan_type = plan_type(spec)?;
    let term = term_seconds(spec)?;
    let payment = Payment::of(spec)?;
    let payment_option = SavingsPlanPaymentOption::from(payment.spaced());
    let hourly = hourly_per_unit(spec)?;
    let explicit_offering = spec
        .details
        .offering_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let mut matches = Vec::new();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let request = purchaser
            .clients
            .savingsplans()
            .describe_savings_plans_offerings()
            .max_results(1000)
            .set_next_token(next_token.take());
        let request = match explicit_offering {
            Some(offering_id) => request.offering_ids(offering_id),
            None => request
                .plan_types(plan_type.clone())
                .durations(term)
                .payment_options(payment_option.clone()),
        };
        let output = logged(SERVICE, OPERATION, Some(&spec.token), request.send())
            .await
            .map_err(PurchaseError::LookupFailed)?;
        matches.extend(
            output
                .search_results()
                .iter()
                .filter(|offering| {
                    offering.plan_type() == Some(&plan_type)
                        && offering.duration_seconds() == term
                        && offering.payment_option() == Some(&payment_option)
                        && explicit_offering
                            .is_none_or(|wanted| offering.offering_id() == Some(wanted))
                })
                .filter_map(|offering| {
                    offering
                        .offering_id()
                        .map(|id| (id.to_owned(), offering.clone()))
                }),
        );
        match output.next_token().filter(|token| !token.is_empty()) {
            Some(next) => next_token = Some(next.to_owned()),
            None => {
                let what = format!(
                    "{} {term}s {}{}",
                    plan_type.as_str(),
                    payment.spaced(),
                    explicit_offering
                        .map(|id| format!(" offering {}", crate::error::scrub(id)))
                        .unwrap_or_default()
                );
                let (offering_id, offering) = only_offering(spec, what, matches)?;
                return savings_plan_quote(
                    spec,
                    &offering_id,
                    offering.currency().map(CurrencyCode::as_str),
                    offering.duration_seconds(),
                    payment,
                    hourly,
                );
            }
        }
    }
    Err(PurchaseError::LookupFailed(AwsFailure::malformed_reply(
        OPERATION,
        "last page",
    )))
}

pub(super) async fn purchase(
    purchaser: &Purchaser,
    spec: &PurchaseSpec,
    offering_id: &str,
    deadline: Option<Instant>,
) -> Result<PurchaseOutcome, PurchaseError> {
    const OPERATION: &str = "CreateSavingsPlan";
    let commitment_text = total_commitment(spec)?;
    // CreateSavingsPlan answers a repeated client token with the same plan id, which
    // cannot tell a replay from a first purchase: look first, so a plan bought by an
    // earlier call is reported as such.
    if let Some(existing) = find_by_token(purchaser, spec, &[]).await? {
        return Ok(PurchaseOutcome::AlreadyExisted(existing));
    }
    let client = purchaser.clients.savingsplans();
    let token = spec.token.as_str();
    let amount = commitment_text.as_str();
    let output = send_mutation(
        &purchaser.retry,
        Resend::WhileOutcomeUnknown,
        None,
        deadline,
        move || {
            logged(
                SERVICE,
                OPERATION,
                Some(token),
                client
                    .create_savings_plan()
                    .savings_plan_offering_id(offering_id)
                    .commitment(amount)
                    .client_token(token)
                    .tags(TAG_KEY, token)
                    .customize()
                    .config_override(
                        aws_sdk_savingsplans::config::Builder::default()
                            .retry_config(purchaser.no_sdk_retry()),
                    )
                    .send(),
            )
        },
    )
    .await
    .map_err(SendFailure::into_purchase_error)?;
    let plan_id = output
        .savings_plan_id()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            PurchaseError::Ambiguous(AwsFailure::malformed_reply(OPERATION, "savings plan id"))
        })?;
    Ok(PurchaseOutcome::Bought(Commitment {
        commitment_id: plan_id.to_owned(),
        offering_id: Some(offering_id.to_owned()),
        count: 1,
        created_at: None,
        state: None,
        token_tag: Some(spec.token.clone()),
    }))
}
