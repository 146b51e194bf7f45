//! The approval page (issue 21; docs/APPROVAL_PAGE.md): the HTML form a person opens
//! from an approval link, `GET /approve/{id}?token=`, and its decision,
//! `POST /approve/{id}`.
//!
//! - A GET only shows: the executor's PreviewApproval (the same check of the token as
//!   `GET /api/purchases/approve/{id}`), the guardrails (whether the form must ask for
//!   the approver's own key) and the accounts' names. Mail scanners and link previews
//!   that fetch the link change nothing.
//! - A POST decides through the same `decide` as the JSON token routes, with the token
//!   from the form and, when given, the principal of the API key typed into it.
//!   Post/Redirect/Get: a decision answers 303 to the page with `done=1`, so a reload
//!   is another harmless GET.
//! - A link without a token (what broadcast channels get) shows only a sign-in form:
//!   the approver's API key, posted with `decision=review`, shows the execution as
//!   `GET /api/executions/{id}` would; an admin key also gets the forms, which ask for
//!   the key again (the page keeps none) and decide as that key.
//! - CSRF: a double-submit cookie (`cudly_csrf`, HttpOnly, SameSite=Strict, path
//!   `/approve`) that the GET sets and repeats in a hidden field; a POST needs both,
//!   equal (compared in constant time). A POST whose `Origin` is another origin, or
//!   that a browser marks `Sec-Fetch-Site: cross-site`, is refused first.
//! - Every answer is HTML, errors too (a human page with the right status, never the
//!   token, never a detail of a 500), under a strict Content-Security-Policy: no script
//!   at all, styles inline, forms post only to this origin.
//! - Both routes take the approval-token routes' per-client limit; an API key typed
//!   into the form counts against the failed-authentication limit like a header would.
//!
//! The approval token appears only in the link the approver was given, the hidden
//! fields and the redirect's `Location`; the request span records the path only
//! (crate::middleware::trace_request) and nothing here logs a token or a key.

mod accounts;
mod csrf;
mod errors;
mod format;
mod labels;
mod response;
mod view;

use std::net::IpAddr;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use cudly_common::audit::{Actor, CURRENT_ACTOR};
use cudly_common::{ApiError, ErrorCode};
use cudly_proto::executor::v1 as pb;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{self, Principal};
use crate::error::grpc_error;
use crate::limits;
use crate::routes::executions::{self, ExecutionView, execution_view};
use crate::state::AppState;
use accounts::{account_ids, account_names};
use csrf::{
    came_over_https, cleared_csrf_cookie, csrf_cookie, csrf_from_cookies, csrf_matches, is_form,
    new_csrf_value, same_origin,
};
use errors::{NOTHING_DECIDED, Problem, problem_page};
use response::{page_headers, render};
use view::{FormView, SignInPage, approval_page};

/// The page's path; also the CSRF cookie's path.
const PAGE_PATH: &str = "/approve";

/// A decision form is a few hundred bytes; anything much larger is not one.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Who acts in an approval by token alone (as the executor and the JSON routes record it).
const ACTOR_TOKEN: &str = "token";

/// Returns the approval page's routes, under the approval-token routes' per-client
/// limit. Plain axum routes: they serve HTML and are not part of the OpenAPI document.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/approve/{id}", get(show_page).post(submit_decision))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limit_page_requests,
        ))
}

/// The query of the page: the token, and `done=1` after a decision.
#[derive(Default)]
struct PageQuery {
    token: Option<String>,
    done: bool,
}

impl PageQuery {
    /// Parses the query by hand, so that a malformed or unexpected query is still a
    /// human page rather than an extractor's rejection.
    fn parse(query: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> = query
            .and_then(|query| serde_urlencoded::from_str(query).ok())
            .unwrap_or_default();
        let mut parsed = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "token" if parsed.token.is_none() => {
                    parsed.token = Some(value.trim().to_owned()).filter(|token| !token.is_empty());
                }
                "done" => parsed.done = value == "1",
                _ => {}
            }
        }
        parsed
    }
}

/// `GET /approve/{id}?token=`: shows the execution, its quote and, while it is pending,
/// the Approve and Cancel forms. Acts on nothing.
async fn show_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = Uuid::parse_str(id.trim()) else {
        return problem_page(Problem::no_such_link(), None);
    };
    let query = PageQuery::parse(query.as_deref());
    let Some(token) = query.token else {
        // A link without a token (a broadcast channel's): the approver signs in.
        return sign_in_page(id, query.done, &headers);
    };
    let mut executor = ExecutorServiceClient::new(state.clients.executor.clone());
    let reply = match executor
        .preview_approval(pb::PreviewApprovalRequest {
            id: id.to_string(),
            token: token.clone(),
        })
        .await
    {
        Ok(reply) => reply.into_inner(),
        Err(status) => return problem_page(grpc_error("executor", status).0.into(), None),
    };
    let Some(execution) = reply.execution else {
        tracing::error!(execution_id = %id, "executor previewed an execution but returned none");
        return problem_page(ApiError::internal().into(), None);
    };
    let execution = match execution_view(execution) {
        Ok(execution) => execution,
        Err(error) => return problem_page(error.into(), None),
    };
    let form = if reply.approvable {
        // The executor is the authority on who may approve; the page only asks for the
        // key the executor will want.
        let require_key = match executor.get_guardrails(pb::GetGuardrailsRequest {}).await {
            Ok(guardrails) => guardrails.into_inner().require_different_approver,
            Err(status) => return problem_page(grpc_error("executor", status).0.into(), None),
        };
        Some(decision_form(id, token, require_key))
    } else {
        None
    };
    execution_page(
        &state,
        &execution,
        form,
        query.done,
        came_over_https(&headers),
    )
    .await
}

