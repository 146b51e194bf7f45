//! The approval page over HTTP, end to end (issue 21; docs/APPROVAL_PAGE.md): the
//! whole stack with the AWS sandbox behind the gateway, driven by a client that is not
//! a browser, as a mail scanner or a link preview would be.
//!
//! A GET shows the quote and changes nothing however often it comes; a POST without the
//! CSRF cookie, with another value, or from another origin is refused and changes
//! nothing; the form approves (and the sandbox sells exactly what was asked) or cancels,
//! answering 303 to a page that shows the outcome and that reloads harmlessly; when
//! approvers must differ the form asks for the approver's own key. The real browser's
//! side is `tests/browser.rs`.

use std::time::Duration;

use cudly_testkit::rest::call;
use cudly_testkit::{TestStack, eventually};
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, ORIGIN,
    REFERRER_POLICY, SET_COOKIE,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[allow(dead_code)]
mod common;

/// The page's Content-Security-Policy (services/gateway/src/routes/approval_page/response.rs).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSRF_COOKIE: &str = "cudly_csrf";

/// Starts the stack on the sandbox, its runner polling often so a purchase ends soon.
async fn start() -> TestStack {
    TestStack::start_with_sandbox_and(|config| {
        config.executor.runner.poll_interval = Duration::from_millis(200);
    })
    .await
    .expect("the stack starts")
}

/// A reply of the page.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Reply {
    fn header(&self, name: impl reqwest::header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the `cudly_csrf` cookie the reply sets.
    fn csrf_cookie(&self) -> Option<String> {
        self.set_cookie()
            .and_then(|cookie| {
                cookie
                    .strip_prefix(&format!("{CSRF_COOKIE}="))
                    .map(str::to_owned)
            })
            .and_then(|rest| rest.split(';').next().map(str::to_owned))
    }

    /// The whole `Set-Cookie` of the CSRF cookie.
    fn set_cookie(&self) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with(CSRF_COOKIE))
            .map(str::to_owned)
    }

    /// The value of the first hidden field `name`.
    fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&marker)? + marker.len();
        let end = self.html[start..].find('"')?;
        Some(self.html[start..start + end].to_owned())
    }

    /// The text of the element with `id` (no markup inside it).
    fn text_of(&self, id: &str) -> Option<String> {
        let start = self.html.find(&format!("id=\"{id}\""))?;
        let open = self.html[start..].find('>')? + start + 1;
        let close = self.html[open..].find('<')? + open;
        Some(self.html[open..close].trim().to_owned())
    }

    /// The `data-status` of the outcome.
    fn outcome(&self) -> Option<String> {
        let start = self.html.find("id=\"outcome\"")?;
        let marker = "data-status=\"";
        let value = self.html[start..].find(marker)? + start + marker.len();
        let end = self.html[value..].find('"')? + value;
        Some(self.html[value..end].to_owned())
    }

    fn assert_html(&self) {
        assert!(
            self.header(CONTENT_TYPE).starts_with("text/html"),
            "{} answered {:?}: {}",
            self.status,
            self.header(CONTENT_TYPE),
            self.html
        );
        assert_eq!(self.header(CONTENT_SECURITY_POLICY), CSP);
        assert_eq!(self.header(REFERRER_POLICY), "same-origin");
        assert_eq!(self.header(CACHE_CONTROL), "no-store");
        assert!(self.html.contains("<html lang=\"en\">"));
        assert!(
            self.html.contains(
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            )
        );
    }
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an http client")
}

/// GETs `path` (no cookie, as a scanner would), with `headers`.
async fn open(stack: &TestStack, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = client().get(stack.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    reply(request).await
}

/// How a test posts the decision form.
struct Post<'a> {
    cookie: Option<&'a str>,
    origin: Option<String>,
    extra_headers: &'a [(&'a str, &'a str)],
    fields: &'a [(&'a str, &'a str)],
}

async fn post(stack: &TestStack, id: &str, post: Post<'_>) -> Reply {
    let mut request = client()
        .post(stack.url(&format!("/approve/{id}")))
        .form(post.fields);
    if let Some(cookie) = post.cookie {
        request = request.header(COOKIE, format!("{CSRF_COOKIE}={cookie}"));
    }
    if let Some(origin) = post.origin {
        request = request.header(ORIGIN, origin);
    }
    for (name, value) in post.extra_headers {
        request = request.header(*name, *value);
    }
    reply(request).await
}

