//! SQL of the `gateway` schema: API keys, and the bootstrap keys disabled.

use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_common::db::violated_constraint;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::{KeyHash, Role};
use crate::error::GatewayError;

/// One stored API key (its hash never leaves this module but for look-ups).
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Past it the key is refused; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl ApiKeyRow {
    /// Returns whether the key has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}

type RawRow = (
    Uuid,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn from_raw(
    (id, name, role, created_at, last_used_at, expires_at): RawRow,
) -> Result<ApiKeyRow, GatewayError> {
    let role = Role::parse(&role).ok_or_else(|| {
        GatewayError::Internal(format!("stored api key {id} has an unknown role"))
    })?;
    Ok(ApiKeyRow {
        id,
        name,
        role,
        created_at,
        last_used_at,
        expires_at,
    })
}

/// Stores a new key by its hash; a taken name is a conflict.
pub async fn insert_key(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
    role: Role,
    hash: &KeyHash,
    expires_at: Option<DateTime<Utc>>,
) -> Result<ApiKeyRow, GatewayError> {
    let raw: RawRow = sqlx::query_as(
        "INSERT INTO api_keys (id, name, role, key_hash, expires_at) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, role, created_at, last_used_at, expires_at",
    )
    .bind(id)
    .bind(name)
    .bind(role.as_str())
    .bind(&hash[..])
    .bind(expires_at)
    .fetch_one(conn)
    .await
    .map_err(|error| match violated_constraint(&error) {
        Some("api_keys_name_key") => {
            ApiError::already_exists(format!("an api key named {name} already exists")).into()
        }
        _ => GatewayError::db("insert api key")(error),
    })?;
    from_raw(raw)
}

/// Returns every key not revoked, oldest first.
pub async fn list_keys(conn: &mut PgConnection) -> Result<Vec<ApiKeyRow>, GatewayError> {
    let raws: Vec<RawRow> = sqlx::query_as(
        "SELECT id, name, role, created_at, last_used_at, expires_at FROM api_keys \
         WHERE revoked_at IS NULL ORDER BY created_at, id",
    )
    .fetch_all(conn)
    .await
    .map_err(GatewayError::db("list api keys"))?;
    raws.into_iter().map(from_raw).collect()
}

/// Revokes a key: it authenticates no more, but its row stays so its name is never
/// given to another key. Returns the key as it was, or none when there is no live key
/// with that id.
pub async fn revoke_key(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ApiKeyRow>, GatewayError> {
    let raw: Option<RawRow> = sqlx::query_as(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL \
         RETURNING id, name, role, created_at, last_used_at, expires_at",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(GatewayError::db("revoke api key"))?;
    raw.map(from_raw).transpose()
}

/// Returns the key whose hash is `hash`.
pub async fn find_key_by_hash(
    conn: &mut PgConnection,
    hash: &KeyHash,
) -> Result<Option<ApiKeyRow>, GatewayError> {
    let raw: Option<RawRow> = sqlx::query_as(
        "SELECT id, name, role, created_at, last_used_at, expires_at FROM api_keys \
         WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(&hash[..])
    .fetch_optional(conn)
    .await
    .map_err(GatewayError::db("find api key"))?;
    raw.map(from_raw).transpose()
}

/// Records the uses of keys in one statement: key `ids[i]` was last used at
/// `used_at[i]`. A row whose `last_used_at` is less than `resolution_secs` older than
/// the use is left alone, so a busy key is written once per `resolution_secs` whichever
/// replica saw it. Returns how many rows changed.
pub async fn record_key_uses(
    conn: &mut PgConnection,
    ids: Vec<Uuid>,
    used_at: Vec<DateTime<Utc>>,
    resolution_secs: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE api_keys AS k SET last_used_at = u.used_at
         FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, used_at)
         WHERE k.id = u.id
           AND (k.last_used_at IS NULL OR k.last_used_at < u.used_at - make_interval(secs => $3))",
    )
    .bind(ids)
    .bind(used_at)
    .bind(resolution_secs as f64)
    .execute(conn)
    .await
    .map(|result| result.rows_affected())
}

/// Returns whether a usable admin key (not expired) is stored.
pub async fn admin_key_exists(conn: &mut PgConnection) -> Result<bool, GatewayError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > now()))",
    )
    .fetch_one(conn)
    .await
    .map_err(GatewayError::db("look for an admin key"))
}

/// Records the bootstrap key of hash `hash` as disabled by `actor`; repeating it is a
/// no-op.
pub async fn disable_bootstrap_key(
    conn: &mut PgConnection,
    hash: &KeyHash,
    actor: &str,
) -> Result<(), GatewayError> {
    sqlx::query(
        "INSERT INTO disabled_bootstrap_keys (key_hash, disabled_by) VALUES ($1, $2) \
         ON CONFLICT (key_hash) DO NOTHING",
    )
    .bind(&hash[..])
    .bind(actor)
    .execute(conn)
    .await
    .map_err(GatewayError::db("disable the bootstrap key"))?;
    Ok(())
}

/// Returns whether the bootstrap key of hash `hash` was disabled.
pub async fn bootstrap_key_disabled(
    conn: &mut PgConnection,
    hash: &KeyHash,
) -> Result<bool, GatewayError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM disabled_bootstrap_keys WHERE key_hash = $1)")
        .bind(&hash[..])
        .fetch_one(conn)
        .await
        .map_err(GatewayError::db("read the disabled bootstrap keys"))
}
