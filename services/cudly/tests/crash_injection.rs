//! Crash injection: the system runs as a process (the `cudly` binary) against the AWS
//! sandbox; each trial starts executions over several accounts, kills the process with
//! SIGKILL at a random moment (before, during or after purchase calls, sometimes inside
//! the "purchase accepted, response lost" window of a drop-after-commit fault),
//! restarts it, and lets the sweeper recover. After every trial the sandbox ledger and
//! the database must show: every item bought exactly once, every execution terminal,
//! every status change recorded.
//!
//! The default run is small (3 trials, for CI). The full run:
//!
//! ```sh
//! scripts/crash-injection     # CUDLY_CRASH_TRIALS=200, nextest profile `long`
//! ```
//!
//! `CUDLY_CRASH_SEED` replays a run; `CUDLY_CRASH_REPORT=FILE` also writes the summary
//! to FILE.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_aws_sandbox::{AccountSpec, FaultSpec, Ledger, Sandbox, SandboxConfig, Service};
use cudly_common::grpc::client_channel;
use cudly_proto::common::v1::{Recommendation, RecommendationDetails};
use cudly_proto::executor::v1::CreateExecutionRequest;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_testkit::rest::admin_json;
use cudly_testkit::{TestDb, free_port};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// Accounts every trial's executions buy in.
const ACCOUNTS: usize = 4;
/// Executions started per trial (each over every account).
const EXECUTIONS_PER_TRIAL: usize = 2;
/// Sandbox latency on every purchase operation, plus up to as much jitter: the window
/// a kill can land in while a purchase is in flight.
const PURCHASE_LATENCY_MS: u64 = 60;
/// Longest a trial waits for its executions to end after the restart.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

const ADMIN_KEY: &str = "cudly-crash-injection-admin-key-0123456789";
const PLANNER_TOKEN: &str = "crash-injection-planner-token-0123456789abcdef";

/// One AWS service as the trials buy it: the recommendation, the sandbox service and
/// the purchase action.
struct Line {
    recommendation: Recommendation,
    service: Service,
    purchase: &'static str,
}

fn lines() -> Vec<Line> {
    let base = Recommendation {
        provider: "aws".to_owned(),
        region: "us-east-1".to_owned(),
        count: 1,
        term: 1,
        payment: "no-upfront".to_owned(),
        all_accounts: true,
        ..Recommendation::default()
    };
    let line = |service: &str, resource: &str, edit: &dyn Fn(&mut Recommendation)| {
        let mut recommendation = Recommendation {
            service: service.to_owned(),
            resource_type: resource.to_owned(),
            ..base.clone()
        };
        edit(&mut recommendation);
        Line {
            recommendation,
            service: sandbox_service(service),
            purchase: purchase_operation(service),
        }
    };
    vec![
        line("ec2", "m5.large", &|r| {
            r.platform = Some("Linux/UNIX".to_owned());
            r.details = Some(RecommendationDetails {
                tenancy: Some("default".to_owned()),
                offering_class: Some("standard".to_owned()),
                ..RecommendationDetails::default()
            });
        }),
        line("savingsplans", "Compute", &|r| {
            r.details = Some(RecommendationDetails {
                plan_type: Some("Compute".to_owned()),
                hourly_commitment: Some("1.25".to_owned()),
                ..RecommendationDetails::default()
            });
        }),
        line("rds", "db.r5.large", &|r| {
            r.engine = Some("postgresql".to_owned());
            r.payment = "all-upfront".to_owned();
        }),
        line("elasticache", "cache.m5.large", &|r| {
            r.engine = Some("redis".to_owned());
            r.payment = "partial-upfront".to_owned();
        }),
        line("memorydb", "db.r6g.large", &|_| {}),
        line("opensearch", "r6g.large.search", &|_| {}),
        line("redshift", "dc2.large", &|r| {
            r.payment = "all-upfront".to_owned();
        }),
    ]
}

/// The `cudly` process and how to start it again.
struct System {
    /// A copy of the `cudly` binary: a rebuild during a long run must not swap it.
    binary: PathBuf,
    child: Option<tokio::process::Child>,
    env: Vec<(String, String)>,
    log: PathBuf,
    gateway: SocketAddr,
    executor: SocketAddr,
    http: reqwest::Client,
}

