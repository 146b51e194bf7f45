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
    /// Renders `document` once.
    pub fn render(document: &utoipa::openapi::OpenApi) -> anyhow::Result<Self> {
        Ok(Self(Arc::from(document.to_json()?)))
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
