//! Bad input, end to end (issue 9): hand-written malformed ids, oversized bodies,
//! unknown fields, wrong types, malformed JSON, wrong content types, SQL strings and
//! odd header and query values, sent to every route of the gateway with the whole stack
//! behind it.
//!
//! Every case names the exact 4xx it must get, always with docs/design/API.md's error body
//! (`{"error": "...", plus documented fields}`) and never repeating the injected text.
//! Before and after, every row of every table of the five services' schemas is digested:
//! nothing may change (no table is excluded: reads write nothing, since the bootstrap key
//! has no `last_used_at` to touch). Last, free text made of SQL is shown to be plain data,
//! stored verbatim, and deleted again so that the database ends as it began.

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use common::{SCHEMAS, tables_of};
use cudly_testkit::TestStack;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Text the injected values carry that no reply may repeat (compared in lowercase).
const INJECTED: [&str; 4] = ["drop table", "1=1", "inj3ct", "passwd"];

/// The keys an error body may have (docs/design/API.md, Conventions: Errors).
const ERROR_KEYS: [&str; 5] = ["error", "field", "status", "dependents", "mismatches"];

const JSON: &str = "application/json";

/// The gateway's body limit is 1 MiB (docs/design/API.md).
const MIB: usize = 1024 * 1024;

const ACCOUNT_NAME: &str = "bad input baseline";
const EXTERNAL_ID: &str = "123456789012";
const PLAN_NAME: &str = "bad input plan";
/// A well-formed id that names nothing.
const UNKNOWN_ID: &str = "6f1c2a3b-1111-4222-8333-944455556666";
/// Free text made of SQL: data like any other name.
const SQL_NAME: &str = "Robert'); DROP TABLE cloud_accounts; --";

/// Row count and digest of every table, by `schema.table`.
type Snapshot = BTreeMap<String, (i64, Option<String>)>;

/// The rows the cases could damage: an account with credentials, a plan bound to it, a
/// pending execution of it (and a viewer key, never used).
struct Baseline {
    account: String,
    plan: String,
    execution: String,
    /// The execution's approval token: cases send it with a bad key or a bad body.
    token: String,
}

/// What a case sends as its body.
#[derive(Clone)]
enum Payload {
    Empty,
    Json(Value),
    Raw {
        content_type: Option<String>,
        bytes: Vec<u8>,
    },
    /// That many bytes of JSON, over a plain connection ([`send_oversized`]).
    Oversized(usize),
}

/// One bad request and the exact status it must get.
#[derive(Clone)]
struct Case {
    what: String,
    method: Method,
    path: String,
    /// Sends the admin key; the approval token routes are also tried without one.
    admin: bool,
    headers: Vec<(&'static str, HeaderValue)>,
    payload: Payload,
    expect: u16,
}

impl Case {
    fn new(expect: u16, method: Method, route: impl Into<String>, what: &str) -> Self {
        let path = route.into();
        let shown: String = path.chars().take(90).collect();
        let label = format!("{method} {shown}: {what}");
        Self {
            what: label,
            method,
            path,
            admin: true,
            headers: Vec::new(),
            payload: Payload::Empty,
            expect,
        }
    }

    fn labelled(mut self, more: &str) -> Self {
        self.what = format!("{}, {more}", self.what);
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.payload = Payload::Json(body);
        self
    }

    fn raw(mut self, content_type: Option<&str>, bytes: impl Into<Vec<u8>>) -> Self {
        self.payload = Payload::Raw {
            content_type: content_type.map(str::to_owned),
            bytes: bytes.into(),
        };
        self
    }

    fn oversized(mut self, len: usize) -> Self {
        self.payload = Payload::Oversized(len);
        self
    }

    fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn anonymous(mut self) -> Self {
        self.admin = false;
        self
    }
}

/// A reply: its status, its header lines and its body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_its_exact_4xx_and_changes_nothing() {
    // No AWS call is reachable from a refused request; the sandbox prices the
    // baseline's execution.
    // Every bad key and body comes from one address: lift the abuse limits, which
    // tests of their own cover (services/gateway/tests/gateway.rs).
    let stack = TestStack::start_with_sandbox_and(|config| {
        config.gateway.per_minute.token_requests = std::num::NonZeroU32::MAX;
        config.gateway.per_minute.failed_authentications = std::num::NonZeroU32::MAX;
        config.gateway.per_minute.aws_checks = std::num::NonZeroU32::MAX;
    })
    .await
    .unwrap();
    let base = baseline(&stack).await;
    let before = snapshot(&stack).await;
    for table in [
        "accounts.cloud_accounts",
        "accounts.account_credentials",
        "planner.plans",
        "planner.plan_accounts",
        "executor.executions",
        "executor.execution_items",
        "gateway.api_keys",
    ] {
        assert!(
            before.get(table).is_some_and(|(rows, _)| *rows > 0),
            "{table} is empty: {before:?}"
        );
    }

    let cases = all_cases(&base, stack.admin_key());
    assert!(cases.iter().all(|case| (400..500).contains(&case.expect)));
    // A fresh connection per request: the gateway may close one after refusing a body.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let secrets = [stack.admin_key(), base.token.as_str()];
    let mut problems = Vec::new();
    for case in &cases {
        let reply = send(&stack, &http, case).await;
        problems.extend(problem(case, &reply, &secrets));
    }
    problems.extend(accepted_reads(&stack).await);
    let touched = changed_tables(&before, &snapshot(&stack).await);
    println!(
        "bad input: {} cases, {} wrong answers, {} tables changed",
        cases.len(),
        problems.len(),
        touched.len()
    );
    assert!(
        problems.is_empty() && touched.is_empty(),
        "{} wrong answers:\n{}\nchanged tables: {touched:?}",
        problems.len(),
        problems.join("\n")
    );

    free_text_is_stored_verbatim(&stack).await;
    // Creating and deleting leaves, on purpose, the audit trail of both and the revoked
    // key (whose name stays taken); nothing else.
    let left_behind: Vec<String> = changed_tables(&before, &snapshot(&stack).await)
        .into_iter()
        .filter(|table| !table.ends_with(".audit_events") && table != "gateway.api_keys")
        .collect();
    assert!(
        left_behind.is_empty(),
        "free text left rows behind: {left_behind:?}"
    );
    stack.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// The baseline and the snapshot

async fn create(stack: &TestStack, path: &str, body: Value) -> Value {
    let (status, reply) = stack
        .admin_json(Method::POST, path, Some(body))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{path}: {reply}");
    reply
}

fn id_of(reply: &Value) -> String {
    reply["id"].as_str().unwrap().to_owned()
}

async fn baseline(stack: &TestStack) -> Baseline {
    let created_account = create(
        stack,
        "/api/accounts",
        with(account_body(), "/credentials", credentials_body()),
    )
    .await;
    let account = id_of(&created_account);
    let plan = create(
        stack,
        "/api/plans",
        with(plan_body(), "/account_ids", json!([account])),
    )
    .await;
    create(
        stack,
        "/api/keys",
        json!({"name": "bad input viewer", "role": "viewer"}),
    )
    .await;
    // Creations are priced through the buying account, which the sandbox must know.
    let buyer = stack.add_sandbox_account("bad input buyer").await.unwrap();
    let execution = create(
        stack,
        "/api/executions",
        json!({"cloud_account_id": buyer, "recommendations": [recommendation()]}),
    )
    .await;
    Baseline {
        plan: id_of(&plan),
        execution: id_of(&execution),
        token: execution["approval_token"].as_str().unwrap().to_owned(),
        account,
    }
}

/// Returns the row count and an md5 of the sorted rows of every table of every service
/// schema.
async fn snapshot(stack: &TestStack) -> Snapshot {
    let mut digests = Snapshot::new();
    for schema in SCHEMAS {
        let pool = stack.db.pool(schema).await.unwrap();
        for table in tables_of(&pool, schema).await {
            // Names from information_schema, not from input.
            let digest: (i64, Option<String>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT count(*), md5(string_agg(snapshot_row::text, '|' ORDER BY snapshot_row::text)) \
                 FROM {schema}.\"{table}\" snapshot_row"
            )))
            .fetch_one(&pool)
            .await
            .unwrap();
            digests.insert(format!("{schema}.{table}"), digest);
        }
        pool.close().await;
    }
    digests
}

