//! Cost Explorer recommendations through the whole stack and the AWS sandbox: a refresh
//! collects at the organization root only, lists what enabled accounts have, and plans
//! sized from them buy coverage × recommended, step by step, minus what was bought.

use std::collections::BTreeMap;
use std::time::Duration;

use cudly_aws_sandbox::AccountSpec;
use cudly_testkit::rest::call;
use cudly_testkit::{TestStack, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::plan_body;

const ROOT: &str = "910000000000";
const ROOT_KEY: (&str, &str) = (
    "AKIAREC0R00T0000001",
    "root-secret-0123456789abcdefghijklmnop",
);
/// Discovered through the root (bastion mode), then enabled.
const FIRST: &str = "910000000001";
/// Registered on its own with its own keys, although the organization lists it.
const SECOND: &str = "910000000002";
const SECOND_KEY: (&str, &str) = (
    "AKIAREC0SEC0ND00001",
    "second-secret-0123456789abcdefghijklm",
);
/// Discovered and left disabled.
const DISABLED: &str = "910000000003";

/// The registered organization: the accounts' CUDly ids by AWS id.
struct Org {
    ids: BTreeMap<&'static str, String>,
}

impl Org {
    fn id(&self, aws_id: &str) -> &str {
        &self.ids[aws_id]
    }
}

/// Registers a sandbox organization (root and three members, the third disabled) and
/// seeds Cost Explorer with six RDS recommendations (two pages of five).
async fn organization(stack: &TestStack) -> Org {
    let sandbox = stack.sandbox();
    let mut root = AccountSpec::new(ROOT)
        .with_name("root")
        .with_access_key(ROOT_KEY.0, ROOT_KEY.1);
    for (id, name) in [(FIRST, "first"), (SECOND, "second"), (DISABLED, "disabled")] {
        root = root.with_member(id, name);
    }
    sandbox.add_account(root).await;
    sandbox
        .add_account(
            AccountSpec::new(SECOND)
                .with_name("second")
                .with_access_key(SECOND_KEY.0, SECOND_KEY.1),
        )
        .await;
    let register = |name: &str, external_id: &str, key: (&str, &str), org_root: bool| {
        json!({
            "name": name, "provider": "aws", "external_id": external_id,
            "aws_auth_mode": "access_keys", "aws_is_org_root": org_root,
            "credentials": {"type": "aws_access_keys", "access_key_id": key.0, "secret_access_key": key.1},
        })
    };
    let mut ids = BTreeMap::new();
    for (aws_id, body) in [
        (ROOT, register("root", ROOT, ROOT_KEY, true)),
        (SECOND, register("second", SECOND, SECOND_KEY, false)),
    ] {
        let (status, account) = call(stack, Method::POST, "/api/accounts", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        ids.insert(aws_id, account["id"].as_str().unwrap().to_owned());
    }
    let (status, discovery) = call(
        stack,
        Method::POST,
        "/api/accounts/discover-org",
        Some(json!({"org_root_account_id": ids[ROOT]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{discovery}");
    for account in discovery["accounts"].as_array().unwrap() {
        for aws_id in [FIRST, DISABLED] {
            if account["external_id"] == aws_id {
                ids.insert(aws_id, account["id"].as_str().unwrap().to_owned());
            }
        }
    }
    let path = format!("/api/accounts/{}", ids[FIRST]);
    let (_, mut first) = call(stack, Method::GET, &path, None).await;
    first["enabled"] = json!(true);
    let (status, first) = call(stack, Method::PUT, &path, Some(first)).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    let rds = |account: &str, resource_type: &str, count: f64| {
        json!({"account_id": account, "service": "rds", "region": "us-east-1",
               "resource_type": resource_type, "engine": "postgresql", "term": 1,
               "payment": "no-upfront", "recommended_count": count,
               "upfront_cost": 0.0, "monthly_savings": 10.0 * count})
    };
    let seeds = json!([
        rds(FIRST, "db.r6g.large", 7.0),
        rds(FIRST, "db.m6g.large", 3.0),
        rds(FIRST, "db.t4g.medium", 2.0),
        rds(SECOND, "db.r6g.large", 5.0),
        rds(SECOND, "db.m6g.large", 1.0),
        rds(DISABLED, "db.r6g.large", 4.0),
    ]);
    sandbox_post(stack, "recommendations", &seeds).await;
    Org { ids }
}

/// Posts `body` to the sandbox's control API at `/_sandbox/<path>`.
async fn sandbox_post(stack: &TestStack, path: &str, body: &Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/_sandbox/{path}", stack.sandbox().endpoint()))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{path}");
}

/// Returns the sandbox's ledger of `service`.
async fn sandbox_ledger(stack: &TestStack, service: &str) -> Value {
    let url = format!(
        "{}/_sandbox/ledger?service={service}",
        stack.sandbox().endpoint()
    );
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Returns the sandbox's Cost Explorer calls, by calling AWS account.
async fn cost_explorer_calls(stack: &TestStack) -> BTreeMap<String, usize> {
    let ledger = sandbox_ledger(stack, "costexplorer").await;
    let mut calls = BTreeMap::new();
    for call in ledger["calls"].as_array().unwrap() {
        *calls
            .entry(call["account_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    calls
}

async fn refresh(stack: &TestStack) -> Value {
    let (status, report) = call(stack, Method::POST, "/api/recommendations/refresh", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

/// Creates an RDS plan over `accounts` sized from recommendations, with `ramp`.
async fn sized_plan(stack: &TestStack, accounts: &[&str], ramp: Value) -> String {
    let (status, _) = call(
        stack,
        Method::PUT,
        "/api/guardrails",
        Some(json!({"max_window_commitment": 1e12})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut body = plan_body("sized RDS", &[("aws/rds", "no-upfront")]);
    body["services"]["aws/rds"]["coverage"] = json!(100);
    body["source"] = json!("recommendations");
    body["account_ids"] = json!(accounts);
    body["ramp_schedule"] = ramp;
    body["auto_purchase"] = json!(true);
    let (status, plan) = call(stack, Method::POST, "/api/plans", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    assert_eq!(plan["source"], "recommendations");
    plan["id"].as_str().unwrap().to_owned()
}

/// Runs the plan's next step and waits until the executor reported it complete;
/// returns the execution with what each account bought, by (account, type).
async fn run_step(
    stack: &TestStack,
    plan_id: &str,
    step: u32,
) -> (Value, BTreeMap<(String, String), u64>) {
    let (status, execution) = call(
        stack,
        Method::POST,
        &format!("/api/plans/{plan_id}/executions"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{execution}");
    assert_eq!(execution["step_number"], step);
    assert!(execution["sized_from"].is_string(), "{execution}");
    eventually("the step to complete", Duration::from_secs(60), || async {
        let (_, plan) = call(stack, Method::GET, &format!("/api/plans/{plan_id}"), None).await;
        (plan["ramp_schedule"]["current_step"] == step).then_some(())
    })
    .await
    .expect("the step completed");
    let bought = execution["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (
                (
                    line["cloud_account_id"].as_str().unwrap().to_owned(),
                    line["resource_type"].as_str().unwrap().to_owned(),
                ),
                line["count"].as_u64().unwrap(),
            )
        })
        .collect();
    (execution, bought)
}

fn line(org: &Org, aws_id: &str, resource_type: &str, count: u64) -> ((String, String), u64) {
    ((org.id(aws_id).to_owned(), resource_type.to_owned()), count)
}

#[tokio::test]
async fn a_refresh_collects_at_the_root_only_and_lists_enabled_accounts_exactly() {
    let stack = TestStack::start_with_sandbox()
        .await
        .expect("start the stack");
    let org = organization(&stack).await;
    // Without a plan a refresh asks about every service (1 year, no upfront): 8 calls,
    // and a second page of RDS.
    assert_eq!(refresh(&stack).await["calls"], 9);
    // The one enabled plan buys RDS for 1 year without upfront: only that is asked.
    sized_plan(&stack, &[org.id(FIRST)], json!({"type": "immediate"})).await;

    let report = refresh(&stack).await;
    assert_eq!(
        report["calls"], 2,
        "one query, two pages, at the root: {report}"
    );
    let collected: BTreeMap<&str, u64> = report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["cloud_account_id"].as_str().unwrap(),
                entry["collected"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = BTreeMap::from([(org.id(ROOT), 0), (org.id(FIRST), 3), (org.id(SECOND), 2)]);
    assert_eq!(
        collected, expected,
        "the disabled member is not collected: {report}"
    );
    assert_eq!(
        cost_explorer_calls(&stack).await,
        BTreeMap::from([(ROOT.to_owned(), 9 + 2)]),
        "no call from a member, not even the one registered on its own"
    );

    let (status, all) = call(&stack, Method::GET, "/api/recommendations", None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = all["recommendations"].as_array().unwrap();
    assert_eq!(
        all.len(),
        5,
        "every enabled account's, the disabled one's never"
    );
    assert!(all.iter().all(|row| row["account_external_id"] != DISABLED));
    let first = &all
        .iter()
        .find(|row| row["resource_type"] == "db.r6g.large" && row["account_external_id"] == FIRST)
        .unwrap();
    assert_eq!(first["recommended_count"], 7.0);
    assert_eq!(first["engine"], "postgresql");
    assert_eq!(first["cloud_account_id"], org.id(FIRST));
    assert!(first["collected_at"].is_string());

    let path = format!("/api/recommendations?account_ids={}", org.id(SECOND));
    let (_, second) = call(&stack, Method::GET, &path, None).await;
    let second = second["recommendations"].as_array().unwrap();
    assert_eq!(second.len(), 2);
    assert!(
        second
            .iter()
            .all(|row| row["cloud_account_id"] == org.id(SECOND))
    );
    let path = format!("/api/recommendations?account_ids={}", org.id(DISABLED));
    let (_, disabled) = call(&stack, Method::GET, &path, None).await;
    assert_eq!(
        disabled["recommendations"],
        json!([]),
        "asked for, still never listed"
    );
    let (_, filtered) = call(
        &stack,
        Method::GET,
        "/api/recommendations?service=rds&term=1&payment=no-upfront&region=us-east-1",
        None,
    )
    .await;
    assert_eq!(filtered["recommendations"].as_array().unwrap().len(), 5);
    let (_, none) = call(&stack, Method::GET, "/api/recommendations?term=3", None).await;
    assert_eq!(none["recommendations"], json!([]));

    // Cost Explorer refuses the root once: the root and the member reached through it
    // keep their sets and report why; the member with its own keys is asked directly.
    let fault = json!({"service": "costexplorer", "account_id": ROOT, "error": "access_denied", "count": 1});
    sandbox_post(&stack, "faults", &fault).await;
    let report = refresh(&stack).await;
    let entry = |id: &str| {
        report["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["cloud_account_id"] == id)
            .cloned()
            .unwrap()
    };
    assert!(entry(org.id(ROOT))["error"].is_string(), "{report}");
    assert!(entry(org.id(FIRST))["error"].is_string(), "{report}");
    assert_eq!(entry(org.id(SECOND))["collected"], 2, "{report}");
    assert_eq!(cost_explorer_calls(&stack).await.get(SECOND), Some(&1));
    let path = format!("/api/recommendations?account_ids={}", org.id(FIRST));
    let (_, kept) = call(&stack, Method::GET, &path, None).await;
    assert_eq!(
        kept["recommendations"].as_array().unwrap().len(),
        3,
        "the previous set stays"
    );
}

#[tokio::test]
async fn a_sized_plan_buys_coverage_of_each_member_then_only_the_increment_minus_recent_purchases()
{
    let stack = TestStack::start_with_sandbox()
        .await
        .expect("start the stack");
    let org = organization(&stack).await;
    let plan_id = sized_plan(
        &stack,
        &[org.id(FIRST), org.id(SECOND)],
        json!({"type": "custom", "percent_per_step": 50, "step_interval_days": 7, "total_steps": 2}),
    )
    .await;
    refresh(&stack).await;

    // Step 1 at 50 %: floor(0.5 × recommended) in each member; 0.5 × 1 rounds to nothing.
    let (_, bought) = run_step(&stack, &plan_id, 1).await;
    assert_eq!(
        bought,
        BTreeMap::from([
            line(&org, FIRST, "db.r6g.large", 3),
            line(&org, FIRST, "db.m6g.large", 1),
            line(&org, FIRST, "db.t4g.medium", 1),
            line(&org, SECOND, "db.r6g.large", 2),
        ])
    );

    // Someone buys one db.r6g.large in the second member by hand: Cost Explorer does not
    // know yet, the cooldown does.
    let (status, direct) = call(
        &stack,
        Method::POST,
        "/api/executions",
        Some(json!({"cloud_account_id": org.id(SECOND), "recommendations": [
            {"provider": "aws", "service": "rds", "region": "us-east-1", "resource_type": "db.r6g.large",
             "engine": "postgresql", "count": 1, "term": 1, "payment": "no-upfront"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{direct}");
    let id = direct["id"].as_str().unwrap();
    let (status, approved) = call(
        &stack,
        Method::POST,
        &format!("/api/executions/{id}/approve"),
        Some(json!({"token": direct["approval_token"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    eventually("the direct purchase", Duration::from_secs(60), || async {
        let (_, execution) =
            call(&stack, Method::GET, &format!("/api/executions/{id}"), None).await;
        (execution["status"] == "completed").then_some(())
    })
    .await
    .expect("the direct purchase completed");

    // Step 2 at 100 %: what step 1 did not buy, minus the recent purchase, counted once.
    refresh(&stack).await;
    let (_, bought) = run_step(&stack, &plan_id, 2).await;
    assert_eq!(
        bought,
        BTreeMap::from([
            line(&org, FIRST, "db.r6g.large", 4),
            line(&org, FIRST, "db.m6g.large", 2),
            line(&org, FIRST, "db.t4g.medium", 1),
            line(&org, SECOND, "db.r6g.large", 2),
            line(&org, SECOND, "db.m6g.large", 1),
        ])
    );
}

#[tokio::test]
async fn stale_recommendations_refuse_the_run_and_buy_nothing() {
    let stack = TestStack::start_with_sandbox_and(|config| {
        config.planner.recommendation_max_age = Duration::ZERO;
    })
    .await
    .expect("start the stack");
    let org = organization(&stack).await;
    let plan_id = sized_plan(&stack, &[org.id(FIRST)], json!({"type": "immediate"})).await;
    let path = format!("/api/plans/{plan_id}/executions");
    let (status, error) = call(&stack, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "never collected: {error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("recommendations are stale"),
        "{error}"
    );

    refresh(&stack).await;
    let (status, error) = call(&stack, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "older than the maximum age: {error}"
    );
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("recommendations are stale"),
        "{error}"
    );
    let (_, executions) = call(
        &stack,
        Method::GET,
        &format!("/api/executions?plan_id={plan_id}"),
        None,
    )
    .await;
    assert_eq!(executions["executions"], json!([]), "nothing created");
    let ledger = sandbox_ledger(&stack, "rds").await;
    assert_eq!(ledger["commitments"], json!([]), "nothing bought");
}

#[tokio::test]
async fn bad_filters_and_sources_are_refused_and_change_nothing() {
    let stack = TestStack::start().await.expect("start the stack");
    for (query, field) in [
        ("bogus=1", "bogus"),
        ("account_ids=nope", "account_ids"),
        ("service=lambda", "service"),
        ("region=moon", "region"),
        ("term=2", "term"),
        ("term=one", "term"),
        ("payment=later", "payment"),
    ] {
        let (status, error) = call(
            &stack,
            Method::GET,
            &format!("/api/recommendations?{query}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert!(
            error["error"].as_str().unwrap().contains(field),
            "{query}: {error}"
        );
    }
    let mut body = plan_body("sized", &[("aws/rds", "no-upfront")]);
    body["source"] = json!("cost-explorer");
    let (status, error) = call(&stack, Method::POST, "/api/plans", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("source"),
        "{error}"
    );
    let (_, plans) = call(&stack, Method::GET, "/api/plans", None).await;
    assert_eq!(plans["plans"], json!([]), "nothing created");
}

#[tokio::test]
async fn the_sweeper_refreshes_recommendations_under_its_lock() {
    let stack = TestStack::start_with_sandbox()
        .await
        .expect("start the stack");
    let org = organization(&stack).await;
    let (status, run) = call(
        &stack,
        Method::POST,
        "/api/admin/sweeps/refresh_recommendations/run",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["outcome"], "ran", "{run}");
    assert_eq!(
        (
            run["found"].as_u64(),
            run["acted"].as_u64(),
            run["errors"].as_u64()
        ),
        (Some(3), Some(3), Some(0)),
        "{run}"
    );
    assert!(run["fencing_token"].is_number(), "{run}");
    let path = format!("/api/recommendations?account_ids={}", org.id(FIRST));
    let (_, listed) = call(&stack, Method::GET, &path, None).await;
    assert_eq!(listed["recommendations"].as_array().unwrap().len(), 3);
}
