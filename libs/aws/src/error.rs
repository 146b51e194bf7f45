//! Errors of AWS calls, as text that may be logged or stored.
//!
//! Shared by every caller of the SDK in this crate (STS and Organizations for the
//! accounts service, the purchase adapters for the executor): they all build their
//! errors with [`AwsFailure::from_sdk`], which goes through [`sanitize_sdk_error`].
//!
//! An SDK error's `Debug` form holds the raw request and response (headers, signatures,
//! sometimes credentials), and even its messages may quote input. [`sanitize_sdk_error`]
//! is the one function that turns an SDK error into text: the AWS error code plus a
//! scrubbed message, with access key ids and long opaque tokens (secrets, session tokens,
//! full idempotency tokens) removed.

use std::error::Error as StdError;
use std::fmt;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Longest sanitised text kept, in characters.
const MAX_TEXT: usize = 400;
/// Shortest run of base64-like characters treated as a secret or token.
const MIN_OPAQUE_TOKEN: usize = 32;
/// Error codes with which AWS services reject a call for its rate.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "EC2ThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
];
/// Error codes that mean throttling only for some operations: Cost Explorer rejects a
/// call for its rate with `LimitExceededException` (the SDK's classifier retries it as
/// throttling), while OpenSearch uses the same code for a resource quota, which asking
/// again does not lift.
const OPERATION_THROTTLING_CODES: &[(&str, &str)] = &[
    (
        "GetReservationPurchaseRecommendation",
        "LimitExceededException",
    ),
    (
        "GetSavingsPlansPurchaseRecommendation",
        "LimitExceededException",
    ),
];
/// Prefixes of AWS access key ids (long-lived, temporary).
const KEY_ID_PREFIXES: &[&str] = &["AKIA", "ASIA"];

/// What kind of failure an AWS call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// AWS answered with an error (access denied, throttling, ...).
    Service,
    /// The call timed out; it may or may not have been processed.
    Timeout,
    /// The call could not be sent or no response arrived (connection refused, reset).
    Dispatch,
    /// A response arrived but could not be read.
    Response,
    /// The request could not be built (e.g. no credentials available).
    Construction,
}

/// A failed AWS call: the operation, the AWS error code when AWS answered, and a
/// sanitised description. Its `Display` is `"<operation>: <description>"`, safe to log
/// and to store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {detail}")]
pub struct AwsFailure {
    /// The AWS operation, e.g. `AssumeRole`.
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    /// The AWS error code, e.g. `AccessDenied`, when AWS answered with one.
    pub code: Option<String>,
    /// The sanitised description ([`sanitize_sdk_error`]).
    pub detail: String,
    /// The HTTP status of AWS's answer, when one arrived (tells a 4xx refusal from a
    /// 5xx whose outcome is unknown).
    pub http_status: Option<u16>,
}

impl AwsFailure {
    /// Builds the error of `operation` from an SDK error.
    pub fn from_sdk<E, R>(operation: &'static str, error: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
        R: fmt::Debug + 'static,
    {
        let kind = match error {
            SdkError::ServiceError(_) => AwsErrorKind::Service,
            SdkError::TimeoutError(_) => AwsErrorKind::Timeout,
            SdkError::DispatchFailure(failure) if failure.is_timeout() => AwsErrorKind::Timeout,
            SdkError::DispatchFailure(_) => AwsErrorKind::Dispatch,
            SdkError::ResponseError(_) => AwsErrorKind::Response,
            SdkError::ConstructionFailure(_) => AwsErrorKind::Construction,
            _ => AwsErrorKind::Response,
        };
        Self {
            operation,
            kind,
            code: error.code().map(scrub),
            detail: sanitize_sdk_error(error),
            http_status: http_status(error),
        }
    }

    /// Returns an error for a reply that lacks what the operation promises.
    pub fn malformed_reply(operation: &'static str, what: &str) -> Self {
        Self {
            operation,
            kind: AwsErrorKind::Response,
            code: None,
            detail: format!("the reply has no {what}"),
            http_status: None,
        }
    }

    /// Returns an error for a call that was never sent because a limit of the caller
    /// refused it (e.g. a budget of billed calls), so AWS processed nothing.
    pub fn not_sent(operation: &'static str, detail: impl Into<String>) -> Self {
        Self {
            operation,
            kind: AwsErrorKind::Construction,
            code: None,
            detail: detail.into(),
            http_status: None,
        }
    }

    /// Returns true when AWS rejected the call for its rate (nothing was processed).
    pub fn is_throttling(&self) -> bool {
        self.kind == AwsErrorKind::Service
            && self.code.as_deref().is_some_and(|code| {
                THROTTLING_CODES.contains(&code)
                    || OPERATION_THROTTLING_CODES.contains(&(self.operation, code))
            })
    }

    /// Returns true when AWS answered with a 5xx: the call may have been processed.
    pub fn is_server_error(&self) -> bool {
        self.kind == AwsErrorKind::Service && self.http_status.is_some_and(|status| status >= 500)
    }

    /// Returns true when AWS refused the call itself with a 4xx that is not throttling:
    /// asking again gets the same answer.
    pub fn is_refusal(&self) -> bool {
        self.kind == AwsErrorKind::Service
            && self
                .http_status
                .is_some_and(|status| (400..500).contains(&status))
            && !self.is_throttling()
    }

    /// Returns true when AWS answered with `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.kind == AwsErrorKind::Service && self.code.as_deref() == Some(code)
    }
}

