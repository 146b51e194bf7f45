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

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use cudly_common::audit::{Actor, CURRENT_ACTOR};
use cudly_common::{ApiError, ErrorCode};
use cudly_proto::accounts::v1 as accounts_pb;
use cudly_proto::accounts::v1::accounts_service_client::AccountsServiceClient;
use cudly_proto::executor::v1 as pb;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_vocabulary::{AwsService, Recommendation};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::auth::{self, Principal};
use crate::error::grpc_error;
use crate::limits;
use crate::routes::executions::{self, ExecutionItemView, ExecutionView, execution_view};
use crate::state::AppState;

/// The page's path; also the CSRF cookie's path.
const PAGE_PATH: &str = "/approve";

/// The double-submit cookie.
pub const CSRF_COOKIE: &str = "cudly_csrf";

/// No script, no external resource, inline styles only; forms post to this origin only;
/// never framed (clickjacking an Approve button).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A decision form is a few hundred bytes; anything much larger is not one.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Accounts named on one page; past this, the others show their ids (a plan may buy in
/// many accounts, and each name is one call to the accounts service).
const MAX_NAMED_ACCOUNTS: usize = 50;

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

// ---------------------------------------------------------------------------------------
// Handlers

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
        return problem_page(Problem::incomplete_link(), None);
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
        Some(FormView {
            action: format!("{PAGE_PATH}/{id}"),
            token,
            csrf: new_csrf_value(),
            require_key,
        })
    } else {
        None
    };
    let names = account_names(&state, &account_ids(&execution)).await;
    let cookie = match &form {
        Some(form) => match csrf_cookie(&form.csrf, came_over_https(&headers)) {
            Some(cookie) => Some(cookie),
            None => return problem_page(ApiError::internal().into(), None),
        },
        None => None,
    };
    let page = approval_page(&execution, &names, form, query.done, Utc::now());
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
        Some("approve") => true,
        Some("cancel") => false,
        _ => {
            return problem_page(
                ApiError::invalid("decision must be approve or cancel").into(),
                Some(NOTHING_DECIDED),
            );
        }
    };
    let Some(token) = form
        .token
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
    else {
        return problem_page(Problem::incomplete_link(), Some(NOTHING_DECIDED));
    };
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
            executions::decide(&state, id, approve, Some(token.clone()), principal.as_ref()),
        )
        .await;
    if let Err(error) = decided {
        return problem_page(error.0.into(), Some(NOTHING_DECIDED));
    }
    see_other_to_outcome(id, &token, came_over_https(&headers))
}