/// The Approve and Cancel forms of execution `id`, with a fresh CSRF value; `token`
/// is empty for an approver who signed in with a key.
fn decision_form(id: Uuid, token: String, require_key: bool) -> FormView {
    FormView {
        action: format!("{PAGE_PATH}/{id}"),
        token,
        csrf: new_csrf_value(),
        require_key,
    }
}

/// Renders the page of `execution`, with `form` and its CSRF cookie when it may be
/// decided.
async fn execution_page(
    state: &AppState,
    execution: &ExecutionView,
    form: Option<FormView>,
    just_decided: bool,
    https: bool,
) -> Response {
    let cookie = match &form {
        Some(form) => match csrf_cookie(&form.csrf, https) {
            Some(cookie) => Some(cookie),
            None => return problem_page(ApiError::internal().into(), None),
        },
        None => None,
    };
    let names = account_names(state, &account_ids(execution)).await;
    let page = approval_page(execution, &names, form, just_decided, Utc::now());
    render(StatusCode::OK, &page, cookie)
}

/// The decision form's fields. No `Debug`: it holds the token and maybe an API key.
#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
}

/// `POST /approve/{id}` (form-urlencoded `token`, `csrf`, `decision`, optional
/// `api_key`): approves or cancels, then answers 303 to the page with `done=1`.
async fn submit_decision(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let client = limits::client_address(&request);
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let Ok(id) = Uuid::parse_str(id.trim()) else {
        return problem_page(Problem::no_such_link(), Some(NOTHING_DECIDED));
    };
    if !same_origin(&headers) {
        tracing::warn!(execution_id = %id, "approval form posted from another origin refused");
        return problem_page(Problem::foreign_origin(), Some(NOTHING_DECIDED));
    }
    if !is_form(&headers) {
        return problem_page(
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a form (content-type: application/x-www-form-urlencoded)",
            )
            .into(),
            Some(NOTHING_DECIDED),
        );
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return problem_page(
            ApiError::new(ErrorCode::PayloadTooLarge, "the form is too large").into(),
            Some(NOTHING_DECIDED),
        );
    };
    let Ok(form) = serde_urlencoded::from_bytes::<DecisionForm>(&body) else {
        return problem_page(
            ApiError::invalid("the form could not be read").into(),
            Some(NOTHING_DECIDED),
        );
    };
    if !csrf_matches(csrf_from_cookies(&headers).as_deref(), form.csrf.as_deref()) {
        tracing::info!(execution_id = %id, "approval form without a matching csrf cookie refused");
        return problem_page(Problem::expired_form(), Some(NOTHING_DECIDED));
    }
    let approve = match form.decision.as_deref().map(str::trim) {
        Some("approve") => Some(true),
        Some("cancel") => Some(false),
        Some("review") => None,
        _ => {
            return problem_page(
                ApiError::invalid("decision must be approve, cancel or review").into(),
                Some(NOTHING_DECIDED),
            );
        }
    };
    let token = form
        .token
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty());
    let api_key = form
        .api_key
        .as_deref()
        .map(str::trim)
        .filter(|key| !key.is_empty());
    let principal = match api_key {
        Some(key) => match principal_of_key(&state, key, client).await {
            Ok(principal) => Some(principal),
            Err(response) => return response,
        },
        None => None,
    };
    let approve = match (approve, &token, &principal) {
        (None, _, Some(principal)) => {
            return review_page(&state, id, principal, came_over_https(&headers)).await;
        }
        (None, _, None) | (Some(_), None, None) => {
            return problem_page(Problem::key_needed(), Some(NOTHING_DECIDED));
        }
        (Some(approve), _, _) => approve,
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    // Who decides travels to the executor's audit trail, as the auth layer does for the
    // JSON token routes.
    let actor = match &principal {
        Some(principal) => {
            tracing::Span::current().record("principal", principal.name.as_str());
            principal.audit_actor(request_id)
        }
        None => Actor {
            name: ACTOR_TOKEN.to_owned(),
            key_id: None,
            request_id,
        },
    };
    let decided = CURRENT_ACTOR
        .scope(
            actor,
            executions::decide(&state, id, approve, token.clone(), principal.as_ref()),
        )
        .await;
    if let Err(error) = decided {
        return problem_page(error.0.into(), Some(NOTHING_DECIDED));
    }
    see_other_to_outcome(id, token.as_deref(), came_over_https(&headers))
}

