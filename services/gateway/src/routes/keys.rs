//! `/api/keys`: API keys (docs/design/API.md, Keys). Creating and deleting needs an admin key (the
//! auth layer refuses viewers on anything but GET).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cudly_common::{ApiError, audit};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{self, Principal, Role};
use crate::error::{ErrorBody, GatewayError, HttpResult};
use crate::extract::{ApiJson, ApiPath};
use crate::repo::{self, ApiKeyRow};
use crate::state::AppState;

/// Longest key name accepted.
const MAX_NAME_LEN: usize = 100;

/// Returns the `/api/keys` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(delete_key))
        .routes(routes!(disable_bootstrap_key))
}

/// A request to create a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A unique name, recorded as the actor of what the key does (`key:<name>`).
    pub name: String,
    pub role: Role,
    /// When the key stops working; absent: never. Must be in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just created: the only reply that shows the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The key, to send as `Authorization: Bearer <key>`. Shown once; only its hash is
    /// stored.
    pub key: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored key, without the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for KeyInfo {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            role: row.role,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
        }
    }
}

/// Every stored key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// Lists the API keys (never the keys themselves).
///
/// `last_used_at` includes the uses this gateway has not written yet.
#[utoipa::path(
    get,
    path = "/api/keys",
    tag = "keys",
    responses(
        (status = 200, description = "the stored keys", body = KeyList),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
    ),
)]
async fn list_keys(State(state): State<AppState>) -> HttpResult<ApiJson<KeyList>> {
    // Uses are written in batches (key_uses.rs): show those not written yet too. Taken
    // before the read, so that a use written in between is in one or the other.
    let unwritten = state.key_uses.unwritten();
    let mut conn = state.db().await?;
    let rows = repo::list_keys(&mut conn).await?;
    let keys: Vec<KeyInfo> = rows
        .into_iter()
        .map(|row| {
            let mut info = KeyInfo::from(row);
            info.last_used_at = info.last_used_at.max(unwritten.get(&info.id).copied());
            info
        })
        .collect();
    Ok(ApiJson(KeyList { keys }))
}