/// What an error page after a refused POST adds.
const NOTHING_DECIDED: &str = "Nothing was approved or canceled by this request.";

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
fn see_other_to_outcome(id: Uuid, token: &str, https: bool) -> Response {
    let query = serde_urlencoded::to_string([("token", token), ("done", "1")]).unwrap_or_default();
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

// ---------------------------------------------------------------------------------------
// CSRF and origin checks

/// Returns a new CSRF value: 32 random bytes in hex.
fn new_csrf_value() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Returns the `Set-Cookie` value carrying `value`; `Secure` when the page came over
/// https (through a TLS-terminating proxy that says so).
fn csrf_cookie(value: &str, https: bool) -> Option<HeaderValue> {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{CSRF_COOKIE}={value}; Path={PAGE_PATH}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

/// Returns the `Set-Cookie` value that removes the CSRF cookie.
fn cleared_csrf_cookie(https: bool) -> Option<HeaderValue> {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{CSRF_COOKIE}=; Path={PAGE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

/// True when the request reached the proxy in front of the gateway over https. The
/// gateway itself speaks plain HTTP; a spoofed header only makes the cookie stricter.
fn came_over_https(headers: &HeaderMap) -> bool {
    header_text(headers, "x-forwarded-proto")
        .and_then(|value| value.split(',').next())
        .is_some_and(|scheme| scheme.trim().eq_ignore_ascii_case("https"))
}

/// Returns the first `cudly_csrf` cookie the request carries (the most specific path
/// comes first, so a broader cookie planted elsewhere does not win).
fn csrf_from_cookies(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// True when the cookie and the field are present, non-empty and equal, compared in
/// constant time.
fn csrf_matches(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(cookie), Some(field)) if !cookie.is_empty() => {
            bool::from(cookie.as_bytes().ct_eq(field.trim().as_bytes()))
        }
        _ => false,
    }
}

/// True unless the browser says the form came from elsewhere: an `Origin` (browsers send
/// it on every form POST) that is not this host, or `Sec-Fetch-Site: cross-site`. A
/// request without either is a non-browser client, which the CSRF cookie still binds.
/// `X-Forwarded-Host` counts as this host too: a cross-site form cannot set it.
fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = header_text(headers, "sec-fetch-site").map(str::trim);
    if fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some((scheme, authority)) = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.trim().split_once("://"))
    else {
        // `Origin: null`: a browser hides the origin where a referrer policy says
        // no-referrer (a user's privacy setting may), and a sandboxed frame elsewhere
        // sends it too. Only the browser's own `Sec-Fetch-Site`, which no page can set,
        // tells the first from the second.
        return fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("same-origin"));
    };
    let origin = normalized_authority(scheme, authority);
    [
        header_text(headers, header::HOST.as_str()),
        header_text(headers, "x-forwarded-host").and_then(|value| value.split(',').next()),
    ]
    .into_iter()
    .flatten()
    .any(|host| normalized_authority(scheme, host) == origin)
}

/// Returns `authority` in lowercase without the scheme's default port.
fn normalized_authority(scheme: &str, authority: &str) -> String {
    let authority = authority.trim().trim_end_matches('/').to_ascii_lowercase();
    let default_port = match scheme.trim().to_ascii_lowercase().as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    match default_port.and_then(|port| authority.strip_suffix(port)) {
        Some(without_port) => without_port.to_owned(),
        None => authority,
    }
}

/// True for a form-urlencoded body, the only kind the page's forms send.
fn is_form(headers: &HeaderMap) -> bool {
    header_text(headers, header::CONTENT_TYPE.as_str())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

// ---------------------------------------------------------------------------------------
// Accounts

/// A target account as the page names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccountName {
    name: String,
    /// The AWS account number.
    number: Option<String>,
}

/// Returns the distinct accounts the execution buys in, in order.
fn account_ids(execution: &ExecutionView) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let accounts = execution
        .children
        .iter()
        .filter_map(|child| child.cloud_account_id.as_ref())
        .chain(execution.cloud_account_id.as_ref());
    for id in accounts {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

/// Returns the names of the accounts that the accounts service knows; an account it
/// cannot name is shown by its id. A page without names beats no page.
async fn account_names(state: &AppState, ids: &[String]) -> HashMap<String, AccountName> {
    let mut client = AccountsServiceClient::new(state.clients.accounts.clone());
    let mut names = HashMap::new();
    for id in ids.iter().take(MAX_NAMED_ACCOUNTS) {
        match client
            .get_account(accounts_pb::GetAccountRequest { id: id.clone() })
            .await
        {
            Ok(account) => {
                let account = account.into_inner();
                names.insert(
                    id.clone(),
                    AccountName {
                        name: account.name,
                        number: Some(account.external_id).filter(|number| !number.is_empty()),
                    },
                );
            }
            Err(status) => {
                tracing::debug!(account_id = %id, code = ?status.code(), "approval page shows an account by its id");
                // Down for one is down for all: do not wait for each in turn.
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) {
                    break;
                }
            }
        }
    }
    names
}

// ---------------------------------------------------------------------------------------
// The page

