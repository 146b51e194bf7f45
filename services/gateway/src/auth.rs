//! API-key authentication and roles (docs/design/API.md, Conventions: Auth).
//!
//! Clients send `Authorization: Bearer <key>`. Keys are 32 random bytes shown once at
//! creation; only their SHA-256 is stored (a fast hash suffices for a random 256-bit
//! secret, and a look-up by hash is an index probe). The bootstrap admin key from
//! `CUDLY_BOOTSTRAP_ADMIN_KEY` is compared in constant time and acts as the admin named
//! `bootstrap`.
//!
//! Two layers:
//! - [`require_api_key`]: every `/api` route but the token routes. Missing or unknown
//!   key → 401; a viewer on anything but GET/HEAD → 403.
//! - [`accept_optional_api_key`]: the approve/cancel routes that an approval token
//!   authorises. A key, when sent, must be valid; without one the handler checks the
//!   token. Handlers there take `Option<Principal>`.
//!
//! The authenticated [`Principal`] travels in the request extensions; handlers take it
//! as an extractor argument.
//!
//! The hot path asks Postgres nothing (issue 22):
//! - A key that verified is trusted for `CUDLY_API_KEY_CACHE_TTL` (default 5 s) from
//!   [`crate::key_cache`], without a connection; its `expires_at` is checked on every
//!   request. Revoking a key or disabling the bootstrap key takes effect at once on the
//!   replica that did it and within the TTL on the others. Unknown keys are never
//!   cached: each costs a look-up, under the failed-authentication limit.
//! - `last_used_at` is recorded at most once a minute per key
//!   ([`LAST_USED_RESOLUTION_SECS`]), in memory, and written in batches every few
//!   seconds by [`crate::key_uses`], so that reads do not each cost a write.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use cudly_common::audit::{Actor, CURRENT_ACTOR};
use cudly_common::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{HttpError, error_response};
use crate::key_cache::{CachedKey, Lookup};
use crate::limits;
use crate::repo;
use crate::state::AppState;

/// How often at most a key's `last_used_at` is written.
pub const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// Prefix of generated keys, so a leaked key is recognisable in a secret scanner.
pub const KEY_PREFIX: &str = "cudly_";

/// Name of the principal of the bootstrap admin key.
pub const BOOTSTRAP_NAME: &str = "bootstrap";

/// The SHA-256 of a key.
pub type KeyHash = [u8; 32];

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// GET only.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// Returns the role spelled `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// Returns whether this role may send a request with `method`.
    pub fn may_use(self, method: &Method) -> bool {
        match self {
            Role::Admin => true,
            Role::Viewer => method == Method::GET || method == Method::HEAD,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id; `None` for the bootstrap key, which has no row.
    pub key_id: Option<Uuid>,
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// Returns the principal of the bootstrap admin key.
    pub fn bootstrap() -> Self {
        Self {
            key_id: None,
            name: BOOTSTRAP_NAME.to_owned(),
            role: Role::Admin,
        }
    }

    /// Returns how this principal is recorded as an actor, e.g. `key:ops`
    /// (an execution's `approved_by`).
    pub fn actor(&self) -> String {
        format!("key:{}", self.name)
    }

    /// Returns the identity executions record for this key: its id, or `bootstrap` for
    /// the bootstrap key (which has no row).
    pub fn identity(&self) -> String {
        match self.key_id {
            Some(id) => id.to_string(),
            None => BOOTSTRAP_NAME.to_owned(),
        }
    }

    /// Returns how the audit trail names this principal in a request.
    pub fn audit_actor(&self, request_id: Option<String>) -> Actor {
        Actor {
            name: self.actor(),
            key_id: Some(self.identity()),
            request_id,
        }
    }

    /// Returns who acts in the request being handled: the actor the auth layer set,
    /// else this principal.
    pub fn current_actor(&self) -> Actor {
        CURRENT_ACTOR
            .try_with(Actor::clone)
            .unwrap_or_else(|_| self.audit_actor(None))
    }

    /// Returns Ok for an admin, else PERMISSION_DENIED.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Viewer => Err(ApiError::permission_denied(
                "this action needs an admin key",
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| HttpError(ApiError::unauthenticated("missing api key")))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// Returns the SHA-256 of a key.
pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Returns a new random key: the prefix and 32 random bytes in hex.
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// Returns the caller named by the `Authorization` header: `Ok(None)` without one, an
/// UNAUTHENTICATED error for a malformed header or an unknown or expired key,
/// UNAVAILABLE when the key store cannot be reached (a key verified within the cache's
/// TTL needs no key store).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let presented = value.to_str().ok().and_then(bearer_token).ok_or_else(|| {
        ApiError::unauthenticated("malformed authorization header, expected: Bearer <api key>")
    })?;
    let hash = hash_key(presented);
    let now = Utc::now();
    let key = match state.key_cache.lookup(&hash, now) {
        Lookup::Valid(cached) => cached,
        Lookup::Expired => return Err(key_expired()),
        Lookup::Miss => verify(state, hash, now).await?,
    };
    if let Some(key_id) = key.principal().key_id
        && key.claim_use(now, LAST_USED_RESOLUTION_SECS)
    {
        state.key_uses.record(key_id, now);
    }
    Ok(Some(key.principal().clone()))
}

