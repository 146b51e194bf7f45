//! The plan routes of the REST contract (docs/design/API.md, Plans) end to end: gateway → planner →
//! the real accounts service, on real Postgres.

use cudly_testkit::rest::call;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    DetachedPlanner, FakeExecutor, create_aws_account, create_aws_plan, create_azure_account, ids,
    json_reply, object_ids, plan_body, serve_fake_executor, start_stack,
};

fn accounts_path(plan_id: &str) -> String {
    format!("/api/plans/{plan_id}/accounts")
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

#[tokio::test]
async fn an_aws_plan_bound_to_an_azure_account_is_refused_naming_it_and_binds_nothing() {
    let stack = start_stack().await;
    let prod = create_aws_account(&stack, "Prod-US", true).await;
    let staging = create_aws_account(&stack, "Staging-US", true).await;
    let azure = create_azure_account(&stack, "Azure-Sub").await;
    let plan = create_aws_plan(&stack, "EC2 ladder").await;

    let (status, error) = call(
        &stack,
        Method::PUT,
        &accounts_path(&plan),
        Some(json!({ "account_ids": [prod, staging, azure] })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(
        error["mismatches"],
        json!([{ "id": azure, "name": "Azure-Sub", "provider": "azure" }])
    );
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("Azure-Sub (azure)"), "{message}");
    assert!(!message.contains("Prod-US"), "{message}");

    let (status, binding) = call(&stack, Method::GET, &accounts_path(&plan), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(binding["account_ids"], json!([]), "no account was bound");
    assert_eq!(
        binding["all_enabled_accounts"],
        json!(true),
        "the plan keeps its default"
    );

    // A list already bound survives a refused replacement.
    let (status, _) = call(
        &stack,
        Method::PUT,
        &accounts_path(&plan),
        Some(json!({ "account_ids": [prod] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &stack,
        Method::PUT,
        &accounts_path(&plan),
        Some(json!({ "account_ids": [staging, azure] })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, binding) = call(&stack, Method::GET, &accounts_path(&plan), None).await;
    assert_eq!(ids(&binding["account_ids"]), vec![prod]);
    assert_eq!(binding["all_enabled_accounts"], json!(false));
}

#[tokio::test]
async fn binding_two_aws_accounts_succeeds_and_get_returns_both() {
    let stack = start_stack().await;
    let prod = create_aws_account(&stack, "Prod-US", true).await;
    let staging = create_aws_account(&stack, "Staging-US", true).await;
    let plan = create_aws_plan(&stack, "EC2 ladder").await;

    let (status, put) = call(
        &stack,
        Method::PUT,
        &accounts_path(&plan),
        Some(json!({ "account_ids": [prod, staging] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let (status, got) = call(&stack, Method::GET, &accounts_path(&plan), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, put, "GET answers what PUT answered");
    assert_eq!(
        ids(&got["account_ids"]),
        vec![prod.clone(), staging.clone()]
    );
    assert_eq!(got["all_enabled_accounts"], json!(false));
    assert_eq!(object_ids(&got["accounts"]), vec![prod, staging]);
    let first = &got["accounts"][0];
    assert_eq!(first["name"], "Prod-US");
    assert_eq!(first["provider"], "aws");
    assert_eq!(first["enabled"], true);
    assert_eq!(first["external_id"].as_str().unwrap().len(), 12);
}

#[tokio::test]
async fn an_empty_list_targets_every_enabled_aws_account_but_not_a_disabled_one() {
    let stack = start_stack().await;
    let prod = create_aws_account(&stack, "Prod-US", true).await;
    let staging = create_aws_account(&stack, "Staging-US", true).await;
    let retired = create_aws_account(&stack, "Retired", false).await;
    let azure = create_azure_account(&stack, "Azure-Sub").await;
    let plan = create_aws_plan(&stack, "EC2 ladder").await;
    call(
        &stack,
        Method::PUT,
        &accounts_path(&plan),
        Some(json!({ "account_ids": [prod] })),
    )
    .await;

    let (status, put) = call(
        &stack,
        Method::PUT,
        &accounts_path(&plan),
        Some(json!({ "account_ids": [] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["account_ids"], json!([]));
    assert_eq!(put["all_enabled_accounts"], json!(true));
    let targets = sorted(object_ids(&put["accounts"]));
    assert_eq!(targets, sorted(vec![prod, staging]));
    assert!(
        !targets.contains(&retired),
        "a disabled account is left out"
    );
    assert!(!targets.contains(&azure), "another provider is left out");
    let (_, got) = call(&stack, Method::GET, &accounts_path(&plan), None).await;
    assert_eq!(got, put);
}

#[tokio::test]
async fn an_unknown_account_id_is_not_found_and_binds_nothing() {
    let stack = start_stack().await;
    let prod = create_aws_account(&stack, "Prod-US", true).await;
    let plan = create_aws_plan(&stack, "EC2 ladder").await;
    let ghost = Uuid::new_v4().to_string();
    let (status, error) = call(
        &stack,
        Method::PUT,
        &accounts_path(&plan),
        Some(json!({ "account_ids": [prod, ghost] })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(error["error"].as_str().unwrap().contains(&ghost));
    let (_, binding) = call(&stack, Method::GET, &accounts_path(&plan), None).await;
    assert_eq!(binding["account_ids"], json!([]));

    let (status, error) = call(
        &stack,
        Method::PUT,
        &format!("/api/plans/{}/accounts", Uuid::new_v4()),
        Some(json!({ "account_ids": [prod] })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown plan: {error}");
    let (status, error) = call(
        &stack,
        Method::PUT,
        &accounts_path(&plan),
        Some(json!({ "account_ids": ["not-a-uuid"] })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["field"], "account_ids[0]");
}

#[tokio::test]
async fn creating_a_plan_with_an_account_of_another_provider_creates_nothing() {
    let stack = start_stack().await;
    let prod = create_aws_account(&stack, "Prod-US", true).await;
    let azure = create_azure_account(&stack, "Azure-Sub").await;
    let mut body = plan_body("EC2 ladder", &[("aws/ec2", "no-upfront")]);
    body["account_ids"] = json!([prod, azure]);
    let (status, error) = call(&stack, Method::POST, "/api/plans", Some(body.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["mismatches"][0]["name"], "Azure-Sub");
    let (_, list) = call(&stack, Method::GET, "/api/plans", None).await;
    assert_eq!(list, json!({ "plans": [] }));

    body["account_ids"] = json!([prod]);
    let (status, plan) = call(&stack, Method::POST, "/api/plans", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let (_, binding) = call(
        &stack,
        Method::GET,
        &accounts_path(plan["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(ids(&binding["account_ids"]), vec![prod]);
}

#[tokio::test]
async fn plans_are_created_read_listed_and_updated() {
    let stack = start_stack().await;
    let (status, created) = call(
        &stack,
        Method::POST,
        "/api/plans",
        Some(plan_body("EC2 ladder", &[("aws/ec2", "no-upfront")])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["auto_purchase"], false);
    assert_eq!(created["notification_days_before"], 7);
    assert_eq!(
        created["services"]["aws/ec2"],
        json!({
            "provider": "aws", "service": "ec2", "enabled": true, "term": 1,
            "payment": "no-upfront", "coverage": 80.0, "include_regions": [],
            "exclude_regions": [], "include_types": [], "exclude_types": []
        })
    );
    let ramp = &created["ramp_schedule"];
    assert_eq!(ramp["type"], "immediate");
    assert_eq!(ramp["percent_per_step"], 100.0);
    assert_eq!(ramp["total_steps"], 1);
    assert_eq!(ramp["current_step"], 0);
    assert_eq!(
        created["next_execution_date"], ramp["start_date"],
        "due at its start"
    );
    assert_eq!(created["last_execution_date"], Value::Null);
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, got) = call(&stack, Method::GET, &format!("/api/plans/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);
    let (_, list) = call(&stack, Method::GET, "/api/plans", None).await;
    assert_eq!(object_ids(&list["plans"]), vec![id.clone()]);

    // What GET answered can be sent back with changes.
    let mut changed = got.clone();
    changed["name"] = json!("RDS ladder");
    changed["services"] = plan_body("x", &[("aws/rds", "all-upfront")])["services"].clone();
    changed["ramp_schedule"] =
        json!({ "type": "weekly-25pct", "start_date": "2030-01-01T00:00:00Z" });
    let (status, updated) = call(
        &stack,
        Method::PUT,
        &format!("/api/plans/{id}"),
        Some(changed),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "RDS ladder");
    assert!(updated["services"].get("aws/ec2").is_none());
    assert_eq!(updated["ramp_schedule"]["step_interval_days"], 7);
    assert_eq!(updated["ramp_schedule"]["total_steps"], 4);
    assert_eq!(updated["next_execution_date"], "2030-01-01T00:00:00Z");
    assert_eq!(updated["created_at"], created["created_at"]);

    let (status, _) = call(
        &stack,
        Method::GET,
        &format!("/api/plans/{}", Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, error) = call(&stack, Method::GET, "/api/plans/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, error) = call(
        &stack,
        Method::PUT,
        &format!("/api/plans/{id}"),
        Some(json!({ "name": "x", "services": changed_services(), "account_ids": [] })),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "accounts have their own route: {error}"
    );
    assert_eq!(error["field"], "account_ids");
}

fn changed_services() -> Value {
    plan_body("x", &[("aws/rds", "all-upfront")])["services"].clone()
}

#[tokio::test]
async fn invalid_plans_are_refused_naming_the_field_and_change_nothing() {
    let stack = start_stack().await;
    let plan = create_aws_plan(&stack, "EC2 ladder").await;
    let valid = plan_body("EC2 ladder", &[("aws/ec2", "no-upfront")]);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = valid.clone();
        change(&mut body);
        body
    };
    let cases = [
        (with(&|b| b["name"] = json!(" ")), "name"),
        (with(&|b| b["name"] = json!("n".repeat(101))), "name"),
        (
            with(&|b| b["notification_days_before"] = json!(31)),
            "notification_days_before",
        ),
        (with(&|b| b["services"] = json!({})), "services"),
        (
            with(&|b| b["services"]["aws/ec2"]["term"] = json!(2)),
            "services.aws/ec2.term",
        ),
        (
            with(&|b| b["services"]["aws/ec2"]["payment"] = json!("monthly")),
            "services.aws/ec2.payment",
        ),
        (
            with(&|b| b["services"]["aws/ec2"]["coverage"] = json!(101)),
            "services.aws/ec2.coverage",
        ),
        (
            with(&|b| b["services"]["aws/ec2"]["provider"] = json!("azure")),
            "services.aws/ec2.provider",
        ),
        (
            with(&|b| b["services"]["aws/ec2"]["colour"] = json!("red")),
            "services.aws/ec2.colour",
        ),
        (
            with(&|b| b["ramp_schedule"] = json!({ "type": "daily" })),
            "ramp_schedule.type",
        ),
        (
            with(&|b| b["ramp_schedule"] = json!({ "type": "custom", "percent_per_step": 20 })),
            "ramp_schedule.step_interval_days",
        ),
    ];
    for (body, field) in cases {
        for (method, path) in [
            (Method::POST, "/api/plans".to_owned()),
            (Method::PUT, format!("/api/plans/{plan}")),
        ] {
            let (status, error) = call(&stack, method.clone(), &path, Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {field}: {error}");
            assert_eq!(error["field"], field, "{method}: {error}");
        }
    }
    let (_, list) = call(&stack, Method::GET, "/api/plans", None).await;
    assert_eq!(
        list["plans"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
    assert_eq!(
        list["plans"][0]["services"]["aws/ec2"]["term"], 1,
        "nothing was changed"
    );
}

#[tokio::test]
async fn standing_recommendations_are_stored_with_their_defaults() {
    let stack = start_stack().await;
    let plan = create_aws_plan(&stack, "EC2 ladder").await;
    let path = format!("/api/plans/{plan}/recommendations");
    let (_, empty) = call(&stack, Method::GET, &path, None).await;
    assert_eq!(empty, json!({ "recommendations": [] }));
    let list = json!({ "recommendations": [
        { "provider": "aws", "service": "ec2", "region": "us-east-1", "resource_type": "m5.large",
          "platform": "Linux/UNIX", "count": 4, "term": 1, "payment": "no-upfront", "all_accounts": true },
        { "provider": "aws", "service": "rds", "region": "eu-west-1", "resource_type": "db.r6g.large",
          "engine": "postgresql", "count": 2, "term": 1, "payment": "all-upfront",
          "upfront_cost": 1234.5, "monthly_savings": 210.0 }
    ]});
    let (status, stored) = call(&stack, Method::PUT, &path, Some(list)).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        stored["recommendations"][0]["details"],
        json!({ "tenancy": "default", "offering_class": "standard" })
    );
    assert_eq!(
        stored["recommendations"][1]["details"],
        json!({ "multi_az": false })
    );
    assert_eq!(stored["recommendations"][1]["upfront_cost"], 1234.5);
    assert_eq!(
        stored["recommendations"][0]["cloud_account_id"],
        Value::Null
    );
    let (_, got) = call(&stack, Method::GET, &path, None).await;
    assert_eq!(got, stored);

    let bad_term = json!({ "recommendations": [
        { "provider": "aws", "service": "rds", "region": "us-east-1", "resource_type": "db.r6g.large",
          "count": 1, "term": 2, "payment": "all-upfront" }
    ]});
    let (status, error) = call(&stack, Method::PUT, &path, Some(bad_term)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["field"], "recommendations[0].term");
    let azure = json!({ "recommendations": [
        { "provider": "azure", "service": "vm", "region": "eastus", "resource_type": "D2s",
          "count": 1, "term": 1, "payment": "monthly" }
    ]});
    let (status, error) = call(&stack, Method::PUT, &path, Some(azure)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["field"], "recommendations[0].provider");
    let (_, after) = call(&stack, Method::GET, &path, None).await;
    assert_eq!(after, stored, "refused lists change nothing");
}

#[tokio::test]
async fn an_update_that_removes_a_provider_still_bound_is_refused_naming_the_accounts() {
    let stack = start_stack().await;
    let prod = create_aws_account(&stack, "Prod-US", true).await;
    let azure = create_azure_account(&stack, "Azure-Sub").await;
    let mut body = plan_body(
        "Mixed",
        &[("aws/ec2", "no-upfront"), ("azure/vm", "monthly")],
    );
    body["account_ids"] = json!([prod, azure]);
    let (status, plan) = call(&stack, Method::POST, "/api/plans", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_str().unwrap();
    let (status, error) = call(
        &stack,
        Method::PUT,
        &format!("/api/plans/{id}"),
        Some(plan_body("Mixed", &[("aws/ec2", "no-upfront")])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(
        error["mismatches"],
        json!([{ "id": azure, "name": "Azure-Sub", "provider": "azure" }])
    );
    let (_, stored) = call(&stack, Method::GET, &format!("/api/plans/{id}"), None).await;
    assert!(
        stored["services"].get("azure/vm").is_some(),
        "nothing changed"
    );
}

#[tokio::test]
async fn stopping_the_accounts_service_makes_binding_unavailable_and_changes_nothing() {
    let detached = DetachedPlanner::start(None).await;
    let prod = create_aws_account(&detached.stack, "Prod-US", true).await;
    let staging = create_aws_account(&detached.stack, "Staging-US", true).await;
    let (status, plan) = detached
        .call(
            Method::POST,
            "/api/plans",
            Some(plan_body("EC2 ladder", &[("aws/ec2", "no-upfront")])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let path = accounts_path(plan["id"].as_str().unwrap());
    let (status, bound) = detached
        .call(Method::PUT, &path, Some(json!({ "account_ids": [prod] })))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "bound while accounts answers: {bound}"
    );

    detached.accounts_down().await;
    for account_ids in [json!([staging]), json!([prod, staging]), json!([])] {
        let (status, error) = detached
            .call(
                Method::PUT,
                &path,
                Some(json!({ "account_ids": account_ids })),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
        assert_eq!(error, json!({ "error": "accounts service unavailable" }));
    }
    // The stack's own planner still reaches accounts: the binding is what it was.
    let (status, binding) = call(&detached.stack, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&binding["account_ids"]), vec![prod]);
    assert_eq!(binding["all_enabled_accounts"], json!(false));
}

#[tokio::test]
async fn deleting_a_plan_when_the_executor_cannot_answer_is_unavailable_and_deletes_nothing() {
    let closed = format!("http://127.0.0.1:{}", cudly_testkit::free_port());
    let detached = DetachedPlanner::start(Some(closed)).await;
    let (_, plan) = detached
        .call(
            Method::POST,
            "/api/plans",
            Some(plan_body("EC2 ladder", &[("aws/ec2", "no-upfront")])),
        )
        .await;
    let path = format!("/api/plans/{}", plan["id"].as_str().unwrap());
    let (status, error) = detached.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"], "executor service unavailable");
    let (status, _) = detached.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "the plan is still there");
}

#[tokio::test]
async fn deleting_a_plan_is_refused_while_it_has_a_live_execution() {
    let executor = FakeExecutor::default();
    let (executor_addr, _stop) = serve_fake_executor(&executor).await;
    let detached = DetachedPlanner::start(Some(format!("http://{executor_addr}"))).await;
    let (_, plan) = detached
        .call(
            Method::POST,
            "/api/plans",
            Some(plan_body("EC2 ladder", &[("aws/ec2", "no-upfront")])),
        )
        .await;
    let id = plan["id"].as_str().unwrap().to_owned();
    executor.live_plans.lock().unwrap().push(id.clone());
    let path = format!("/api/plans/{id}");
    let (status, error) = detached.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    executor.live_plans.lock().unwrap().clear();
    let (status, _) = detached.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = detached.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn starting_a_plan_execution_passes_the_idempotency_key_and_a_hash_of_the_body() {
    let executor = FakeExecutor::default();
    let (executor_addr, _stop) = serve_fake_executor(&executor).await;
    let detached = DetachedPlanner::start(Some(format!("http://{executor_addr}"))).await;
    let prod = create_aws_account(&detached.stack, "Prod-US", true).await;
    let mut body = plan_body("RDS ladder", &[("aws/rds", "all-upfront")]);
    body["account_ids"] = json!([prod]);
    body["ramp_schedule"] = json!({ "type": "weekly-25pct" });
    body["services"]["aws/rds"]["coverage"] = json!(100);
    let (_, plan) = detached.call(Method::POST, "/api/plans", Some(body)).await;
    let id = plan["id"].as_str().unwrap().to_owned();
    let rds = json!({ "provider": "aws", "service": "rds", "region": "us-east-1",
        "resource_type": "db.r6g.large", "count": 8, "term": 1, "payment": "all-upfront" });
    detached
        .call(
            Method::PUT,
            &format!("/api/plans/{id}/recommendations"),
            Some(json!({ "recommendations": [rds.clone()] })),
        )
        .await;
    let path = format!("/api/plans/{id}/executions");
    let start = |key: &'static str, body: Value| {
        let request = detached
            .request(Method::POST, &path)
            .header("Idempotency-Key", key)
            .json(&body);
        async move { json_reply(request.send().await.unwrap()).await }
    };

    let (status, created) = start("key-1", json!({ "recommendations": [rds.clone()] })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["approval_token"].as_str().unwrap().len(), 64);
    assert_eq!(
        created["recommendations"][0]["count"], 8,
        "a given list is verbatim"
    );
    start("key-1", json!({ "recommendations": [rds.clone()] })).await;
    let mut other = rds.clone();
    other["count"] = json!(9);
    start("key-1", json!({ "recommendations": [other] })).await;
    let (status, standing) = start("key-2", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{standing}");
    assert_eq!(standing["step_number"], 1);

    let requests = executor.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests
            .iter()
            .take(3)
            .all(|r| r.idempotency_key.as_deref() == Some("key-1"))
    );
    assert!(requests.iter().all(|r| r.actor == "key:bootstrap"));
    let hashes: Vec<&str> = requests
        .iter()
        .map(|r| r.request_hash.as_deref().unwrap())
        .collect();
    assert_eq!(hashes[0].len(), 64);
    assert_eq!(hashes[0], hashes[1], "the same body hashes the same");
    assert_ne!(hashes[0], hashes[2], "another body hashes differently");
    assert_eq!(requests[0].creation_key.as_deref(), Some("api:key-1"));
    assert_eq!(
        requests[3].creation_key.clone().unwrap(),
        format!("plan:{id}:step:1")
    );
    assert_eq!(
        requests[3].recommendations[0].count, 2,
        "the standing list scaled to step 1"
    );
    assert_eq!(requests[3].target_account_ids, vec![prod]);

    let (status, error) = detached
        .call(Method::POST, &path, Some(json!({ "recommendations": [] })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["field"], "recommendations");
}
