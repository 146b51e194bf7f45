//! The Idempotency-Key of the routes that create an execution (docs/design/API.md,
//! Conventions): the header, read and checked, and the hash of the request it is bound
//! to. The executor keeps the pair: the same key with the same request returns the
//! original execution, with another request it is 409.

use axum::http::HeaderMap;
use cudly_common::ApiError;
use cudly_common::idempotency::{IDEMPOTENCY_KEY_HEADER, check_key};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The Idempotency-Key of a request and the hash of the request, both or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdempotentRequest {
    pub key: Option<String>,
    pub request_hash: Option<String>,
}

impl IdempotentRequest {
    /// Reads the Idempotency-Key header, if sent, and hashes `method`, `path` and
    /// `body` with it.
    pub fn read(
        headers: &HeaderMap,
        method: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Self, ApiError> {
        let Some(key) = idempotency_key(headers)? else {
            return Ok(Self::default());
        };
        Ok(Self {
            key: Some(key),
            request_hash: Some(request_hash(method, path, body)?),
        })
    }
}

/// Returns the Idempotency-Key header, if sent: 1 to 255 printable ASCII characters
/// after trimming.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().map(str::trim).unwrap_or_default();
    check_key("Idempotency-Key", key)?;
    Ok(Some(key.to_owned()))
}

/// Returns the lowercase hex SHA-256 of the canonical request: method, path and the body
/// re-serialised with sorted keys, so that the same request always hashes the same.
fn request_hash(method: &str, path: &str, body: &impl Serialize) -> Result<String, ApiError> {
    let value = serde_json::to_value(body).map_err(|error| {
        tracing::error!(%error, "request body does not serialise");
        ApiError::internal()
    })?;
    let canonical = canonical_json(&value);
    let digest = Sha256::digest(format!("{method} {path}\n{canonical}").as_bytes());
    Ok(hex::encode(digest))
}

/// Returns JSON text with object keys sorted at every level.
fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(key.clone()),
                        canonical_json(&map[key])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::executions::CreateExecutionBody;
    use crate::routes::plans::StartExecutionBody;

    #[test]
    fn the_request_hash_ignores_key_order_but_not_values() {
        let first: serde_json::Value =
            serde_json::from_str(r#"{"scheduled_date":null,"recommendations":[{"b":1,"a":2}]}"#)
                .unwrap();
        let reordered: serde_json::Value =
            serde_json::from_str(r#"{"recommendations":[{"a":2,"b":1}],"scheduled_date":null}"#)
                .unwrap();
        let other: serde_json::Value =
            serde_json::from_str(r#"{"recommendations":[{"a":3,"b":1}],"scheduled_date":null}"#)
                .unwrap();
        let path = "/api/plans/1/executions";
        let hash = request_hash("POST", path, &first).unwrap();
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, request_hash("POST", path, &reordered).unwrap());
        assert_ne!(hash, request_hash("POST", path, &other).unwrap());
        assert_ne!(
            hash,
            request_hash("POST", "/api/plans/2/executions", &first).unwrap()
        );
    }

    /// Hashes recorded before the request bodies became the shared vocabulary's types:
    /// a client retrying with the same key and body across an upgrade still gets its
    /// original execution, not a 409.
    #[test]
    fn request_hashes_are_stable_across_versions() {
        let direct: CreateExecutionBody = crate::extract::parse_json(
            br#"{"cloud_account_id":"6F1C1C6E-0000-4000-8000-000000000001","recommendations":[
            {"provider":"aws","service":"rds","region":"us-east-1","resource_type":"db.r6g.large",
             "engine":"postgresql","count":2,"term":1,"payment":"all-upfront","upfront_cost":1234.5},
            {"provider":"aws","service":"savingsplans","region":"us-east-1","resource_type":"Compute",
             "count":1,"term":3,"payment":"no-upfront","all_accounts":false,
             "details":{"hourly_commitment":"1.50"},"monthly_savings":12.0}]}"#,
        )
        .unwrap();
        assert_eq!(
            request_hash("POST", "/api/executions", &direct).unwrap(),
            "144c23417ecdd4a8bdb46700ec23cf2fa510e3c82d7e9e012584bc788106e000"
        );
        let plan: StartExecutionBody = crate::extract::parse_json(
            br#"{"recommendations":[{"provider":"aws","service":"ec2","region":"us-east-1",
             "resource_type":"m5.large","platform":"Linux/UNIX","count":3,"term":1,
             "payment":"partial-upfront","cloud_account_id":"6f1c1c6e-0000-4000-8000-000000000002",
             "details":{"tenancy":"default","availability_zone":"us-east-1a"}}],
             "scheduled_date":"2026-12-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            request_hash("POST", "/api/plans/p/executions", &plan).unwrap(),
            "4f0291e13d0816b9c402fff393def3567a2560ed0ef9975f4490e09d55dcc1b7"
        );
        let empty: StartExecutionBody = crate::extract::parse_json(b"{}").unwrap();
        assert_eq!(
            request_hash("POST", "/api/plans/p/executions", &empty).unwrap(),
            "5dcd5973e569cb18026fa46d7b81b4a91cd636b580fd7cd523ed46cef8128c49"
        );
    }

    #[test]
    fn a_bad_idempotency_key_names_the_header() {
        let body = serde_json::json!({});
        let mut headers = HeaderMap::new();
        assert_eq!(
            IdempotentRequest::read(&headers, "POST", "/p", &body).unwrap(),
            IdempotentRequest::default()
        );
        headers.insert(IDEMPOTENCY_KEY_HEADER, " abc-123 ".parse().unwrap());
        let read = IdempotentRequest::read(&headers, "POST", "/p", &body).unwrap();
        assert_eq!(read.key.as_deref(), Some("abc-123"));
        assert_eq!(read.request_hash.map(|hash| hash.len()), Some(64));
        headers.insert(IDEMPOTENCY_KEY_HEADER, "x".repeat(256).parse().unwrap());
        let error = IdempotentRequest::read(&headers, "POST", "/p", &body).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("Idempotency-Key"));
    }
}
