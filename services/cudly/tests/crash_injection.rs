//! Crash injection: the system runs as its service processes (the binaries a Helm
//! install runs, one of each, on a private Postgres) against the AWS sandbox. Each
//! trial starts executions over several accounts, then injects one fault at a random
//! moment (before, during or after purchase calls, sometimes inside the "purchase
//! accepted, response lost" window of a drop-after-commit fault), the kinds in turn:
//!
//! - **executor killed**: SIGKILL, then started again; the sweeper recovers its runs;
//! - **accounts stopped**: the accounts service is killed for 1 to 18 s (beyond the
//!   executor's 15 s of retries, its account runs are left for a re-drive), then
//!   started again;
//! - **Postgres restarted**: the database stops (fast shutdown) for up to 2 s, then
//!   starts again; every service reconnects.
//!
//! After every trial the sandbox ledger and the database must show: every item bought
//! exactly once, every execution terminal, every status change recorded.
//!
//! The default run is small (3 trials, one per kind, for CI). The full run:
//!
//! ```sh
//! scripts/crash-injection     # CUDLY_CRASH_TRIALS=300, nextest profile `long`
//! ```
//!
//! `CUDLY_CRASH_SEED` replays a run; `CUDLY_CRASH_REPORT=FILE` also writes the summary
//! to FILE.

mod drain;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cudly_aws_sandbox::{AccountSpec, FaultSpec, Sandbox, SandboxConfig};
use cudly_common::grpc::{Caller, client_channel};
use cudly_proto::executor::v1::CreateExecutionRequest;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_testkit::PrivatePostgres;
use cudly_testkit::cluster::{Cluster, ClusterSpec};
use cudly_testkit::rest::admin_json;
use drain::{Line, check, lines};
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
/// a fault can land in while a purchase is in flight.
const PURCHASE_LATENCY_MS: u64 = 60;
/// Longest a trial waits for its executions to end after the fault.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(150);

/// The fault a trial injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    ExecutorKilled,
    AccountsStopped,
    PostgresRestarted,
}

impl FaultKind {
    const ALL: [FaultKind; 3] = [
        FaultKind::ExecutorKilled,
        FaultKind::AccountsStopped,
        FaultKind::PostgresRestarted,
    ];

    fn name(self) -> &'static str {
        match self {
            FaultKind::ExecutorKilled => "executor killed",
            FaultKind::AccountsStopped => "accounts stopped",
            FaultKind::PostgresRestarted => "postgres restarted",
        }
    }
}

