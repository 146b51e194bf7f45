//! No approval token (nor a full idempotency token) ever reaches a log line or a span:
//! every service of the stack runs in this test's process, so one debug-level
//! subscriber writing into a buffer captures all they print, span fields included.

#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use cudly_aws::purchase::AwsService;
use cudly_testkit::LogCapture;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn no_approval_token_appears_in_any_log_line_or_span() {
    let capture = LogCapture::install_with_spans("debug");

    let world = world().await;
    let account = world.add_account("logged", true).await;
    let mut tokens = Vec::new();

    // By link: preview, then approve with the token in the query string.
    let first = world
        .create_direct(
            &account,
            vec![
                recommendation(AwsService::Rds),
                recommendation(AwsService::Ec2),
            ],
        )
        .await;
    let id = first["id"].as_str().unwrap();
    let token = first["approval_token"].as_str().unwrap().to_owned();
    let (status, _) = world
        .call_anonymous(
            Method::GET,
            &format!("/api/purchases/approve/{id}?token={token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = world
        .call_anonymous(
            Method::POST,
            &format!("/api/purchases/approve/{id}?token={token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = world
        .call_anonymous(
            Method::POST,
            &format!("/api/purchases/approve/{id}?token={token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let done = world.wait_terminal(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    tokens.push(token);

    // By body, after a wrong token; then a cancel by link.
    let second = world
        .create_direct(&account, vec![recommendation(AwsService::SavingsPlans)])
        .await;
    let second_id = second["id"].as_str().unwrap();
    let second_token = second["approval_token"].as_str().unwrap().to_owned();
    let wrong = "ab".repeat(32);
    let (status, _) = world
        .call_anonymous(
            Method::POST,
            &format!("/api/executions/{second_id}/approve"),
            Some(json!({"token": wrong})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = world
        .call_anonymous(
            Method::POST,
            &format!("/api/purchases/cancel/{second_id}?token={second_token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokens.push(second_token);
    tokens.push(wrong);

    let mut idempotency_tokens = Vec::new();
    for child in children(&done) {
        for (_, token) in world.tokens_of(child["id"].as_str().unwrap()).await {
            idempotency_tokens.push(token);
        }
    }
    assert_eq!(idempotency_tokens.len(), 2);

    let logs = capture.text();
    assert!(logs.contains("execution decided"), "the capture works");
    assert!(logs.contains("item bought"), "the capture sees the runner");
    for token in &tokens {
        assert!(
            !logs.contains(token.as_str()),
            "an approval token was logged"
        );
    }
    for token in &idempotency_tokens {
        assert!(
            !logs.contains(token.as_str()),
            "a full idempotency token was logged"
        );
        assert!(logs.contains(&token[..8]), "tokens show masked");
    }
}