fn changed_tables(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let tables: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    tables
        .into_iter()
        .filter(|table| before.get(*table) != after.get(*table))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// Bodies and helpers

fn account_body() -> Value {
    json!({"name": ACCOUNT_NAME, "provider": "aws", "external_id": EXTERNAL_ID})
}

fn new_account_body() -> Value {
    json!({"name": "bad input new account", "provider": "aws", "external_id": "210987654321"})
}

fn credentials_body() -> Value {
    json!({"type": "aws_access_keys", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
}

fn plan_body() -> Value {
    json!({"name": PLAN_NAME, "services": {"aws/rds": {"provider": "aws", "service": "rds",
        "term": 1, "payment": "all-upfront", "coverage": 50}}})
}

fn recommendation() -> Value {
    json!({"provider": "aws", "service": "rds", "region": "us-east-1",
        "resource_type": "db.r5.large", "engine": "postgresql", "count": 1, "term": 1,
        "payment": "all-upfront"})
}

/// A line of a plan execution: every bound account buys it.
fn plan_line() -> Value {
    with(recommendation(), "/all_accounts", json!(true))
}

fn new_plan_body() -> Value {
    with(plan_body(), "/name", json!("bad input new plan"))
}

fn direct_execution_body(base: &Baseline) -> Value {
    json!({"cloud_account_id": base.account, "recommendations": [recommendation()]})
}

/// Returns `body` with the field at JSON pointer `pointer` set to `value`, added when
/// missing (`~1` stands for `/` in a name).
fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    let (parent, name) = pointer.rsplit_once('/').expect("a JSON pointer");
    match body.pointer_mut(parent) {
        Some(Value::Object(fields)) => {
            fields.insert(name.replace("~1", "/"), value);
        }
        Some(Value::Array(items)) => items[name.parse::<usize>().expect("an index")] = value,
        _ => panic!("no object or array at {parent}"),
    }
    body
}

/// Returns `body` without the field at JSON pointer `pointer`.
fn without(mut body: Value, pointer: &str) -> Value {
    let (parent, name) = pointer.rsplit_once('/').expect("a JSON pointer");
    if let Some(Value::Object(fields)) = body.pointer_mut(parent) {
        fields.remove(name);
    }
    body
}

/// Percent-encodes every byte of `raw` but the unreserved ones, so that it reaches the
/// gateway intact as one path segment or query value.
fn encode(raw: &str) -> String {
    let mut encoded = String::new();
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// Returns a header value of raw bytes: tabs and non-ASCII bytes are sendable, CR and LF
/// are not (neither reqwest nor hyper would send them).
fn header_value(bytes: impl AsRef<[u8]>) -> HeaderValue {
    HeaderValue::from_bytes(bytes.as_ref()).expect("a sendable header value")
}

fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}

// ---------------------------------------------------------------------------------------
// The cases. The tables keep one case a line, as the error-code table in libs/common
// does.

/// `(status, what, JSON pointer, value)`: a valid body with one field set.
type Change = (u16, &'static str, &'static str, Value);

/// `(status, what, body)`: a whole body.
type Whole = (u16, &'static str, Value);

/// `(status, what, content type, bytes)`: a body as raw bytes.
type RawBody = (u16, &'static str, Option<&'static str>, Vec<u8>);

/// `(what, values)`: one header, sent once per value, all in the same request.
type HeaderValues = (&'static str, Vec<HeaderValue>);

/// Returns one case per change, each sending a fresh `valid()` with that field set.
fn changed(
    method: Method,
    path: &str,
    valid: impl Fn() -> Value,
    changes: impl IntoIterator<Item = Change>,
) -> Vec<Case> {
    changes
        .into_iter()
        .map(|(expect, what, pointer, value)| {
            Case::new(expect, method.clone(), path, what).json(with(valid(), pointer, value))
        })
        .collect()
}

/// Returns one case per whole body.
fn wholes(method: Method, path: &str, bodies: impl IntoIterator<Item = Whole>) -> Vec<Case> {
    bodies
        .into_iter()
        .map(|(expect, what, body)| Case::new(expect, method.clone(), path, what).json(body))
        .collect()
}

/// Returns `case` once per entry, with its header values added.
fn with_headers(
    case: &Case,
    name: &'static str,
    entries: impl IntoIterator<Item = HeaderValues>,
) -> Vec<Case> {
    entries
        .into_iter()
        .map(|(what, values)| {
            values
                .into_iter()
                .fold(case.clone().labelled(what), |sent, value| {
                    sent.header(name, value)
                })
        })
        .collect()
}

fn all_cases(base: &Baseline, admin_key: &str) -> Vec<Case> {
    [
        malformed_id_cases(base),
        route_cases(base),
        body_cases(base),
        key_cases(),
        account_cases(base),
        plan_cases(base),
        execution_cases(base),
        guardrail_cases(base),
        decision_cases(base),
        authorization_cases(base, admin_key),
        other_header_cases(base),
        query_cases(),
        nul_cases(base),
        echo_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Path parameters that are not ids, each as sent (percent-encoded where needed).
#[rustfmt::skip]
fn malformed_ids() -> Vec<(&'static str, String)> {
    vec![
        ("not a uuid", "not-a-uuid".to_owned()),
        ("blank", encode(" ")),
        ("10k characters", "a".repeat(10_000)),
        ("sql", encode("' OR 1=1 --")),
        ("nul byte", encode("\0")),
        ("unicode", encode("ünïcødé-☃-😀")),
        // Encoded slashes keep it one segment, so it reaches the id extractor.
        ("path traversal", encode("../../etc/passwd")),
        // Decodes to bytes that are not UTF-8.
        ("invalid utf-8", "%FF%FE".to_owned()),
        ("uuid and one more digit", format!("{UNKNOWN_ID}0")),
        ("negative number", "-1".to_owned()),
    ]
}

/// Every route with a parameter in its path (`{id}`), with a body it would otherwise
/// accept: the admin key approves without a token, so only the id stands in the way.
#[rustfmt::skip]
fn id_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/accounts/{id}", None),
        (Method::PUT, "/api/accounts/{id}", Some(account_body())),
        (Method::DELETE, "/api/accounts/{id}", None),
        (Method::POST, "/api/accounts/{id}/credentials", Some(credentials_body())),
        (Method::POST, "/api/accounts/{id}/test", None),
        (Method::GET, "/api/plans/{id}", None),
        (Method::PUT, "/api/plans/{id}", Some(plan_body())),
        (Method::DELETE, "/api/plans/{id}", None),
        (Method::GET, "/api/plans/{id}/accounts", None),
        (Method::PUT, "/api/plans/{id}/accounts", Some(json!({"account_ids": []}))),
        (Method::GET, "/api/plans/{id}/recommendations", None),
        (Method::PUT, "/api/plans/{id}/recommendations", Some(json!({"recommendations": []}))),
        (Method::POST, "/api/plans/{id}/executions", Some(json!({"recommendations": [plan_line()]}))),
        (Method::GET, "/api/executions/{id}", None),
        (Method::POST, "/api/executions/{id}/retry", None),
        (Method::POST, "/api/executions/{id}/items/0/resolve", Some(json!({"outcome": "not_bought"}))),
        (Method::POST, "/api/executions/{id}/approve", None),
        (Method::POST, "/api/executions/{id}/cancel", None),
        (Method::GET, "/api/purchases/approve/{id}?token=abc", None),
        (Method::POST, "/api/purchases/approve/{id}", None),
        (Method::POST, "/api/purchases/cancel/{id}", None),
        (Method::DELETE, "/api/keys/{id}", None),
        (Method::POST, "/api/admin/sweeps/{id}/run", None),
    ]
}

/// A malformed path parameter is a 400 from the gateway's path extractor (extract.rs
/// `path_error`), before any handler or backend runs; an empty one matches no route.
fn malformed_id_cases(base: &Baseline) -> Vec<Case> {
    let mut cases = Vec::new();
    for (method, template, body) in id_routes() {
        for (what, id) in malformed_ids() {
            let case = Case::new(400, method.clone(), template.replace("{id}", &id), what);
            cases.push(match &body {
                Some(body) => case.json(body.clone()),
                None => case,
            });
        }
    }
    let sql = encode("' OR 1=1 --");
    for index in ["abc", "-1", "4294967296", "1.5", sql.as_str()] {
        let path = format!("/api/executions/{}/items/{index}/resolve", base.execution);
        cases.push(
            Case::new(400, Method::POST, path, "malformed item index")
                .json(json!({"outcome": "not_bought"})),
        );
    }
    for path in [
        "/api/accounts/",
        "/api/plans/",
        "/api/executions/",
        "/api/keys/",
        "/api/purchases/approve/",
    ] {
        cases.push(Case::new(404, Method::GET, path, "empty id"));
    }
    cases
}

/// Methods and routes that do not exist: the router's 405, and its fallback's 404.
#[rustfmt::skip]
fn route_cases(base: &Baseline) -> Vec<Case> {
    let account = format!("/api/accounts/{}", base.account);
    vec![
        Case::new(405, Method::PATCH, account.as_str(), "no such method").json(json!({"name": "inj3ct"})),
        Case::new(405, Method::DELETE, "/api/accounts", "no such method"),
        Case::new(405, Method::PUT, "/api/executions", "no such method"),
        Case::new(405, Method::POST, "/api/history", "no such method"),
        Case::new(404, Method::GET, format!("{account}/inj3ct"), "no such route"),
        // The client resolves the dot segments: this asks for /etc/passwd.
        Case::new(404, Method::GET, "/api/../../etc/passwd", "dot segments"),
    ]
}

/// A route that reads a JSON body, with a body it would accept.
struct BodyRoute {
    method: Method,
    path: String,
    admin: bool,
    valid: Value,
}

#[rustfmt::skip]
fn body_routes(base: &Baseline) -> Vec<BodyRoute> {
    let route = |method: Method, path: String, valid: Value| BodyRoute { method, path, admin: true, valid };
    let (account, plan, execution) = (&base.account, &base.plan, &base.execution);
    let mut routes = vec![
        route(Method::POST, "/api/keys".to_owned(), json!({"name": "bad input key", "role": "viewer"})),
        route(Method::POST, "/api/accounts".to_owned(), new_account_body()),
        route(Method::PUT, format!("/api/accounts/{account}"), account_body()),
        route(Method::POST, format!("/api/accounts/{account}/credentials"), credentials_body()),
        route(Method::POST, "/api/accounts/discover-org".to_owned(), json!({"org_root_account_id": account})),
        route(Method::POST, "/api/plans".to_owned(), new_plan_body()),
        route(Method::PUT, format!("/api/plans/{plan}"), plan_body()),
        route(Method::PUT, format!("/api/plans/{plan}/accounts"), json!({"account_ids": [account]})),
        route(Method::PUT, format!("/api/plans/{plan}/recommendations"), json!({"recommendations": [recommendation()]})),
        route(Method::POST, format!("/api/plans/{plan}/executions"), json!({"recommendations": [plan_line()]})),
        route(Method::POST, "/api/executions".to_owned(), direct_execution_body(base)),
        route(Method::POST, format!("/api/executions/{execution}/items/0/resolve"), json!({"outcome": "not_bought"})),
        route(Method::PUT, "/api/guardrails".to_owned(), guardrails_body()),
    ];
    // Approve and cancel take the approval token itself, without a key.
    for decision in ["approve", "cancel"] {
        routes.push(BodyRoute {
            method: Method::POST,
            path: format!("/api/executions/{execution}/{decision}"),
            admin: false,
            valid: json!({"token": base.token}),
        });
    }
    routes
}

/// The bad bodies every route that reads one gets, `valid` standing for its good one.
/// Not JSON by its content type: 415; anything serde_json refuses or the request type
/// does not fit: 400 (extract.rs `ApiJson`, executions.rs `decision_body`). An empty
/// approve or cancel body means no token: `empty_status` says what that gets.
#[rustfmt::skip]
fn bad_bodies(valid: &[u8], empty_status: u16) -> Vec<RawBody> {
    let deep = format!("{{\"name\":{}", "[".repeat(100_000));
    vec![
        (400, "malformed json", Some(JSON), b"{\"name\": ".to_vec()),
        (empty_status, "empty body", Some(JSON), Vec::new()),
        (400, "trailing text", Some(JSON), b"{} inj3ct".to_vec()),
        (400, "null", Some(JSON), b"null".to_vec()),
        (400, "a string", Some(JSON), b"\"inj3ct\"".to_vec()),
        (400, "a number", Some(JSON), b"42".to_vec()),
        // serde reads a struct from an array too (`[]` as all defaults): refused.
        (400, "an empty array", Some(JSON), b"[]".to_vec()),
        (400, "an escaped nul", Some(JSON), b"{\"name\":\"a\\u0000\"}".to_vec()),
        // serde_json stops at 128 levels; an unbounded parser would overflow the stack.
        (400, "nested 100k deep", Some(JSON), deep.into_bytes()),
        (400, "invalid utf-8", Some(JSON), b"{\"name\":\"\xff\xfe\"}".to_vec()),
        (400, "lone surrogate", Some(JSON), b"{\"name\":\"\\ud800\"}".to_vec()),
        (400, "number out of range", Some(JSON), b"{\"name\":1e400}".to_vec()),
        (415, "valid body as text/plain", Some("text/plain"), valid.to_vec()),
        (415, "valid body without a content type", None, valid.to_vec()),
        (415, "a form", Some("application/x-www-form-urlencoded"), b"name=inj3ct&role=admin".to_vec()),
    ]
}

/// The bad bodies for every route that reads one, plus a body over the 1 MiB limit: 413.
fn body_cases(base: &Baseline) -> Vec<Case> {
    let mut cases = Vec::new();
    for route in body_routes(base) {
        // Without a key and without a token, an approval is a 401.
        let empty_status = if route.admin { 400 } else { 401 };
        let valid = serde_json::to_vec(&route.valid).unwrap();
        let oversized =
            Case::new(413, route.method.clone(), route.path.as_str(), "2 MiB").oversized(2 * MIB);
        let raw = bad_bodies(&valid, empty_status).into_iter().map(
            |(expect, what, content_type, bytes)| {
                Case::new(expect, route.method.clone(), route.path.as_str(), what)
                    .raw(content_type, bytes)
            },
        );
        for case in raw.chain([oversized]) {
            cases.push(if route.admin { case } else { case.anonymous() });
        }
    }
    cases.push(Case::new(413, Method::POST, "/api/accounts", "20 MiB").oversized(20 * MIB));
    cases
}

/// `POST /api/keys`: the gateway checks the body itself (keys.rs `validate_name`).
#[rustfmt::skip]
fn key_cases() -> Vec<Case> {
    let key = || json!({"name": "bad input key", "role": "viewer"});
    let mut cases = changed(Method::POST, "/api/keys", key, [
        (400, "unknown field", "/expires", json!("tomorrow")),
        (400, "sql as the role", "/role", json!("admin' OR 1=1 --")),
        (400, "number as the name", "/name", json!(42)),
        (400, "null name", "/name", Value::Null),
        (400, "bool as the role", "/role", json!(true)),
        (400, "the reserved name", "/name", json!("bootstrap")),
        (400, "a blank name", "/name", json!("   ")),
        (400, "101 characters", "/name", json!("k".repeat(101))),
    ]);
    cases.extend(wholes(Method::POST, "/api/keys", [
        (400, "no role", without(key(), "/role")),
        (400, "an array", json!([])),
    ]));
    cases.push(
        Case::new(400, Method::POST, "/api/keys", "the name twice")
            .raw(Some(JSON), r#"{"name":"a","name":"b","role":"viewer"}"#),
    );
    cases
}

/// Accounts: shapes are the gateway's 400s; values the accounts service's
/// (accounts/src/domain/validation.rs, credentials.rs), checked before any write; an
/// existing provider and external id is a 409 (a unique index, rolled back).
#[rustfmt::skip]
fn account_cases(base: &Baseline) -> Vec<Case> {
    let account = &base.account;
    let update = format!("/api/accounts/{account}");
    let credentials = format!("/api/accounts/{account}/credentials");
    let discover = "/api/accounts/discover-org";
    [
        changed(Method::POST, "/api/accounts", new_account_body, [
            (400, "unknown field", "/is_admin", json!(true)),
            (400, "number as the name", "/name", json!(42)),
            (400, "null name", "/name", Value::Null),
            (400, "text as a bool", "/enabled", json!("yes")),
            (400, "number as a bool", "/aws_is_org_root", json!(1)),
            (400, "an array as credentials", "/credentials", json!([])),
            (400, "sql as the provider", "/provider", json!("aws'); DROP TABLE cloud_accounts; --")),
            (400, "sql as the external id", "/external_id", json!("' OR 1=1 --")),
            (400, "sql as the auth mode", "/aws_auth_mode", json!("access_keys' OR 1=1 --")),
            (400, "sql in the email", "/contact_email", json!("ops@example.com'; DROP TABLE cloud_accounts; --")),
            (400, "sql as the bastion", "/aws_bastion_id", json!("' OR 1=1 --")),
            (400, "256 characters", "/name", json!("n".repeat(256))),
            (400, "2001-character description", "/description", json!("d".repeat(2001))),
            (400, "unknown credential key", "/credentials", with(credentials_body(), "/role", json!("inj3ct"))),
            (400, "number as the credential type", "/credentials", json!({"type": 5})),
            (409, "the baseline's external id", "/external_id", json!(EXTERNAL_ID)),
        ]),
        wholes(Method::POST, "/api/accounts", [(400, "an array", json!([]))]),
        changed(Method::PUT, &update, account_body, [
            (400, "sql as a new external id", "/external_id", json!("' OR 1=1 --")),
            (400, "another provider", "/provider", json!("azure")),
            (400, "credentials", "/credentials", credentials_body()),
            (400, "unknown field", "/owner", json!("inj3ct")),
            (400, "text as a bool", "/enabled", json!("false")),
            (400, "null name", "/name", Value::Null),
            (400, "256 characters", "/name", json!("n".repeat(256))),
        ]),
        changed(Method::POST, &credentials, credentials_body, [
            (400, "sql as the key id", "/access_key_id", json!("' OR 1=1 --")),
            (400, "sql as the type", "/type", json!("aws_access_keys'; DROP TABLE account_credentials; --")),
            (400, "sql in the secret", "/secret_access_key", json!("inj3ct; DROP TABLE account_credentials; --")),
            (400, "unknown key", "/session_token", json!("inj3ct")),
            (400, "number as the type", "/type", json!(5)),
            (400, "number as the secret", "/secret_access_key", json!(7)),
        ]),
        wholes(Method::POST, &credentials, [
            (400, "another provider's type", json!({"type": "azure_client_secret", "client_secret": "inj3ct"})),
            (400, "no secret", without(credentials_body(), "/secret_access_key")),
            (400, "an array", json!([])),
        ]),
        wholes(Method::POST, discover, [
            (400, "sql as the root", json!({"org_root_account_id": "' OR 1=1 --"})),
            // Refused before any AWS call.
            (400, "an account that is no root", json!({"org_root_account_id": account})),
            (400, "sql as the role name", json!({"org_root_account_id": account, "member_role_name": "x'; DROP TABLE cloud_accounts; --"})),
            (400, "number as the root", json!({"org_root_account_id": 123})),
            (400, "the field and its alias", json!({"org_root_account_id": account, "account_id": account})),
            (400, "no root", json!({})),
            (400, "unknown field", json!({"org_root_account_id": account, "dry_run": true})),
            (404, "an unknown root", json!({"org_root_account_id": UNKNOWN_ID})),
        ]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Plans, their accounts and recommendations, and starting a run: shapes are the
/// gateway's 400s; values the planner's (planner/src/domain/validation.rs,
/// recommendation.rs), checked before any write; unknown accounts are its 404.
#[rustfmt::skip]
fn plan_cases(base: &Baseline) -> Vec<Case> {
    let plan = &base.plan;
    let update = format!("/api/plans/{plan}");
    let accounts = format!("/api/plans/{plan}/accounts");
    let recommendations = format!("/api/plans/{plan}/recommendations");
    let run = format!("/api/plans/{plan}/executions");
    let listed = || json!({"recommendations": [recommendation()]});
    let started = || json!({"recommendations": [plan_line()]});
    [
        changed(Method::POST, "/api/plans", new_plan_body, [
            (400, "unknown field", "/owner", json!("inj3ct")),
            (400, "unknown service field", "/services/aws~1rds/colour", json!("red")),
            (400, "unknown ramp field", "/ramp_schedule", json!({"type": "immediate", "speed": 2})),
            (400, "an array as services", "/services", json!([])),
            (400, "no services", "/services", json!({})),
            (400, "text as the term", "/services/aws~1rds/term", json!("1")),
            (400, "term 2", "/services/aws~1rds/term", json!(2)),
            (400, "null coverage", "/services/aws~1rds/coverage", Value::Null),
            (400, "coverage 101", "/services/aws~1rds/coverage", json!(101)),
            (400, "bool as a number", "/notification_days_before", json!(true)),
            (400, "negative days", "/notification_days_before", json!(-1)),
            (400, "31 days", "/notification_days_before", json!(31)),
            (400, "null name", "/name", Value::Null),
            (400, "101 characters", "/name", json!("p".repeat(101))),
            (400, "sql as the payment", "/services/aws~1rds/payment", json!("all-upfront'; DROP TABLE plans; --")),
            (400, "sql as the provider", "/services/aws~1rds/provider", json!("aws' OR 1=1 --")),
            (400, "sql in a region filter", "/services/aws~1rds/include_regions", json!(["us-east-1'; DROP TABLE plans; --"])),
            (400, "text as the ramp", "/ramp_schedule", json!("weekly")),
            (400, "sql as the ramp", "/ramp_schedule", json!({"type": "immediate'; DROP TABLE plans; --"})),
            (400, "sql as the start date", "/ramp_schedule", json!({"start_date": "' OR 1=1 --"})),
            (400, "text as the account ids", "/account_ids", json!("all")),
            (400, "sql as an account id", "/account_ids", json!(["' OR 1=1 --"])),
            (404, "an unknown account", "/account_ids", json!([UNKNOWN_ID])),
        ]),
        wholes(Method::POST, "/api/plans", [(400, "an array", json!([]))]),
        changed(Method::PUT, &update, plan_body, [
            (400, "account ids", "/account_ids", json!([base.account])),
            (400, "unknown field", "/owner", json!("inj3ct")),
            (400, "an empty name", "/name", json!("")),
            (400, "term 5", "/services/aws~1rds/term", json!(5)),
        ]),
        wholes(Method::PUT, &accounts, [
            (400, "text as the list", json!({"account_ids": "all"})),
            (400, "null list", json!({"account_ids": null})),
            (400, "no list", json!({})),
            (400, "sql as an account id", json!({"account_ids": ["' OR 1=1 --"]})),
            (400, "unknown field", json!({"account_ids": [base.account], "all": true})),
            (404, "an unknown account", json!({"account_ids": [UNKNOWN_ID]})),
            (400, "an array", json!([])),
        ]),
        changed(Method::PUT, &recommendations, listed, [
            (400, "unknown field", "/recommendations/0/approved", json!(true)),
            (400, "unknown detail", "/recommendations/0/details", json!({"multi_az": false, "colour": 1})),
            (400, "negative count", "/recommendations/0/count", json!(-1)),
            (400, "text as the count", "/recommendations/0/count", json!("1")),
            (400, "null count", "/recommendations/0/count", Value::Null),
            (400, "bool as the count", "/recommendations/0/count", json!(true)),
            (400, "another provider", "/recommendations/0/provider", json!("azure")),
            (400, "sql in the region", "/recommendations/0/region", json!("us-east-1'; DROP TABLE plans; --")),
            (400, "sql as the service", "/recommendations/0/service", json!("rds' OR 1=1 --")),
            (400, "an object as the list", "/recommendations", json!({})),
        ]),
        wholes(Method::PUT, &recommendations, [
            (400, "no term", json!({"recommendations": [without(recommendation(), "/term")]})),
        ]),
        changed(Method::POST, &run, started, [
            (400, "unknown field", "/auto_approve", json!(true)),
            (400, "sql as the date", "/scheduled_date", json!("' OR 1=1 --")),
            (400, "text as the list", "/recommendations", json!("all")),
            (400, "sql as the provider", "/recommendations/0/provider", json!("aws' OR 1=1 --")),
            (400, "sql as the account", "/recommendations/0/cloud_account_id", json!("' OR 1=1 --")),
            (400, "text as a bool", "/recommendations/0/all_accounts", json!("yes")),
        ]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Direct executions and resolutions: shapes and the resolution rules are the gateway's
/// 400s; recommendation values the executor's (executor/src/domain/recommendation.rs),
/// checked before any write.
#[rustfmt::skip]
/// A valid guardrails body (never sent as is: every case breaks it).
fn guardrails_body() -> Value {
    json!({"max_execution_commitment": 1000.0, "max_window_commitment": 5000.0,
        "window_days": 30, "require_different_approver": true, "price_tolerance_percent": 1.0})
}

/// The guardrails (limits refused when negative, not numbers or out of range; unknown
/// fields refused) and the dry-run switch of the creation routes.
#[rustfmt::skip]
fn guardrail_cases(base: &Baseline) -> Vec<Case> {
    let direct = direct_execution_body(base);
    let plan_run = format!("/api/plans/{}/executions", base.plan);
    [
        changed(Method::PUT, "/api/guardrails", guardrails_body, [
            (400, "a negative execution limit", "/max_execution_commitment", json!(-1)),
            (400, "text as the execution limit", "/max_execution_commitment", json!("lots")),
            (400, "a negative window limit", "/max_window_commitment", json!(-0.01)),
            (400, "text as the window limit", "/max_window_commitment", json!("1000")),
            (400, "window_days 0", "/window_days", json!(0)),
            (400, "window_days over a year", "/window_days", json!(367)),
            (400, "negative window_days", "/window_days", json!(-30)),
            (400, "text as window_days", "/window_days", json!("30")),
            (400, "a negative tolerance", "/price_tolerance_percent", json!(-1)),
            (400, "a tolerance over 100", "/price_tolerance_percent", json!(100.5)),
            (400, "text as the flag", "/require_different_approver", json!("yes")),
            (400, "unknown field", "/committed_in_window", json!(0)),
            (400, "unknown field", "/currency", json!("EUR")),
        ]),
        vec![
            Case::new(400, Method::POST, "/api/executions?dry_run=maybe", "text as dry_run").json(direct.clone()),
            Case::new(400, Method::POST, "/api/executions?dry_run=true&force=1", "an unknown query field").json(direct),
            Case::new(400, Method::POST, format!("{plan_run}?dry_run=1"), "a number as dry_run").json(json!({})),
        ],
        changed(Method::POST, "/api/plans", new_plan_body, [
            (400, "a negative per-run limit", "/max_commitment_per_run", json!(-1)),
            (400, "text as the per-run limit", "/max_commitment_per_run", json!("lots")),
        ]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn execution_cases(base: &Baseline) -> Vec<Case> {
    let resolve = format!("/api/executions/{}/items/0/resolve", base.execution);
    let direct = || direct_execution_body(base);
    [
        changed(
            Method::POST,
            "/api/executions",
            direct,
            [
                (400, "unknown field", "/auto_approve", json!(true)),
                (400, "a status", "/status", json!("approved")),
                (
                    400,
                    "sql as the account",
                    "/cloud_account_id",
                    json!("' OR 1=1 --"),
                ),
                (400, "number as the account", "/cloud_account_id", json!(12)),
                (400, "null account", "/cloud_account_id", Value::Null),
                (400, "an object as the list", "/recommendations", json!({})),
                (400, "an empty list", "/recommendations", json!([])),
                (400, "zero count", "/recommendations/0/count", json!(0)),
                (
                    400,
                    "count over u32",
                    "/recommendations/0/count",
                    json!(4_294_967_296_u64),
                ),
                (
                    400,
                    "sql in the region",
                    "/recommendations/0/region",
                    json!("us-east-1'; DROP TABLE executions; --"),
                ),
                (
                    400,
                    "text as a cost",
                    "/recommendations/0/upfront_cost",
                    json!("free"),
                ),
            ],
        ),
        wholes(
            Method::POST,
            &resolve,
            [
                (
                    400,
                    "sql as the outcome",
                    json!({"outcome": "bought' OR 1=1 --"}),
                ),
                (
                    400,
                    "bought without a commitment",
                    json!({"outcome": "bought"}),
                ),
                (
                    400,
                    "not bought with a commitment",
                    json!({"outcome": "not_bought", "commitment_id": "inj3ct"}),
                ),
                (400, "bool as the outcome", json!({"outcome": true})),
                (
                    400,
                    "unknown field",
                    json!({"outcome": "not_bought", "force": true}),
                ),
                (400, "no outcome", json!({})),
            ],
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Approval by token, on the pending execution with its real token at hand: a wrong
/// token is the executor's 403 (approval.rs `check_decision`, checked before expiry and
/// status), a malformed body or link the gateway's 400, no token and no key a 401.
#[rustfmt::skip]
fn decision_cases(base: &Baseline) -> Vec<Case> {
    let execution = &base.execution;
    let approve = format!("/api/executions/{execution}/approve");
    let cancel = format!("/api/executions/{execution}/cancel");
    let sql = encode("' OR 1=1 --");
    let anonymous = |cases: Vec<Case>| cases.into_iter().map(Case::anonymous).collect::<Vec<_>>();
    [
        anonymous(wholes(Method::POST, &approve, [
            (403, "sql as the token", json!({"token": "' OR 1=1 --"})),
            (403, "a 12k token", json!({"token": "inj3ct".repeat(2000)})),
            (400, "number as the token", json!({"token": 12345})),
            (400, "the token in an array", json!({"token": [base.token]})),
            (400, "unknown field", json!({"token": base.token, "force": true})),
        ])),
        anonymous(wholes(Method::POST, &cancel, [(403, "sql as the token", json!({"token": "' OR 1=1 --"}))])),
        // A token decides before any key: the admin key does not make a wrong one right.
        wholes(Method::POST, &approve, [(403, "wrong token with the admin key", json!({"token": "0".repeat(64)}))]),
        anonymous(vec![
            Case::new(403, Method::POST, format!("/api/purchases/approve/{execution}?token={sql}"), "sql as the link token"),
            Case::new(403, Method::POST, format!("/api/purchases/cancel/{execution}?token={sql}"), "sql as the link token"),
            Case::new(400, Method::POST, format!("/api/purchases/cancel/{execution}?token={0}&token={0}", base.token), "the token twice"),
            Case::new(401, Method::POST, format!("/api/purchases/approve/{execution}"), "no token and no key"),
            Case::new(400, Method::GET, format!("/api/purchases/approve/{execution}"), "no token to preview"),
            Case::new(403, Method::GET, format!("/api/purchases/approve/{execution}?token={sql}"), "sql as the preview token"),
            Case::new(413, Method::POST, approve.as_str(), "20 MiB").oversized(20 * MIB),
        ]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A bad `Authorization` is a 401 (auth.rs `authenticate`: the first value counts, the
/// scheme must be `Bearer`, the key must be known), also on a token route where a key is
/// optional but must be valid when sent: there it comes with the right approval token.
#[rustfmt::skip]
fn authorization_cases(base: &Baseline, admin_key: &str) -> Vec<Case> {
    let targets = [
        Case::new(401, Method::GET, "/api/accounts", "a read"),
        Case::new(401, Method::POST, "/api/accounts", "a creation").json(new_account_body()),
        Case::new(401, Method::POST, format!("/api/executions/{}/approve", base.execution), "the right token")
            .json(json!({"token": base.token})),
    ];
    let mut cases = Vec::new();
    for target in &targets {
        cases.extend(with_headers(&target.clone().anonymous(), "authorization", [
            ("basic scheme", vec![header_value("Basic aW5qM2N0OmluajNjdA==")]),
            ("scheme alone", vec![header_value("Bearer")]),
            ("16 KiB key", vec![header_value(format!("Bearer {}", "inj3ct".repeat(2731)))]),
            ("admin key and one more character", vec![header_value(format!("Bearer {admin_key}x"))]),
            ("sql as the key", vec![header_value("Bearer ' OR 1=1 --")]),
            ("admin key and a second word", vec![header_value(format!("Bearer {admin_key} inj3ct"))]),
            ("non-ascii key", vec![header_value("Bearer ключ-inj3ct")]),
            ("tab for the space", vec![header_value(format!("Bearer\t{admin_key}"))]),
            ("another scheme", vec![header_value(format!("Token {admin_key}"))]),
            ("a bad key, then the admin key", vec![header_value("Bearer inj3ct"), header_value(format!("Bearer {admin_key}"))]),
        ]));
    }
    // Without any key the token route would rightly take the token: only the key routes.
    cases.extend(targets[..2].iter().map(|target| target.clone().anonymous().labelled("no key")));
    cases.push(
        Case::new(401, Method::GET, format!("/api/accounts?api_key={}", encode(admin_key)), "the key in the query")
            .anonymous(),
    );
    cases
}

/// A bad `Idempotency-Key` is a 400 (executions.rs and plans.rs `idempotency_key`,
/// before the backend is called; the first value counts), a `Content-Type` that is not
/// JSON a 415 (extract.rs `is_json_content_type`, the first value counts), and an
/// unreadable `traceparent` is ignored, so that the request's own fault decides.
#[rustfmt::skip]
fn other_header_cases(base: &Baseline) -> Vec<Case> {
    let creations = [
        Case::new(400, Method::POST, "/api/executions", "a direct execution").json(direct_execution_body(base)),
        Case::new(400, Method::POST, format!("/api/plans/{}/executions", base.plan), "a plan execution")
            .json(json!({"recommendations": [plan_line()]})),
    ];
    let mut cases = Vec::new();
    for creation in &creations {
        cases.extend(with_headers(creation, "idempotency-key", [
            ("256 characters", vec![header_value("inj3ct".repeat(43))]),
            ("empty", vec![header_value("")]),
            ("a space", vec![header_value("inj3ct key")]),
            ("a tab", vec![header_value("inj3ct\tkey")]),
            ("non-ascii", vec![header_value("inj3ct-ключ")]),
            ("sql", vec![header_value("' OR 1=1 --")]),
            ("a bad key, then a good one", vec![header_value("inj3ct key"), header_value("good-key-0001")]),
        ]));
    }
    let creation = Case::new(415, Method::POST, "/api/accounts", "a creation")
        .raw(None, serde_json::to_vec(&new_account_body()).unwrap());
    cases.extend(with_headers(&creation, "content-type", [
        ("xml", vec![header_value("application/xml")]),
        ("multipart", vec![header_value("multipart/form-data; boundary=inj3ct")]),
        ("json-seq", vec![header_value("application/json-seq")]),
        ("jsonx", vec![header_value("application/jsonx")]),
        ("no slash", vec![header_value("json")]),
        ("non-ascii charset", vec![header_value("application/json; charset=ключ")]),
        ("text, then json", vec![header_value("text/plain"), header_value(JSON)]),
    ]));
    let traceparents = || [
        ("garbage traceparent", vec![header_value("inj3ct")]),
        ("zero ids", vec![header_value("00-00000000000000000000000000000000-0000000000000000-01")]),
        ("version ff", vec![header_value("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]),
        ("trailing text", vec![header_value("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-inj3ct")]),
        ("8 KiB", vec![header_value(format!("00-{}", "inj3ct".repeat(1365)))]),
        ("non-ascii", vec![header_value("00-ключ-inj3ct")]),
        ("twice", vec![header_value("inj3ct"), header_value("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]),
    ];
    let malformed_read = Case::new(400, Method::GET, "/api/accounts/not-a-uuid", "a malformed id")
        .header("tracestate", header_value("inj3ct=;;,,="));
    let unknown_field = Case::new(400, Method::POST, "/api/accounts", "an unknown field")
        .json(with(new_account_body(), "/owner", json!("x")));
    cases.extend(with_headers(&malformed_read, "traceparent", traceparents()));
    cases.extend(with_headers(&unknown_field, "traceparent", traceparents()));
    cases
}

/// Query strings: each list route takes only its own parameters (`deny_unknown_fields`),
/// each once and of its type (extract.rs `ApiQuery`); ids, times, statuses and
/// providers are then parsed by the gateway or by the service behind it.
#[rustfmt::skip]
fn query_cases() -> Vec<Case> {
    let sql = encode("' OR 1=1 --");
    [
        ("/api/accounts?enabled=maybe".to_owned(), "text as a bool"),
        (format!("/api/accounts?provider={sql}"), "sql as the provider"),
        ("/api/accounts?limit=-1".to_owned(), "a limit it does not take"),
        ("/api/accounts?offset=99999999999999999999".to_owned(), "an offset it does not take"),
        ("/api/accounts?search=a&search=b".to_owned(), "the search twice"),
        (format!("/api/executions?status={sql}"), "sql as the status"),
        (format!("/api/executions?plan_id={sql}"), "sql as the plan"),
        (format!("/api/executions?plan_id={UNKNOWN_ID},{UNKNOWN_ID}"), "two plans"),
        ("/api/executions?account_ids=1,2".to_owned(), "numbers as accounts"),
        ("/api/executions?limit=-1".to_owned(), "a limit it does not take"),
        ("/api/executions?offset=1".to_owned(), "an offset it does not take"),
        ("/api/history?start=yesterday".to_owned(), "text as the start"),
        (format!("/api/history?end={sql}"), "sql as the end"),
        (format!("/api/history?account_ids={sql}"), "sql as the accounts"),
        ("/api/history?limit=abc".to_owned(), "a limit it does not take"),
        ("/api/admin/sweeps?limit=-1".to_owned(), "a negative limit"),
        ("/api/admin/sweeps?limit=abc".to_owned(), "text as the limit"),
        ("/api/admin/sweeps?limit=99999999999".to_owned(), "a limit over u32"),
        (format!("/api/admin/sweeps?task={sql}"), "sql as the task"),
        ("/api/admin/sweeps?offset=10".to_owned(), "an offset it does not take"),
        ("/api/admin/sweeps?limit=1&limit=2".to_owned(), "the limit twice"),
    ]
    .into_iter()
    .map(|(path, what)| Case::new(400, Method::GET, path, what))
    .collect()
}

/// U+0000 in text: Postgres takes it neither in a text column nor as a text parameter,
/// so every field and filter must refuse it with a 400 before it reaches a query, or the
/// answer is a 500.
#[rustfmt::skip]
fn nul_cases(base: &Baseline) -> Vec<Case> {
    let nul = || json!("inj3ct\u{0}");
    let account = &base.account;
    [
        wholes(Method::POST, "/api/keys", [(400, "nul in the name", json!({"name": nul(), "role": "viewer"}))]),
        changed(Method::POST, "/api/accounts", new_account_body, [
            (400, "nul in the name", "/name", nul()),
            (400, "nul in the description", "/description", nul()),
        ]),
        changed(Method::PUT, &format!("/api/accounts/{account}"), account_body, [
            (400, "nul in the description", "/description", nul()),
        ]),
        changed(Method::POST, &format!("/api/accounts/{account}/credentials"), credentials_body, [
            (400, "nul in the secret", "/secret_access_key", nul()),
        ]),
        changed(Method::POST, "/api/plans", new_plan_body, [(400, "nul in the name", "/name", nul())]),
        changed(Method::POST, "/api/executions", || direct_execution_body(base), [
            (400, "nul in the engine", "/recommendations/0/engine", nul()),
        ]),
        vec![
            Case::new(400, Method::GET, "/api/accounts?search=inj3ct%00", "nul in the search"),
            Case::new(400, Method::GET, "/api/history?service=inj3ct%00", "nul in the service"),
        ],
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Values that quote serde's own wording: the reply must not repeat them either
/// (extract.rs `describe_data_error` cuts serde's message at its first ", expected ",
/// which may lie inside the value).
#[rustfmt::skip]
fn echo_cases() -> Vec<Case> {
    let key = || json!({"name": "bad input key", "role": "viewer"});
    [
        changed(Method::POST, "/api/keys", key, [
            (400, "serde's wording in the role", "/role", json!("viewer, expected inj3ct")),
        ]),
        changed(Method::POST, "/api/plans", new_plan_body, [
            (400, "serde's wording in the term", "/services/aws~1rds/term", json!("1, expected inj3ct")),
        ]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

// ---------------------------------------------------------------------------------------
// Sending and judging

async fn send(stack: &TestStack, http: &reqwest::Client, case: &Case) -> Reply {
    let mut request = http.request(case.method.clone(), stack.url(&case.path));
    if case.admin {
        request = request.bearer_auth(stack.admin_key());
    }
    for (name, value) in &case.headers {
        request = request.header(*name, value.clone());
    }
    request = match &case.payload {
        Payload::Empty => request,
        Payload::Json(body) => request.json(body),
        Payload::Raw {
            content_type: Some(content_type),
            bytes,
        } => request
            .header("content-type", content_type.as_str())
            .body(bytes.clone()),
        Payload::Raw {
            content_type: None,
            bytes,
        } => request.body(bytes.clone()),
        Payload::Oversized(len) => return send_oversized(stack, case, *len).await,
    };
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("{}: {error}", case.what));
    let status = response.status().as_u16();
    let mut head = String::new();
    for (name, value) in response.headers() {
        let _ = writeln!(
            head,
            "{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    let body = response.text().await.unwrap();
    Reply { status, head, body }
}

/// Sends `len` bytes of JSON as the body of `case` over a plain connection and returns
/// the answer. reqwest is not used here: the gateway answers 413 after its first MiB and
/// closes the connection without reading the rest, and a client that insists on writing
/// it all may see the reset before it reads the answer. This one reads while it writes
/// and stops writing at the first failure.
async fn send_oversized(stack: &TestStack, case: &Case, len: usize) -> Reply {
    let addr = stack.stack().gateway_addr();
    let authorization = if case.admin {
        format!("authorization: Bearer {}\r\n", stack.admin_key())
    } else {
        String::new()
    };
    let request_head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\n{authorization}content-type: {JSON}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
        case.method, case.path
    );
    let mut request_body = b"{\"name\":\"".to_vec();
    request_body.resize(len - 2, b'x');
    request_body.extend_from_slice(b"\"}");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let write = async move {
        if writer.write_all(request_head.as_bytes()).await.is_ok() {
            // Fails once the gateway has answered and closed: that is expected.
            let _ = writer.write_all(&request_body).await;
        }
    };
    let read = async move {
        let mut answer = Vec::new();
        // A reset after the answer ends the read; what arrived before it is kept.
        let _ = reader.read_to_end(&mut answer).await;
        answer
    };
    let exchange = async { tokio::join!(write, read).1 };
    let answer_bytes = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("{}: no answer", case.what));
    let answer = String::from_utf8_lossy(&answer_bytes).into_owned();
    let (answer_head, answer_body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or((answer.as_str(), ""));
    let status = answer_head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    // Keeps the JSON object itself, should the body come chunked.
    let json_body = match (answer_body.find('{'), answer_body.rfind('}')) {
        (Some(start), Some(end)) if start < end => &answer_body[start..=end],
        _ => answer_body,
    };
    Reply {
        status,
        head: answer_head.to_owned(),
        body: json_body.to_owned(),
    }
}

/// Returns what is wrong with the reply to `case`, if anything: another status, a body
/// that is not docs/design/API.md's JSON error, or injected text (or a secret) repeated in the
/// headers or the body.
fn problem(case: &Case, reply: &Reply, secrets: &[&str]) -> Option<String> {
    let mut wrong = Vec::new();
    if reply.status != case.expect {
        wrong.push(format!(
            "status {} (expected {})",
            reply.status, case.expect
        ));
    }
    if !reply
        .head
        .to_ascii_lowercase()
        .contains("content-type: application/json")
    {
        wrong.push("not a json reply".to_owned());
    }
    if !is_error_body(&reply.body) {
        wrong.push("not an error body".to_owned());
    }
    let text = format!("{}\n{}", reply.head, reply.body).to_lowercase();
    for echoed in INJECTED
        .iter()
        .chain(secrets)
        .filter(|part| text.contains(&part.to_lowercase()))
    {
        wrong.push(format!("repeats {echoed:?}"));
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "{}: {}; body {}",
            case.what,
            wrong.join(", "),
            shorten(&reply.body)
        )
    })
}

/// Returns true for docs/design/API.md's error body: an object with a non-empty `error` message and
/// no keys but the documented ones.
fn is_error_body(body: &str) -> bool {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(fields)) => {
            fields
                .get("error")
                .and_then(Value::as_str)
                .is_some_and(|message| !message.is_empty())
                && fields.keys().all(|key| ERROR_KEYS.contains(&key.as_str()))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Odd input that is not an error

/// Odd input that is data or is ignored: a 200 with the right rows and nothing changed.
/// Returns what went wrong.
async fn accepted_reads(stack: &TestStack) -> Vec<String> {
    let mut wrong = Vec::new();
    let reads = [
        // A parameter, not SQL: the filter matches nothing.
        (
            format!("/api/accounts?search={}", encode("' OR '1'='1")),
            "accounts",
            Some(0),
        ),
        // LIKE wildcards are escaped.
        ("/api/accounts?search=%25".to_owned(), "accounts", Some(0)),
        ("/api/accounts?search=_".to_owned(), "accounts", Some(0)),
        (
            format!("/api/history?provider={}", encode("' OR 1=1 --")),
            "purchases",
            Some(0),
        ),
        // A limit out of range is clamped.
        (
            "/api/admin/sweeps?limit=4294967295".to_owned(),
            "runs",
            None,
        ),
    ];
    for (path, list, expected) in reads {
        let (status, body) = stack.admin_json(Method::GET, &path, None).await.unwrap();
        let found = body[list].as_array().map(Vec::len);
        if status != StatusCode::OK
            || found.is_none()
            || expected.is_some_and(|rows| found != Some(rows))
        {
            wrong.push(format!(
                "GET {path}: {status} {}",
                shorten(&body.to_string())
            ));
        }
    }
    // A trace context that cannot be read is ignored, not refused.
    let response = stack
        .admin(Method::GET, "/api/accounts")
        .header("traceparent", "inj3ct")
        .header("tracestate", "inj3ct=;;,,=")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    // The baseline's account and the sandbox account that buys its execution.
    if status != StatusCode::OK || body["accounts"].as_array().map(Vec::len) != Some(2) {
        wrong.push(format!(
            "GET /api/accounts with a garbage traceparent: {status} {}",
            shorten(&body.to_string())
        ));
    }
    wrong
}

/// Free text made of SQL is data: stored verbatim, found by a search for it, changing
/// nothing else. Each row is deleted again, so that the database ends as it began.
async fn free_text_is_stored_verbatim(stack: &TestStack) {
    let pool = stack.db.pool("gateway").await.unwrap();
    let created_rows = [
        (
            "/api/accounts",
            json!({"name": SQL_NAME, "description": "' OR '1'='1", "provider": "aws",
                "external_id": "345678901234"}),
            "accounts.cloud_accounts",
        ),
        (
            "/api/plans",
            with(plan_body(), "/name", json!(SQL_NAME)),
            "planner.plans",
        ),
        (
            "/api/keys",
            json!({"name": SQL_NAME, "role": "viewer"}),
            "gateway.api_keys",
        ),
    ];
    for (collection, body, table) in created_rows {
        let created = create(stack, collection, body).await;
        assert_eq!(created["name"], SQL_NAME, "{collection}: {created}");
        let id = id_of(&created);
        // The table name is this test's constant, not input.
        let stored: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM {table} WHERE id::text = $1"
        )))
        .bind(id.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(stored, SQL_NAME, "{table}");
        if collection == "/api/accounts" {
            let search = format!("/api/accounts?search={}", encode(SQL_NAME));
            let (_, found) = stack.admin_json(Method::GET, &search, None).await.unwrap();
            assert_eq!(
                found["accounts"].as_array().map(Vec::len),
                Some(1),
                "{found}"
            );
        }
        let path = format!("{collection}/{id}");
        let (status, reply) = stack.admin_json(Method::DELETE, &path, None).await.unwrap();
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}: {reply}");
    }
    pool.close().await;
}
