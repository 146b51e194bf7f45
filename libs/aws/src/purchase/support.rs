//! Pieces every adapter shares: recommendation checks and their mapping to each API's
//! terms, the logged AWS call, and the retry loop of mutating calls (purchases, tags).

use std::error::Error as StdError;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use cudly_common::idempotency::mask_token;
use tracing::Instrument;

use super::{PurchaseError, PurchaseSpec};
use crate::error::{AwsErrorKind, AwsFailure};

/// One year, in seconds, as every reservation API counts terms.
pub(super) const ONE_YEAR_SECONDS: i64 = 31_536_000;
/// Most pages one listing may take; more means a looping pagination token.
pub(super) const MAX_PAGES: usize = 1_000;

/// Returns the term of `spec` in seconds (1 or 3 years).
pub(super) fn term_seconds(spec: &PurchaseSpec) -> Result<i64, PurchaseError> {
    match spec.term_years {
        1 | 3 => Ok(i64::from(spec.term_years) * ONE_YEAR_SECONDS),
        other => Err(PurchaseError::Invalid(format!(
            "{} term must be 1 or 3 years, not {other}",
            spec.service.name()
        ))),
    }
}

/// A payment option (how much is paid up front: nothing, part, all), whatever the
/// spelling it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Payment {
    No,
    Partial,
    All,
}

impl Payment {
    /// Parses `no-upfront`, `No Upfront`, `NO_UPFRONT` and the like.
    pub(super) fn of(spec: &PurchaseSpec) -> Result<Self, PurchaseError> {
        let normalized: String = spec
            .payment
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        match normalized.as_str() {
            "noupfront" => Ok(Payment::No),
            "partialupfront" => Ok(Payment::Partial),
            "allupfront" => Ok(Payment::All),
            _ => Err(PurchaseError::Invalid(format!(
                "{} payment must be no-upfront, partial-upfront or all-upfront, not {:?}",
                spec.service.name(),
                crate::error::scrub(&spec.payment)
            ))),
        }
    }

    /// The spelling of EC2, RDS, ElastiCache, MemoryDB, Redshift and Savings Plans.
    pub(super) fn spaced(self) -> &'static str {
        match self {
            Payment::No => "No Upfront",
            Payment::Partial => "Partial Upfront",
            Payment::All => "All Upfront",
        }
    }

    /// The spelling of OpenSearch.
    pub(super) fn upper_snake(self) -> &'static str {
        match self {
            Payment::No => "NO_UPFRONT",
            Payment::Partial => "PARTIAL_UPFRONT",
            Payment::All => "ALL_UPFRONT",
        }
    }
}

/// Returns the count of `spec` as the APIs take it.
pub(super) fn count_of(spec: &PurchaseSpec) -> Result<i32, PurchaseError> {
    match i32::try_from(spec.count) {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(PurchaseError::Invalid(format!(
            "{} count must be between 1 and {}, not {}",
            spec.service.name(),
            i32::MAX,
            spec.count
        ))),
    }
}

/// Returns the instance, node or plan type of `spec`, checked to be plain text.
pub(super) fn resource_type(spec: &PurchaseSpec) -> Result<&str, PurchaseError> {
    let resource_type = spec.resource_type.trim();
    let plain = !resource_type.is_empty()
        && resource_type.len() <= 64
        && resource_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if plain {
        Ok(resource_type)
    } else {
        Err(PurchaseError::Invalid(format!(
            "{} resource type {:?} is not a valid type",
            spec.service.name(),
            crate::error::scrub(&spec.resource_type)
        )))
    }
}

/// Returns the engine or product of `spec`, required by the service.
pub(super) fn required_engine<'a>(
    spec: &'a PurchaseSpec,
    what: &str,
) -> Result<&'a str, PurchaseError> {
    spec.engine
        .as_deref()
        .map(str::trim)
        .filter(|engine| !engine.is_empty())
        .ok_or_else(|| {
            PurchaseError::Invalid(format!(
                "{} recommendation has no {what}",
                spec.service.name()
            ))
        })
}