/// Returns the HTTP status of the response an SDK error carries, if any.
fn http_status<E, R: 'static>(error: &SdkError<E, R>) -> Option<u16> {
    let raw: &dyn std::any::Any = error.raw_response()?;
    raw.downcast_ref::<aws_smithy_runtime_api::http::Response>()
        .map(|response| response.status().as_u16())
}

/// Returns an SDK error as text fit for a log line or a stored row: the AWS error code
/// and its scrubbed message for an error answered by AWS, else the failure kind and
/// the scrubbed text of its innermost cause. Never the `Debug` form of the error (it
/// holds raw requests), never an access key id, secret or session token.
pub fn sanitize_sdk_error<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: fmt::Debug,
{
    let text = match error {
        SdkError::ServiceError(_) => {
            let code = error.code().unwrap_or("UnknownError");
            match error.message() {
                Some(message) if !message.trim().is_empty() => format!("{code}: {message}"),
                _ => code.to_owned(),
            }
        }
        SdkError::TimeoutError(_) => "the call timed out".to_owned(),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_timeout() {
                "the call timed out"
            } else if failure.is_io() {
                "connection failed"
            } else {
                "the call could not be sent"
            };
            with_cause(kind, error)
        }
        SdkError::ResponseError(_) => with_cause("the response could not be read", error),
        SdkError::ConstructionFailure(_) => with_cause("the request could not be built", error),
        _ => "unknown sdk error".to_owned(),
    };
    scrub(&text)
}

/// Returns `summary` followed by the display text of the innermost cause, which names
/// what failed (e.g. "Connection refused", "no credentials in the chain").
fn with_cause<E, R>(summary: &str, error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: fmt::Debug,
{
    let mut innermost: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(next) = innermost.and_then(StdError::source) {
        innermost = Some(next);
    }
    match innermost.map(ToString::to_string) {
        Some(cause) if !cause.trim().is_empty() => format!("{summary} ({cause})"),
        _ => summary.to_owned(),
    }
}

/// Removes access key ids and long opaque tokens from `text`, drops control characters
/// and caps its length.
pub fn scrub(text: &str) -> String {
    let mut scrubbed = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.is_empty() {
            return;
        }
        out.push_str(&scrub_token(token));
        token.clear();
    };
    for character in text.chars() {
        if is_token_char(character) {
            token.push(character);
            continue;
        }
        flush(&mut token, &mut scrubbed);
        if character.is_control() {
            scrubbed.push(' ');
        } else {
            scrubbed.push(character);
        }
    }
    flush(&mut token, &mut scrubbed);
    if scrubbed.chars().count() > MAX_TEXT {
        scrubbed = scrubbed.chars().take(MAX_TEXT).collect::<String>() + "...";
    }
    scrubbed.trim().to_owned()
}

/// Characters of base64 text, the alphabet of secrets, session tokens and key ids
/// (`/` included: secrets contain it). Words such as ARN parts and uuids stay readable
/// since they break on `-`, `_`, `:` and `.`.
fn is_token_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '+' | '=' | '/')
}

