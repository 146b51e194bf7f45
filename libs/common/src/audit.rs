//! The audit trail (docs/design/DOMAIN.md "Audit log"): every service that changes
//! something an operator answers for appends an event to its own `audit_events` table,
//! in the same transaction as the change, so no change commits without its event and
//! no event survives a rolled-back change. The gateway reads them all
//! (`ListAuditEvents`) for `GET /api/audit`.
//!
//! Who acted travels with each internal call: the gateway puts the caller it
//! authenticated in [`CURRENT_ACTOR`] for the request, the internal clients copy it
//! into the call's metadata ([`attach`]), and a receiver reads it back only from the
//! gateway ([`actor_of`]); work a service starts itself acts as `service:<name>`.

use chrono::{DateTime, Utc};
use cudly_proto::audit::v1 as pb;
use cudly_proto::convert::{optional_time, timestamp};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tonic::metadata::{MetadataMap, MetadataValue};
use uuid::Uuid;

use crate::error::ApiError;
use crate::grpc::Caller;

/// Metadata keys of the actor on internal calls (binary: names are free text).
const ACTOR_KEY: &str = "x-cudly-actor-bin";
const ACTOR_KEY_ID_KEY: &str = "x-cudly-actor-key-id";
const REQUEST_ID_KEY: &str = "x-request-id";

/// Most events one page of a listing returns.
pub const MAX_PAGE: u32 = 1000;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `key:<name>`, `token`, `service:<name>`.
    pub name: String,
    /// The API key's id, when a key acted.
    pub key_id: Option<String>,
    /// The REST request's id (`x-request-id`), when there was one.
    pub request_id: Option<String>,
}

impl Actor {
    /// A service acting on its own (a scheduled step, a sweep).
    pub fn service(caller: Caller) -> Self {
        Self {
            name: format!("service:{}", caller.name()),
            key_id: None,
            request_id: None,
        }
    }
}

tokio::task_local! {
    /// The actor of the REST request being handled (set by the gateway).
    pub static CURRENT_ACTOR: Actor;
}

/// Adds the current request's actor, if any, to an outgoing call's metadata.
pub fn attach(metadata: &mut MetadataMap) {
    let _ = CURRENT_ACTOR.try_with(|actor| {
        metadata.insert_bin(ACTOR_KEY, MetadataValue::from_bytes(actor.name.as_bytes()));
        let ascii = |text: &str| MetadataValue::try_from(text).ok();
        if let Some(value) = actor.key_id.as_deref().and_then(ascii) {
            metadata.insert(ACTOR_KEY_ID_KEY, value);
        }
        if let Some(value) = actor.request_id.as_deref().and_then(ascii) {
            metadata.insert(REQUEST_ID_KEY, value);
        }
    });
}

/// Returns who a request acts for: the actor the gateway names in its metadata, or the
/// calling service itself. Only the gateway may name another actor: any other caller
/// is recorded as itself, whatever its metadata says.
pub fn actor_of<T>(request: &tonic::Request<T>) -> Result<Actor, ApiError> {
    let caller = crate::caller_policy::caller_of(request)
        .map_err(|_| ApiError::unauthenticated("missing internal token"))?;
    let metadata = request.metadata();
    let named = metadata
        .get_bin(ACTOR_KEY)
        .and_then(|value| value.to_bytes().ok())
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok());
    match (caller, named) {
        (Caller::Gateway, Some(name)) => {
            let text = |key: &str| {
                metadata
                    .get(key)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            Ok(Actor {
                name,
                key_id: text(ACTOR_KEY_ID_KEY),
                request_id: text(REQUEST_ID_KEY),
            })
        }
        (caller, _) => Ok(Actor::service(caller)),
    }
}

/// One change to record.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// `<target type>.<verb>`, e.g. `account.update`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: String,
    /// [`digest`] of the target before and after (none before a creation, none after
    /// a deletion).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Returns the hex SHA-256 of a value's `Debug` rendering: a fingerprint of a state
/// that changes when it does. Every type holding a secret has a redacting `Debug`
/// (docs/design/STYLE.md), so the rendering, and its digest, never hold one.
pub fn digest(state: &impl std::fmt::Debug) -> String {
    hex::encode(Sha256::digest(format!("{state:?}").as_bytes()))
}

/// Appends `change` by `actor`, recorded by `service`, on the connection of the
/// transaction making the change.
pub async fn record(
    conn: &mut PgConnection,
    service: &str,
    actor: &Actor,
    change: Change<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events \
         (id, service, actor, actor_key_id, action, target_type, target_id, request_id, \
          before_digest, after_digest) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(Uuid::new_v4())
    .bind(service)
    .bind(&actor.name)
    .bind(actor.key_id.as_deref())
    .bind(change.action)
    .bind(change.target_type)
    .bind(&change.target_id)
    .bind(actor.request_id.as_deref())
    .bind(change.before.as_deref())
    .bind(change.after.as_deref())
    .execute(conn)
    .await?;
    tracing::info!(
        action = change.action,
        target_id = %change.target_id,
        actor = %actor.name,
        "audited"
    );
    Ok(())
}

/// What a listing asks for, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    /// An exact action, or a target type's every action (`account.*`).
    pub action: Option<String>,
    /// Only events after this (at, id).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: u32,
}