/// Checks that the token is the 64 lowercase hex characters docs/design/DOMAIN.md derives: every
/// guard and reservation id depends on it.
pub(super) fn check_token(token: &str) -> Result<(), PurchaseError> {
    let well_formed = token.len() == 64
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if well_formed {
        Ok(())
    } else {
        Err(PurchaseError::Invalid(
            "the idempotency token is not 64 lowercase hex characters".to_owned(),
        ))
    }
}

/// Compares two API strings the way AWS compares them in practice: case-insensitively.
pub(super) fn same_text(left: &str, right: &str) -> bool {
    left.trim().eq_ignore_ascii_case(right.trim())
}

/// Converts an SDK timestamp.
pub(super) fn to_utc(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// Returns the only offering of `matches` (offering id, offering), or `Invalid` when
/// there is none or several (buying an arbitrary one of several could buy the wrong
/// thing). An offering listed twice under one id (on two pages) counts once.
pub(super) fn only_offering<T>(
    spec: &PurchaseSpec,
    what: String,
    mut matches: Vec<(String, T)>,
) -> Result<(String, T), PurchaseError> {
    matches.sort_by(|left, right| left.0.cmp(&right.0));
    matches.dedup_by(|left, right| left.0 == right.0);
    match matches.len() {
        0 => Err(PurchaseError::Invalid(format!(
            "no {} offering for {what}",
            spec.service.name()
        ))),
        1 => Ok(matches.remove(0)),
        several => Err(PurchaseError::Invalid(format!(
            "{several} {} offerings match {what}; the recommendation must be more specific",
            spec.service.name()
        ))),
    }
}

/// Runs one AWS call in a span naming the service, the operation and the masked
/// token, and turns its error into a sanitised [`AwsFailure`].
pub(super) async fn logged<T, E, F>(
    service: &'static str,
    operation: &'static str,
    token: Option<&str>,
    call: F,
) -> Result<T, AwsFailure>
where
    F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + 'static,
{
    let masked = token.map(mask_token).unwrap_or_default();
    let span = tracing::info_span!("aws_call", service, operation, token = %masked);
    async move {
        match call.await {
            Ok(output) => {
                tracing::debug!("aws call succeeded");
                Ok(output)
            }
            Err(error) => {
                let failure = AwsFailure::from_sdk(operation, &error);
                if failure.kind == AwsErrorKind::Service && !failure.is_server_error() {
                    tracing::info!(code = failure.code.as_deref().unwrap_or(""), error = %failure, "aws call refused");
                } else {
                    tracing::warn!(kind = ?failure.kind, error = %failure, "aws call failed");
                }
                Err(failure)
            }
        }
    }
    .instrument(span)
    .await
}

/// How often and how patiently mutating calls are re-sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Returns the policy of purchasers made from `settings`.
    pub(super) fn of(settings: &crate::sdk::AwsSettings) -> Self {
        Self {
            max_attempts: settings.max_attempts.max(1),
            initial_backoff: super::DEFAULT_INITIAL_BACKOFF,
            max_backoff: super::MAX_BACKOFF,
        }
    }

    /// Returns the longest a call with `call_timeout` per attempt can take: every
    /// attempt's timeout plus the pauses between them.
    pub(super) fn longest_call(&self, call_timeout: Duration) -> Duration {
        call_timeout.saturating_mul(self.max_attempts) + self.total_backoff()
    }

    /// Returns the pause before retry number `retry` (0 for the first retry): the
    /// initial backoff doubled per retry, capped.
    pub(super) fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(16));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Returns the sum of every pause a call may take.
    pub(super) fn total_backoff(&self) -> Duration {
        (0..self.max_attempts.saturating_sub(1))
            .map(|retry| self.backoff(retry))
            .sum()
    }
}

/// When a mutating call may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resend {
    /// Only after AWS rejected it for its rate (EC2 and Redshift purchases: they carry
    /// no idempotency, so a re-send after any other error could buy twice).
    AfterThrottlingOnly,
    /// Also when its outcome is unknown (5xx, timeout, dropped connection): the call
    /// carries a client id or token, or is idempotent by nature (tagging).
    WhileOutcomeUnknown,
}

