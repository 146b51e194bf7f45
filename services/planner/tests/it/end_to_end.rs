//! Plans run through the real executor (and, for purchases, the AWS sandbox): the
//! execution the planner asks for, and the step advance the executor reports back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cudly_aws_sandbox::{AccountSpec, RoleSpec};
use cudly_testkit::rest::call;
use cudly_testkit::{SANDBOX_HOST_ACCOUNT_ID, TestStack, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{create_aws_account, plan_body};

#[tokio::test]
async fn a_plan_execution_started_over_rest_is_created_by_the_executor_once_per_step() {
    // Creations are priced through a target account the sandbox knows.
    let stack = TestStack::start_with_sandbox()
        .await
        .expect("start the stack");
    let prod = stack.add_sandbox_account("Prod-US").await.unwrap();
    let staging = create_aws_account(&stack, "Staging-US", true).await;
    let mut body = plan_body("RDS ladder", &[("aws/rds", "all-upfront")]);
    body["account_ids"] = json!([prod, staging]);
    body["ramp_schedule"] = json!({ "type": "weekly-25pct" });
    body["services"]["aws/rds"]["coverage"] = json!(100);
    let (status, plan) = call(&stack, Method::POST, "/api/plans", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_str().unwrap().to_owned();
    let recommendations = json!({ "recommendations": [
        { "provider": "aws", "service": "rds", "region": "us-east-1", "resource_type": "db.r6g.large",
          "engine": "postgresql", "count": 8, "term": 1, "payment": "all-upfront", "all_accounts": true }
    ]});
    call(
        &stack,
        Method::PUT,
        &format!("/api/plans/{id}/recommendations"),
        Some(recommendations),
    )
    .await;

    let path = format!("/api/plans/{id}/executions");
    let (status, execution) = call(&stack, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{execution}");
    assert_eq!(execution["status"], "pending");
    assert_eq!(execution["plan_id"], id.as_str());
    assert_eq!(execution["step_number"], 1);
    assert_eq!(execution["approval_token"].as_str().unwrap().len(), 64);
    assert_eq!(execution["recommendations"][0]["count"], 2, "25% of 8");
    assert_eq!(
        execution["children"].as_array().unwrap().len(),
        2,
        "one child per account"
    );

    // The step's lineage is live: starting it again returns the same execution.
    let (status, again) = call(&stack, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], execution["id"]);
    assert!(again.get("approval_token").is_none());

    // A plan with a pending execution cannot be deleted.
    let (status, error) = call(&stack, Method::DELETE, &format!("/api/plans/{id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
}

#[tokio::test]
async fn a_completed_step_execution_advances_the_plan_ramp() {
    let stack = TestStack::start_with_sandbox()
        .await
        .expect("stack with sandbox");
    let account_number = "222222222222";
    stack
        .sandbox()
        .add_account(
            AccountSpec::new(account_number)
                .with_name("prod")
                .with_role(RoleSpec::new("CUDly", SANDBOX_HOST_ACCOUNT_ID)),
        )
        .await;
    let (status, account) = call(
        &stack,
        Method::POST,
        "/api/accounts",
        Some(json!({
            "name": "Prod-US", "provider": "aws", "external_id": account_number,
            "aws_auth_mode": "role_arn",
            "aws_role_arn": format!("arn:aws:iam::{account_number}:role/CUDly"),
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let mut body = plan_body("RDS ladder", &[("aws/rds", "all-upfront")]);
    body["account_ids"] = json!([account["id"]]);
    body["auto_purchase"] = json!(true);
    body["ramp_schedule"] = json!({ "type": "weekly-25pct" });
    let (status, _) = call(
        &stack,
        Method::PUT,
        "/api/guardrails",
        Some(json!({"max_window_commitment": 1e12})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "auto_purchase needs a window limit");
    body["services"]["aws/rds"]["coverage"] = json!(100);
    let (status, plan) = call(&stack, Method::POST, "/api/plans", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_str().unwrap().to_owned();
    let recommendations = json!({ "recommendations": [
        { "provider": "aws", "service": "rds", "region": "us-east-1", "resource_type": "db.r5.large",
          "engine": "postgresql", "count": 4, "term": 1, "payment": "all-upfront" }
    ]});
    call(
        &stack,
        Method::PUT,
        &format!("/api/plans/{id}/recommendations"),
        Some(recommendations),
    )
    .await;

    let (status, execution) = call(
        &stack,
        Method::POST,
        &format!("/api/plans/{id}/executions"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{execution}");
    assert_eq!(execution["status"], "approved", "the plan auto-purchases");
    assert!(execution.get("approval_token").is_none());
    assert_eq!(execution["recommendations"][0]["count"], 1, "25% of 4");

    let advanced: Value = eventually(
        "the executor to report the step",
        Duration::from_secs(60),
        || async {
            let (_, plan) = call(&stack, Method::GET, &format!("/api/plans/{id}"), None).await;
            (plan["ramp_schedule"]["current_step"] == 1).then_some(plan)
        },
    )
    .await
    .expect("the step advanced");
    let last: DateTime<Utc> = advanced["last_execution_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let next: DateTime<Utc> = advanced["next_execution_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        next - last,
        chrono::Duration::days(7),
        "the next step comes one interval later"
    );
}

#[tokio::test]
async fn a_due_plan_is_fired_once_by_the_sweeper() {
    // Creations are priced through a target account the sandbox knows.
    let stack = TestStack::start_with_sandbox()
        .await
        .expect("start the stack");
    let prod = stack.add_sandbox_account("Prod-US").await.unwrap();
    let mut body = plan_body("RDS ladder", &[("aws/rds", "all-upfront")]);
    body["account_ids"] = json!([prod]);
    body["ramp_schedule"] = json!({ "type": "weekly-25pct" });
    body["services"]["aws/rds"]["coverage"] = json!(100);
    let (status, plan) = call(&stack, Method::POST, "/api/plans", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_str().unwrap().to_owned();
    let recommendations = json!({ "recommendations": [
        { "provider": "aws", "service": "rds", "region": "us-east-1", "resource_type": "db.r5.large",
          "engine": "postgresql", "count": 8, "term": 1, "payment": "all-upfront" }
    ]});
    call(
        &stack,
        Method::PUT,
        &format!("/api/plans/{id}/recommendations"),
        Some(recommendations),
    )
    .await;

    let (status, run) = call(
        &stack,
        Method::POST,
        "/api/admin/sweeps/fire_due_plans/run",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["outcome"], "ran", "{run}");
    assert_eq!(run["found"], 1, "{run}");
    let executions_path = format!("/api/executions?plan_id={id}");
    let (status, listed) = call(&stack, Method::GET, &executions_path, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let executions = listed["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 1, "{listed}");
    assert_eq!(
        executions[0]["status"], "pending",
        "the plan needs approval"
    );
    assert_eq!(executions[0]["step_number"], 1);
    assert_eq!(executions[0]["source"], "schedule");
    assert_eq!(executions[0]["recommendations"][0]["count"], 2, "25% of 8");

    let (_, again) = call(
        &stack,
        Method::POST,
        "/api/admin/sweeps/fire_due_plans/run",
        None,
    )
    .await;
    assert_eq!(again["found"], 0, "the date moved on: {again}");
    let (_, listed) = call(&stack, Method::GET, &executions_path, None).await;
    assert_eq!(listed["executions"].as_array().unwrap().len(), 1);
    let (_, stored) = call(&stack, Method::GET, &format!("/api/plans/{id}"), None).await;
    let next: DateTime<Utc> = stored["next_execution_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next > Utc::now() + chrono::Duration::days(6),
        "next try one interval later: {next}"
    );
    assert_eq!(
        stored["ramp_schedule"]["current_step"], 0,
        "pending: the step has not completed"
    );
}
