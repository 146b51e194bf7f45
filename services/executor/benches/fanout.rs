//! Fan-out benchmark (not a test): 100 accounts x 3 items, 50 ms of sandbox latency on
//! the purchase operations only, `CUDLY_MAX_ACCOUNT_PARALLELISM` 20. Prints the time
//! from approval to the root's end and its ratio to two ideals: the physical one,
//! ceil(accounts / parallelism) x latency (an account's items all at once), and the
//! serial one, ceil(accounts / parallelism) x items x latency (one after another).
//!
//! `cargo bench --workspace --bench fanout` (release), or
//! `cargo bench --workspace --bench fanout --profile dev` for a quick run.
//! Knobs: `FANOUT_ACCOUNTS`, `FANOUT_ITEMS` (1-3), `FANOUT_LATENCY_MS`,
//! `FANOUT_PARALLELISM`, `FANOUT_ITEM_PARALLELISM`, `FANOUT_PURCHASE_CALLS`,
//! `FANOUT_RUNS`.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_aws_sandbox::{AccountSpec, FaultSpec};
use cudly_common::grpc::{Caller, client_channel};
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_proto::executor::v1::{ApproveExecutionRequest, CreateExecutionRequest};
use cudly_testkit::{TestStack, bench};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

mod common;

use common::lines;

