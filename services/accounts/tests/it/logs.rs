//! No secret written through the API ever reaches a log line: every service of the
//! stack runs in this test's process, so one debug-level subscriber writing into a
//! buffer captures everything they print; the buffer is then scanned.

use cudly_aws_sandbox::{AccountSpec, RoleSpec};
use cudly_common::grpc::Caller;
use cudly_proto::accounts::v1::ResolveCredentialsRequest;
use cudly_testkit::LogCapture;
use cudly_testkit::rest::call;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

const CANARY_SECRET: &str = "canarySecretAccessKey0123456789abcdefXYZ";
const CANARY_KEY_ID: &str = "AKIACANARYKEYID00042";
const CANARY_AZURE: &str = "canary-azure-client-secret-5e8f";
const CANARY_PRIVATE_KEY: &str = "canary-gcp-private-key-material-77aa";

#[tokio::test]
async fn a_canary_secret_never_appears_in_any_log_line() {
    let capture = LogCapture::install("debug");

    let stack = stack().await;
    stack
        .sandbox()
        .add_account(
            AccountSpec::new(KEYS_ACCOUNT)
                .with_access_key(CANARY_KEY_ID, CANARY_SECRET)
                .with_role(RoleSpec::new("Member", KEYS_ACCOUNT)),
        )
        .await;
    stack
        .sandbox()
        .add_account(
            AccountSpec::new("444444444444").with_role(RoleSpec::new("Member", KEYS_ACCOUNT)),
        )
        .await;
    let canary_keys = json!({"type": "aws_access_keys", "access_key_id": CANARY_KEY_ID, "secret_access_key": CANARY_SECRET});

    // Inline on create, then again through the credentials route.
    let mut body = keys_account("canary", KEYS_ACCOUNT);
    body["credentials"] = canary_keys.clone();
    let id = create(&stack, body).await;
    let (status, _) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/credentials"),
        Some(canary_keys.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Refused bodies carrying the canary: an unknown key, a malformed key id, a
    // provider mismatch, and a malformed JSON body.
    for bad in [
        json!({"type": "aws_access_keys", "access_key_id": CANARY_KEY_ID, "secret_access_key": CANARY_SECRET, "extra": CANARY_SECRET}),
        json!({"access_key_id": format!("{CANARY_SECRET}!"), "secret_access_key": CANARY_SECRET}),
        json!({"type": "azure_client_secret", "client_secret": CANARY_SECRET}),
        json!({CANARY_SECRET: CANARY_SECRET}),
    ] {
        let (status, reply) = call(
            &stack,
            Method::POST,
            &format!("/api/accounts/{id}/credentials"),
            Some(bad),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    }
    let response = stack
        .admin(Method::POST, &format!("/api/accounts/{id}/credentials"))
        .header("content-type", "application/json")
        .body(format!("{{\"secret_access_key\": \"{CANARY_SECRET}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Uses of the stored keys: tests, resolution (direct and through a bastion).
    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{id}/test"),
        None,
    )
    .await;
    assert_eq!(tested["ok"], true, "{tested}");
    let member = create(
        &stack,
        bastion_account("member", "444444444444", &id, "Member"),
    )
    .await;
    let (_, tested) = call(
        &stack,
        Method::POST,
        &format!("/api/accounts/{member}/test"),
        None,
    )
    .await;
    assert_eq!(tested["ok"], true, "{tested}");
    let mut executor = grpc_as(&stack, Caller::Executor);
    let mut session_secrets = Vec::new();
    for account in [&id, &member] {
        let resolved = executor
            .resolve_credentials(ResolveCredentialsRequest {
                account_id: account.to_string(),
                scope: "quote".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        session_secrets.push(resolved.secret_access_key.clone());
        session_secrets.push(resolved.session_token.clone());
    }

    // Other providers' secrets.
    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "sub", "provider": "azure", "external_id": "6f1c2a3b-1111-4222-8333-944455556666",
                    "credentials": {"client_secret": CANARY_AZURE}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "proj", "provider": "gcp", "external_id": "analytics-prod",
                    "credentials": {"service_account_json": {"type": "service_account",
                        "client_email": "sa@analytics-prod.iam.gserviceaccount.com", "private_key": CANARY_PRIVATE_KEY}}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, wrong) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(json!({"name": "proj2", "provider": "gcp", "external_id": "other-project",
                    "credentials": {"service_account_json": format!("{{not json {CANARY_PRIVATE_KEY}")}})),
    )
    .await;
    assert!(!wrong.to_string().contains(CANARY_PRIVATE_KEY));
    stack.stop().await.unwrap();

    let logs = capture.text();
    assert!(
        logs.contains("credentials stored"),
        "the capture works: {} bytes",
        logs.len()
    );
    assert!(logs.contains("session credentials handed out"));
    for canary in [CANARY_SECRET, CANARY_AZURE, CANARY_PRIVATE_KEY] {
        let leaked: Vec<&str> = logs.lines().filter(|line| line.contains(canary)).collect();
        assert!(leaked.is_empty(), "a secret in the logs: {leaked:#?}");
    }
    for secret in &session_secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a session secret in the logs"
        );
    }
    // Access key ids are not secrets to AWS, but they are credential fields here, so
    // none of our code logs one. The AWS SDK itself does, at DEBUG only: its endpoint
    // resolution event (`aws_smithy_runtime::client::orchestrator::endpoints`) prints
    // the request's identity with `Credentials`' Debug, which shows the key id (never
    // the secret). That one event is tolerated here and nowhere else; deployments
    // log at INFO, where it does not exist.
    let key_id_lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(CANARY_KEY_ID))
        .filter(|line| {
            !(line.contains(" DEBUG ")
                && line.contains(
                    "aws_smithy_runtime::client::orchestrator::endpoints: resolving endpoint",
                ))
        })
        .collect();
    assert!(
        key_id_lines.is_empty(),
        "an access key id in the logs: {key_id_lines:#?}"
    );
    let above_debug: Vec<&str> = logs
        .lines()
        .filter(|line| !line.contains(" DEBUG ") && !line.contains(" TRACE "))
        .filter(|line| line.contains(CANARY_KEY_ID) || line.contains("ASIA"))
        .collect();
    assert!(
        above_debug.is_empty(),
        "an access key id at INFO or above: {above_debug:#?}"
    );
}
