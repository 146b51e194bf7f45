//! Fan-out: one child per target account, run in parallel; one account's failure stays
//! on its own row.

use chrono::{DateTime, Utc};
use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::FaultSpec;
use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// Creates a plan over `accounts` buying `recommendations` by hand, through the planner.
async fn start_plan_execution(
    world: &World,
    accounts: &[&TestAccount],
    recommendations: Vec<Value>,
) -> Value {
    let ids: Vec<&str> = accounts.iter().map(|account| account.id.as_str()).collect();
    let plan = json!({
        "name": "fan-out",
        "services": {
            "aws/rds": {"provider": "aws", "service": "rds", "term": 1, "payment": "all-upfront", "coverage": 100},
            "aws/ec2": {"provider": "aws", "service": "ec2", "term": 1, "payment": "no-upfront", "coverage": 100},
        },
        "account_ids": ids,
    });
    let (status, plan) = world.call(Method::POST, "/api/plans", Some(plan)).await;
    assert_eq!(status, StatusCode::CREATED, "plan created: {plan}");
    let plan_id = plan["id"].as_str().unwrap();
    let (status, execution) = world
        .call(
            Method::POST,
            &format!("/api/plans/{plan_id}/executions"),
            Some(json!({ "recommendations": recommendations })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "plan execution started: {execution}"
    );
    execution
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("a timestamp, got {value}"))
}

fn child_of<'a>(execution: &'a Value, account: &TestAccount) -> &'a Value {
    children(execution)
        .iter()
        .find(|child| child["cloud_account_id"] == account.id.as_str())
        .unwrap_or_else(|| panic!("a child for account {}: {execution}", account.id))
}

#[tokio::test]
async fn a_plan_over_two_accounts_runs_one_child_per_account_in_parallel() {
    let world = world().await;
    let prod = world.add_account("prod", true).await;
    let staging = world.add_account("staging", true).await;
    // Each purchase takes a while, so that two children running one after the other
    // could not overlap.
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Rds.name()),
                purchase_operation(AwsService::Rds.name()),
            )
            .latency(400, 0),
        )
        .await;
    let mut rds = recommendation(AwsService::Rds);
    rds["all_accounts"] = json!(true);
    let execution = start_plan_execution(&world, &[&prod, &staging], vec![rds]).await;
    assert_eq!(execution["status"], "pending");
    assert_eq!(execution["parent_id"], Value::Null);
    assert_eq!(execution["total_items"], 2, "{execution}");
    // The system's price for both accounts, never the requester's 1234.5 a line.
    let child_upfront: f64 = children(&execution)
        .iter()
        .map(|child| child["quote"]["upfront"].as_f64().unwrap())
        .sum();
    assert_eq!(
        execution["total_upfront_cost"],
        execution["quote"]["upfront"]
    );
    assert_eq!(execution["quote"]["upfront"].as_f64(), Some(child_upfront));
    assert_ne!(execution["total_upfront_cost"], 2469.0, "{execution}");
    assert_eq!(children(&execution).len(), 2, "{execution}");
    child_of(&execution, &prod);
    child_of(&execution, &staging);

    world.approve(&execution).await;
    let done = world.wait_terminal(execution["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let first = child_of(&done, &prod);
    let second = child_of(&done, &staging);
    for child in [first, second] {
        assert_eq!(child["status"], "completed", "{child}");
        assert_eq!(child["parent_id"], done["id"]);
        assert_eq!(child["items"][0]["status"], "bought", "{child}");
    }
    let (first_start, first_end) = (time(&first["started_at"]), time(&first["completed_at"]));
    let (second_start, second_end) = (time(&second["started_at"]), time(&second["completed_at"]));
    assert!(
        first_start < second_end && second_start < first_end,
        "the children ran one after the other: [{first_start}, {first_end}] and [{second_start}, {second_end}]"
    );
    let ledger = world.ledger().await;
    assert_eq!(ledger.commitments.len(), 2, "one commitment per account");
}

#[tokio::test]
async fn an_account_with_bad_credentials_fails_alone_and_the_root_is_partially_completed() {
    let world = world().await;
    let good = world.add_account("good", true).await;
    let bad = world.add_account("bad", false).await;
    let mut rds = recommendation(AwsService::Rds);
    rds["all_accounts"] = json!(true);
    let mut ec2 = recommendation(AwsService::Ec2);
    ec2["all_accounts"] = json!(true);
    let execution = start_plan_execution(&world, &[&good, &bad], vec![rds, ec2]).await;
    world.approve(&execution).await;
    let done = world.wait_terminal(execution["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "partially_completed", "{done}");

    let good_child = child_of(&done, &good);
    assert_eq!(good_child["status"], "completed", "{good_child}");
    let good_commitments: Vec<String> = good_child["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["status"], "bought", "{item}");
            item["commitment_id"]
                .as_str()
                .expect("a commitment id")
                .to_owned()
        })
        .collect();
    assert_eq!(good_commitments.len(), 2);

    let bad_child = child_of(&done, &bad);
    assert_eq!(bad_child["status"], "failed", "{bad_child}");
    let error = bad_child["error"]
        .as_str()
        .expect("the failed child says why");
    assert!(error.contains("credentials"), "{error}");
    let bad_text = bad_child.to_string();
    for secret in [
        bad.secret.as_str(),
        bad.access_key_id.as_str(),
        good.secret.as_str(),
        "CANARY",
    ] {
        assert!(
            !bad_text.contains(secret),
            "credential text on the failed child: {bad_text}"
        );
    }
    for commitment_id in &good_commitments {
        assert!(
            !bad_text.contains(commitment_id.as_str()),
            "the good child's result leaked: {bad_text}"
        );
    }
    for item in bad_child["items"].as_array().unwrap() {
        assert_eq!(item["status"], "failed", "{item}");
        assert_eq!(item["commitment_id"], Value::Null, "{item}");
    }
    let ledger = world.ledger().await;
    assert_eq!(ledger.commitments.len(), 2, "only the good account bought");
    assert!(
        ledger
            .commitments
            .iter()
            .all(|c| c.account_id == good.external_id)
    );

    let (status, history) = world
        .call(
            Method::GET,
            &format!("/api/history?account_ids={}", good.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let purchases = history["purchases"].as_array().unwrap();
    assert_eq!(purchases.len(), 2, "{history}");
    assert!(
        purchases
            .iter()
            .all(|p| p["account_external_id"] == good.external_id.as_str())
    );
    let (_, bad_history) = world
        .call(
            Method::GET,
            &format!("/api/history?account_ids={}", bad.id),
            None,
        )
        .await;
    assert_eq!(
        bad_history["purchases"].as_array().unwrap().len(),
        0,
        "{bad_history}"
    );
}