#[derive(Template)]
#[template(path = "approval.html")]
struct ApprovalPage {
    title: &'static str,
    id: String,
    /// Still waiting for a decision.
    pending: bool,
    status_label: &'static str,
    status_tone: &'static str,
    created_by: String,
    created_at: Option<String>,
    /// While pending: when the link stops approving.
    expiry: Option<ExpiryView>,
    /// Once decided (anything but pending).
    outcome: Option<OutcomeView>,
    /// The page the decision redirected to.
    just_decided: bool,
    total_upfront: String,
    total_monthly: Option<String>,
    total_commitment: Option<String>,
    total_items: usize,
    account_count: usize,
    accounts: Vec<AccountRow>,
    items: Vec<ItemRow>,
    /// While approvable: the Approve and Cancel forms.
    form: Option<FormView>,
}

struct ExpiryView {
    at: String,
    relative: String,
}

struct OutcomeView {
    /// The execution's status, for `data-status`.
    status: String,
    heading: &'static str,
    tone: &'static str,
    message: String,
    /// Approved and not finished: a reload shows progress.
    in_progress: bool,
}

struct FormView {
    action: String,
    token: String,
    csrf: String,
    require_key: bool,
}

struct AccountRow {
    name: String,
    number: Option<String>,
    item_count: usize,
    upfront: String,
    status: Option<&'static str>,
}

struct ItemRow {
    title: String,
    detail: String,
    account: String,
    count: u32,
    term: String,
    payment: String,
    priced: bool,
    upfront: String,
    monthly: String,
    /// The item's status once the execution is decided.
    status: Option<&'static str>,
    status_tone: &'static str,
}

/// Builds the page of `execution` (a root with its children and their items).
fn approval_page(
    execution: &ExecutionView,
    names: &HashMap<String, AccountName>,
    form: Option<FormView>,
    just_decided: bool,
    now: DateTime<Utc>,
) -> ApprovalPage {
    let pending = execution.status == "pending";
    let currency = execution
        .quote
        .as_ref()
        .map_or("USD", |quote| quote.currency.as_str())
        .to_owned();
    let name_of = |id: &str| {
        names.get(id).cloned().unwrap_or_else(|| AccountName {
            name: id.to_owned(),
            number: None,
        })
    };
    // A root's items are on its children; a child (or an old root) holds its own.
    let buyers: Vec<&ExecutionView> = if execution.children.is_empty() {
        vec![execution]
    } else {
        execution.children.iter().collect()
    };
    let mut items = Vec::new();
    let mut accounts = Vec::new();
    for buyer in &buyers {
        let account = buyer.cloud_account_id.as_deref().map(name_of);
        for item in &buyer.items {
            items.push(item_row(
                item,
                account.as_ref().map_or("", |account| account.name.as_str()),
                pending,
                &currency,
            ));
        }
        if let Some(account) = account {
            accounts.push(AccountRow {
                name: account.name,
                number: account.number,
                item_count: buyer.items.len(),
                upfront: money(buyer.total_upfront_cost, &currency),
                status: (!pending).then(|| status_label(&buyer.status)),
            });
        }
    }
    if items.is_empty() {
        // Nothing itemised yet: the requested lines, unpriced.
        items = execution
            .recommendations
            .iter()
            .map(|line| line_row(line, ""))
            .collect();
    }
    let expiry = execution
        .approval_expires_at
        .filter(|_| pending)
        .map(|at| ExpiryView {
            at: when(at),
            relative: relative(at - now),
        });
    ApprovalPage {
        title: page_title(&execution.status),
        id: execution.id.clone().unwrap_or_default(),
        pending,
        status_label: status_label(&execution.status),
        status_tone: status_tone(&execution.status),
        created_by: actor_label(&execution.created_by),
        created_at: execution.created_at.map(when),
        expiry,
        outcome: outcome(execution),
        just_decided: just_decided && !pending,
        total_upfront: money(execution.total_upfront_cost, &currency),
        total_monthly: execution
            .quote
            .as_ref()
            .map(|quote| money(quote.monthly, &currency)),
        total_commitment: execution
            .quote
            .as_ref()
            .map(|quote| money(quote.total_commitment, &currency)),
        total_items: items.len(),
        account_count: accounts.len(),
        accounts,
        items,
        form,
    }
}

