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

#[allow(dead_code)]
mod common;

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

/// Returns the ids of the accounts the emulator holds.
async fn account_ids(emulator: &dev_aws::Emulator) -> Vec<String> {
    let accounts = emulator.snapshot().await.accounts;
    accounts
        .into_iter()
        .map(|account| account.account_id)
        .collect()
}

#[tokio::test]
async fn the_emulator_keeps_its_state_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = dev_aws::start_emulator(dir.path()).await.unwrap();
    let seeded = account_ids(&first).await;
    assert!(
        seeded.iter().any(|id| id == demo::ROOT_ACCOUNT_ID),
        "{seeded:?}"
    );
    dev_aws::stop_emulator(first).await;
    let second = dev_aws::start_emulator(dir.path()).await.unwrap();
    let reloaded = account_ids(&second).await;
    assert_eq!(seeded, reloaded, "a restart reloads the demo organisation");
    dev_aws::stop_emulator(second).await;
}

/// Reads the server's start-up banner until it has named the gateway and the emulator.
async fn banner(stdout: tokio::process::ChildStdout) -> (String, String) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let (mut gateway, mut emulator) = (None, None);
    while gateway.is_none() || emulator.is_none() {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the server printed its banner before exiting");
        if let Some(url) = line.strip_prefix("gateway listening on ") {
            gateway = Some(url.trim().to_owned());
        }
        if let Some(rest) = line.split("AWS is the in-process emulator at ").nth(1) {
            emulator = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    // Keep draining, so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (gateway.unwrap(), emulator.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cudly_then_demo_then_approve_buys_in_the_emulator_and_nothing_else() {
    let database = cudly_testkit::TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dev_dir = dir.path().to_str().unwrap().to_owned();
    let absent_config = dir.path().join("absent.toml").to_str().unwrap().to_owned();
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_cudly"))
        .env_remove("CUDLY_ENV")
        .env_remove("CUDLY_AWS")
        .env_remove("AWS_ENDPOINT_URL")
        // Credentials a careless run might carry: dev mode must not use them.
        .env("AWS_ACCESS_KEY_ID", "AKIAREALLOOKING00001")
        .env("AWS_SECRET_ACCESS_KEY", "real-looking-secret-0123456789")
        .env("DATABASE_URL", database.url())
        .env("REDIS_URL", &redis)
        .env("CUDLY_DEV_DIR", &dev_dir)
        .env("CUDLY_GATEWAY_ADDR", "127.0.0.1:0")
        .env("CUDLY_GATEWAY_METRICS_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (gateway, emulator) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        banner(server.stdout.take().unwrap()),
    )
    .await
    .expect("the server starts within a minute");
    assert!(is_loopback(&emulator), "{emulator}");

    // The CLI finds the gateway by CUDLY_URL and its key in the dev secrets: nothing
    // else set by hand.
    let vars = [
        ("CUDLY_URL", gateway.as_str()),
        ("CUDLY_DEV_DIR", dev_dir.as_str()),
        ("CUDLY_CONFIG", absent_config.as_str()),
    ];
    cudly_testkit::eventually(
        "the gateway is ready",
        std::time::Duration::from_secs(60),
        || async {
            let ready = reqwest::get(format!("{gateway}/health/readyz")).await;
            ready
                .is_ok_and(|reply| reply.status() == StatusCode::OK)
                .then_some(())
        },
    )
    .await
    .unwrap();
    let demo = common::run_binary(&["demo", "--json"], &vars).await;
    assert_eq!(demo.status.code(), Some(0), "{demo:?}");
    let demo: serde_json::Value = serde_json::from_slice(&demo.stdout).unwrap();
    let execution = demo["execution"]["id"].as_str().unwrap().to_owned();
    let approved = common::run_binary(&["executions", "approve", &execution], &vars).await;
    assert_eq!(approved.status.code(), Some(0), "{approved:?}");
    let watched = common::run_binary(
        &["executions", "watch", &execution, "--interval", "0.2"],
        &vars,
    )
    .await;
    assert_eq!(watched.status.code(), Some(0), "completed: {watched:?}");

    let ledger: serde_json::Value = reqwest::get(format!("{emulator}/_sandbox/ledger"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let commitments = ledger["commitments"].as_array().unwrap();
    assert!(!commitments.is_empty(), "bought in the emulator: {ledger}");
    let members: Vec<&str> = demo::MEMBERS.iter().map(|(id, _)| *id).collect();
    for commitment in commitments {
        let account = commitment["account_id"].as_str().unwrap();
        assert!(
            members.contains(&account),
            "bought only for the demo members: {commitment}"
        );
    }
    let demo_accounts: Vec<&str> = members
        .iter()
        .copied()
        .chain([demo::ROOT_ACCOUNT_ID, demo::HOST_ACCOUNT_ID])
        .collect();
    for call in ledger["calls"].as_array().unwrap() {
        let account = call["account_id"].as_str().unwrap_or_default();
        assert!(
            demo_accounts.contains(&account),
            "every call is the demo's: {call}"
        );
    }
    server.start_kill().unwrap();
    let _ = server.wait().await;
}