/// The page of a link without a token: a form to sign in with an API key, which
/// posts `decision=review`. Shows nothing of the execution.
fn sign_in_page(id: Uuid, just_decided: bool, headers: &HeaderMap) -> Response {
    let csrf = new_csrf_value();
    let Some(cookie) = csrf_cookie(&csrf, came_over_https(headers)) else {
        return problem_page(ApiError::internal().into(), None);
    };
    let page = SignInPage {
        title: "Review a purchase",
        id: id.to_string(),
        action: format!("{PAGE_PATH}/{id}"),
        csrf,
        just_decided,
    };
    render(StatusCode::OK, &page, Some(cookie))
}

/// The page a signed-in approver reviews: the execution as its key may see it, and
/// for an admin key while it is pending, the forms (which ask for the key again: the
/// page keeps none). Acts on nothing.
async fn review_page(state: &AppState, id: Uuid, principal: &Principal, https: bool) -> Response {
    let mut executor = ExecutorServiceClient::new(state.clients.executor.clone());
    let execution = match executor
        .get_execution(pb::GetExecutionRequest { id: id.to_string() })
        .await
    {
        Ok(execution) => execution.into_inner(),
        Err(status) => {
            return problem_page(grpc_error("executor", status).0.into(), None);
        }
    };
    let execution = match execution_view(execution) {
        Ok(execution) => execution,
        Err(error) => return problem_page(error.into(), None),
    };
    let decidable = execution.status == "pending" && principal.require_admin().is_ok();
    let form = decidable.then(|| decision_form(id, String::new(), true));
    execution_page(state, &execution, form, false, https).await
}

/// Returns the principal of an API key typed into the form, under the
/// failed-authentication limit (as `Authorization: Bearer` would be): a client locked
/// out is refused whatever it types, and the failure that spends its budget is 429.
async fn principal_of_key(
    state: &AppState,
    key: &str,
    client: IpAddr,
) -> Result<Principal, Response> {
    if let Some(wait) = state.limits.locked_out(client) {
        return Err(problem_page(Problem::too_many(wait), Some(NOTHING_DECIDED)));
    }
    // The same look-up as a header key: the cache, the bootstrap key, expiry.
    let authenticated = match HeaderValue::from_str(&format!("Bearer {key}")) {
        Ok(value) => {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value);
            auth::authenticate(state, &headers).await
        }
        Err(_) => Err(ApiError::unauthenticated("malformed api key")),
    };
    match authenticated {
        Ok(Some(principal)) => Ok(principal),
        Ok(None)
        | Err(ApiError {
            code: ErrorCode::Unauthenticated,
            ..
        }) => {
            if let Some(wait) = state.limits.failed_authentication(client) {
                tracing::warn!(%client, "failed-authentication limit reached");
                return Err(problem_page(Problem::too_many(wait), Some(NOTHING_DECIDED)));
            }
            Err(problem_page(
                ApiError::unauthenticated("this api key is not valid").into(),
                Some(NOTHING_DECIDED),
            ))
        }
        Err(error) => Err(problem_page(error.into(), Some(NOTHING_DECIDED))),
    }
}

/// Middleware: the approval-token routes' per-client limit, answered with an HTML 429.
async fn limit_page_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let client = limits::client_address(&request);
    if let Some(wait) = state.limits.token_request(client) {
        tracing::warn!(%client, "token-route limit reached");
        return problem_page(Problem::too_many(wait), None);
    }
    next.run(request).await
}

/// The 303 of Post/Redirect/Get, to the page showing the outcome. It also clears the
/// CSRF cookie: one page load, one decision.
fn see_other_to_outcome(id: Uuid, token: Option<&str>, https: bool) -> Response {
    let pairs: Vec<(&str, &str)> = match token {
        Some(token) => vec![("token", token), ("done", "1")],
        // A keyed decision: the sign-in page says it was recorded.
        None => vec![("done", "1")],
    };
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    let location = format!("{PAGE_PATH}/{id}?{query}");
    let (Ok(location), Some(cleared)) =
        (HeaderValue::try_from(location), cleared_csrf_cookie(https))
    else {
        tracing::error!(execution_id = %id, "cannot build the redirect after a decision");
        return problem_page(ApiError::internal().into(), None);
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.append(header::SET_COOKIE, cleared);
    page_headers(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_gives_the_token_and_the_done_flag() {
        let query = PageQuery::parse(Some("token=abc&done=1&utm_source=mail"));
        assert_eq!(query.token.as_deref(), Some("abc"));
        assert!(query.done);
        let empty = PageQuery::parse(Some("token=&done=0"));
        assert!(empty.token.is_none());
        assert!(!empty.done);
        assert!(PageQuery::parse(None).token.is_none());
    }
}
