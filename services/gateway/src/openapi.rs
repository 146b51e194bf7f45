//! The OpenAPI 3 document, generated from the handlers' own types (`#[utoipa::path]`
//! and `ToSchema`) as the routes are registered, and served at `GET /api/openapi.json`.
//!
//! `/api/openapi.json` needs no key: the document describes the API, not its data, and
//! clients fetch it before they have a key. Every operation requires the `bearer`
//! scheme unless it says otherwise (health, and the approval-token routes).

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Name of the security scheme of API keys.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CUDly-rs",
        description = "Buys cloud commitments across many accounts. Authenticate with `Authorization: Bearer <api key>`."
    ),
    modifiers(&BearerSecurity),
    tags(
        (name = "keys", description = "API keys"),
        (name = "guardrails", description = "spend limits and approval rules"),
        (name = "recommendations", description = "Cost Explorer purchase recommendations"),
        (name = "audit", description = "the audit trail of every change"),
        (name = "notifications", description = "notification channels (webhook, Slack, Teams, email) and their deliveries"),
        (name = "health", description = "liveness and readiness"),
    )
)]
struct ApiDoc;

/// Adds the bearer security scheme and requires it by default.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an API key made through /api/keys or the bootstrap admin key",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    }
}

/// Returns the base document (info, security) that the routers add their paths to.
pub fn base_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The rendered document, served as is.
#[derive(Clone)]
pub struct OpenApiJson(Arc<str>);

impl OpenApiJson {
    /// Renders `document` once, with the replies every route shares documented.
    pub fn render(document: &utoipa::openapi::OpenApi) -> anyhow::Result<Self> {
        let mut json: serde_json::Value = serde_json::from_str(&document.to_json()?)?;
        complete(&mut json);
        Ok(Self(Arc::from(serde_json::to_string(&json)?)))
    }
}

/// Documents what the layers in front of every handler answer, which the handlers'
/// own annotations do not repeat: 400 for a malformed path or query, 413 and 415 for a
/// body over the limit or not JSON, 429 from the abuse limits (`limits.rs`), 503 for a
/// dependency that is down. And every request
/// body refuses unknown fields (`deny_unknown_fields` on all of them), so their schemas
/// say `additionalProperties: false`.
fn complete(document: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let error = |description: &str| {
        json!({"description": description,
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
    };
    let mut request_schemas = Vec::new();
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(operations) = item.as_object_mut() else {
                continue;
            };
            for operation in operations.values_mut() {
                let has_body = operation.get("requestBody").is_some();
                if let Some(reference) = operation
                    .pointer("/requestBody/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                {
                    request_schemas.push(
                        reference
                            .trim_start_matches("#/components/schemas/")
                            .to_owned(),
                    );
                }
                let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                if path.starts_with("/health/") {
                    continue;
                }
                responses
                    .entry("400")
                    .or_insert_with(|| error("malformed path, query or body"));
                responses
                    .entry("503")
                    .or_insert_with(|| error("a service behind the gateway is unavailable"));
                responses.entry("429").or_insert_with(|| {
                    error(
                        "too many failed authentications from this address, or (approval \
                         routes) too many requests: Retry-After says when to come back",
                    )
                });
                if has_body {
                    responses
                        .entry("413")
                        .or_insert_with(|| error("body over the limit (1 MiB)"));
                    responses
                        .entry("415")
                        .or_insert_with(|| error("body not application/json"));
                }
            }
        }
    }
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    // Request bodies and the objects nested in them.
    let mut pending = request_schemas;
    let mut seen = std::collections::HashSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(schema) = schemas.get_mut(&name) else {
            continue;
        };
        let mut nested = Vec::new();
        collect_refs(schema, &mut nested);
        pending.extend(nested);
        if schema.get("type").and_then(Value::as_str) == Some("object")
            && schema.get("properties").is_some()
            && schema.get("additionalProperties").is_none()
        {
            schema["additionalProperties"] = Value::Bool(false);
        }
    }
}

/// The component names `value` refers to.
fn collect_refs(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                if key == "$ref"
                    && let Some(reference) = inner.as_str()
                {
                    into.push(
                        reference
                            .trim_start_matches("#/components/schemas/")
                            .to_owned(),
                    );
                } else {
                    collect_refs(inner, into);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for inner in items {
                collect_refs(inner, into);
            }
        }
        _ => {}
    }
}

impl IntoResponse for OpenApiJson {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}