impl System {
    async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = tokio::process::Command::new(&self.binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("the cudly binary starts");
        self.child = Some(child);
        let ready = self.url("/health/readyz");
        let started = Instant::now();
        loop {
            if let Ok(response) = self.http.get(&ready).send().await
                && response.status() == 200
            {
                return;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "cudly exited at start ({status}); see {}",
                    self.log.display()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cudly not ready in 60 s; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown hook runs, leases stay behind.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway)
    }

    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let (status, reply) = admin_json(&self.http, &self.url(path), ADMIN_KEY, method, &body)
            .await
            .unwrap();
        assert!(status.is_success(), "{path}: {status} {reply}");
        reply
    }
}

/// Figures over all trials.
#[derive(Debug, Default)]
struct Tally {
    trials: usize,
    executions: usize,
    items: usize,
    double_purchases: usize,
    lost_items: usize,
    unterminated: usize,
    unrecorded_changes: usize,
    orphan_commitments: usize,
    drop_faults: usize,
    kills_during_purchase: usize,
}

impl Tally {
    fn clean(&self) -> bool {
        self.double_purchases == 0
            && self.lost_items == 0
            && self.unterminated == 0
            && self.unrecorded_changes == 0
            && self.orphan_commitments == 0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_executors_never_buy_twice_lose_nothing_and_leave_nothing_running() {
    let trials: usize = std::env::var("CUDLY_CRASH_TRIALS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("CUDLY_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(rand::random);
    println!("crash injection: {trials} trials, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let host_key = format!(
        "AKIACRASHHOST{}",
        &Uuid::new_v4().simple().to_string()[..7].to_ascii_uppercase()
    );
    let host_secret = Uuid::new_v4().simple().to_string();
    let sandbox = Sandbox::start(SandboxConfig::default().with_account(
        AccountSpec::new("999988887777").with_access_key(host_key.clone(), host_secret.clone()),
    ))
    .await
    .unwrap();
    let db = TestDb::create().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let executor: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", "redis://127.0.0.1:6379/".to_owned()),
        (
            "CUDLY_DEV_DIR",
            dir.path().join("dev").display().to_string(),
        ),
        ("CUDLY_GATEWAY_ADDR", gateway.to_string()),
        ("CUDLY_EXECUTOR_ADDR", executor.to_string()),
        ("CUDLY_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY.to_owned()),
        ("CUDLY_INTERNAL_TOKEN_PLANNER", PLANNER_TOKEN.to_owned()),
        (
            "CUDLY_LOCK_KEY_PREFIX",
            format!("crash:{}:", Uuid::new_v4().simple()),
        ),
        ("CUDLY_STRANDED_RUNNING_AFTER", "2s".to_owned()),
        ("CUDLY_STRANDED_APPROVED_AFTER", "2s".to_owned()),
        ("CUDLY_SWEEP_INTERVAL", "1s".to_owned()),
        ("CUDLY_LOCK_TTL", "3s".to_owned()),
        ("CUDLY_EXECUTOR_POLL_INTERVAL", "1s".to_owned()),
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
    let binary = dir.path().join("cudly");
    std::fs::copy(env!("CARGO_BIN_EXE_cudly"), &binary).unwrap();
    let mut system = System {
        binary,
        child: None,
        env,
        log: dir.path().join("cudly.log"),
        gateway,
        executor,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    };
    system.start().await;

    // Accounts, registered once through the gateway.
    let mut account_ids = Vec::new();
    let mut external_ids = Vec::new();
    for index in 0..ACCOUNTS {
        let external_id = format!("61{:010}", index + 1);
        let key_id = format!("AKIACRASH{external_id}");
        let secret = format!("crashSecret{external_id}abcdefghijklmn");
        sandbox
            .add_account(AccountSpec::new(&external_id).with_access_key(&key_id, &secret))
            .await;
        let account = system
            .admin(
                Method::POST,
                "/api/accounts",
                json!({"name": format!("crash {index}"), "provider": "aws", "external_id": external_id,
                    "aws_auth_mode": "access_keys",
                    "credentials": {"type": "aws_access_keys", "access_key_id": key_id,
                                    "secret_access_key": secret}}),
            )
            .await;
        account_ids.push(account["id"].as_str().unwrap().to_owned());
        external_ids.push(external_id);
    }
    // Latency on every purchase action: kills land while purchases are in flight.
    let all_lines = lines();
    for line in &all_lines {
        sandbox
            .add_fault(
                FaultSpec::on(line.service, line.purchase)
                    .latency(PURCHASE_LATENCY_MS, PURCHASE_LATENCY_MS),
            )
            .await;
    }

    let pool = db.pool("executor").await.unwrap();
    let mut tally = Tally::default();
    let mut report = String::new();
    for trial in 1..=trials {
        let outcome = run_trial(
            trial,
            &mut rng,
            &mut system,
            &sandbox,
            &pool,
            &all_lines,
            &account_ids,
            &external_ids,
            &mut tally,
        )
        .await;
        println!("{outcome}");
        writeln!(report, "{outcome}").unwrap();
    }
    system.kill().await;

    let summary = format!(
        "crash injection, seed {seed}: {} trials, {} executions, {} items; \
         double purchases {}, lost items {}, unterminated executions {}, \
         unrecorded status changes {}, commitments without an item {}; \
         drop-after-commit faults {}, kills with a purchase in flight {}",
        tally.trials,
        tally.executions,
        tally.items,
        tally.double_purchases,
        tally.lost_items,
        tally.unterminated,
        tally.unrecorded_changes,
        tally.orphan_commitments,
        tally.drop_faults,
        tally.kills_during_purchase,
    );
    println!("{summary}");
    if let Ok(path) = std::env::var("CUDLY_CRASH_REPORT") {
        std::fs::write(&path, format!("{report}{summary}\n")).unwrap();
    }
    assert!(
        tally.clean(),
        "{summary}\nthe end of the process log:\n{}",
        log_tail(&system.log)
    );
}

/// One trial: start executions, kill at a random moment, restart, wait, check.
#[allow(clippy::too_many_arguments)]
async fn run_trial(
    trial: usize,
    rng: &mut StdRng,
    system: &mut System,
    sandbox: &cudly_aws_sandbox::SandboxHandle,
    pool: &PgPool,
    all_lines: &[Line],
    account_ids: &[String],
    external_ids: &[String],
    tally: &mut Tally,
) -> String {
    // Three services per trial, rotating so every service is bought under kills.
    let picked: Vec<&Line> = (0..3)
        .map(|offset| &all_lines[(trial * 3 + offset) % all_lines.len()])
        .collect();
    // Half the trials lose one purchase response after the commit.
    let dropped = rng.random_bool(0.5).then(|| {
        let line = picked[rng.random_range(0..picked.len())];
        let account = &external_ids[rng.random_range(0..external_ids.len())];
        (line, account.clone())
    });
    let mut drop_fault = None;
    if let Some((line, account)) = &dropped {
        drop_fault = Some(
            sandbox
                .add_fault(
                    FaultSpec::on(line.service, line.purchase)
                        .for_account(account.clone())
                        .drop_after_commit()
                        .times(1),
                )
                .await,
        );
        tally.drop_faults += 1;
    }

    let mut executor = ExecutorServiceClient::new(
        client_channel(
            &format!("http://{}", system.executor),
            &secrecy::SecretString::from(PLANNER_TOKEN),
            Duration::from_secs(30),
        )
        .unwrap(),
    );
    let mut roots = Vec::new();
    for _ in 0..EXECUTIONS_PER_TRIAL {
        let created = executor
            .create_execution(CreateExecutionRequest {
                target_account_ids: account_ids.to_vec(),
                recommendations: picked
                    .iter()
                    .map(|line| line.recommendation.clone())
                    .collect(),
                auto_approve: true,
                source: "api".to_owned(),
                actor: "crash-injection".to_owned(),
                ..CreateExecutionRequest::default()
            })
            .await
            .expect("an execution is created")
            .into_inner();
        roots.push(Uuid::parse_str(&created.execution.unwrap().id).unwrap());
    }

    // A run of 4 accounts x 3 purchases takes about 3 x 2 x latency per account, in
    // parallel: kill anywhere from at once to a little after.
    let kill_after = Duration::from_millis(rng.random_range(0..=(8 * PURCHASE_LATENCY_MS)));
    tokio::time::sleep(kill_after).await;
    let in_flight: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM purchase_attempts WHERE root_id = ANY($1) AND state = 'in_flight' AND sent_at IS NOT NULL",
    )
    .bind(&roots)
    .fetch_one(pool)
    .await
    .unwrap();
    system.kill().await;
    if in_flight > 0 {
        tally.kills_during_purchase += 1;
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
    system.start().await;

    let started = Instant::now();
    loop {
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM executions WHERE (id = ANY($1) OR parent_id = ANY($1)) \
             AND status IN ('pending', 'approved', 'running')",
        )
        .bind(&roots)
        .fetch_one(pool)
        .await
        .unwrap();
        if live == 0 || started.elapsed() > SETTLE_TIMEOUT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(id) = drop_fault {
        sandbox.remove_fault(id).await;
    }

    let found = check(pool, &sandbox.ledger().await, &roots).await;
    tally.trials += 1;
    tally.executions += found.executions;
    tally.items += found.items;
    tally.double_purchases += found.double_purchases;
    tally.lost_items += found.lost_items;
    tally.unterminated += found.unterminated;
    tally.unrecorded_changes += found.unrecorded_changes;
    tally.orphan_commitments = found.orphan_commitments;
    format!(
        "trial {trial}: {} killed after {} ms ({in_flight} purchases in flight){}; settled in {:.1} s: \
         {} items, double {}, lost {}, unterminated {}, unrecorded {}, orphans {}",
        picked
            .iter()
            .map(|line| line.recommendation.service.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        kill_after.as_millis(),
        dropped
            .as_ref()
            .map(|(line, _)| format!(", one {} response lost", line.recommendation.service))
            .unwrap_or_default(),
        started.elapsed().as_secs_f64(),
        found.items,
        found.double_purchases,
        found.lost_items,
        found.unterminated,
        found.unrecorded_changes,
        found.orphan_commitments,
    )
}

#[derive(Debug, Default)]
struct Found {
    executions: usize,
    items: usize,
    double_purchases: usize,
    lost_items: usize,
    unterminated: usize,
    unrecorded_changes: usize,
    orphan_commitments: usize,
}

/// Compares the database with the sandbox ledger for the trial's `roots`, and every
/// commitment in the ledger with every item ever recorded.
async fn check(pool: &PgPool, ledger: &Ledger, roots: &[Uuid]) -> Found {
    let mut found = Found::default();
    let executions: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, status FROM executions WHERE id = ANY($1) OR parent_id = ANY($1)",
    )
    .bind(roots)
    .fetch_all(pool)
    .await
    .unwrap();
    found.executions = executions.len();
    for (id, status) in &executions {
        if matches!(status.as_str(), "pending" | "approved" | "running") {
            found.unterminated += 1;
        }
        // The transitions chain from creation to the current status, link by link.
        let chain: Vec<(Option<String>, String)> = sqlx::query_as(
            "SELECT from_status, to_status FROM status_transitions WHERE execution_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut previous: Option<&str> = None;
        let mut broken = chain.is_empty();
        for (from, to) in &chain {
            if from.as_deref() != previous {
                broken = true;
            }
            previous = Some(to.as_str());
        }
        if previous != Some(status.as_str()) {
            broken = true;
        }
        if broken {
            found.unrecorded_changes += 1;
        }
    }

    // Ledger commitments by every key they count under, and by id.
    let mut by_key: HashMap<String, HashSet<&str>> = HashMap::new();
    for commitment in &ledger.commitments {
        for key in commitment.token_keys() {
            by_key
                .entry(key)
                .or_default()
                .insert(commitment.commitment_id.as_str());
        }
    }
    let items: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT i.idempotency_token, i.status, i.commitment_id FROM execution_items i \
         JOIN executions c ON c.id = i.execution_id WHERE c.parent_id = ANY($1)",
    )
    .bind(roots)
    .fetch_all(pool)
    .await
    .unwrap();
    found.items = items.len();
    for (token, status, commitment_id) in &items {
        // The token tag (or Savings Plans client token) names the item's commitments;
        // reservation ids are shortened tokens, so the recorded id is matched as well.
        let mut commitments: HashSet<&str> = by_key.get(token).cloned().unwrap_or_default();
        if let Some(id) = commitment_id
            && let Some(commitment) = ledger.commitments.iter().find(|c| &c.commitment_id == id)
        {
            commitments.insert(commitment.commitment_id.as_str());
        }
        if commitments.len() > 1 {
            found.double_purchases += commitments.len() - 1;
        }
        if status != "bought" || commitments.is_empty() {
            found.lost_items += 1;
        }
    }

    // Every commitment in the cloud belongs to a bought item (ever).
    let recorded: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT commitment_id FROM execution_items WHERE commitment_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    found.orphan_commitments = ledger
        .commitments
        .iter()
        .filter(|commitment| !recorded.contains(&commitment.commitment_id))
        .count();
    found
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