/// Creates an API key; the reply shows the key once.
#[utoipa::path(
    post,
    path = "/api/keys",
    tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "the key, shown once", body = CreatedKey),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 409, description = "a key with this name exists", body = ErrorBody),
    ),
)]
async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateKeyRequest>,
) -> HttpResult<(StatusCode, ApiJson<CreatedKey>)> {
    principal.require_admin()?;
    let name = validate_name(&request.name)?;
    if request
        .expires_at
        .is_some_and(|expires_at| expires_at <= Utc::now())
    {
        return Err(ApiError::invalid_field("expires_at", "must be in the future").into());
    }
    let key = auth::generate_key();
    let hash = auth::hash_key(&key);
    let mut tx = state.begin().await?;
    let row = repo::insert_key(
        &mut tx,
        Uuid::new_v4(),
        &name,
        request.role,
        &hash,
        request.expires_at,
    )
    .await?;
    audit_key(&mut tx, &principal, "key.create", row.id, None, Some(&row)).await?;
    tx.commit().await.map_err(GatewayError::db("commit"))?;
    tracing::info!(key_id = %row.id, key_name = %row.name, role = row.role.as_str(), by = %principal.name, "api key created");
    let created = CreatedKey {
        id: row.id,
        name: row.name,
        role: row.role,
        key,
        created_at: row.created_at,
        expires_at: row.expires_at,
    };
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Revokes an API key: requests with it fail with 401 from then on, and its name stays
/// taken (the audit trail's `key:<name>` names one key forever).
///
/// At once on this gateway; other replicas may accept the key for up to
/// `CUDLY_API_KEY_CACHE_TTL` (default 5 s) more.
#[utoipa::path(
    delete,
    path = "/api/keys/{id}",
    tag = "keys",
    params(("id" = Uuid, Path, description = "the key's id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 400, description = "malformed id", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no such key", body = ErrorBody),
    ),
)]
async fn delete_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> HttpResult<StatusCode> {
    principal.require_admin()?;
    let mut tx = state.begin().await?;
    let Some(revoked) = repo::revoke_key(&mut tx, id).await? else {
        // Revoked already, maybe through another replica: stop trusting it here too.
        state.key_cache.invalidate_key(id);
        return Err(ApiError::not_found(format!("api key {id} not found")).into());
    };
    audit_key(&mut tx, &principal, "key.revoke", id, Some(&revoked), None).await?;
    tx.commit().await.map_err(GatewayError::db("commit"))?;
    // After the commit: a look-up before it could cache the key again.
    state.key_cache.invalidate_key(id);
    tracing::info!(key_id = %id, by = %principal.name, "api key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Disables the bootstrap admin key (admin), once another admin key exists: from then
/// on it is refused like an unknown key. Configuring a new `CUDLY_BOOTSTRAP_ADMIN_KEY`
/// brings a bootstrap key back.
///
/// At once on this gateway; other replicas may accept the key for up to
/// `CUDLY_API_KEY_CACHE_TTL` (default 5 s) more.
#[utoipa::path(
    delete,
    path = "/api/keys/bootstrap",
    tag = "keys",
    responses(
        (status = 204, description = "disabled (or already)"),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 404, description = "no bootstrap key is configured", body = ErrorBody),
        (status = 409, description = "no other admin key exists yet", body = ErrorBody),
    ),
)]
async fn disable_bootstrap_key(
    State(state): State<AppState>,
    principal: Principal,
) -> HttpResult<StatusCode> {
    principal.require_admin()?;
    let Some(hash) = state.bootstrap_key_hash.as_ref() else {
        return Err(ApiError::not_found("no bootstrap admin key is configured").into());
    };
    let mut tx = state.begin().await?;
    if !repo::admin_key_exists(&mut tx).await? {
        return Err(ApiError::conflict(
            "create another admin key first: the bootstrap key is the only admin",
        )
        .into());
    }
    repo::disable_bootstrap_key(&mut tx, hash, &principal.actor()).await?;
    let change = audit::Change {
        action: "key.disable_bootstrap",
        target_type: "key",
        target_id: auth::BOOTSTRAP_NAME.to_owned(),
        before: None,
        after: None,
    };
    audit::record(&mut tx, SERVICE, &principal.current_actor(), change)
        .await
        .map_err(GatewayError::db("record audit event"))?;
    tx.commit().await.map_err(GatewayError::db("commit"))?;
    // After the commit: a look-up before it could cache the key again.
    state.key_cache.invalidate_hash(hash);
    tracing::warn!(by = %principal.name, "bootstrap admin key disabled");
    Ok(StatusCode::NO_CONTENT)
}

/// The name the gateway records its audit events under.
pub const SERVICE: &str = "gateway";

/// Records a change to a key in its transaction (the key's row, never the key: only
/// its hash is stored, and the row read back holds not even that).
async fn audit_key(
    conn: &mut sqlx::PgConnection,
    principal: &Principal,
    action: &str,
    id: Uuid,
    before: Option<&ApiKeyRow>,
    after: Option<&ApiKeyRow>,
) -> Result<(), GatewayError> {
    let change = audit::Change {
        action,
        target_type: "key",
        target_id: id.to_string(),
        before: before.map(audit::digest),
        after: after.map(audit::digest),
    };
    audit::record(conn, SERVICE, &principal.current_actor(), change)
        .await
        .map_err(GatewayError::db("record audit event"))
}

/// Returns the trimmed name, or a 400 naming the field.
fn validate_name(name: &str) -> Result<String, ApiError> {
    let trimmed = cudly_common::names::display_name("name", name, MAX_NAME_LEN)?;
    if trimmed.eq_ignore_ascii_case(auth::BOOTSTRAP_NAME) {
        return Err(ApiError::invalid_field(
            "name",
            "is reserved for the bootstrap key",
        ));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(validate_name("  ops ").unwrap(), "ops");
        assert_eq!(
            validate_name(" ").unwrap_err().field.as_deref(),
            Some("name")
        );
        assert!(validate_name(&"x".repeat(101)).is_err());
        assert!(validate_name("Bootstrap").is_err());
    }
}