fn main() -> anyhow::Result<()> {
    bench::block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let accounts = bench::knob("FANOUT_ACCOUNTS", 100) as usize;
    let items = bench::knob("FANOUT_ITEMS", 3).clamp(1, 3) as usize;
    let latency_ms = bench::knob("FANOUT_LATENCY_MS", 50);
    let parallelism = bench::knob("FANOUT_PARALLELISM", 20) as usize;
    let item_parallelism = bench::knob("FANOUT_ITEM_PARALLELISM", 4) as usize;
    let purchase_calls = bench::knob("FANOUT_PURCHASE_CALLS", 64) as usize;
    let runs = bench::knob("FANOUT_RUNS", 3).max(1);

    let stack = TestStack::start_with_sandbox_and(|config| {
        config.executor.runner.max_account_parallelism = parallelism;
        config.executor.runner.max_item_parallelism = item_parallelism;
        config.executor.runner.max_purchase_calls = purchase_calls;
        config.executor.runner.poll_interval = Duration::from_secs(5);
    })
    .await?;
    let lines: Vec<_> = lines().into_iter().take(items).collect();
    for line in &lines {
        let purchase = FaultSpec::on(
            sandbox_service(&line.service),
            purchase_operation(&line.service),
        );
        stack
            .sandbox()
            .add_fault(purchase.latency(latency_ms, 0))
            .await;
    }

    println!("registering {accounts} accounts");
    let ids: Vec<String> = futures::stream::iter(0..accounts)
        .map(|index| {
            let stack = &stack;
            async move {
                let external_id = format!("4{:011}", index);
                let key_id = format!("AKIAB{external_id}");
                let secret = format!("benchSecret{external_id}abcdefghijklmnop");
                stack
                    .sandbox()
                    .add_account(AccountSpec::new(&external_id).with_access_key(&key_id, &secret))
                    .await;
                let body = json!({
                    "name": format!("bench-{index}"), "provider": "aws", "external_id": external_id,
                    "aws_auth_mode": "access_keys",
                    "credentials": {"type": "aws_access_keys", "access_key_id": key_id, "secret_access_key": secret},
                });
                let (status, account) = stack.admin_json(Method::POST, "/api/accounts", Some(body)).await?;
                anyhow::ensure!(status == StatusCode::CREATED, "account not created: {account}");
                Ok::<_, anyhow::Error>(account["id"].as_str().context("account id")?.to_owned())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    let url = format!("http://{}", stack.stack().executor_addr());
    let planner = ExecutorServiceClient::new(client_channel(
        &url,
        &stack.secrets().internal_token(Caller::Planner),
        Duration::from_secs(60),
    )?);
    let gateway = ExecutorServiceClient::new(client_channel(
        &url,
        &stack.secrets().internal_token(Caller::Gateway),
        Duration::from_secs(60),
    )?);
    let pool = stack.db.pool("executor").await?;
    let waves = accounts.div_ceil(parallelism) as u64;
    let physical = Duration::from_millis(waves * latency_ms);
    let serial = Duration::from_millis(waves * items as u64 * latency_ms);
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let created = planner
            .clone()
            .create_execution(CreateExecutionRequest {
                target_account_ids: ids.clone(),
                recommendations: lines.clone(),
                source: "api".to_owned(),
                actor: "bench".to_owned(),
                ..CreateExecutionRequest::default()
            })
            .await?
            .into_inner();
        let execution = created.execution.context("an execution")?;
        let root = Uuid::parse_str(&execution.id)?;
        // Both ends are read off the database clock, so the poll below can be slow and
        // cheap: polling every 2 ms cost the system under test CPU of its own.
        let started: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&pool)
            .await?;
        gateway
            .clone()
            .approve_execution(ApproveExecutionRequest {
                id: execution.id.clone(),
                token: created.approval_token.clone(),
                actor: "token".to_owned(),
                actor_key_id: None,
            })
            .await?;
        let status = loop {
            let status: String = sqlx::query_scalar("SELECT status FROM executions WHERE id = $1")
                .bind(root)
                .fetch_one(&pool)
                .await?;
            if !matches!(status.as_str(), "pending" | "approved" | "running") {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let completed: DateTime<Utc> =
            sqlx::query_scalar("SELECT completed_at FROM executions WHERE id = $1")
                .bind(root)
                .fetch_one(&pool)
                .await?;
        let elapsed = (completed - started).to_std()?;
        let bought: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM execution_items i JOIN executions c ON c.id = i.execution_id \
             WHERE c.parent_id = $1 AND i.status = 'bought'",
        )
        .bind(root)
        .fetch_one(&pool)
        .await?;
        anyhow::ensure!(status == "completed", "run {run} ended {status}");
        anyhow::ensure!(
            bought as usize == accounts * items,
            "run {run} bought {bought} items"
        );
        let phases: (f64, f64, f64, f64, f64) = sqlx::query_as(
            "WITH c AS (SELECT id, started_at, completed_at FROM executions WHERE parent_id = $1), \
                  a AS (SELECT a.execution_id, a.started_at, a.sent_at, i.purchased_at \
                        FROM purchase_attempts a JOIN execution_items i \
                          ON i.idempotency_token = a.idempotency_token AND i.execution_id = a.execution_id \
                        WHERE a.root_id = $1) \
             SELECT \
               (SELECT avg(extract(epoch FROM completed_at - started_at)) * 1000 FROM c)::float8, \
               (SELECT avg(extract(epoch FROM first - c.started_at)) * 1000 FROM c \
                  JOIN (SELECT execution_id, min(started_at) AS first FROM a GROUP BY execution_id) f \
                  ON f.execution_id = c.id)::float8, \
               (SELECT avg(extract(epoch FROM sent_at - started_at)) * 1000 FROM a)::float8, \
               (SELECT avg(extract(epoch FROM purchased_at - sent_at)) * 1000 FROM a)::float8, \
               (SELECT extract(epoch FROM min(c.started_at) - r.started_at) * 1000 \
                  FROM c, executions r WHERE r.id = $1 GROUP BY r.started_at)::float8",
        )
        .bind(root)
        .fetch_one(&pool)
        .await?;
        println!(
            "  per child {:.0} ms (credentials and identity check {:.0} ms); per item: claim to send {:.0} ms, \
             send to recorded {:.0} ms; root claim to first child {:.0} ms",
            phases.0, phases.1, phases.2, phases.3, phases.4
        );
        let ratio = elapsed.as_secs_f64() / physical.as_secs_f64();
        let serial_ratio = elapsed.as_secs_f64() / serial.as_secs_f64();
        ratios.push((ratio, serial_ratio));
        println!(
            "run {run}: {accounts} accounts x {items} items, latency {latency_ms} ms, parallelism {parallelism} \
             (items {item_parallelism}, purchase calls {purchase_calls}): measured {:.0} ms; \
             physical ideal {:.0} ms, measured/physical {ratio:.2}; serial ideal {:.0} ms, measured/serial {serial_ratio:.2}",
            elapsed.as_secs_f64() * 1000.0,
            physical.as_secs_f64() * 1000.0,
            serial.as_secs_f64() * 1000.0,
        );
    }
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (best, median) = (ratios[0], ratios[ratios.len() / 2]);
    println!(
        "measured/physical best {:.2}, median {:.2}; measured/serial best {:.2}, median {:.2}",
        best.0, median.0, best.1, median.1
    );
    let concurrency = stack.sandbox().purchase_concurrency();
    println!(
        "sandbox: at most {} purchase calls in flight at once",
        concurrency.peak
    );
    let ledger = stack.sandbox().ledger().await;
    println!(
        "sandbox: {} commitments for {} items bought over {runs} runs",
        ledger.commitments.len(),
        accounts * items * runs as usize
    );
    stack.stop().await?;
    Ok(())
}
