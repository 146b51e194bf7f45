//! Secret canaries: distinctive secrets go in through every credential path (inline on
//! creation, the credentials route, Azure and GCP bodies, refused bodies), the main
//! flows run (credential tests, executions that buy and executions whose credentials
//! are wrong, approvals by token, a plan execution, history), and then every response
//! body (the audit export in every format among them), every row of every table of
//! every service's schema (the audit tables and the notification outbox among them),
//! every notification a channel received (a private webhook may carry the approval
//! link; Slack and Teams never) and every log line (all services at debug level) are
//! scanned for them: zero hits.

#[allow(dead_code)]
mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::receiver::Receiver;
use common::{SCHEMAS, tables_of};
use cudly_aws_sandbox::AccountSpec;
use cudly_common::grpc::Caller;
use cudly_testkit::{LogCapture, SERVICES_AT_DEBUG, TestStack, eventually};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const VALID_SECRET: &str = "CanaryValidSecret0000aaaabbbbccccdddd";
const ROTATED_SECRET: &str = "CanaryRotatedSecret111eeeeffffgggghhhh";
const WRONG_SECRET: &str = "CanaryWrongSecret2222iiiijjjjkkkkllll";
const AZURE_SECRET: &str = "CanaryAzureSecret3333mmmmnnnnoooopppp";
const GCP_KEY: &str = "CanaryGcpPrivateKey4444qqqqrrrrsssstttt";
const REFUSED_SECRET: &str = "CanaryRefusedSecret5555uuuuvvvvwwwwxxxx";
const WEBHOOK_SECRET: &str = "CanaryWebhookSecret6666yyyyzzzz00001111";
/// Webhook URLs carry their own token (Slack's and Teams' do): in the path here.
const WEBHOOK_URL_TOKEN: &str = "CanaryWebhookUrlToken7777aaaabbbbcccc";
const SLACK_URL_TOKEN: &str = "CanarySlackUrlToken8888ddddeeeeffff";
const TEAMS_URL_TOKEN: &str = "CanaryTeamsUrlToken9999gggghhhhiiii";

/// The REST calls of the test, every reply body kept for the scan.
struct Client<'a> {
    stack: &'a TestStack,
    bodies: Mutex<Vec<String>>,
    /// Creation replies: the one place an approval token is shown (docs/design/DOMAIN.md).
    creation_replies: Mutex<Vec<String>>,
}