fn item_row(item: &ExecutionItemView, account: &str, pending: bool, currency: &str) -> ItemRow {
    let quote = item
        .quote
        .as_ref()
        .map(|quote| (quote.upfront, quote.monthly));
    let mut row = match &item.recommendation {
        Some(line) => line_row(line, account),
        None => ItemRow {
            title: format!("Item {}", item.index + 1),
            detail: String::new(),
            account: account.to_owned(),
            count: item.quote.as_ref().map_or(0, |quote| quote.count),
            term: String::new(),
            payment: String::new(),
            priced: false,
            upfront: String::new(),
            monthly: String::new(),
            status: None,
            status_tone: "neutral",
        },
    };
    if let Some((upfront, monthly)) = quote {
        row.priced = true;
        row.upfront = money(upfront, currency);
        row.monthly = money(monthly, currency);
    }
    if !pending {
        row.status = Some(item_status_label(&item.status));
        row.status_tone = item_status_tone(&item.status);
    }
    row
}

/// Returns the row of a line, unpriced (its item's quote, when there is one, is added
/// by [`item_row`]).
fn line_row(line: &Recommendation, account: &str) -> ItemRow {
    let mut detail: Vec<String> = Vec::new();
    detail.extend(line.engine.clone());
    detail.extend(line.platform.clone());
    detail.push(line.region.clone());
    let details = &line.details;
    if details.multi_az == Some(true) {
        detail.push("Multi-AZ".to_owned());
    }
    if let Some(zone) = &details.availability_zone {
        detail.push(format!("zone {zone}"));
    }
    if details.tenancy.as_deref() == Some("dedicated") {
        detail.push("dedicated tenancy".to_owned());
    }
    if details.offering_class.as_deref() == Some("convertible") {
        detail.push("convertible".to_owned());
    }
    if let Some(hourly) = &details.hourly_commitment {
        detail.push(format!("${hourly} per hour each"));
    }
    ItemRow {
        title: format!("{} · {}", service_label(line.service), line.resource_type),
        detail: detail.join(" · "),
        account: account.to_owned(),
        count: line.count,
        term: if line.term == 1 {
            "1 year".to_owned()
        } else {
            format!("{} years", line.term)
        },
        payment: payment_label(&line.payment).to_owned(),
        priced: false,
        upfront: String::new(),
        monthly: String::new(),
        status: None,
        status_tone: "neutral",
    }
}

fn service_label(service: AwsService) -> &'static str {
    match service {
        AwsService::Ec2 => "EC2 Reserved Instance",
        AwsService::SavingsPlans => "Savings Plan",
        AwsService::Rds => "RDS reserved DB instance",
        AwsService::ElastiCache => "ElastiCache reserved node",
        AwsService::MemoryDb => "MemoryDB reserved node",
        AwsService::OpenSearch => "OpenSearch reserved instance",
        AwsService::Redshift => "Redshift reserved node",
    }
}

fn payment_label(payment: &str) -> &str {
    match payment {
        "all-upfront" => "All upfront",
        "partial-upfront" => "Partial upfront",
        "no-upfront" => "No upfront",
        other => other,
    }
}

fn page_title(status: &str) -> &'static str {
    match status {
        "pending" => "Approve this purchase?",
        "approved" | "running" => "Purchase approved",
        "completed" => "Purchase complete",
        "partially_completed" => "Purchase partly complete",
        "failed" => "Purchase failed",
        "canceled" => "Purchase canceled",
        "expired" => "Approval expired",
        _ => "Purchase",
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "pending" => "Waiting for approval",
        "approved" => "Approved, buying soon",
        "running" => "Approved, buying now",
        "completed" => "Bought",
        "partially_completed" => "Partly bought",
        "failed" => "Failed",
        "canceled" => "Canceled",
        "expired" => "Expired",
        _ => "Unknown status",
    }
}

fn status_tone(status: &str) -> &'static str {
    match status {
        "pending" => "pending",
        "approved" | "running" | "completed" => "good",
        "partially_completed" | "failed" => "bad",
        _ => "neutral",
    }
}

