//! `GET /api/audit` (admin): the audit trail of every service, merged (docs/design/API.md
//! "Audit"). Each service keeps its own events, written with its changes; this route
//! asks the gateway's table and each backend's for the same keyset page and merges
//! them in (at, id) order, so a page is exact however the events are spread.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cudly_common::ApiError;
use cudly_common::audit::{self, Query};
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use cudly_proto::audit::v1 as pb;
use cudly_proto::convert::time;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_proto::planner::v1::planner_service_client::PlannerServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ErrorBody, GatewayError, HttpResult, grpc_error};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// Page size when the request names none.
const DEFAULT_LIMIT: u32 = 100;
/// The header carrying the next page's cursor (every format).
const NEXT_CURSOR: &str = "x-next-cursor";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export_audit))
}

/// Filters of the export; an unknown one is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// RFC 3339; events at or after.
    #[serde(default)]
    pub since: Option<String>,
    /// RFC 3339; events before.
    #[serde(default)]
    pub until: Option<String>,
    /// Exact actor, e.g. `key:alice`.
    #[serde(default)]
    pub actor: Option<String>,
    /// Exact action (`account.update`) or every action on a target type (`account.*`).
    #[serde(default)]
    pub action: Option<String>,
    /// `json` (default), `jsonl` or `csv`.
    #[serde(default)]
    pub format: Option<String>,
    /// 1 to 1000 (default 100).
    #[serde(default)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One recorded change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: String,
    pub at: Option<DateTime<Utc>>,
    /// The service that recorded it: gateway, accounts, planner, executor.
    pub service: String,
    /// `key:<name>`, `token`, `service:<name>`.
    pub actor: String,
    /// The acting API key's id (`bootstrap` for the bootstrap key).
    pub actor_key_id: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub request_id: Option<String>,
    /// Hex SHA-256 of the target's (redacted) state before and after.
    pub before_digest: Option<String>,
    pub after_digest: Option<String>,
}

/// A page of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    JsonLines,
    Csv,
}

impl Format {
    fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        match text.map(str::trim) {
            None | Some("json") => Ok(Format::Json),
            Some("jsonl") => Ok(Format::JsonLines),
            Some("csv") => Ok(Format::Csv),
            Some(_) => Err(ApiError::invalid_field(
                "format",
                "must be json, jsonl or csv",
            )),
        }
    }
}

/// Exports the audit trail of every service, oldest first (admin).
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "audit",
    params(
        ("since" = Option<String>, Query, description = "RFC 3339: events at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339: events before"),
        ("actor" = Option<String>, Query, description = "exact actor, e.g. key:alice"),
        ("action" = Option<String>, Query, description = "an action (account.update) or a target type's every action (account.*)"),
        ("format" = Option<String>, Query, description = "json (default) | jsonl | csv"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "a page of events; the next page's cursor also in X-Next-Cursor", body = AuditPage),
        (status = 400, description = "an unknown filter, a bad time, format, limit or cursor", body = ErrorBody),
        (status = 401, description = "missing or unknown key", body = ErrorBody),
        (status = 403, description = "not an admin key", body = ErrorBody),
        (status = 503, description = "a service unavailable", body = ErrorBody),
    ),
)]
async fn export_audit(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(request): ApiQuery<AuditQuery>,
) -> HttpResult<Response> {
    principal.require_admin()?;
    let format = Format::parse(request.format.as_deref())?;
    let query = query_of(&request)?;
    let events = merged_page(&state, &query).await?;
    let next_cursor = (events.len() == query.limit as usize)
        .then(|| events.last().map(cursor_of))
        .flatten();
    let views: Vec<AuditEventView> = events.into_iter().map(view).collect();
    let mut response = match format {
        Format::Json => ApiJson(AuditPage {
            events: views,
            next_cursor: next_cursor.clone(),
        })
        .into_response(),
        Format::JsonLines => {
            let mut body = String::new();
            for event in &views {
                body.push_str(&serde_json::to_string(event).map_err(|_| ApiError::internal())?);
                body.push('\n');
            }
            with_type(body, "application/x-ndjson")
        }
        Format::Csv => with_type(csv_of(&views)?, "text/csv; charset=utf-8"),
    };
    if let Some(cursor) = next_cursor
        && let Ok(value) = HeaderValue::from_str(&cursor)
    {
        response.headers_mut().insert(NEXT_CURSOR, value);
    }
    Ok(response)
}

fn with_type(body: String, content_type: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (headers, body).into_response()
}

/// Reads the filters, naming a bad one.
fn query_of(request: &AuditQuery) -> Result<Query, ApiError> {
    let time = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| {
                DateTime::parse_from_rfc3339(text.trim())
                    .map(|time| time.with_timezone(&Utc))
                    .map_err(|_| ApiError::invalid_field(field, "must be an RFC 3339 time"))
            })
            .transpose()
    };
    let limit = match request.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=audit::MAX_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid_field("limit", format!("must be 1 to {}", audit::MAX_PAGE))
            })?,
    };
    let after = request.cursor.as_deref().map(parse_cursor).transpose()?;
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    Ok(Query {
        since: time("since", &request.since)?,
        until: time("until", &request.until)?,
        actor: text(&request.actor),
        action: text(&request.action),
        after,
        limit,
    })
}