/// Looks the key of `hash` up in the key store (a cache miss) and caches it when it
/// verifies.
async fn verify(
    state: &AppState,
    hash: KeyHash,
    now: DateTime<Utc>,
) -> Result<Arc<CachedKey>, ApiError> {
    // Taken before the read, so that a revocation committed meanwhile keeps what this
    // read saw out of the cache.
    let ticket = state.key_cache.ticket();
    let mut conn = state.db().await?;
    let key = if let Some(bootstrap_hash) = &state.bootstrap_key_hash
        && bool::from(hash.ct_eq(bootstrap_hash))
    {
        if repo::bootstrap_key_disabled(&mut conn, bootstrap_hash).await? {
            return Err(ApiError::unauthenticated(
                "the bootstrap admin key is disabled",
            ));
        }
        CachedKey::new(Principal::bootstrap(), None, None)
    } else {
        let Some(row) = repo::find_key_by_hash(&mut conn, &hash).await? else {
            return Err(ApiError::unauthenticated("unknown api key"));
        };
        if row.expired(now) {
            return Err(key_expired());
        }
        let principal = Principal {
            key_id: Some(row.id),
            name: row.name,
            role: row.role,
        };
        CachedKey::new(principal, row.expires_at, row.last_used_at)
    };
    let key = Arc::new(key);
    state.key_cache.insert(ticket, hash, Arc::clone(&key));
    Ok(key)
}

fn key_expired() -> ApiError {
    ApiError::unauthenticated("api key expired")
}

/// Returns the token of a `Bearer <token>` header value (scheme case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Middleware of the key-authorised routes: 401 without a valid key, 403 when the role
/// may not use the method; otherwise the [`Principal`] goes into the extensions.
pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal =
        match authenticate_limited(&state, request.headers(), limits::client_address(&request))
            .await
        {
            Ok(Some(principal)) => principal,
            Ok(None) => return error_response(ApiError::unauthenticated("missing api key")),
            Err(response) => return response,
        };
    if !principal.role.may_use(request.method()) {
        tracing::info!(principal = %principal.name, method = %request.method(), "role may not use method");
        return error_response(ApiError::permission_denied(format!(
            "role {} may only read",
            principal.role.as_str()
        )));
    }
    record_principal(&principal);
    let actor = principal.audit_actor(request_id(&request));
    request.extensions_mut().insert(principal);
    CURRENT_ACTOR.scope(actor, next.run(request)).await
}

/// Middleware of the token-authorised routes: a key, when given, must be valid and is
/// passed on as the [`Principal`]; without one the handler checks the approval token.
/// Roles are the handler's to check here, since a token grants what a viewer key does
/// not.
pub async fn accept_optional_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let actor =
        match authenticate_limited(&state, request.headers(), limits::client_address(&request))
            .await
        {
            Ok(Some(principal)) => {
                record_principal(&principal);
                let actor = principal.audit_actor(request_id(&request));
                request.extensions_mut().insert(principal);
                actor
            }
            Ok(None) => Actor {
                name: ACTOR_TOKEN.to_owned(),
                key_id: None,
                request_id: request_id(&request),
            },
            Err(response) => return response,
        };
    CURRENT_ACTOR.scope(actor, next.run(request)).await
}

/// Who acts in an approval by token alone (as the executor records it).
const ACTOR_TOKEN: &str = "token";

