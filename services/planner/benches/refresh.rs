//! Recommendation refresh benchmark (not a test): an organization of N registered member
//! accounts with 3 Cost Explorer recommendations each, refreshed through
//! `POST /api/recommendations/refresh`, once collected at the organization root
//! (AccountScope LINKED, as the planner does) and once per account (the root no longer
//! marked as organization root: every account asks for itself, as CUDly does). No plan
//! exists, so a refresh asks the default set: 7 services at 1 year, no upfront (8 calls
//! a scope, Savings Plans being two).
//!
//! Prints per mode the refresh time (median of the runs), the Cost Explorer calls the
//! sandbox recorded and the recommendations stored; the sandbox pages at 5 details, so
//! the root's calls grow with the pages of its answer while the per-account calls grow
//! with the accounts.
//!
//! `cargo bench --workspace --bench refresh` (release), or
//! `cargo bench --workspace --bench refresh --profile dev` for a quick run.
//! Knobs: `REFRESH_ACCOUNTS` (members, default 1000), `REFRESH_RUNS` (per mode,
//! default 3).

use std::time::{Duration, Instant};

use cudly_aws_sandbox::AccountSpec;
use cudly_testkit::rest::call;
use cudly_testkit::{TestStack, bench};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ROOT: &str = "920000000000";
const ROOT_KEY: (&str, &str) = (
    "AKIABENCHR00T000001",
    "bench-root-secret-0123456789abcdefghij",
);
/// Recommendations seeded per member.
const PER_ACCOUNT: [&str; 3] = ["db.r6g.large", "db.m6g.large", "db.t4g.medium"];

fn main() -> anyhow::Result<()> {
    bench::block_on(run())
}

fn member_id(index: usize) -> String {
    format!("93{index:010}")
}

async fn run() -> anyhow::Result<()> {
    let members = bench::knob("REFRESH_ACCOUNTS", 1000).max(1) as usize;
    let runs = bench::knob("REFRESH_RUNS", 3).max(1) as usize;
    bench::print_machine("the whole stack and the AWS sandbox in this process");
    // Asked per account, 1 000 accounts take 8 000 calls: more than the default budget.
    let stack = TestStack::start_with_sandbox_and(|config| {
        config.planner.recommendation_call_budget = u32::MAX;
    })
    .await?;
    let root_id = register_organization(&stack, members).await?;
    println!(
        "{members} members enabled, {} recommendations seeded",
        members * PER_ACCOUNT.len()
    );

    let (org_time, org_calls, org_stored) = measure(&stack, runs).await?;
    set_org_root(&stack, &root_id, false).await?;
    let (own_time, own_calls, own_stored) = measure(&stack, runs).await?;
    anyhow::ensure!(
        org_stored == own_stored,
        "both modes store the same recommendations"
    );
    println!(
        "organization root: {} s, {org_calls} calls, {org_stored} stored | per account: {} s, {own_calls} calls, {own_stored} stored",
        bench::number(org_time.as_secs_f64()),
        bench::number(own_time.as_secs_f64()),
    );
    bench::print_result(
        "refresh calls at the root",
        "calls",
        f64::from(org_calls),
        "per account",
        f64::from(own_calls),
    );
    bench::print_result(
        "refresh time at the root",
        "s",
        org_time.as_secs_f64(),
        "per account",
        own_time.as_secs_f64(),
    );
    stack.stop().await
}