/// A cursor is the last event's time (RFC 3339, nanoseconds) and id: `<at>_<id>`.
fn cursor_of(event: &pb::AuditEvent) -> String {
    let at = event
        .at
        .as_ref()
        .and_then(time)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default();
    format!("{at}_{}", event.id)
}

fn parse_cursor(text: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::invalid_field("cursor", "is not a cursor this API returned");
    let (at, id) = text.trim().rsplit_once('_').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, id))
}

/// Returns the first `query.limit` events after the cursor across every service.
async fn merged_page(state: &AppState, query: &Query) -> HttpResult<Vec<pb::AuditEvent>> {
    let request = query.to_wire();
    let own = async {
        let mut conn = state.db().await?;
        audit::list(&mut conn, query)
            .await
            .map_err(GatewayError::db("list audit events"))
    };
    let accounts = async {
        AccountsServiceClient::new(state.clients.accounts.clone())
            .list_audit_events(request.clone())
            .await
            .map_err(|status| grpc_error("accounts", status))
    };
    let planner = async {
        PlannerServiceClient::new(state.clients.planner.clone())
            .list_audit_events(request.clone())
            .await
            .map_err(|status| grpc_error("planner", status))
    };
    let executor = async {
        ExecutorServiceClient::new(state.clients.executor.clone())
            .list_audit_events(request.clone())
            .await
            .map_err(|status| grpc_error("executor", status))
    };
    let (own, accounts, planner, executor) = tokio::join!(own, accounts, planner, executor);
    let mut events: Vec<pb::AuditEvent> = own?;
    for reply in [accounts?, planner?, executor?] {
        events.extend(reply.into_inner().events);
    }
    events.sort_by(|a, b| {
        let key = |event: &pb::AuditEvent| (event.at.as_ref().and_then(time), event.id.clone());
        key(a).cmp(&key(b))
    });
    events.truncate(query.limit as usize);
    Ok(events)
}

fn view(event: pb::AuditEvent) -> AuditEventView {
    AuditEventView {
        at: event.at.as_ref().and_then(time),
        id: event.id,
        service: event.service,
        actor: event.actor,
        actor_key_id: event.actor_key_id,
        action: event.action,
        target_type: event.target_type,
        target_id: event.target_id,
        request_id: event.request_id,
        before_digest: event.before_digest,
        after_digest: event.after_digest,
    }
}

/// Renders the events as CSV (RFC 4180 quoting by the csv crate).
fn csv_of(events: &[AuditEventView]) -> Result<String, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let internal = |_| ApiError::internal();
    writer
        .write_record([
            "id",
            "at",
            "service",
            "actor",
            "actor_key_id",
            "action",
            "target_type",
            "target_id",
            "request_id",
            "before_digest",
            "after_digest",
        ])
        .map_err(internal)?;
    for event in events {
        let at = event
            .at
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default();
        let optional = |value: &Option<String>| value.clone().unwrap_or_default();
        writer
            .write_record([
                event.id.clone(),
                at,
                event.service.clone(),
                event.actor.clone(),
                optional(&event.actor_key_id),
                event.action.clone(),
                event.target_type.clone(),
                event.target_id.clone(),
                optional(&event.request_id),
                optional(&event.before_digest),
                optional(&event.after_digest),
            ])
            .map_err(internal)?;
    }
    let bytes = writer.into_inner().map_err(|_| ApiError::internal())?;
    String::from_utf8(bytes).map_err(|_| ApiError::internal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_refused() {
        let id = Uuid::new_v4();
        let at = Utc::now();
        let event = pb::AuditEvent {
            id: id.to_string(),
            at: Some(cudly_proto::convert::timestamp(at)),
            ..Default::default()
        };
        let (parsed_at, parsed_id) = parse_cursor(&cursor_of(&event)).unwrap();
        assert_eq!(parsed_id, id);
        assert_eq!(parsed_at, at);
        for forged in ["", "yesterday_x", "2026-01-01T00:00:00Z"] {
            assert!(parse_cursor(forged).is_err(), "{forged}");
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let event = AuditEventView {
            id: "1".into(),
            at: None,
            service: "gateway".into(),
            actor: "key:a,b \"c\"".into(),
            actor_key_id: None,
            action: "key.create".into(),
            target_type: "key".into(),
            target_id: "k".into(),
            request_id: None,
            before_digest: None,
            after_digest: None,
        };
        let text = csv_of(&[event]).unwrap();
        assert!(text.contains("\"key:a,b \"\"c\"\"\""), "{text}");
        assert_eq!(text.lines().count(), 2);
    }
}
