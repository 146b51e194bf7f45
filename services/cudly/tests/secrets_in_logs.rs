//! No approval token in any log line or span: every service of the stack logs at debug
//! level into one buffer while an execution is created, approved by its token through
//! the gateway (URI and body) and run; the buffer never contains the token.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use common::add_keys_account;
use cudly_testkit::{LogCapture, SERVICES_AT_DEBUG, TestStack, eventually};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_approval_token_appears_in_any_log_line_or_span() {
    let logs = LogCapture::install(SERVICES_AT_DEBUG);

    let stack = TestStack::start_with_sandbox().await.unwrap();
    let account_id = add_keys_account(
        &stack,
        "log-scan",
        "512345678901",
        "AKIALOGSCAN000000001",
        "logScanSecretValue0123456789abcd",
    )
    .await;
    let recommendation = json!({"provider": "aws", "service": "rds", "region": "us-east-1",
        "resource_type": "db.r6g.large", "engine": "postgresql", "count": 1, "term": 1,
        "payment": "all-upfront"});

    // Approved by token in the body ...
    let (status, first) = stack
        .admin_json(Method::POST, "/api/executions",
            Some(json!({"cloud_account_id": account_id, "recommendations": [recommendation.clone()]})))
        .await
        .unwrap();
    assert_eq!(status, 201, "{first}");
    let first_token = first["approval_token"].as_str().unwrap().to_owned();
    let approve = stack
        .http
        .post(stack.url(&format!(
            "/api/executions/{}/approve",
            first["id"].as_str().unwrap()
        )))
        .json(&json!({"token": first_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 200);

    // ... and by token in the query string (the CUDly-compatible link), after a preview.
    let (_, second) = stack
        .admin_json(
            Method::POST,
            "/api/executions",
            Some(json!({"cloud_account_id": account_id, "recommendations": [recommendation]})),
        )
        .await
        .unwrap();
    let second_token = second["approval_token"].as_str().unwrap().to_owned();
    let link = stack.url(&format!(
        "/api/purchases/approve/{}?token={second_token}",
        second["id"].as_str().unwrap()
    ));
    assert_eq!(stack.http.get(&link).send().await.unwrap().status(), 200);
    assert_eq!(stack.http.post(&link).send().await.unwrap().status(), 200);

    for id in [
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    ] {
        eventually("the execution to end", Duration::from_secs(60), || async {
            let (_, body) = stack
                .admin_json(Method::GET, &format!("/api/executions/{id}"), None)
                .await
                .ok()?;
            (body["status"] == "completed").then_some(())
        })
        .await
        .unwrap();
    }
    stack.stop().await.unwrap();

    let logs = logs.text();
    assert!(
        logs.lines().count() > 50,
        "the services logged: {} lines",
        logs.lines().count()
    );
    // The approvals themselves were logged (so the scan covers them), tokens not.
    let first_id = first["id"].as_str().unwrap();
    assert!(
        logs.contains(first_id),
        "the approved execution appears in the logs"
    );
    assert!(
        logs.contains("/api/purchases/approve/"),
        "the approve link's route was logged"
    );
    for token in [&first_token, &second_token] {
        assert!(
            !logs.contains(token.as_str()),
            "an approval token was logged"
        );
    }
    assert!(
        !logs.contains("logScanSecretValue0123456789abcd"),
        "a credential was logged"
    );
}
