//! Dev mode never spends real money by accident: with AWS credentials in the
//! environment and no opt-in, the all-in-one stack's AWS clients all point at the
//! in-process emulator on loopback, which holds the demo organisation, and the
//! services' own credentials are the emulator's, never the environment's.

use std::net::IpAddr;

use cudly::demo;
use cudly::dev_aws::{self, AwsTarget};
use cudly_common::config::Env;
use cudly_testkit::TestStack;
use cudly_testkit::rest::call;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Returns whether `url` names a loopback address.
fn is_loopback(url: &str) -> bool {
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or_default();
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[tokio::test]
async fn with_aws_credentials_in_the_environment_dev_mode_reaches_only_the_emulator() {
    let env = Env::from_pairs([
        ("AWS_ACCESS_KEY_ID", "AKIAREALLOOKING00001"),
        ("AWS_SECRET_ACCESS_KEY", "real-looking-secret-0123456789"),
        ("AWS_REGION", "eu-west-1"),
    ]);
    assert_eq!(
        AwsTarget::choose(&env, None).unwrap(),
        AwsTarget::Emulator,
        "no opt-in: the emulator"
    );
    let dir = tempfile::tempdir().unwrap();
    let emulator = dev_aws::start_emulator(dir.path()).await.unwrap();
    let endpoint = emulator.endpoint();
    let stack = TestStack::start_with(|config| {
        dev_aws::point_at_emulator(config, &endpoint);
        for (service, aws) in [
            ("accounts", &config.accounts.aws),
            ("executor", &config.executor.aws),
        ] {
            let url = aws
                .endpoint_url
                .as_deref()
                .unwrap_or("(the SDK's own: AWS)");
            assert!(is_loopback(url), "{service}'s AWS clients go to {url}");
        }
        let ambient = config.accounts.aws_ambient_credentials.as_ref();
        assert_eq!(
            ambient.map(|credentials| credentials.access_key_id.as_str()),
            Some(demo::HOST_ACCESS_KEY_ID),
            "the services' own credentials are the emulator's, not the environment's"
        );
    })
    .await
    .unwrap();

    // The demo organisation is there: registering its root and discovering finds the
    // members, every call in the emulator's ledger.
    let (status, root) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(json!({
            "name": demo::ROOT_NAME, "provider": "aws", "external_id": demo::ROOT_ACCOUNT_ID,
            "aws_auth_mode": "access_keys", "aws_is_org_root": true,
            "credentials": {"type": "aws_access_keys", "access_key_id": demo::ROOT_ACCESS_KEY_ID,
                            "secret_access_key": demo::ROOT_SECRET_ACCESS_KEY},
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{root}");
    let (status, discovery) = call(
        &stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": root["id"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{discovery}");
    let found = discovery["accounts"].as_array().map_or(0, Vec::len);
    assert_eq!(found, demo::MEMBERS.len(), "{discovery}");
    let ledger = emulator.ledger().await;
    assert!(
        ledger
            .calls
            .iter()
            .any(|call| call.account_id == demo::ROOT_ACCOUNT_ID),
        "discovery called the emulator as the demo root"
    );
    stack.stop().await.unwrap();
    dev_aws::stop_emulator(emulator).await;
}

#[tokio::test]
async fn the_emulator_keeps_its_state_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = dev_aws::start_emulator(dir.path()).await.unwrap();
    let seeded: Vec<String> = first
        .snapshot()
        .await
        .accounts
        .into_iter()
        .map(|account| account.account_id)
        .collect();
    assert!(
        seeded.iter().any(|id| id == demo::ROOT_ACCOUNT_ID),
        "{seeded:?}"
    );
    dev_aws::stop_emulator(first).await;
    let second = dev_aws::start_emulator(dir.path()).await.unwrap();
    let reloaded: Vec<String> = second
        .snapshot()
        .await
        .accounts
        .into_iter()
        .map(|account| account.account_id)
        .collect();
    assert_eq!(seeded, reloaded, "a restart reloads the demo organisation");
    dev_aws::stop_emulator(second).await;
}