/// Posts the form `fields` as the page would: from this origin, with `cookie`.
async fn post_form(
    stack: &TestStack,
    id: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Reply {
    post(
        stack,
        id,
        Post {
            cookie,
            origin: Some(own_origin(stack)),
            extra_headers: &[],
            fields,
        },
    )
    .await
}

/// The fields of a form posted with an API key instead of a token.
fn key_form<'a>(csrf: &'a str, decision: &'a str, key: &'a str) -> [(&'static str, &'a str); 3] {
    [("csrf", csrf), ("decision", decision), ("api_key", key)]
}

async fn reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let html = response.text().await.expect("a body");
    Reply {
        status,
        headers,
        html,
    }
}

/// This gateway's origin, as a browser sends it with the form.
fn own_origin(stack: &TestStack) -> String {
    stack.url("")
}

async fn execution(stack: &TestStack, id: &str) -> Value {
    let (status, execution) =
        call(stack, Method::GET, &format!("/api/executions/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{execution}");
    execution
}

async fn status_of(stack: &TestStack, id: &str) -> String {
    execution(stack, id).await["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the execution ends and returns it.
async fn wait_terminal(stack: &TestStack, id: &str) -> Value {
    eventually("the execution to end", Duration::from_secs(90), || async {
        let current = execution(stack, id).await;
        matches!(
            current["status"].as_str(),
            Some("completed" | "partially_completed" | "failed" | "canceled" | "expired")
        )
        .then_some(current)
    })
    .await
    .expect("the execution ended")
}

async fn commitments(stack: &TestStack) -> usize {
    stack.sandbox().ledger().await.commitments.len()
}

/// Returns `amount` as the page and the CLI show it: `$1,234.50`.
fn usd(amount: f64) -> String {
    cudly_vocabulary::format_usd(amount)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_shows_the_quote_and_changes_nothing_and_forged_posts_are_refused() {
    let stack = start().await;
    let pending = common::create_pending(&stack, "approval page buyer").await;
    let total = pending.execution["total_upfront_cost"]
        .as_f64()
        .expect("a total");
    assert!(total > 0.0, "{}", pending.execution);

    let page = open(&stack, &pending.link(), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.assert_html();
    assert_eq!(
        page.text_of("total-upfront").as_deref(),
        Some(usd(total).as_str())
    );
    assert_eq!(
        page.html.matches("item-quote").count(),
        2,
        "one quote per item"
    );
    for needle in [
        "id=\"approve-form\" method=\"post\"",
        "id=\"cancel-form\" method=\"post\"",
        "id=\"approve\"",
        "id=\"cancel\"",
        "name=\"decision\" value=\"approve\"",
        "name=\"decision\" value=\"cancel\"",
        "<caption",
        "scope=\"col\"",
    ] {
        assert!(
            page.html.contains(needle),
            "{needle} missing: {}",
            page.html
        );
    }
    assert!(
        page.html
            .contains(&format!("action=\"/approve/{}\"", pending.id))
    );
    assert!(
        !page.html.contains("id=\"api-key\""),
        "approvers need not differ"
    );
    assert!(!page.html.contains("id=\"outcome\""), "still pending");
    // The token is in the two forms' hidden fields and nowhere else.
    assert_eq!(page.html.matches(&pending.token).count(), 2);
    assert_eq!(
        page.hidden("token").as_deref(),
        Some(pending.token.as_str())
    );

    // The CSRF cookie: random, HttpOnly, SameSite=Strict, on /approve, and the same
    // value as the hidden field.
    let set_cookie = page.set_cookie().expect("a csrf cookie");
    for attribute in ["Path=/approve", "HttpOnly", "SameSite=Strict"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    let csrf = page.csrf_cookie().expect("a csrf value");
    assert_eq!(csrf.len(), 64);
    assert!(csrf.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(page.hidden("csrf").as_deref(), Some(csrf.as_str()));
    let behind_https = open(&stack, &pending.link(), &[("x-forwarded-proto", "https")]).await;
    assert!(
        behind_https
            .set_cookie()
            .expect("a cookie")
            .contains("Secure"),
        "behind a TLS proxy the cookie is Secure"
    );
    assert_ne!(
        behind_https.csrf_cookie(),
        Some(csrf.clone()),
        "a new value per page"
    );

    // A client that is not a browser fetching the link, again and again, changes nothing.
    for _ in 0..3 {
        let again = open(&stack, &pending.link(), &[]).await;
        assert_eq!(again.status, StatusCode::OK);
    }
    assert_eq!(status_of(&stack, &pending.id).await, "pending");

    // Errors are human pages with the right status, never the token.
    let wrong_token = "0123456789abcdef".repeat(4);
    let wrong = open(
        &stack,
        &format!("/approve/{}?token={wrong_token}", pending.id),
        &[],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.html);
    wrong.assert_html();
    assert!(
        wrong.html.contains("Wrong approval token"),
        "{}",
        wrong.html
    );
    assert!(!wrong.html.contains(&wrong_token));
    assert!(!wrong.html.contains("<form"));
    let unknown = open(
        &stack,
        &format!("/approve/{}?token={}", uuid::Uuid::new_v4(), pending.token),
        &[],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.html);
    unknown.assert_html();
    assert!(!unknown.html.contains(&pending.token));
    let malformed = open(&stack, "/approve/not-a-uuid?token=abc", &[]).await;
    assert_eq!(malformed.status, StatusCode::NOT_FOUND);
    malformed.assert_html();
    // Without a token the page only asks to sign in (the last test of this file).
    let no_token = open(&stack, &format!("/approve/{}", pending.id), &[]).await;
    assert_eq!(no_token.status, StatusCode::OK);
    no_token.assert_html();
    assert!(no_token.html.contains("id=\"sign-in-form\""));
    assert!(!no_token.html.contains("id=\"approve\""));

    // Forged posts: no cookie, another value, another origin, a cross-site fetch.
    let approve = [
        ("token", pending.token.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    let without_cookie = post_form(&stack, &pending.id, None, &approve).await;
    assert_eq!(
        without_cookie.status,
        StatusCode::FORBIDDEN,
        "{}",
        without_cookie.html
    );
    without_cookie.assert_html();
    assert!(without_cookie.html.contains("This form has expired"));
    let other_value = "f".repeat(64);
    let mismatched = post_form(&stack, &pending.id, Some(other_value.as_str()), &approve).await;
    assert_eq!(
        mismatched.status,
        StatusCode::FORBIDDEN,
        "{}",
        mismatched.html
    );
    assert!(mismatched.html.contains("This form has expired"));
    let foreign = post(
        &stack,
        &pending.id,
        Post {
            cookie: Some(csrf.as_str()),
            origin: Some("https://attacker.example".to_owned()),
            extra_headers: &[],
            fields: &approve,
        },
    )
    .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.html);
    foreign.assert_html();
    assert!(foreign.html.contains("not sent from the approval page"));
    let cross_site = post(
        &stack,
        &pending.id,
        Post {
            cookie: Some(csrf.as_str()),
            origin: None,
            extra_headers: &[("sec-fetch-site", "cross-site")],
            fields: &approve,
        },
    )
    .await;
    assert_eq!(
        cross_site.status,
        StatusCode::FORBIDDEN,
        "{}",
        cross_site.html
    );

    assert_eq!(status_of(&stack, &pending.id).await, "pending");
    assert_eq!(commitments(&stack).await, 0, "nothing bought");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_by_the_form_buys_once_and_reloading_the_outcome_changes_nothing() {
    let stack = start().await;
    let pending = common::create_pending(&stack, "approval page buyer").await;
    let page = open(&stack, &pending.link(), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let csrf = page.csrf_cookie().expect("a csrf cookie");
    let fields = [
        ("token", pending.token.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    let decided = post(
        &stack,
        &pending.id,
        Post {
            cookie: Some(csrf.as_str()),
            origin: Some(own_origin(&stack)),
            extra_headers: &[("sec-fetch-site", "same-origin")],
            fields: &fields,
        },
    )
    .await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.html);
    let done = format!("/approve/{}?token={}&done=1", pending.id, pending.token);
    assert_eq!(decided.header(LOCATION), done);
    assert!(
        decided
            .set_cookie()
            .is_some_and(|cookie| cookie.contains("Max-Age=0")),
        "the decision clears the csrf cookie"
    );
    assert!(
        matches!(
            status_of(&stack, &pending.id).await.as_str(),
            "approved" | "running" | "completed"
        ),
        "approved"
    );

    let outcome = open(&stack, &done, &[]).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.html);
    outcome.assert_html();
    assert!(
        matches!(
            outcome.outcome().as_deref(),
            Some("approved" | "running" | "completed")
        ),
        "{}",
        outcome.html
    );
    assert!(outcome.html.contains("Your decision was recorded"));
    assert!(
        !outcome.html.contains("id=\"approve\""),
        "no buttons once decided"
    );
    assert!(outcome.set_cookie().is_none(), "no form, no csrf cookie");

    let ended = wait_terminal(&stack, &pending.id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["approved_by"], "token");
    let ledger = stack.sandbox().ledger().await;
    assert_eq!(ledger.commitments.len(), 2, "one commitment per item");
    assert_eq!(
        ledger
            .commitments
            .iter()
            .map(|commitment| commitment.count)
            .sum::<i64>(),
        3,
        "two RDS instances and one EC2 instance"
    );

    // Reloading the outcome (and posting the old form again) buys nothing more.
    for _ in 0..2 {
        let reloaded = open(&stack, &done, &[]).await;
        assert_eq!(reloaded.status, StatusCode::OK);
        assert_eq!(reloaded.outcome().as_deref(), Some("completed"));
        assert!(
            reloaded.html.contains("Approved and bought"),
            "{}",
            reloaded.html
        );
    }
    let again = post_form(&stack, &pending.id, Some(csrf.as_str()), &fields).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.html);
    again.assert_html();
    assert!(again.html.contains("Already decided"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(commitments(&stack).await, 2, "nothing more bought");
    assert_eq!(status_of(&stack, &pending.id).await, "completed");
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_by_the_form_cancels_and_buys_nothing() {
    let stack = start().await;
    let pending = common::create_pending(&stack, "approval page buyer").await;
    let page = open(&stack, &pending.link(), &[]).await;
    let csrf = page.csrf_cookie().expect("a csrf cookie");
    let decided = post(
        &stack,
        &pending.id,
        Post {
            cookie: Some(csrf.as_str()),
            origin: Some(own_origin(&stack)),
            extra_headers: &[],
            fields: &[
                ("token", pending.token.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", "cancel"),
            ],
        },
    )
    .await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.html);
    assert_eq!(status_of(&stack, &pending.id).await, "canceled");
    let outcome = open(&stack, decided.header(LOCATION), &[]).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.html);
    assert_eq!(outcome.outcome().as_deref(), Some("canceled"));
    assert!(!outcome.html.contains("<form"), "nothing left to decide");
    assert_eq!(commitments(&stack).await, 0);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_approvers_must_differ_the_form_takes_another_admins_key() {
    let stack = start().await;
    let (status, guardrails) = call(
        &stack,
        Method::PUT,
        "/api/guardrails",
        Some(json!({"require_different_approver": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{guardrails}");
    let (status, second) = call(
        &stack,
        Method::POST,
        "/api/keys",
        Some(json!({"name": "second-approver", "role": "admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_key = second["key"].as_str().expect("a key").to_owned();
    // Created with the bootstrap key, which therefore cannot approve it.
    let pending = common::create_pending(&stack, "approval page buyer").await;
    assert_eq!(pending.execution["created_by"], "key:bootstrap");

    let page = open(&stack, &pending.link(), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    for needle in [
        "<label for=\"api-key\">",
        "type=\"password\" id=\"api-key\" name=\"api_key\" autocomplete=\"off\" required",
    ] {
        assert!(
            page.html.contains(needle),
            "{needle} missing: {}",
            page.html
        );
    }
    let csrf = page.csrf_cookie().expect("a csrf cookie");
    let attempts: [(Option<&str>, StatusCode, &str); 3] = [
        (None, StatusCode::FORBIDDEN, "Approver must differ"),
        (
            Some(stack.admin_key()),
            StatusCode::FORBIDDEN,
            "Approver must differ",
        ),
        (
            Some("cudly_not_a_key"),
            StatusCode::UNAUTHORIZED,
            "That API key was not accepted",
        ),
    ];
    for (key, expected, text) in attempts {
        let mut fields = vec![
            ("token", pending.token.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
        ];
        if let Some(key) = key {
            fields.push(("api_key", key));
        }
        let refused = post_form(&stack, &pending.id, Some(csrf.as_str()), &fields).await;
        assert_eq!(refused.status, expected, "{}", refused.html);
        refused.assert_html();
        assert!(refused.html.contains(text), "{text}: {}", refused.html);
        assert!(
            !refused.html.contains(stack.admin_key()),
            "a key is never echoed"
        );
        assert_eq!(status_of(&stack, &pending.id).await, "pending");
    }

    let approved = post(
        &stack,
        &pending.id,
        Post {
            cookie: Some(csrf.as_str()),
            origin: Some(own_origin(&stack)),
            extra_headers: &[],
            fields: &[
                ("token", pending.token.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
                ("api_key", second_key.as_str()),
            ],
        },
    )
    .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.html);
    let approved_now = execution(&stack, &pending.id).await;
    assert_eq!(
        approved_now["approved_by"], "key:second-approver",
        "{approved_now}"
    );
    let ended = wait_terminal(&stack, &pending.id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(commitments(&stack).await, 2);
    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_without_a_token_shows_nothing_until_an_approver_signs_in_with_a_key() {
    let stack = start().await;
    let pending = common::create_pending(&stack, "approval page buyer").await;
    let (status, viewer) = call(
        &stack,
        Method::POST,
        "/api/keys",
        Some(json!({"name": "page-viewer", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{viewer}");
    let viewer_key = viewer["key"].as_str().expect("a key").to_owned();
    let link = format!("/approve/{}", pending.id);

    // What a broadcast channel links to: a sign-in form, nothing of the purchase.
    let page = open(&stack, &link, &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    page.assert_html();
    assert!(page.html.contains("id=\"sign-in-form\""), "{}", page.html);
    let total = usd(pending.execution["total_upfront_cost"].as_f64().unwrap());
    assert!(!page.html.contains(&total), "no quote before signing in");
    assert!(!page.html.contains("id=\"approve\""));
    let csrf = page.csrf_cookie().expect("a csrf cookie");
    // A wrong key sees nothing; a decision without a key decides nothing.
    let refused = post_form(
        &stack,
        &pending.id,
        Some(&csrf),
        &key_form(&csrf, "review", "cudly_not_a_key"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.html);
    assert!(!refused.html.contains(&total));
    let keyless = post_form(
        &stack,
        &pending.id,
        Some(&csrf),
        &[("csrf", csrf.as_str()), ("decision", "approve")],
    )
    .await;
    assert_eq!(keyless.status, StatusCode::UNAUTHORIZED, "{}", keyless.html);
    assert_eq!(status_of(&stack, &pending.id).await, "pending");

    // A viewer key shows the quote, without the forms.
    let viewed = post_form(
        &stack,
        &pending.id,
        Some(&csrf),
        &key_form(&csrf, "review", &viewer_key),
    )
    .await;
    assert_eq!(viewed.status, StatusCode::OK, "{}", viewed.html);
    viewed.assert_html();
    assert_eq!(
        viewed.text_of("total-upfront").as_deref(),
        Some(total.as_str())
    );
    assert!(
        !viewed.html.contains("id=\"approve\""),
        "a viewer cannot decide"
    );
    // Nor can a viewer approve by posting the form anyway.
    let forbidden = post_form(
        &stack,
        &pending.id,
        Some(&csrf),
        &key_form(&csrf, "approve", &viewer_key),
    )
    .await;
    assert_eq!(
        forbidden.status,
        StatusCode::FORBIDDEN,
        "{}",
        forbidden.html
    );
    assert_eq!(status_of(&stack, &pending.id).await, "pending");

    // An admin key shows the quote and forms that ask for the key again.
    let reviewed = post_form(
        &stack,
        &pending.id,
        Some(&csrf),
        &key_form(&csrf, "review", stack.admin_key()),
    )
    .await;
    assert_eq!(reviewed.status, StatusCode::OK, "{}", reviewed.html);
    assert_eq!(
        reviewed.text_of("total-upfront").as_deref(),
        Some(total.as_str())
    );
    assert!(
        reviewed.html.contains("id=\"approve\""),
        "{}",
        reviewed.html
    );
    assert_eq!(
        reviewed.hidden("token").as_deref(),
        Some(""),
        "no token on the page"
    );
    assert!(
        !reviewed.html.contains(stack.admin_key()),
        "the page never holds the key"
    );
    let form_csrf = reviewed.hidden("csrf").expect("a csrf field");
    let fields = key_form(&form_csrf, "approve", stack.admin_key());
    let decided = post_form(
        &stack,
        &pending.id,
        reviewed.csrf_cookie().as_deref(),
        &fields,
    )
    .await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.html);
    assert_eq!(decided.header(LOCATION), format!("{link}?done=1"));
    let after = open(&stack, &format!("{link}?done=1"), &[]).await;
    assert!(
        after.html.contains("Your decision was recorded"),
        "{}",
        after.html
    );
    assert!(!after.html.contains(&total));
    let ended = wait_terminal(&stack, &pending.id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["approved_by"], "key:bootstrap", "decided as the key");
    assert_eq!(commitments(&stack).await, 2);
    stack.stop().await.unwrap();
}
