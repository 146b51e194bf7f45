//! Scale-out as the Helm chart allows it: three executor processes and two sweepers
//! (separate processes, one database, one Redis) drain approved executions over many
//! accounts while one executor is killed (SIGKILL) and started again. Every token must
//! be bought exactly once, every execution must end completed, and every executor
//! replica must have run some of the work.
//!
//! Creations go to the executors in turn, as a Kubernetes Service spreads them; each
//! replica also polls for approved executions, and the sweepers re-drive what the
//! killed one held.
//!
//! The default run is small (30 executions over 10 accounts, for CI). The full run:
//!
//! ```sh
//! scripts/scale-out     # 300 executions over 100 accounts, nextest profile `long`
//! ```
//!
//! Knobs: `CUDLY_SCALE_EXECUTIONS`, `CUDLY_SCALE_ACCOUNTS`;
//! `CUDLY_SCALE_REPORT=FILE` also writes the figures to FILE.

mod drain;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use cudly_aws_sandbox::{AccountSpec, FaultSpec, Sandbox, SandboxConfig};
use cudly_common::grpc::{Caller, client_channel};
use cudly_proto::executor::v1::CreateExecutionRequest;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_testkit::TestDb;
use cudly_testkit::cluster::{Cluster, ClusterSpec};
use cudly_testkit::rest::admin_json;
use drain::{check, lines};
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

/// Sandbox latency on every purchase operation.
const PURCHASE_LATENCY_MS: u64 = 50;
/// Longest the drain may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(900);
/// The services each execution buys (one line each).
const SERVICES: [&str; 2] = ["rds", "ec2"];

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Returns `line` without its ANSI colour sequences.
fn plain(line: &str) -> String {
    let mut text = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            text.push(c);
        }
    }
    text
}