/// Returns true when `token` contains an access key id (`AKIA`/`ASIA` and at least 12
/// more uppercase letters or digits), also when glued to other text (`Credential=...`).
fn contains_key_id(token: &str) -> bool {
    KEY_ID_PREFIXES.iter().any(|prefix| {
        token.match_indices(prefix).any(|(start, _)| {
            token[start + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                .count()
                >= 12
        })
    })
}

fn scrub_token(token: &str) -> String {
    if contains_key_id(token) {
        return "[key id]".to_owned();
    }
    let has_digit = token.chars().any(|c| c.is_ascii_digit());
    let has_letter = token.chars().any(|c| c.is_ascii_alphabetic());
    if token.len() >= MIN_OPAQUE_TOKEN && has_digit && has_letter {
        return "[redacted]".to_owned();
    }
    token.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Response = aws_smithy_runtime_api::http::Response<aws_smithy_types::body::SdkBody>;

    fn response(status: u16) -> Response {
        Response::new(
            status.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::from("raw body AKIAIOSFODNN7EXAMPLE"),
        )
    }

    #[test]
    fn a_service_error_is_its_code_and_scrubbed_message_never_its_raw_response() {
        use aws_sdk_sts::operation::get_session_token::GetSessionTokenError;
        let metadata = aws_smithy_types::error::ErrorMetadata::builder()
            .code("InvalidClientTokenId")
            .message("The security token AKIAIOSFODNN7EXAMPLE is invalid, signature wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            .build();
        let error: SdkError<GetSessionTokenError, Response> =
            SdkError::service_error(GetSessionTokenError::generic(metadata), response(403));
        let failure = AwsFailure::from_sdk("GetSessionToken", &error);
        assert_eq!(failure.code.as_deref(), Some("InvalidClientTokenId"));
        assert_eq!(failure.http_status, Some(403));
        let text = failure.to_string();
        assert!(
            text.starts_with(
                "GetSessionToken: InvalidClientTokenId: The security token [key id] is invalid"
            ),
            "{text}"
        );
        assert!(
            !text.contains("AKIAIOSFODNN7EXAMPLE")
                && !text.contains("EXAMPLEKEY")
                && !text.contains("raw body")
        );
    }

    #[test]
    fn limit_exceeded_is_throttling_for_cost_explorer_only() {
        let failure = |operation| AwsFailure {
            operation,
            kind: AwsErrorKind::Service,
            code: Some("LimitExceededException".to_owned()),
            detail: String::new(),
            http_status: Some(400),
        };
        assert!(failure("GetSavingsPlansPurchaseRecommendation").is_throttling());
        assert!(failure("GetReservationPurchaseRecommendation").is_throttling());
        let quota = failure("PurchaseReservedInstanceOffering");
        assert!(!quota.is_throttling() && quota.is_refusal());
    }

    #[test]
    fn a_dispatch_failure_names_its_cause() {
        use aws_sdk_sts::operation::get_session_token::GetSessionTokenError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let cause =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let error: SdkError<GetSessionTokenError, Response> =
            SdkError::dispatch_failure(ConnectorError::io(cause.into()));
        let failure = AwsFailure::from_sdk("GetSessionToken", &error);
        assert_eq!(failure.kind, AwsErrorKind::Dispatch);
        assert_eq!(failure.code, None);
        assert_eq!(
            failure.to_string(),
            "GetSessionToken: connection failed (Connection refused)"
        );
    }

    #[test]
    fn access_key_ids_are_removed() {
        let text =
            scrub("The security token included in the request is invalid: AKIAIOSFODNN7EXAMPLE");
        assert!(!text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
        assert!(text.contains("[key id]"), "{text}");
        let text = scrub("Credential=ASIAQWERTYUIOPASDFGH/20260101/us-east-1/sts/aws4_request");
        assert!(!text.contains("ASIAQWERTYUIOPASDFGH"), "{text}");
    }

    #[test]
    fn secrets_and_session_tokens_are_removed() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let session = "FwoGZXIvYXdzEJr//////////wEaDM3T0kEXAMPLEtokenPartOne2345678==";
        let text = scrub(&format!(
            "signature mismatch for {secret} with token {session}"
        ));
        assert!(!text.contains("bPxRfiCYEXAMPLEKEY"), "{text}");
        assert!(!text.contains("EXAMPLEtokenPartOne2345678"), "{text}");
        let idempotency = "e292a6c4f3b1d8e7a6c5b4a3928176e5d4c3b2a190817263544536271809abcd";
        assert!(!scrub(idempotency).contains(idempotency));
    }

    #[test]
    fn ordinary_text_arns_and_ids_stay_readable() {
        let text = "User: arn:aws:sts::123456789012:assumed-role/CUDly/cudly-6f1c2a3b is not authorized \
                    to perform sts:AssumeRole on arn:aws:iam::210987654321:role/OrganizationAccountAccessRole";
        assert_eq!(scrub(text), text);
        let uuid = "account 6f1c2a3b-1111-4222-8333-944455556666 not found";
        assert_eq!(scrub(uuid), uuid);
    }

    #[test]
    fn control_characters_and_length_are_bounded() {
        let text = scrub(&format!("line one\nline two{}", " word".repeat(200)));
        assert!(!text.contains('\n'));
        assert!(text.chars().count() <= MAX_TEXT + 3);
    }
}
