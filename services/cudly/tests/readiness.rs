//! The all-in-one stack reports readiness from its dependencies: against a private
//! Postgres instance, stopping it turns /health/readyz to 503 naming postgres, and
//! starting it again brings it back to 200 without a restart.

use std::time::Duration;

use cudly::{Stack, StackConfig};
use cudly_testkit::{PrivatePostgres, eventually};
use secrecy::SecretString;

async fn readyz(http: &reqwest::Client, base: &str) -> Option<(u16, serde_json::Value)> {
    let response = http
        .get(format!("{base}/health/readyz"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_postgres_going_down_and_coming_back() {
    let mut postgres = PrivatePostgres::start().await.unwrap();
    let mut config = StackConfig::for_tests(
        SecretString::from(postgres.url("cudly")),
        SecretString::from("redis://127.0.0.1:6379/"),
    );
    config.create_database = true;
    let stack = Stack::start(config).await.unwrap();
    let base = stack.gateway_url();
    let http = reqwest::Client::new();

    eventually(
        "readyz 200 with all five services up",
        Duration::from_secs(30),
        || async {
            let (status, body) = readyz(&http, &base).await?;
            (status == 200 && body["status"] == "ready").then_some(())
        },
    )
    .await
    .unwrap();

    postgres.stop().await.unwrap();
    let failing = eventually(
        "readyz 503 naming postgres",
        Duration::from_secs(30),
        || async {
            let (status, body) = readyz(&http, &base).await?;
            let failing = body["failing"].as_array()?.clone();
            let names_postgres = failing.iter().any(|name| name == "postgres");
            (status == 503 && body["status"] == "not ready" && names_postgres).then_some(failing)
        },
    )
    .await
    .unwrap();
    assert!(failing.iter().any(|name| name == "postgres"), "{failing:?}");

    postgres.start_again().await.unwrap();
    eventually(
        "readyz 200 again without a restart",
        Duration::from_secs(30),
        || async {
            let (status, _) = readyz(&http, &base).await?;
            (status == 200).then_some(())
        },
    )
    .await
    .unwrap();

    stack.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_the_gateway_address_and_serves_livez() {
    let db = cudly_testkit::TestDb::create().await.unwrap();
    let dev_dir = tempfile::tempdir().unwrap();
    let port = cudly_testkit::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cudly"))
        .env("DATABASE_URL", db.url())
        .env("CUDLY_GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("CUDLY_DEV_DIR", dev_dir.path())
        .env_remove("CUDLY_ENV")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let expected = format!("gateway listening on http://127.0.0.1:{port}");
    let mut printed = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push(line.clone());
            if line == expected {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "stdout was {printed:?}");
    // Dev mode keeps the generated secrets in 0600 files and prints their paths only.
    let secrets = std::fs::read_to_string(dev_dir.path().join("secrets.env")).unwrap();
    for line in secrets.lines() {
        let value = line.split_once('=').unwrap().1;
        assert!(
            printed.iter().all(|out| !out.contains(value)),
            "a secret was printed"
        );
    }
    let livez = reqwest::get(format!("http://127.0.0.1:{port}/health/livez"))
        .await
        .unwrap();
    assert_eq!(livez.status(), 200);
    child.kill().await.unwrap();
}