/// Why a mutating call finally failed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SendFailure {
    /// AWS answered with the service's "already exists" code.
    AlreadyExists(AwsFailure),
    /// AWS refused every attempt, and no attempt's outcome is unknown: nothing happened.
    Rejected(AwsFailure),
    /// Some attempt's outcome is unknown: the call may have taken effect.
    Ambiguous(AwsFailure),
}

impl SendFailure {
    /// Returns the adapter error of a failure that is no "already exists".
    pub(super) fn into_purchase_error(self) -> PurchaseError {
        match self {
            SendFailure::Rejected(failure) => PurchaseError::Rejected(failure),
            SendFailure::Ambiguous(failure) | SendFailure::AlreadyExists(failure) => {
                PurchaseError::Ambiguous(failure)
            }
        }
    }
}

/// What a failed attempt says about the call's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Rejected for its rate: not processed.
    Throttled,
    /// Answered with a 4xx, or never sent: not processed.
    Refused,
    /// 5xx, timeout, dropped connection, unreadable reply: may have been processed.
    Unknown,
}

fn verdict(failure: &AwsFailure) -> Verdict {
    if failure.is_throttling() {
        return Verdict::Throttled;
    }
    match failure.kind {
        AwsErrorKind::Service => match failure.http_status {
            Some(status) if status < 500 => Verdict::Refused,
            _ => Verdict::Unknown,
        },
        AwsErrorKind::Construction => Verdict::Refused,
        AwsErrorKind::Timeout | AwsErrorKind::Dispatch | AwsErrorKind::Response => Verdict::Unknown,
    }
}