/// Returns the process id an executor logged at start (`process_id=…`), every start's.
fn process_ids(log: &str) -> Vec<String> {
    log.lines()
        .map(plain)
        .filter(|line| line.contains("executor runner ready"))
        .filter_map(|line| {
            let rest = &line[line.find("process_id=")? + "process_id=".len()..];
            let id: String = rest
                .trim_start_matches('"')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            (!id.is_empty()).then_some(id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_executors_and_two_sweepers_buy_every_token_once_while_one_executor_dies() {
    let executions = knob("CUDLY_SCALE_EXECUTIONS", 30);
    let accounts = knob("CUDLY_SCALE_ACCOUNTS", 10).max(1);
    let host_key = format!(
        "AKIASCALEHOST{}",
        &Uuid::new_v4().simple().to_string()[..7].to_ascii_uppercase()
    );
    let host_secret = Uuid::new_v4().simple().to_string();
    let sandbox = Sandbox::start(SandboxConfig::default().with_account(
        AccountSpec::new("999988887766").with_access_key(host_key.clone(), host_secret.clone()),
    ))
    .await
    .unwrap();
    let db = TestDb::create().await.unwrap();
    let env: Vec<(String, String)> = [
        ("CUDLY_STRANDED_RUNNING_AFTER", "3s".to_owned()),
        ("CUDLY_STRANDED_APPROVED_AFTER", "3s".to_owned()),
        ("CUDLY_SWEEP_INTERVAL", "1s".to_owned()),
        ("CUDLY_LOCK_TTL", "3s".to_owned()),
        ("CUDLY_EXECUTOR_POLL_INTERVAL", "500ms".to_owned()),
        ("CUDLY_MAX_ACCOUNT_PARALLELISM", "5".to_owned()),
        ("CUDLY_AWS_CALL_TIMEOUT", "3s".to_owned()),
        ("CUDLY_PURCHASE_SETTLE_MARGIN", "1s".to_owned()),
        ("CUDLY_HEALTH_INTERVAL", "500ms".to_owned()),
        ("AWS_ENDPOINT_URL", sandbox.endpoint()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", host_key),
        ("AWS_SECRET_ACCESS_KEY", host_secret),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut cluster = Cluster::start(ClusterSpec {
        executors: 3,
        sweepers: 2,
        database_url: db.url().to_owned(),
        redis_url: std::env::var("REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned()),
        env,
    })
    .await
    .unwrap();
    cluster.allow_auto_purchase().await.unwrap();

    // The accounts, registered through the gateway.
    let http = reqwest::Client::new();
    let gateway = cluster.gateway_url();
    let admin_key = cluster.admin_key().to_owned();
    let account_ids: Vec<String> = futures::stream::iter(0..accounts)
        .map(|index| {
            let (sandbox, http, gateway, admin_key) = (&sandbox, &http, &gateway, &admin_key);
            async move {
                let external_id = format!("62{:010}", index + 1);
                let key_id = format!("AKIASCALE{external_id}");
                let secret = format!("scaleSecret{external_id}abcdefghijklmn");
                sandbox
                    .add_account(AccountSpec::new(&external_id).with_access_key(&key_id, &secret))
                    .await;
                let body = json!({"name": format!("scale {index}"), "provider": "aws",
                    "external_id": external_id, "aws_auth_mode": "access_keys",
                    "credentials": {"type": "aws_access_keys", "access_key_id": key_id,
                                    "secret_access_key": secret}});
                let (status, account) = admin_json(
                    http,
                    &format!("{gateway}/api/accounts"),
                    admin_key,
                    Method::POST,
                    &body,
                )
                .await
                .unwrap();
                assert!(status.is_success(), "{status} {account}");
                account["id"].as_str().unwrap().to_owned()
            }
        })
        .buffered(8)
        .collect()
        .await;
    let lines: Vec<_> = lines()
        .into_iter()
        .filter(|line| SERVICES.contains(&line.recommendation.service.as_str()))
        .collect();
    for line in &lines {
        sandbox
            .add_fault(FaultSpec::on(line.service, line.purchase).latency(PURCHASE_LATENCY_MS, 0))
            .await;
    }

    // Every execution approved at creation, spread over the three executors.
    let executor_names = cluster.names_of("executor");
    let clients: Vec<_> = executor_names
        .iter()
        .map(|name| {
            ExecutorServiceClient::new(
                client_channel(
                    &format!("http://{}", cluster.process(name).addr),
                    &cluster.internal_token(Caller::Planner),
                    Duration::from_secs(30),
                )
                .unwrap(),
            )
        })
        .collect();
    let started = Instant::now();
    let mut roots = Vec::new();
    for index in 0..executions {
        let mut client = clients[index % clients.len()].clone();
        let created = client
            .create_execution(CreateExecutionRequest {
                target_account_ids: vec![account_ids[index % accounts].clone()],
                recommendations: lines
                    .iter()
                    .map(|line| line.recommendation.clone())
                    .collect(),
                auto_approve: true,
                source: "api".to_owned(),
                actor: "scale-out".to_owned(),
                ..CreateExecutionRequest::default()
            })
            .await
            .expect("an execution is created")
            .into_inner();
        roots.push(Uuid::parse_str(&created.execution.unwrap().id).unwrap());
    }
    let created_in = started.elapsed();

    // Once a third has ended, executor-1 dies and comes back.
    let pool = db.pool("executor").await.unwrap();
    let terminal = |pool: &sqlx::PgPool, roots: &[Uuid]| {
        let (pool, roots) = (pool.clone(), roots.to_vec());
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM executions WHERE id = ANY($1) \
                 AND status NOT IN ('pending', 'approved', 'running')",
            )
            .bind(&roots)
            .fetch_one(&pool)
            .await
            .unwrap() as usize
        }
    };
    while terminal(&pool, &roots).await < executions / 3 && started.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed_at = started.elapsed();
    cluster.kill("executor-1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.start_process("executor-1").await.unwrap();
    while terminal(&pool, &roots).await < executions && started.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained_in = started.elapsed();

    let found = check(&pool, &sandbox.ledger().await, &roots).await;
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM executions WHERE id = ANY($1) AND status = 'completed'",
    )
    .bind(&roots)
    .fetch_one(&pool)
    .await
    .unwrap();
    // Which replica bought what: the process id is the first part of a lease owner.
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT split_part(lease_owner, ':', 1) FROM purchase_attempts \
         WHERE root_id = ANY($1) AND state = 'bought'",
    )
    .bind(&roots)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut by_replica: BTreeMap<String, usize> = BTreeMap::new();
    for name in &executor_names {
        let ids: HashSet<String> = process_ids(&cluster.log(name)).into_iter().collect();
        let count = owners.iter().filter(|owner| ids.contains(*owner)).count();
        by_replica.insert(name.clone(), count);
    }
    let redriven: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT execution_id) FROM status_transitions \
         WHERE execution_id = ANY($1) AND reason LIKE 're-driven by%'",
    )
    .bind(&roots)
    .fetch_one(&pool)
    .await
    .unwrap();
    let summary = format!(
        "scale-out: {executions} executions ({} items) over {accounts} accounts, 3 executors \
         + 2 sweepers; created in {:.1} s; executor-1 killed at {:.1} s and started again; \
         drained in {:.1} s ({:.1} executions/s); completed {completed}, double purchases {}, \
         lost items {}, unterminated {}, unrecorded status changes {}, commitments without \
         an item {}; re-driven {redriven}; items bought per replica {by_replica:?}",
        found.items,
        created_in.as_secs_f64(),
        killed_at.as_secs_f64(),
        drained_in.as_secs_f64(),
        executions as f64 / drained_in.as_secs_f64(),
        found.double_purchases,
        found.lost_items,
        found.unterminated,
        found.unrecorded_changes,
        found.orphan_commitments,
    );
    println!("{summary}");
    if let Ok(path) = std::env::var("CUDLY_SCALE_REPORT") {
        std::fs::write(&path, format!("{summary}\n")).unwrap();
    }
    let logs = cluster.log_tails(20);
    cluster.stop().await;
    assert_eq!(
        (
            found.double_purchases,
            found.lost_items,
            found.unterminated,
            found.unrecorded_changes,
            found.orphan_commitments
        ),
        (0, 0, 0, 0, 0),
        "{summary}\n{logs}"
    );
    assert_eq!(completed as usize, executions, "{summary}\n{logs}");
    assert_eq!(found.items, executions * lines.len(), "{summary}");
    assert!(
        by_replica.values().all(|count| *count > 0),
        "every replica bought some: {summary}\n{logs}"
    );
}