impl Query {
    /// Reads and checks a listing request.
    pub fn from_wire(request: &pb::ListAuditEventsRequest) -> Result<Self, ApiError> {
        if request.limit == 0 || request.limit > MAX_PAGE {
            return Err(ApiError::invalid_field(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let after = match (optional_time(request.after_at.as_ref()), &request.after_id) {
            (Some(at), Some(id)) => Some((
                at,
                Uuid::parse_str(id)
                    .map_err(|_| ApiError::invalid_field("after_id", "must be a uuid"))?,
            )),
            (None, None) => None,
            _ => {
                return Err(ApiError::invalid_field(
                    "after_at",
                    "after_at and after_id go together",
                ));
            }
        };
        Ok(Self {
            since: optional_time(request.since.as_ref()),
            until: optional_time(request.until.as_ref()),
            actor: request.actor.clone(),
            action: request.action.clone(),
            after,
            limit: request.limit,
        })
    }

    /// Returns the request asking for this query (the gateway's side).
    pub fn to_wire(&self) -> pb::ListAuditEventsRequest {
        pb::ListAuditEventsRequest {
            since: self.since.map(timestamp),
            until: self.until.map(timestamp),
            actor: self.actor.clone(),
            action: self.action.clone(),
            after_at: self.after.map(|(at, _)| timestamp(at)),
            after_id: self.after.map(|(_, id)| id.to_string()),
            limit: self.limit,
        }
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    at: DateTime<Utc>,
    service: String,
    actor: String,
    actor_key_id: Option<String>,
    action: String,
    target_type: String,
    target_id: String,
    request_id: Option<String>,
    before_digest: Option<String>,
    after_digest: Option<String>,
}

/// Returns the events of this service's table that `query` selects, in (at, id) order.
pub async fn list(
    conn: &mut PgConnection,
    query: &Query,
) -> Result<Vec<pb::AuditEvent>, sqlx::Error> {
    let (action_exact, action_prefix) = match query.action.as_deref() {
        Some(action) => match action.strip_suffix(".*") {
            Some(target_type) => (None, Some(target_type.to_owned())),
            None => (Some(action.to_owned()), None),
        },
        None => (None, None),
    };
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, at, service, actor, actor_key_id, action, target_type, target_id, \
                request_id, before_digest, after_digest \
         FROM audit_events \
         WHERE ($1::timestamptz IS NULL OR at >= $1) \
           AND ($2::timestamptz IS NULL OR at < $2) \
           AND ($3::text IS NULL OR actor = $3) \
           AND ($4::text IS NULL OR action = $4) \
           AND ($5::text IS NULL OR target_type = $5) \
           AND ($6::timestamptz IS NULL OR (at, id) > ($6, $7)) \
         ORDER BY at, id \
         LIMIT $8",
    )
    .bind(query.since)
    .bind(query.until)
    .bind(query.actor.as_deref())
    .bind(action_exact)
    .bind(action_prefix)
    .bind(query.after.map(|(at, _)| at))
    .bind(query.after.map(|(_, id)| id))
    .bind(i64::from(query.limit))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(to_wire).collect())
}

/// Answers `ListAuditEvents` from this service's table.
pub async fn list_events(
    pool: &sqlx::PgPool,
    request: &pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, ApiError> {
    let query = Query::from_wire(request)?;
    let mut conn = pool
        .acquire()
        .await
        .map_err(|error| crate::grpc::db_error("acquire connection", error))?;
    let events = list(&mut conn, &query)
        .await
        .map_err(|error| crate::grpc::db_error("list audit events", error))?;
    Ok(pb::ListAuditEventsResponse { events })
}

fn to_wire(row: EventRow) -> pb::AuditEvent {
    pb::AuditEvent {
        id: row.id.to_string(),
        at: Some(timestamp(row.at)),
        service: row.service,
        actor: row.actor,
        actor_key_id: row.actor_key_id,
        action: row.action,
        target_type: row.target_type,
        target_id: row.target_id,
        request_id: row.request_id,
        before_digest: row.before_digest,
        after_digest: row.after_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_follows_the_state_and_holds_no_secret() {
        #[derive(Debug)]
        struct State {
            #[allow(dead_code)]
            name: &'static str,
        }
        let before = digest(&State { name: "a" });
        assert_eq!(before, digest(&State { name: "a" }));
        assert_ne!(before, digest(&State { name: "b" }));
        assert_eq!(before.len(), 64);
        let secret = secrecy::SecretString::from("s3cr3t-canary");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_listing_needs_a_page_size_and_a_whole_cursor() {
        let mut request = pb::ListAuditEventsRequest {
            limit: 10,
            ..Default::default()
        };
        assert!(Query::from_wire(&request).is_ok());
        request.after_id = Some(Uuid::new_v4().to_string());
        assert!(Query::from_wire(&request).is_err());
        request.after_id = None;
        request.limit = MAX_PAGE + 1;
        assert!(Query::from_wire(&request).is_err());
    }

    #[tokio::test]
    async fn only_the_gateway_names_another_actor() {
        let actor = Actor {
            name: "key:alice".to_owned(),
            key_id: Some("k-1".to_owned()),
            request_id: Some("r-1".to_owned()),
        };
        let mut metadata = MetadataMap::new();
        CURRENT_ACTOR
            .scope(actor.clone(), async { attach(&mut metadata) })
            .await;
        let request_from = |caller: Caller| {
            let mut request = tonic::Request::new(());
            *request.metadata_mut() = metadata.clone();
            request.extensions_mut().insert(caller);
            request
        };
        assert_eq!(actor_of(&request_from(Caller::Gateway)).unwrap(), actor);
        assert_eq!(
            actor_of(&request_from(Caller::Planner)).unwrap(),
            Actor::service(Caller::Planner)
        );
        // Outside a request nothing is attached.
        let mut empty = MetadataMap::new();
        attach(&mut empty);
        assert!(empty.is_empty());
    }
}