impl Client<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.stack.admin(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap();
        let body = format!("{headers}\n{text}");
        if status == 201 && text.contains("\"approval_token\"") {
            self.creation_replies.lock().unwrap().push(body);
        } else {
            self.bodies.lock().unwrap().push(body);
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_appears_in_any_response_stored_row_or_log_line() {
    let logs = LogCapture::install(SERVICES_AT_DEBUG);

    let stack = TestStack::start_with_sandbox().await.unwrap();
    let client = Client {
        stack: &stack,
        bodies: Mutex::new(Vec::new()),
        creation_replies: Mutex::new(Vec::new()),
    };
    // Notification channels wanting every event: a private signed webhook, and Slack
    // and Teams (broadcast) stand-ins on loopback.
    let receiver = Receiver::start([]).await;
    let every_event = [
        "approval_requested",
        "execution_finished",
        "outcome_unknown",
        "limit_refused",
        "plan_paused",
        "recommendations_failed",
        "step_upcoming",
    ];
    for channel in [
        json!({"name": "canary webhook", "kind": "webhook", "private": true,
            "target": receiver.url(&format!("/hook/{WEBHOOK_URL_TOKEN}")),
            "secret": WEBHOOK_SECRET, "events": every_event}),
        json!({"name": "canary slack", "kind": "slack",
            "target": receiver.url(&format!("/services/{SLACK_URL_TOKEN}")),
            "events": every_event}),
        json!({"name": "canary teams", "kind": "teams",
            "target": receiver.url(&format!("/teams/{TEAMS_URL_TOKEN}")),
            "events": every_event}),
    ] {
        let (status, created) = client
            .call(Method::POST, "/api/notification-channels", Some(channel))
            .await;
        assert_eq!(status, 201, "{created}");
    }
    let (valid_id, wrong_id) = ("623456789012", "634567890123");
    stack
        .sandbox()
        .add_account(
            AccountSpec::new(valid_id)
                .with_access_key("AKIACANARYVALID00001", VALID_SECRET)
                .with_access_key("AKIACANARYROTATED001", ROTATED_SECRET),
        )
        .await;
    stack
        .sandbox()
        .add_account(
            AccountSpec::new(wrong_id)
                .with_access_key("AKIACANARYWRONG00001", "not-the-stored-one"),
        )
        .await;

    // Credential paths: inline on creation, the credentials route, Azure, GCP.
    let keys = |key_id: &str, secret: &str| json!({"type": "aws_access_keys", "access_key_id": key_id, "secret_access_key": secret});
    let (status, valid) = client
        .call(
            Method::POST,
            "/api/accounts",
            Some(json!({"name": "canary valid", "provider": "aws",
            "external_id": valid_id, "aws_auth_mode": "access_keys",
            "credentials": keys("AKIACANARYVALID00001", VALID_SECRET)})),
        )
        .await;
    assert_eq!(status, 201, "{valid}");
    let valid = valid["id"].as_str().unwrap().to_owned();
    let (status, _) = client
        .call(
            Method::POST,
            &format!("/api/accounts/{valid}/credentials"),
            Some(keys("AKIACANARYROTATED001", ROTATED_SECRET)),
        )
        .await;
    assert_eq!(status, 204);
    let (status, wrong) = client
        .call(
            Method::POST,
            "/api/accounts",
            Some(json!({"name": "canary wrong", "provider": "aws",
            "external_id": wrong_id, "aws_auth_mode": "access_keys",
            // A key id the sandbox never issued (it knows callers by key id alone).
            "credentials": keys("AKIACANARYUNKNOWN001", WRONG_SECRET)})),
        )
        .await;
    assert_eq!(status, 201, "{wrong}");
    let wrong = wrong["id"].as_str().unwrap().to_owned();
    let (status, azure) = client
        .call(
            Method::POST,
            "/api/accounts",
            Some(json!({"name": "canary azure", "provider": "azure",
            "external_id": "6f1c2a3b-1111-4222-8333-944455550001",
            "azure_tenant_id": "0f1c2a3b-1111-4222-8333-944455556666",
            "azure_client_id": "1f1c2a3b-1111-4222-8333-944455556666",
            "credentials": {"type": "azure_client_secret", "client_secret": AZURE_SECRET}})),
        )
        .await;
    assert_eq!(status, 201, "{azure}");
    let (status, gcp) = client
        .call(Method::POST, "/api/accounts", Some(json!({"name": "canary gcp", "provider": "gcp",
            "external_id": "canary-project", "gcp_client_email": "cudly@canary-project.iam.gserviceaccount.com",
            "credentials": {"type": "gcp_service_account", "service_account_json": {
                "type": "service_account", "project_id": "canary-project",
                "client_email": "cudly@canary-project.iam.gserviceaccount.com",
                "private_key": format!("-----BEGIN PRIVATE KEY-----\n{GCP_KEY}\n-----END PRIVATE KEY-----\n")}}})))
        .await;
    assert_eq!(status, 201, "{gcp}");
    // Refused bodies carrying a secret: unknown key, wrong type, wrong provider, bad JSON.
    for bad in [
        json!({"type": "aws_access_keys", "access_key_id": "AKIACANARYVALID00001", "secret_access_key": REFUSED_SECRET, "extra": REFUSED_SECRET}),
        json!({"type": "aws_access_keys", "access_key_id": REFUSED_SECRET, "secret_access_key": 7}),
        json!({"type": "azure_client_secret", "client_secret": REFUSED_SECRET}),
        json!({REFUSED_SECRET: REFUSED_SECRET}),
    ] {
        let (status, reply) = client
            .call(
                Method::POST,
                &format!("/api/accounts/{valid}/credentials"),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, 400, "{bad} -> {reply}");
    }
    let (status, _) = client
        .send(
            stack
                .admin(Method::POST, &format!("/api/accounts/{valid}/credentials"))
                .header("content-type", "application/json")
                .body(format!("{{\"secret_access_key\": \"{REFUSED_SECRET}\"")),
        )
        .await;
    assert_eq!(status, 400);

    // Credential tests: one passes, one fails at AWS, two are not supported yet.
    for id in [
        &valid,
        &wrong,
        azure["id"].as_str().unwrap(),
        gcp["id"].as_str().unwrap(),
    ] {
        let (status, _) = client
            .call(Method::POST, &format!("/api/accounts/{id}/test"), None)
            .await;
        assert_eq!(status, 200);
    }

    // Executions: one account that buys, one whose stored credentials AWS refuses.
    let recommendation = json!({"provider": "aws", "service": "rds", "region": "us-east-1",
        "resource_type": "db.r5.large", "engine": "postgresql", "count": 1, "term": 1,
        "payment": "all-upfront"});
    let mut executions = Vec::new();
    let mut approval_tokens = Vec::new();
    for account in [&valid, &wrong] {
        let (status, created) = client
            .call(Method::POST, "/api/executions",
                Some(json!({"cloud_account_id": account, "recommendations": [recommendation.clone()]})))
            .await;
        if account == &wrong {
            // Nothing can price its item: refused at creation (the refusal is scanned
            // like every reply); the plan below runs it and stores its errors.
            assert_eq!(status, 422, "{created}");
            continue;
        }
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let token = created["approval_token"].as_str().unwrap().to_owned();
        let (status, _) = client
            .send(
                stack
                    .http
                    .post(stack.url(&format!("/api/executions/{id}/approve")))
                    .json(&json!({"token": token})),
            )
            .await;
        assert_eq!(status, 200);
        approval_tokens.push(token);
        executions.push(id);
    }
    // A plan over both accounts, executed now (auto purchase, which needs a window limit).
    let (status, _) = client
        .call(
            Method::PUT,
            "/api/guardrails",
            Some(json!({"max_window_commitment": 1e12})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, plan) = client
        .call(Method::POST, "/api/plans", Some(json!({"name": "canary plan", "auto_purchase": true,
            "services": {"aws/rds": {"provider": "aws", "service": "rds", "term": 1, "payment": "all-upfront", "coverage": 100}},
            "account_ids": [valid, wrong]})))
        .await;
    assert_eq!(status, 201, "{plan}");
    let mut line = recommendation.clone();
    line["all_accounts"] = json!(true);
    line["resource_type"] = json!("db.r6g.large");
    let (status, run) = client
        .call(
            Method::POST,
            &format!("/api/plans/{}/executions", plan["id"].as_str().unwrap()),
            Some(json!({"recommendations": [line]})),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    executions.push(run["id"].as_str().unwrap().to_owned());
    for id in &executions {
        eventually("the execution to end", Duration::from_secs(60), || async {
            let (_, body) = client
                .call(Method::GET, &format!("/api/executions/{id}"), None)
                .await;
            (!matches!(
                body["status"].as_str(),
                Some("pending" | "approved" | "running")
            ))
            .then_some(())
        })
        .await
        .unwrap();
    }
    // The invalid account's run (its child of the plan's execution) failed with a stored
    // error, and the flows' read routes.
    let (_, plan_run) = client
        .call(
            Method::GET,
            &format!("/api/executions/{}", executions[1]),
            None,
        )
        .await;
    assert_eq!(plan_run["status"], "partially_completed", "{plan_run}");
    let failed = plan_run["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|child| child["cloud_account_id"] == wrong.as_str())
        .unwrap_or_else(|| panic!("a child of the invalid account: {plan_run}"));
    assert_eq!(failed["status"], "failed", "{failed}");
    for path in [
        "/api/accounts",
        "/api/executions",
        "/api/history",
        "/api/plans",
    ] {
        let (status, _) = client.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}");
    }
    for id in [&valid, &wrong] {
        client
            .call(Method::GET, &format!("/api/accounts/{id}"), None)
            .await;
    }
    // Every notification delivered (and the listing scanned like any reply).
    eventually(
        "every notification delivered",
        Duration::from_secs(60),
        || async {
            let (_, listed) = client.call(Method::GET, "/api/notifications", None).await;
            let listed = listed["notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (listed.len() >= 3 && listed.iter().all(|n| n["state"] == "delivered")).then_some(())
        },
    )
    .await
    .unwrap();
    let messages = receiver.received();
    // The audit trail, in every export format, is scanned like any reply.
    for format in ["json", "jsonl", "csv"] {
        let (status, _) = client
            .call(
                Method::GET,
                &format!("/api/audit?format={format}&limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, 200, "audit export as {format}");
    }

    // Every row of every table of every service's schema, as JSON text.
    let mut rows = Vec::new();
    for schema in SCHEMAS {
        let pool = stack.db.pool(schema).await.unwrap();
        for table in tables_of(&pool, schema).await {
            // Names from information_schema, not from input.
            let dumped: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT row_to_json(t)::text FROM {schema}.\"{table}\" t"
            )))
            .fetch_all(&pool)
            .await
            .unwrap();
            rows.extend(
                dumped
                    .into_iter()
                    .map(|row| format!("{schema}.{table}: {row}")),
            );
        }
    }

    let secrets = stack.secrets();
    let mut canaries: Vec<(String, String)> = [
        ("aws secret (inline)", VALID_SECRET),
        ("aws secret (credentials route)", ROTATED_SECRET),
        ("aws secret (refused by AWS)", WRONG_SECRET),
        ("azure client secret", AZURE_SECRET),
        ("gcp private key", GCP_KEY),
        ("secret in a refused body", REFUSED_SECRET),
    ]
    .into_iter()
    .map(|(what, value)| (what.to_owned(), value.to_owned()))
    .collect();
    canaries.push(("admin key".to_owned(), stack.admin_key().to_owned()));
    for (what, value) in [
        ("webhook signing secret", WEBHOOK_SECRET),
        ("webhook url token", WEBHOOK_URL_TOKEN),
        ("slack url token", SLACK_URL_TOKEN),
        ("teams url token", TEAMS_URL_TOKEN),
    ] {
        canaries.push((what.to_owned(), value.to_owned()));
    }
    canaries.push((
        "notification key".to_owned(),
        secrets
            .notify_key
            .as_ref()
            .expect("the test stack has a notification key")
            .expose_secret()
            .to_owned(),
    ));
    canaries.push((
        "credential key".to_owned(),
        secrets.credential_key.expose_secret().to_owned(),
    ));
    for caller in [
        Caller::Gateway,
        Caller::Planner,
        Caller::Executor,
        Caller::Sweeper,
    ] {
        canaries.push((
            format!("internal token of {caller:?}"),
            secrets.internal_token(caller).expose_secret().to_owned(),
        ));
    }
    for token in &approval_tokens {
        canaries.push(("approval token".to_owned(), token.clone()));
    }

    let creation_replies = client.creation_replies.into_inner().unwrap();
    let mut bodies = client.bodies.into_inner().unwrap();
    stack.stop().await.unwrap();
    let logs = logs.text();

    // Every other secret must not be in the creation replies either.
    let mut creation_scan = creation_replies.clone();
    for token in &approval_tokens {
        for reply in &mut creation_scan {
            *reply = reply.replace(token.as_str(), "<the approval token, shown once>");
        }
    }
    bodies.extend(creation_scan);

    // The scan covers something: the flows were logged, stored and answered.
    assert!(
        logs.lines().count() > 100,
        "{} log lines",
        logs.lines().count()
    );
    assert!(
        rows.iter()
            .any(|row| row.starts_with("executor.execution_items"))
    );
    assert!(rows.iter().any(|row| row.starts_with("accounts.")));
    for schema in ["accounts", "executor"] {
        assert!(
            rows.iter()
                .any(|row| row.starts_with(&format!("{schema}.audit_events"))),
            "{schema} audited the flows"
        );
    }
    assert!(logs.contains("AKIACANARY") || rows.iter().any(|row| row.contains(valid_id)));
    // What the channels received: headers and body, never the target it was sent to.
    // Only the private webhook may carry an approval link with its token.
    assert!(
        messages
            .iter()
            .any(|message| message.path.starts_with("/services/"))
            && messages
                .iter()
                .any(|message| message.path.starts_with("/teams/"))
            && messages
                .iter()
                .any(|message| message.path.starts_with("/hook/")),
        "every channel was notified: {} messages",
        messages.len()
    );
    let (private_messages, broadcast_messages): (Vec<String>, Vec<String>) = {
        let (private, broadcast): (Vec<_>, Vec<_>) = messages
            .iter()
            .partition(|message| message.path.starts_with("/hook/"));
        let text = |message: &&common::receiver::Received| {
            format!(
                "{}: {:?}\n{}",
                message.path.split('/').nth(1).unwrap_or_default(),
                message.headers,
                message.text()
            )
        };
        (
            private.iter().map(text).collect(),
            broadcast.iter().map(text).collect(),
        )
    };
    assert!(
        private_messages.iter().any(|message| approval_tokens
            .iter()
            .any(|token| message.contains(token.as_str()))),
        "the private webhook got its approval link"
    );
    let mut hits = Vec::new();
    for (what, canary) in &canaries {
        let is_approval_token = what == "approval token";
        for (place, texts) in [
            ("broadcast message", &broadcast_messages),
            ("private message", &private_messages),
        ] {
            if is_approval_token && place == "private message" {
                continue;
            }
            for text in texts {
                if text.contains(canary.as_str()) {
                    hits.push(format!(
                        "{what} in a {place}: {}",
                        &text[..text.len().min(300)]
                    ));
                }
            }
        }
        for (place, texts) in [("response", &bodies), ("stored row", &rows)] {
            for text in texts.iter() {
                if text.contains(canary.as_str()) {
                    hits.push(format!(
                        "{what} in a {place}: {}",
                        &text[..text.len().min(300)]
                    ));
                }
            }
        }
        for line in logs.lines().filter(|line| line.contains(canary.as_str())) {
            hits.push(format!("{what} in a log line: {line}"));
        }
    }
    println!(
        "canary scan: {} canaries over {} responses, {} stored rows, {} log lines: {} hits",
        canaries.len(),
        bodies.len(),
        rows.len(),
        logs.lines().count(),
        hits.len()
    );
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}