fn item_status_label(status: &str) -> &'static str {
    match status {
        "pending" => "Not bought yet",
        "in_flight" => "Buying",
        "bought" => "Bought",
        "failed" => "Failed",
        "skipped" => "Skipped",
        _ => "Unknown",
    }
}

fn item_status_tone(status: &str) -> &'static str {
    match status {
        "bought" | "in_flight" => "good",
        "failed" => "bad",
        _ => "neutral",
    }
}

/// Returns how a person reads an actor: `key:ops` is the key "ops".
fn actor_label(actor: &str) -> String {
    match actor {
        ACTOR_TOKEN => "the approval link".to_owned(),
        "planner" => "automatic purchase".to_owned(),
        _ => match actor.strip_prefix("key:") {
            Some(name) => format!("{name} (API key)"),
            None => actor.to_owned(),
        },
    }
}

/// The outcome of a decided execution; none while it is pending.
fn outcome(execution: &ExecutionView) -> Option<OutcomeView> {
    let approved = match execution.approved_by.as_deref() {
        Some(ACTOR_TOKEN) => "Approved through the approval link".to_owned(),
        Some(actor) => format!("Approved by {}", actor_label(actor)),
        None => "Approved".to_owned(),
    };
    let failure = execution
        .error
        .as_deref()
        .map(|error| format!(" ({error})"))
        .unwrap_or_default();
    let (heading, message) = match execution.status.as_str() {
        "pending" => return None,
        "approved" | "running" => (
            "Approved, buying now",
            format!("{approved}. CUDly is buying the commitments."),
        ),
        "completed" => (
            "Approved and bought",
            format!("{approved}. Every commitment was bought."),
        ),
        "partially_completed" => (
            "Partly bought",
            format!("{approved}, but only part was bought{failure}. See the items below."),
        ),
        "failed" => (
            "The purchase failed",
            format!("{approved}, but the purchase failed{failure}."),
        ),
        "canceled" => (
            "Canceled",
            "This purchase was canceled. Nothing was bought.".to_owned(),
        ),
        "expired" => (
            "Expired",
            "Nobody decided before the approval window closed. Nothing was bought.".to_owned(),
        ),
        other => ("Decided", format!("This purchase is {other}.")),
    };
    Some(OutcomeView {
        status: execution.status.clone(),
        heading,
        tone: status_tone(&execution.status),
        message,
        in_progress: matches!(execution.status.as_str(), "approved" | "running"),
    })
}

/// Returns `amount` as the CLI shows it ([`cudly_vocabulary::format_money`]).
pub fn money(amount: f64, currency: &str) -> String {
    cudly_vocabulary::format_money(amount, currency)
}

/// Returns a time as `2026-11-23 10:00 UTC`.
fn when(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Returns how far ahead `delta` is, e.g. `in 6 days, 23 hours`.
fn relative(delta: TimeDelta) -> String {
    let minutes = delta.num_minutes();
    if minutes <= 0 {
        return "any moment now".to_owned();
    }
    let (days, hours) = (delta.num_days(), delta.num_hours() % 24);
    let plural = |count: i64, unit: &str| {
        if count == 1 {
            format!("1 {unit}")
        } else {
            format!("{count} {unit}s")
        }
    };
    if days > 0 && hours > 0 {
        format!("in {}, {}", plural(days, "day"), plural(hours, "hour"))
    } else if days > 0 {
        format!("in {}", plural(days, "day"))
    } else if delta.num_hours() > 0 {
        format!("in {}", plural(delta.num_hours(), "hour"))
    } else {
        format!("in {}", plural(minutes, "minute"))
    }
}

// ---------------------------------------------------------------------------------------
// Answers

#[derive(Template)]
#[template(path = "approval_error.html")]
struct ErrorPage {
    title: &'static str,
    status: u16,
    detail: Option<String>,
    hint: Option<&'static str>,
    note: Option<&'static str>,
}

/// Why a page cannot be shown or a decision was refused.
struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: Option<String>,
    hint: Option<&'static str>,
    retry_after: Option<Duration>,
}