/// Returns the request's id (set by the request-id layer before any handler).
fn request_id(request: &Request) -> Option<String> {
    request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// [`authenticate`] under the failed-authentication limit: a client locked out is
/// refused (429) whatever key it presents, and the failure that spends its budget is
/// answered 429 instead of 401. Requests without a key are not failures.
async fn authenticate_limited(
    state: &AppState,
    headers: &HeaderMap,
    client: std::net::IpAddr,
) -> Result<Option<Principal>, Response> {
    const LOCKED_OUT: &str = "too many failed authentications from this address";
    let presented = headers.contains_key(header::AUTHORIZATION);
    if presented && let Some(wait) = state.limits.locked_out(client) {
        return Err(limits::too_many_requests(wait, LOCKED_OUT));
    }
    match authenticate(state, headers).await {
        Err(error) if presented && error.code == ErrorCode::Unauthenticated => {
            match state.limits.failed_authentication(client) {
                Some(wait) => {
                    tracing::warn!(%client, "failed-authentication limit reached");
                    Err(limits::too_many_requests(wait, LOCKED_OUT))
                }
                None => Err(error_response(error)),
            }
        }
        Err(error) => Err(error_response(error)),
        Ok(principal) => Ok(principal),
    }
}

fn record_principal(principal: &Principal) {
    tracing::Span::current().record("principal", principal.name.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_prefixed() {
        let first = generate_key();
        let second = generate_key();
        assert_ne!(first, second);
        assert!(first.starts_with(KEY_PREFIX));
        assert_eq!(first.len(), KEY_PREFIX.len() + 64);
    }

    #[test]
    fn the_bearer_scheme_is_required() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    fn test_state() -> AppState {
        let config = crate::Config::new(
            secrecy::SecretString::from("postgres://nobody@127.0.0.1:1/none"),
            secrecy::SecretString::from("token"),
        )
        .with_bootstrap_admin_key("bootstrap-key-for-unit-tests");
        AppState::new(config).unwrap()
    }

    async fn call(router: &axum::Router, authorization: Option<&str>) -> (u16, String) {
        use tower::ServiceExt;
        let mut request = axum::http::Request::builder().uri("/approve");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = router
            .clone()
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn token_routes_accept_requests_without_a_key_but_not_a_bad_key() {
        let state = test_state();
        let router = axum::Router::new()
            .route(
                "/approve",
                axum::routing::get(|principal: Option<Principal>| async move {
                    principal
                        .map(|principal| principal.name)
                        .unwrap_or_else(|| "token".to_owned())
                }),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                accept_optional_api_key,
            ))
            .with_state(state);
        assert_eq!(call(&router, None).await, (200, "token".to_owned()));
        // Whether the bootstrap key was disabled is in the key store: unreachable here,
        // so even the bootstrap key is not let through (TestGateway covers it accepted).
        assert_eq!(
            call(&router, Some("Bearer bootstrap-key-for-unit-tests"))
                .await
                .0,
            503
        );
        assert_eq!(call(&router, Some("Basic abc")).await.0, 401);
    }

    /// A route behind [`require_api_key`] answering the principal's name.
    fn key_router(state: AppState) -> axum::Router {
        axum::Router::new()
            .route(
                "/approve",
                axum::routing::get(|principal: Principal| async move { principal.name }),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                require_api_key,
            ))
            .with_state(state)
    }

    #[tokio::test]
    async fn key_routes_refuse_requests_without_a_key() {
        let router = key_router(test_state());
        assert_eq!(call(&router, None).await.0, 401);
        assert_eq!(
            call(&router, Some("Bearer bootstrap-key-for-unit-tests"))
                .await
                .0,
            503,
            "the key store cannot say whether the bootstrap key was disabled"
        );
    }

    #[tokio::test]
    async fn a_cached_key_needs_no_key_store() {
        let state = test_state();
        let router = key_router(state.clone());
        let bootstrap = Arc::new(CachedKey::new(Principal::bootstrap(), None, None));
        let bootstrap_hash = hash_key("bootstrap-key-for-unit-tests");
        state
            .key_cache
            .insert(state.key_cache.ticket(), bootstrap_hash, bootstrap);
        assert_eq!(
            call(&router, Some("Bearer bootstrap-key-for-unit-tests")).await,
            (200, BOOTSTRAP_NAME.to_owned()),
            "the key store is unreachable here"
        );

        let expired_key = generate_key();
        let expired = Principal {
            key_id: Some(Uuid::new_v4()),
            name: "expired".to_owned(),
            role: Role::Admin,
        };
        let expires_at = Utc::now() - chrono::TimeDelta::seconds(1);
        state.key_cache.insert(
            state.key_cache.ticket(),
            hash_key(&expired_key),
            Arc::new(CachedKey::new(expired, Some(expires_at), None)),
        );
        let authorization = format!("Bearer {expired_key}");
        let (status, body) = call(&router, Some(authorization.as_str())).await;
        assert_eq!(status, 401);
        assert!(body.contains("api key expired"), "{body}");
    }

    #[test]
    fn viewers_only_read() {
        assert!(Role::Viewer.may_use(&Method::GET));
        assert!(Role::Viewer.may_use(&Method::HEAD));
        assert!(!Role::Viewer.may_use(&Method::POST));
        assert!(!Role::Viewer.may_use(&Method::DELETE));
        assert!(Role::Admin.may_use(&Method::DELETE));
    }
}
