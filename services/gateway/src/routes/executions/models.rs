//! The request bodies and queries of the execution routes, and their parsing.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use cudly_common::{ApiError, ErrorCode};
use cudly_proto::convert::timestamp;
use cudly_vocabulary::RecommendationInput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extract::parse_json;

/// A direct execution: one account buys the list.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExecutionBody {
    /// The account that buys.
    pub cloud_account_id: Uuid,
    pub recommendations: Vec<RecommendationInput>,
}

/// Approve or cancel: the approval token, or nothing with an admin key. The body may be
/// empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// The approval token from the creation reply (64 hex characters).
    #[serde(default)]
    pub token: Option<String>,
}

/// `?dry_run=true` on a creation route: price and check, store and buy nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunQuery {
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl DryRunQuery {
    pub fn requested(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }
}

/// The token of an approve/cancel link.
#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    pub token: Option<String>,
}

/// Filters of the execution list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionsQuery {
    #[serde(default)]
    pub plan_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// Comma-separated account ids: roots with a child for any of them.
    #[serde(default)]
    pub account_ids: Option<String>,
}

/// Filters of the purchase history.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Comma-separated account ids.
    #[serde(default)]
    pub account_ids: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    /// RFC 3339: purchased at or after.
    #[serde(default)]
    pub start: Option<String>,
    /// RFC 3339: purchased before.
    #[serde(default)]
    pub end: Option<String>,
}

/// An operator's resolution of an in-doubt purchase, after checking the cloud console.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `bought` (give `commitment_id`) or `not_bought` (a retry may then buy it).
    pub outcome: ResolveOutcome,
    /// The commitment found in the console, with `bought`.
    #[serde(default)]
    pub commitment_id: Option<String>,
}

/// How an in-doubt purchase ended.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolveOutcome {
    Bought,
    NotBought,
}

/// Parses a comma-separated list of uuids named `field`.
pub fn parse_id_list(field: &str, text: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            Uuid::parse_str(part)
                .map(|id| id.to_string())
                .map_err(|_| ApiError::invalid_field(field, "must be comma-separated uuids"))
        })
        .collect()
}

pub fn parse_time(
    field: &str,
    text: Option<&str>,
) -> Result<Option<prost_types::Timestamp>, ApiError> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text.trim())
            .map(|time| timestamp(time.with_timezone(&Utc)))
            .map_err(|_| ApiError::invalid_field(field, "must be an RFC 3339 timestamp"))
    })
    .transpose()
}

/// Parses an approve/cancel body that may be empty (no body, or `{}`).
pub fn decision_body(headers: &HeaderMap, body: &Bytes) -> Result<DecisionBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"));
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected a json body (content-type: application/json)",
        ));
    }
    parse_json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_decision_body_means_no_token() {
        let headers = HeaderMap::new();
        assert!(
            decision_body(&headers, &Bytes::new())
                .unwrap()
                .token
                .is_none()
        );
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(
            decision_body(&json, &Bytes::from_static(b"{}"))
                .unwrap()
                .token
                .is_none()
        );
        assert_eq!(
            decision_body(&json, &Bytes::from_static(br#"{"token":"abc"}"#))
                .unwrap()
                .token
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            decision_body(&headers, &Bytes::from_static(b"token=abc"))
                .unwrap_err()
                .http_status(),
            415
        );
    }

    #[test]
    fn id_lists_are_comma_separated_uuids() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse_id_list("account_ids", Some(&format!("{id}, {id}")))
                .unwrap()
                .len(),
            2
        );
        assert!(parse_id_list("account_ids", Some("nope")).is_err());
        assert!(parse_id_list("account_ids", None).unwrap().is_empty());
    }
}