impl Problem {
    fn new(status: StatusCode, title: &'static str, detail: &str) -> Self {
        Self {
            status,
            title,
            detail: Some(detail.to_owned()),
            hint: None,
            retry_after: None,
        }
    }

    fn no_such_link() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "No such approval link",
            "Check that the whole link was copied.",
        )
    }

    fn incomplete_link() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "This approval link is incomplete",
            "The link has no approval token. Check that the whole link was copied.",
        )
    }

    fn expired_form() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Open the approval link again to decide.",
        )
    }

    fn foreign_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form was not sent from the approval page",
            "Open the approval link and decide there.",
        )
    }

    fn too_many(wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Wait a minute, then open the approval link again.",
            )
        }
    }
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let title = match status {
            StatusCode::BAD_REQUEST => "This request is not valid",
            StatusCode::UNAUTHORIZED => "That API key was not accepted",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "No such purchase",
            StatusCode::CONFLICT => "Already decided",
            StatusCode::GONE => "This approval link has expired",
            StatusCode::PAYLOAD_TOO_LARGE => "The form is too large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "The form could not be read",
            StatusCode::UNPROCESSABLE_ENTITY => "Refused by a spend limit",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            StatusCode::SERVICE_UNAVAILABLE => "CUDly is unavailable",
            StatusCode::GATEWAY_TIMEOUT => "CUDly took too long to answer",
            _ => "Something went wrong",
        };
        let hint = match status {
            StatusCode::CONFLICT => Some("Open the approval link again to see where it stands."),
            StatusCode::GONE => Some("Ask for a new purchase to be requested."),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                Some("Try again in a minute.")
            }
            _ => None,
        };
        // A 500 shows nothing of its cause; the cause goes to the log, once.
        let detail = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            if error.message != ApiError::internal().message {
                tracing::error!(detail = %error.message, code = error.code.as_str(), "approval page failed");
            }
            None
        } else {
            Some(sentence(&error.message))
        };
        Self {
            status,
            title,
            detail,
            hint,
            retry_after: None,
        }
    }
}