/// Sends a mutating call through `attempt` (which must disable the SDK's own retries,
/// so this loop is the only one) up to `policy.max_attempts` times, re-sending only as
/// `resend` allows, with a doubling pause in between, and never dispatching a re-send
/// after `deadline` (a reconciliation elsewhere counts on nothing being sent after it).
pub(super) async fn send_mutation<T, F, Fut>(
    policy: &RetryPolicy,
    resend: Resend,
    already_exists_code: Option<&str>,
    deadline: Option<Instant>,
    mut attempt: F,
) -> Result<T, SendFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsFailure>>,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut outcome_unknown = false;
    let mut attempt_number = 1;
    loop {
        let failure = match attempt().await {
            Ok(output) => return Ok(output),
            Err(failure) => failure,
        };
        if already_exists_code.is_some_and(|code| failure.has_code(code)) {
            return Err(SendFailure::AlreadyExists(failure));
        }
        let verdict = verdict(&failure);
        outcome_unknown |= verdict == Verdict::Unknown;
        let may_resend = match verdict {
            Verdict::Throttled => true,
            Verdict::Unknown => resend == Resend::WhileOutcomeUnknown,
            Verdict::Refused => false,
        };
        let pause = policy.backoff(attempt_number - 1);
        let past_deadline = deadline.is_some_and(|deadline| Instant::now() + pause >= deadline);
        if past_deadline && may_resend && attempt_number < max_attempts {
            tracing::warn!(
                attempt = attempt_number,
                "send deadline reached: not re-sending"
            );
        }
        if !may_resend || attempt_number >= max_attempts || past_deadline {
            if outcome_unknown {
                tracing::warn!(attempt = attempt_number, error = %failure, "outcome of the call unknown");
                return Err(SendFailure::Ambiguous(failure));
            }
            tracing::info!(attempt = attempt_number, error = %failure, "call rejected");
            return Err(SendFailure::Rejected(failure));
        }
        tracing::info!(
            attempt = attempt_number,
            ?verdict,
            pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            "re-sending the call"
        );
        tokio::time::sleep(pause).await;
        attempt_number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: AwsErrorKind, code: Option<&str>, status: Option<u16>) -> AwsFailure {
        AwsFailure {
            operation: "PurchaseReservedInstancesOffering",
            kind,
            code: code.map(str::to_owned),
            detail: "x".to_owned(),
            http_status: status,
        }
    }

    #[test]
    fn throttling_wins_over_a_5xx_status() {
        let throttled = failure(
            AwsErrorKind::Service,
            Some("RequestLimitExceeded"),
            Some(503),
        );
        assert_eq!(verdict(&throttled), Verdict::Throttled);
    }

    #[test]
    fn a_4xx_is_a_refusal_and_a_5xx_or_a_lost_reply_is_unknown() {
        assert_eq!(
            verdict(&failure(
                AwsErrorKind::Service,
                Some("InvalidParameterValue"),
                Some(400)
            )),
            Verdict::Refused
        );
        assert_eq!(
            verdict(&failure(
                AwsErrorKind::Service,
                Some("InternalError"),
                Some(500)
            )),
            Verdict::Unknown
        );
        assert_eq!(
            verdict(&failure(AwsErrorKind::Service, Some("Odd"), None)),
            Verdict::Unknown
        );
        assert_eq!(
            verdict(&failure(AwsErrorKind::Timeout, None, None)),
            Verdict::Unknown
        );
        assert_eq!(
            verdict(&failure(AwsErrorKind::Dispatch, None, None)),
            Verdict::Unknown
        );
        assert_eq!(
            verdict(&failure(AwsErrorKind::Response, None, None)),
            Verdict::Unknown
        );
        assert_eq!(
            verdict(&failure(AwsErrorKind::Construction, None, None)),
            Verdict::Refused
        );
    }

    #[tokio::test]
    async fn a_call_without_idempotency_is_resent_only_after_throttling() {
        let policy = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result: Result<(), SendFailure> =
            send_mutation(&policy, Resend::AfterThrottlingOnly, None, None, || {
                calls += 1;
                let answer = if calls == 1 {
                    failure(
                        AwsErrorKind::Service,
                        Some("RequestLimitExceeded"),
                        Some(503),
                    )
                } else {
                    failure(AwsErrorKind::Service, Some("InternalError"), Some(500))
                };
                async move { Err(answer) }
            })
            .await;
        assert!(matches!(result, Err(SendFailure::Ambiguous(_))));
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn no_resend_starts_after_the_deadline() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(50),
        };
        let mut calls = 0;
        let deadline = Instant::now() + Duration::from_millis(20);
        let result: Result<(), SendFailure> = send_mutation(
            &policy,
            Resend::AfterThrottlingOnly,
            None,
            Some(deadline),
            || {
                calls += 1;
                let throttled = failure(
                    AwsErrorKind::Service,
                    Some("RequestLimitExceeded"),
                    Some(400),
                );
                async move { Err(throttled) }
            },
        )
        .await;
        assert_eq!(calls, 1, "the first re-send would start after the deadline");
        assert!(
            matches!(result, Err(SendFailure::Rejected(_))),
            "throttled only: nothing was processed"
        );
    }

    #[tokio::test]
    async fn a_refusal_after_an_unknown_outcome_stays_ambiguous() {
        let policy = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result: Result<(), SendFailure> = send_mutation(
            &policy,
            Resend::WhileOutcomeUnknown,
            Some("AlreadyThere"),
            None,
            || {
                calls += 1;
                let answer = if calls == 1 {
                    failure(AwsErrorKind::Dispatch, None, None)
                } else {
                    failure(
                        AwsErrorKind::Service,
                        Some("ValidationException"),
                        Some(400),
                    )
                };
                async move { Err(answer) }
            },
        )
        .await;
        assert!(matches!(result, Err(SendFailure::Ambiguous(_))));
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn throttling_on_every_attempt_is_a_rejection() {
        let policy = RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result: Result<(), SendFailure> =
            send_mutation(&policy, Resend::AfterThrottlingOnly, None, None, || {
                calls += 1;
                async {
                    Err(failure(
                        AwsErrorKind::Service,
                        Some("Throttling"),
                        Some(400),
                    ))
                }
            })
            .await;
        assert!(matches!(result, Err(SendFailure::Rejected(_))));
        assert_eq!(calls, 2);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        };
        assert_eq!(policy.backoff(0), Duration::from_millis(100));
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(2), Duration::from_millis(300));
        assert_eq!(policy.total_backoff(), Duration::from_millis(600));
    }
}