/// Registers the root, discovers its members, enables them all and seeds their
/// recommendations; returns the root's id.
async fn register_organization(stack: &TestStack, members: usize) -> anyhow::Result<String> {
    let mut root = AccountSpec::new(ROOT)
        .with_name("root")
        .with_access_key(ROOT_KEY.0, ROOT_KEY.1);
    for index in 0..members {
        root = root.with_member(member_id(index), format!("member-{index}"));
    }
    stack.sandbox().add_account(root).await;
    let (status, root) = call(
        stack,
        Method::POST,
        "/api/accounts",
        Some(json!({
            "name": "root", "provider": "aws", "external_id": ROOT,
            "aws_auth_mode": "access_keys", "aws_is_org_root": true,
            "credentials": {"type": "aws_access_keys", "access_key_id": ROOT_KEY.0, "secret_access_key": ROOT_KEY.1},
        })),
    )
    .await;
    anyhow::ensure!(status == StatusCode::CREATED, "root: {root}");
    let root_id = root["id"].as_str().unwrap_or_default().to_owned();
    let (status, discovery) = call(
        stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": root_id})),
    )
    .await;
    anyhow::ensure!(status == StatusCode::OK, "discovery: {discovery}");
    let ids: Vec<String> = discovery["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|account| account["id"].as_str().map(str::to_owned))
        .collect();
    anyhow::ensure!(ids.len() == members, "discovered {}", ids.len());
    futures::stream::iter(ids)
        .map(|id| async move { set_enabled(stack, &id).await })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let seeds: Vec<Value> = (0..members)
        .flat_map(|index| {
            PER_ACCOUNT.iter().map(move |resource_type| {
                json!({"account_id": member_id(index), "service": "rds", "region": "us-east-1",
                       "resource_type": resource_type, "engine": "postgresql", "term": 1,
                       "payment": "no-upfront", "recommended_count": 4.0,
                       "upfront_cost": 0.0, "monthly_savings": 25.0})
            })
        })
        .collect();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/recommendations",
            stack.sandbox().endpoint()
        ))
        .json(&seeds)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == StatusCode::CREATED,
        "seeding: {}",
        response.status()
    );
    Ok(root_id)
}

async fn set_enabled(stack: &TestStack, id: &str) -> anyhow::Result<()> {
    update_account(stack, id, "enabled", json!(true)).await
}

async fn set_org_root(stack: &TestStack, id: &str, org_root: bool) -> anyhow::Result<()> {
    update_account(stack, id, "aws_is_org_root", json!(org_root)).await
}

/// Replaces one field of an account through GET then PUT.
async fn update_account(
    stack: &TestStack,
    id: &str,
    field: &str,
    value: Value,
) -> anyhow::Result<()> {
    let path = format!("/api/accounts/{id}");
    let (_, mut account) = call(stack, Method::GET, &path, None).await;
    account[field] = value;
    let (status, account) = call(stack, Method::PUT, &path, Some(account)).await;
    anyhow::ensure!(status == StatusCode::OK, "update {id}: {account}");
    Ok(())
}

/// Refreshes `runs` times; returns the median time, the calls of one refresh (the
/// replies agree with the sandbox's ledger) and the recommendations it stored.
async fn measure(stack: &TestStack, runs: usize) -> anyhow::Result<(Duration, u32, u64)> {
    let mut times = Vec::with_capacity(runs);
    let mut calls = 0;
    let mut stored = 0;
    for _ in 0..runs {
        let before = ledger_calls(stack).await?;
        let started = Instant::now();
        let (status, report) =
            call(stack, Method::POST, "/api/recommendations/refresh", None).await;
        times.push(started.elapsed());
        anyhow::ensure!(status == StatusCode::OK, "refresh: {report}");
        calls = u32::try_from(report["calls"].as_u64().unwrap_or_default())?;
        let recorded = ledger_calls(stack).await? - before;
        anyhow::ensure!(
            recorded == u64::from(calls),
            "the ledger saw {recorded} calls, the reply says {calls}"
        );
        let failed: Vec<&Value> = report["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["error"].is_string())
            .collect();
        anyhow::ensure!(
            failed.is_empty(),
            "{} accounts failed, first: {}",
            failed.len(),
            failed[0]
        );
        stored = report["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["collected"].as_u64())
            .sum();
    }
    times.sort_unstable();
    Ok((times[times.len() / 2], calls, stored))
}

async fn ledger_calls(stack: &TestStack) -> anyhow::Result<u64> {
    let ledger: Value = reqwest::get(format!(
        "{}/_sandbox/ledger?service=costexplorer",
        stack.sandbox().endpoint()
    ))
    .await?
    .json()
    .await?;
    Ok(ledger["calls"]
        .as_array()
        .map_or(0, |calls| calls.len() as u64))
}