/// Returns an API message (lowercase, no period; never a value that was sent) as a
/// sentence.
fn sentence(message: &str) -> String {
    let mut characters = message.trim().chars();
    let Some(first) = characters.next() else {
        return String::new();
    };
    let mut text: String = first.to_uppercase().chain(characters).collect();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// Returns the HTML page of `problem`, with `note` (after a refused POST).
fn problem_page(problem: Problem, note: Option<&'static str>) -> Response {
    let page = ErrorPage {
        title: problem.title,
        status: problem.status.as_u16(),
        detail: problem.detail,
        hint: problem.hint,
        note,
    };
    let mut response = render(problem.status, &page, None);
    if let Some(wait) = problem.retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

/// Renders `template` as the body of a `status` answer, with the page's headers and an
/// optional cookie.
fn render<T: Template>(status: StatusCode, template: &T, cookie: Option<HeaderValue>) -> Response {
    let mut response = match template.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "approval page template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Html(FALLBACK_PAGE)).into_response()
        }
    };
    let headers = response.headers_mut();
    page_headers(headers);
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// The page when even the error template fails.
const FALLBACK_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Something went wrong · CUDly</title></head><body><main><h1>Something went wrong</h1><p>Nothing was approved or canceled. Try again in a minute.</p></main></body></html>";

/// The headers of every answer of the page: the CSP, no framing, no referrer outside
/// this origin (the URL holds the token), no caching. Not `no-referrer`: with it a
/// browser sends `Origin: null` on the form's POST, where the origin check wants the
/// real one.
fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_as_the_cli_shows_it() {
        assert_eq!(money(1234.5, "USD"), "$1,234.50");
        assert_eq!(money(0.0, "USD"), "$0.00");
        assert_eq!(money(2469.0, ""), "$2,469.00");
        assert_eq!(money(1_000_000.004, "USD"), "$1,000,000.00");
        assert_eq!(money(999.999, "USD"), "$1,000.00");
        assert_eq!(money(-12.3, "USD"), "-$12.30");
        assert_eq!(money(12.3, "EUR"), "12.30 EUR");
        assert_eq!(money(f64::NAN, "USD"), "n/a");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn only_a_form_from_this_origin_passes_the_origin_check() {
        assert!(
            same_origin(&headers(&[("host", "127.0.0.1:8080")])),
            "no Origin: a non-browser client"
        );
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(same_origin(&headers(&[
            ("host", "cudly.example.com"),
            ("origin", "https://CUDLY.example.com:443"),
        ])));
        assert!(same_origin(&headers(&[
            ("host", "gateway:8080"),
            ("x-forwarded-host", "cudly.example.com"),
            ("origin", "https://cudly.example.com"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8081"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(
            same_origin(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "null"),
                ("sec-fetch-site", "same-origin"),
            ])),
            "a browser hiding the origin of its own same-origin form"
        );
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "same-site"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
    }

    #[test]
    fn the_csrf_cookie_and_field_must_both_be_there_and_equal() {
        let value = new_csrf_value();
        assert_eq!(value.len(), 64);
        assert_ne!(value, new_csrf_value());
        let cookie_header = format!("other=1; {CSRF_COOKIE}={value}; x=y");
        let cookies = headers(&[("cookie", cookie_header.as_str())]);
        let cookie = csrf_from_cookies(&cookies);
        assert_eq!(cookie.as_deref(), Some(value.as_str()));
        assert!(csrf_matches(cookie.as_deref(), Some(value.as_str())));
        assert!(!csrf_matches(
            cookie.as_deref(),
            Some(new_csrf_value().as_str())
        ));
        assert!(!csrf_matches(cookie.as_deref(), Some("")));
        assert!(!csrf_matches(cookie.as_deref(), None));
        assert!(!csrf_matches(None, Some(value.as_str())));
        assert!(!csrf_matches(Some(""), Some("")));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_https() {
        let plain = csrf_cookie("abc", false).unwrap();
        assert_eq!(
            plain.to_str().unwrap(),
            "cudly_csrf=abc; Path=/approve; HttpOnly; SameSite=Strict"
        );
        let secure = csrf_cookie("abc", true).unwrap();
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
        assert!(came_over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!came_over_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!came_over_https(&HeaderMap::new()));
    }

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

    #[test]
    fn errors_read_as_sentences_and_a_500_shows_no_detail() {
        let gone: Problem = ApiError::new(ErrorCode::Gone, "approval token expired").into();
        assert_eq!(gone.status, StatusCode::GONE);
        assert_eq!(gone.detail.as_deref(), Some("Approval token expired."));
        let mut internal = ApiError::internal();
        internal.message = "relation executions does not exist".to_owned();
        let internal: Problem = internal.into();
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(internal.detail.is_none());
    }

    #[test]
    fn expiry_is_said_in_days_and_hours() {
        assert_eq!(relative(TimeDelta::days(7)), "in 7 days");
        assert_eq!(relative(TimeDelta::hours(30)), "in 1 day, 6 hours");
        assert_eq!(relative(TimeDelta::minutes(90)), "in 1 hour");
        assert_eq!(relative(TimeDelta::minutes(5)), "in 5 minutes");
        assert_eq!(relative(TimeDelta::seconds(-5)), "any moment now");
    }

    #[test]
    fn the_error_page_never_shows_a_token_and_escapes_what_it_shows() {
        let page = ErrorPage {
            title: "Not allowed",
            status: 403,
            detail: Some("<script>alert(1)</script>".to_owned()),
            hint: None,
            note: Some(NOTHING_DECIDED),
        };
        let html = page.render().unwrap();
        // Escaped (askama writes numeric entities), so never markup.
        assert!(html.contains("alert(1)"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("<html lang=\"en\">"));
    }
}
