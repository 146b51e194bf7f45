//! Gateway benchmark (not a test): throughput and latency of `GET /api/accounts/{id}` and
//! `GET /api/executions/{id}` through the gateway with the admin key, against the same
//! load doing a Postgres primary-key select of the same row.
//!
//! The system runs as the `cudly` binary (all five services in one process, dev mode) on
//! a fresh database. An account and an execution (one child, one item) are created
//! through the REST API. The load: 64 tasks, each on its own keep-alive connection
//! sending its next request when the previous one is answered, 2 s of warm-up, then 10 s
//! measured; requests per second, p50 and p99. The baseline: the same 64 tasks on a sqlx
//! pool of 64 running `SELECT * FROM cloud_accounts WHERE id = $1` (schema `accounts`)
//! and `SELECT * FROM executions WHERE id = $1` (schema `executor`), with the system
//! stopped. The load generator shares the machine's cores with the system, Postgres and
//! Redis.
//!
//! The gateway phase runs twice on the same database, the system restarted in between:
//! first with the API-key cache off (`CUDLY_API_KEY_CACHE_TTL=0`: every request looks
//! its key up in Postgres, as before the cache), then with it on (the default 5 s), so
//! one run measures before and after on the same machine.
//!
//! `cargo bench --workspace --bench gateway`.
//! Knobs: `GATEWAY_CONNECTIONS` (64), `GATEWAY_WARMUP_SECONDS` (2), `GATEWAY_SECONDS`
//! (10), `GATEWAY_RUST_LOG` (the system's `RUST_LOG`, default `info` as in production),
//! `BENCH_BIN_DIR` (where to take the `cudly` binary from instead of cargo's).

#[allow(dead_code)]
mod common;

use common::{Layout, LoadResult, LoadShape, System};
use cudly_testkit::{TestDb, bench};

const ACCOUNT_SELECT: &str = "SELECT * FROM cloud_accounts WHERE id = $1";
const EXECUTION_SELECT: &str = "SELECT * FROM executions WHERE id = $1";

fn main() -> anyhow::Result<()> {
    bench::block_on(run())
}

fn print_header(shape: &LoadShape, log_level: &str) {
    println!("gateway benchmark");
    println!("load: {}", shape.describe());
    println!(
        "system: {} ({}), RUST_LOG={log_level}, admin key auth",
        Layout::AllInOne.name(),
        common::cudly_binary().display()
    );
    println!(
        "baseline: the same tasks on a sqlx pool of {} connections: `{ACCOUNT_SELECT}` \
         (schema accounts), `{EXECUTION_SELECT}` (schema executor)",
        shape.connections
    );
    common::print_machine();
}

/// Prints throughput, p50 and p99 of `gateway` against `baseline`.
fn print_comparison(route: &str, gateway: &LoadResult, baseline: &LoadResult, select: &str) {
    let baseline_name = format!("postgres `{select}`");
    bench::print_result(
        &format!("gateway GET {route} throughput"),
        "req/s",
        gateway.per_second(),
        &baseline_name,
        baseline.per_second(),
    );
    for (name, quantile) in [("p50", 0.5), ("p99", 0.99)] {
        bench::print_result(
            &format!("gateway GET {route} latency {name}"),
            "ms",
            gateway.latency_ms(quantile),
            &baseline_name,
            baseline.latency_ms(quantile),
        );
    }
}

async fn run() -> anyhow::Result<()> {
    let shape = LoadShape::from_env();
    let log_level = bench::text_knob("GATEWAY_RUST_LOG", "info");
    print_header(&shape, &log_level);

    let db = TestDb::create().await?;
    let mut measured = Vec::new();
    let mut seeded = None;
    for (label, ttl) in [
        ("key cache off (before)", "0s"),
        ("key cache 5 s (after)", "5s"),
    ] {
        let system = System::start_with(
            Layout::AllInOne,
            &db,
            &log_level,
            &[("CUDLY_API_KEY_CACHE_TTL", ttl)],
        )
        .await?;
        if seeded.is_none() {
            seeded = Some(common::seed(&system).await?);
        }
        let rows = seeded.as_ref().expect("seeded above");
        let urls = [system.url(&rows.account_path())];
        let accounts =
            common::run_load(common::http_probes(&urls, shape.connections)?, &shape).await?;
        accounts.print(&format!("gateway GET /api/accounts/{{id}}, {label}"));
        let urls = [system.url(&rows.execution_path())];
        let executions =
            common::run_load(common::http_probes(&urls, shape.connections)?, &shape).await?;
        executions.print(&format!("gateway GET /api/executions/{{id}}, {label}"));
        // Stopped before the next phase: its cores and connections go to that phase.
        system.stop().await;
        measured.push((label, accounts, executions));
    }
    let seeded = seeded.expect("seeded by the first phase");

    let pool = common::pool(&db, "accounts", shape.connections).await?;
    let probes = common::sql_probes(&pool, ACCOUNT_SELECT, seeded.account_id, shape.connections);
    let account_rows = common::run_load(probes, &shape).await?;
    account_rows.print("postgres account select");
    pool.close().await;
    let pool = common::pool(&db, "executor", shape.connections).await?;
    let probes = common::sql_probes(
        &pool,
        EXECUTION_SELECT,
        seeded.execution_id,
        shape.connections,
    );
    let execution_rows = common::run_load(probes, &shape).await?;
    execution_rows.print("postgres execution select");
    pool.close().await;

    for (label, accounts, executions) in &measured {
        print_comparison(
            &format!("/api/accounts/{{id}} ({label})"),
            accounts,
            &account_rows,
            ACCOUNT_SELECT,
        );
        print_comparison(
            &format!("/api/executions/{{id}} ({label})"),
            executions,
            &execution_rows,
            EXECUTION_SELECT,
        );
    }
    Ok(())
}