/// Figures over all trials.
#[derive(Debug, Default)]
struct Tally {
    trials: usize,
    trials_by_kind: [usize; 3],
    executions: usize,
    items: usize,
    double_purchases: usize,
    lost_items: usize,
    unterminated: usize,
    unrecorded_changes: usize,
    orphan_commitments: usize,
    drop_faults: usize,
    faults_during_purchase: usize,
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

/// What a trial acts on.
struct World {
    cluster: Cluster,
    postgres: PrivatePostgres,
    sandbox: cudly_aws_sandbox::SandboxHandle,
    pool: PgPool,
    lines: Vec<Line>,
    account_ids: Vec<String>,
    external_ids: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executors_killed_accounts_stopped_and_postgres_restarted_never_buy_twice_lose_nothing_or_leave_anything_running()
 {
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
    let mut world = start_world().await;

    let mut tally = Tally::default();
    let mut report = String::new();
    for trial in 1..=trials {
        let kind = FaultKind::ALL[(trial - 1) % FaultKind::ALL.len()];
        let outcome = run_trial(trial, kind, &mut rng, &mut world, &mut tally).await;
        println!("{outcome}");
        writeln!(report, "{outcome}").unwrap();
    }

    let summary = format!(
        "crash injection, seed {seed}: {} trials ({} executor killed, {} accounts stopped, \
         {} postgres restarted), {} executions, {} items; double purchases {}, lost items {}, \
         unterminated executions {}, unrecorded status changes {}, commitments without an \
         item {}; drop-after-commit faults {}, faults with a purchase in flight {}",
        tally.trials,
        tally.trials_by_kind[0],
        tally.trials_by_kind[1],
        tally.trials_by_kind[2],
        tally.executions,
        tally.items,
        tally.double_purchases,
        tally.lost_items,
        tally.unterminated,
        tally.unrecorded_changes,
        tally.orphan_commitments,
        tally.drop_faults,
        tally.faults_during_purchase,
    );
    println!("{summary}");
    if let Ok(path) = std::env::var("CUDLY_CRASH_REPORT") {
        std::fs::write(&path, format!("{report}{summary}\n")).unwrap();
    }
    let logs = world.cluster.log_tails(30);
    world.cluster.stop().await;
    assert!(tally.clean(), "{summary}\n{logs}");
}

/// Starts the sandbox, a private Postgres, one process of each service, and registers
/// the accounts.
async fn start_world() -> World {
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
    let postgres = PrivatePostgres::start().await.unwrap();
    let database_url = postgres.url("postgres");
    let env: Vec<(String, String)> = [
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
    let cluster = Cluster::start(ClusterSpec {
        executors: 1,
        sweepers: 1,
        database_url: database_url.clone(),
        redis_url: std::env::var("REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned()),
        env,
    })
    .await
    .unwrap();
    cluster.allow_auto_purchase().await.unwrap();

    let http = reqwest::Client::new();
    let mut account_ids = Vec::new();
    let mut external_ids = Vec::new();
    for index in 0..ACCOUNTS {
        let external_id = format!("61{:010}", index + 1);
        let key_id = format!("AKIACRASH{external_id}");
        let secret = format!("crashSecret{external_id}abcdefghijklmn");
        sandbox
            .add_account(AccountSpec::new(&external_id).with_access_key(&key_id, &secret))
            .await;
        let body = json!({"name": format!("crash {index}"), "provider": "aws", "external_id": external_id,
            "aws_auth_mode": "access_keys",
            "credentials": {"type": "aws_access_keys", "access_key_id": key_id,
                            "secret_access_key": secret}});
        let (status, account) = admin_json(
            &http,
            &format!("{}/api/accounts", cluster.gateway_url()),
            cluster.admin_key(),
            Method::POST,
            &body,
        )
        .await
        .unwrap();
        assert!(status.is_success(), "{status} {account}");
        account_ids.push(account["id"].as_str().unwrap().to_owned());
        external_ids.push(external_id);
    }
    // Latency on every purchase action: faults land while purchases are in flight.
    let lines = lines();
    for line in &lines {
        sandbox
            .add_fault(
                FaultSpec::on(line.service, line.purchase)
                    .latency(PURCHASE_LATENCY_MS, PURCHASE_LATENCY_MS),
            )
            .await;
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET search_path TO executor")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_lazy(&database_url)
        .unwrap();
    World {
        cluster,
        postgres,
        sandbox,
        pool,
        lines,
        account_ids,
        external_ids,
    }
}

/// Runs a query again until the database answers (it may be restarting).
async fn query_until_it_answers<T, F, Fut>(mut query: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let started = Instant::now();
    loop {
        match query().await {
            Ok(value) => return value,
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("the database stayed unavailable: {error}"),
        }
    }
}

/// One trial: start executions, inject `kind` at a random moment, wait, check.
async fn run_trial(
    trial: usize,
    kind: FaultKind,
    rng: &mut StdRng,
    world: &mut World,
    tally: &mut Tally,
) -> String {
    // Three services per trial, rotating so every service is bought under every kind.
    let picked: Vec<&Line> = (0..3)
        .map(|offset| &world.lines[(trial * 3 + offset) % world.lines.len()])
        .collect();
    // Half the trials lose one purchase response after the commit.
    let dropped = rng.random_bool(0.5).then(|| {
        let line = picked[rng.random_range(0..picked.len())];
        let account = &world.external_ids[rng.random_range(0..world.external_ids.len())];
        (line, account.clone())
    });
    let mut drop_fault = None;
    if let Some((line, account)) = &dropped {
        drop_fault = Some(
            world
                .sandbox
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
            &format!("http://{}", world.cluster.process("executor-0").addr),
            &world.cluster.internal_token(Caller::Planner),
            Duration::from_secs(30),
        )
        .unwrap(),
    );
    let mut roots = Vec::new();
    for _ in 0..EXECUTIONS_PER_TRIAL {
        let created = executor
            .create_execution(CreateExecutionRequest {
                target_account_ids: world.account_ids.clone(),
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
    // parallel: inject anywhere from at once to a little after. Account runs resolve
    // their credentials as they start, so the accounts service stops early.
    let latest = match kind {
        FaultKind::AccountsStopped => PURCHASE_LATENCY_MS,
        _ => 8 * PURCHASE_LATENCY_MS,
    };
    let fault_after = Duration::from_millis(rng.random_range(0..=latest));
    tokio::time::sleep(fault_after).await;
    let in_flight: i64 = query_until_it_answers(|| {
        sqlx::query_scalar(
            "SELECT count(*) FROM purchase_attempts WHERE root_id = ANY($1) AND state = 'in_flight' AND sent_at IS NOT NULL",
        )
        .bind(&roots)
        .fetch_one(&world.pool)
    })
    .await;
    if in_flight > 0 {
        tally.faults_during_purchase += 1;
    }
    let outage = match kind {
        FaultKind::ExecutorKilled => {
            world.cluster.kill("executor-0").await.unwrap();
            let outage = Duration::from_millis(rng.random_range(0..300));
            tokio::time::sleep(outage).await;
            world.cluster.start_process("executor-0").await.unwrap();
            outage
        }
        FaultKind::AccountsStopped => {
            world.cluster.kill("accounts").await.unwrap();
            let outage = Duration::from_millis(rng.random_range(1_000..18_000));
            tokio::time::sleep(outage).await;
            world.cluster.start_process("accounts").await.unwrap();
            outage
        }
        FaultKind::PostgresRestarted => {
            world.postgres.stop().await.unwrap();
            let outage = Duration::from_millis(rng.random_range(0..2_000));
            tokio::time::sleep(outage).await;
            world.postgres.start_again().await.unwrap();
            outage
        }
    };

    let started = Instant::now();
    loop {
        let live: i64 = query_until_it_answers(|| {
            sqlx::query_scalar(
                "SELECT count(*) FROM executions WHERE (id = ANY($1) OR parent_id = ANY($1)) \
                 AND status IN ('pending', 'approved', 'running')",
            )
            .bind(&roots)
            .fetch_one(&world.pool)
        })
        .await;
        if live == 0 || started.elapsed() > SETTLE_TIMEOUT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(id) = drop_fault {
        world.sandbox.remove_fault(id).await;
    }

    let found = check(&world.pool, &world.sandbox.ledger().await, &roots).await;
    tally.trials += 1;
    tally.trials_by_kind[FaultKind::ALL
        .iter()
        .position(|known| *known == kind)
        .unwrap_or_default()] += 1;
    tally.executions += found.executions;
    tally.items += found.items;
    tally.double_purchases += found.double_purchases;
    tally.lost_items += found.lost_items;
    tally.unterminated += found.unterminated;
    tally.unrecorded_changes += found.unrecorded_changes;
    tally.orphan_commitments = found.orphan_commitments;
    format!(
        "trial {trial}: {} after {} ms for {} ms ({in_flight} purchases in flight), {}{}; \
         settled in {:.1} s: {} items, double {}, lost {}, unterminated {}, unrecorded {}, orphans {}{}",
        kind.name(),
        fault_after.as_millis(),
        outage.as_millis(),
        picked
            .iter()
            .map(|line| line.recommendation.service.as_str())
            .collect::<Vec<_>>()
            .join("+"),
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
        found
            .lost_reasons
            .iter()
            .map(|reason| format!("\n  lost: {reason}"))
            .collect::<String>(),
    )
}
