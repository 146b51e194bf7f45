//! Creation benchmark (not a test): how long creating a priced execution takes, 3 lines
//! bought by every one of N accounts (one child each), through the executor's
//! CreateExecution. Each distinct offering is priced once per execution, through one
//! account, so the AWS look-ups (and the time) should stay flat as accounts grow; the
//! database writes (one child and 3 items per account) do not.
//!
//! Prints p50 and p99 of the creation latency per account count, and per creation the
//! describe-offerings calls and the credential resolutions (STS calls) the sandbox saw.
//!
//! `cargo bench --workspace --bench creation` (release), or
//! `cargo bench --workspace --bench creation --profile dev` for a quick run.
//! Knobs: `CREATION_ACCOUNTS` (largest size, default 100), `CREATION_RUNS` (per size,
//! default 30), `CREATION_LATENCY_MS` (sandbox latency on each offering look-up, default
//! 0).

use std::time::{Duration, Instant};

use cudly_aws_sandbox::FaultSpec;
use cudly_aws_sandbox::operations::sandbox_service;
use cudly_common::grpc::{Caller, client_channel};
use cudly_proto::executor::v1::CreateExecutionRequest;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_testkit::{TestStack, bench};
use futures::StreamExt;

mod common;

fn main() -> anyhow::Result<()> {
    bench::block_on(run())
}

/// The describe-offerings operation that prices a line of `service`.
fn describe_operation(service: &str) -> &'static str {
    match service {
        "rds" => "DescribeReservedDBInstancesOfferings",
        "ec2" => "DescribeReservedInstancesOfferings",
        "elasticache" => "DescribeReservedCacheNodesOfferings",
        other => panic!("no benchmark line of {other}"),
    }
}

/// Returns the `quantile` (0-1) of sorted `values`.
fn quantile(sorted: &[Duration], quantile: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn run() -> anyhow::Result<()> {
    let largest = bench::knob("CREATION_ACCOUNTS", 100).max(1) as usize;
    let runs = bench::knob("CREATION_RUNS", 30).max(1) as usize;
    let latency_ms = bench::knob("CREATION_LATENCY_MS", 0);
    let stack = TestStack::start_with_sandbox().await?;
    let recommendations = common::lines();
    let describes: Vec<&str> = recommendations
        .iter()
        .map(|line| describe_operation(&line.service))
        .collect();
    if latency_ms > 0 {
        for (line, describe) in recommendations.iter().zip(&describes) {
            let fault = FaultSpec::on(sandbox_service(&line.service), *describe);
            stack
                .sandbox()
                .add_fault(fault.latency(latency_ms, 0))
                .await;
        }
    }
    println!("registering {largest} accounts");
    let ids: Vec<String> = futures::stream::iter(0..largest)
        .map(|index| {
            let stack = &stack;
            async move { stack.add_sandbox_account(&format!("bench-{index}")).await }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let executor = ExecutorServiceClient::new(client_channel(
        &format!("http://{}", stack.stack().executor_addr()),
        &stack.secrets().internal_token(Caller::Gateway),
        Duration::from_secs(60),
    )?);
    let mut sizes = vec![1, 10, largest];
    sizes.retain(|size| *size <= largest);
    sizes.dedup();
    for size in sizes {
        let before = stack.sandbox().ledger().await.calls;
        let mut latencies = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            executor
                .clone()
                .create_execution(CreateExecutionRequest {
                    target_account_ids: ids[..size].to_vec(),
                    recommendations: recommendations.clone(),
                    source: "api".to_owned(),
                    actor: "key:bench".to_owned(),
                    ..CreateExecutionRequest::default()
                })
                .await?;
            latencies.push(started.elapsed());
        }
        let calls = stack.sandbox().ledger().await.calls;
        let new_calls = &calls[before.len()..];
        let offerings = new_calls
            .iter()
            .filter(|call| describes.contains(&call.operation.as_str()))
            .count();
        let sessions = new_calls
            .iter()
            .filter(|call| call.operation == "GetSessionToken" || call.operation == "AssumeRole")
            .count();
        latencies.sort();
        println!(
            "{size} accounts x 3 items ({} items), {runs} creations: p50 {:.1} ms, p99 {:.1} ms; \
             per creation {:.2} offering look-ups, {:.2} credential resolutions",
            size * 3,
            quantile(&latencies, 0.5).as_secs_f64() * 1000.0,
            quantile(&latencies, 0.99).as_secs_f64() * 1000.0,
            offerings as f64 / runs as f64,
            sessions as f64 / runs as f64,
        );
    }
    stack.stop().await?;
    Ok(())
}
