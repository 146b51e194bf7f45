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
        .env("CUDLY_GATEWAY_METRICS_ADDR", "127.0.0.1:0")
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

/// A first start on an empty database is quiet: every service migrates, the sweeper
/// waits for its dependencies (its own schema, Redis, the executor and the planner
/// serving) before its first sweep, and no line is a warning or an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_start_on_an_empty_database_logs_no_warning() {
    let db = cudly_testkit::TestDb::create().await.unwrap();
    let dev_dir = tempfile::tempdir().unwrap();
    let port = cudly_testkit::free_port();
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cudly"))
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis)
        .env("CUDLY_GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("CUDLY_GATEWAY_METRICS_ADDR", "127.0.0.1:0")
        .env("CUDLY_DEV_DIR", dev_dir.path())
        .env("CUDLY_LOG_FORMAT", "json")
        .env(
            "CUDLY_LOCK_KEY_PREFIX",
            format!("cudly-test:{}:lock:task:", uuid::Uuid::new_v4().simple()),
        )
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for output in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines_tx = lines_tx.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(output));
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = lines_tx.send(line);
            }
        });
    }
    drop(lines_tx);
    let mut printed = Vec::new();
    let mut swept = std::collections::BTreeSet::new();
    let all_swept = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines_rx.recv().await {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["fields"]["message"] == "sweep ran"
                && let Some(task) = event["fields"]["task"].as_str()
            {
                swept.insert(task.to_owned());
            }
            printed.push(line);
            if swept.len() == 3 {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(all_swept, "not every task swept: {printed:#?}");
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the stack stops on SIGINT")
        .unwrap();
    while let Some(line) = lines_rx.recv().await {
        printed.push(line);
    }
    let loud: Vec<&String> = printed
        .iter()
        .filter(|line| line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(loud.is_empty(), "warnings or errors: {loud:#?}");
    assert!(
        printed
            .iter()
            .any(|line| line.contains("migrations applied")),
        "{printed:#?}"
    );
}
