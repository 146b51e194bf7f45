//! Lineages: a creation key names one lineage per (route, plan, key); its live or
//! completed root is returned again, a re-run after a failure keeps the first list and
//! targets (so every token), and a completed plan step is reported to the planner.

use std::time::Duration;

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::operations::{guard_operation, sandbox_service};
use cudly_aws_sandbox::{FaultError, FaultSpec};
use cudly_common::grpc::Caller;
use cudly_proto::common::v1 as common_pb;
use cudly_proto::executor::v1::CreateExecutionRequest;
use cudly_testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::common::*;

fn proto_line(service: &str, resource_type: &str, engine: &str) -> common_pb::Recommendation {
    common_pb::Recommendation {
        provider: "aws".to_owned(),
        service: service.to_owned(),
        region: "us-east-1".to_owned(),
        resource_type: resource_type.to_owned(),
        engine: Some(engine.to_owned()),
        count: 1,
        term: 1,
        payment: "all-upfront".to_owned(),
        ..common_pb::Recommendation::default()
    }
}

#[tokio::test]
async fn a_creation_key_returns_its_live_or_completed_root_and_a_rerun_keeps_the_first_list() {
    let world = world().await;
    let account = world.add_account("lineage", true).await;
    let guard_fault = world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Rds.name()),
                guard_operation(AwsService::Rds.name()),
            )
            .error(FaultError::Internal),
        )
        .await;
    let plan_id = Uuid::new_v4().to_string();
    let creation_key = format!("plan:{plan_id}:step:1");
    let mut planner = world.executor_client(Caller::Planner);
    let request = |recommendations: Vec<common_pb::Recommendation>| CreateExecutionRequest {
        plan_id: Some(plan_id.clone()),
        step_number: Some(1),
        target_account_ids: vec![account.id.clone()],
        recommendations,
        creation_key: Some(creation_key.clone()),
        auto_approve: true,
        source: "schedule".to_owned(),
        actor: "planner".to_owned(),
        ..CreateExecutionRequest::default()
    };
    let first_list = vec![proto_line("rds", "db.r5.large", "postgresql")];
    let first = planner
        .create_execution(request(first_list.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    assert!(first.approval_token.is_none(), "approved at once");
    let first_id = first.execution.unwrap().id;
    let failed = world.wait_terminal(&first_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    world.stack.sandbox().remove_fault(guard_fault).await;

    // The step fires again with another list: the lineage keeps its first one.
    let other_list = vec![proto_line("elasticache", "cache.m5.large", "redis")];
    let rerun = planner
        .create_execution(request(other_list.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(rerun.created);
    let rerun = rerun.execution.unwrap();
    assert_ne!(rerun.id, first_id);
    assert_eq!(
        rerun.recommendations[0].service, "rds",
        "the first list, so the same tokens"
    );
    let again = planner
        .create_execution(request(other_list.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.execution.unwrap().id, rerun.id, "the live root");
    let done = world.wait_terminal(&rerun.id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let completed = planner
        .create_execution(request(other_list))
        .await
        .unwrap()
        .into_inner();
    assert!(!completed.created);
    assert_eq!(
        completed.execution.unwrap().id,
        rerun.id,
        "the completed root"
    );
    let first_tokens = world
        .tokens_of(children(&failed)[0]["id"].as_str().unwrap())
        .await;
    let rerun_tokens = world
        .tokens_of(children(&done)[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(first_tokens, rerun_tokens);

    // The same key under another plan is another lineage; a plan key is the planner's.
    let other_plan = CreateExecutionRequest {
        plan_id: Some(Uuid::new_v4().to_string()),
        ..request(first_list.clone())
    };
    let separate = planner
        .create_execution(other_plan)
        .await
        .unwrap()
        .into_inner();
    assert!(separate.created);
    let mut gateway = world.executor_client(Caller::Gateway);
    let refused = gateway
        .create_execution(CreateExecutionRequest {
            auto_approve: false,
            ..request(first_list.clone())
        })
        .await
        .expect_err("plan keys are the planner's");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let refused = gateway
        .create_execution(CreateExecutionRequest {
            creation_key: None,
            ..request(first_list)
        })
        .await
        .expect_err("only the planner creates approved executions");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn a_completed_plan_step_is_reported_to_the_planner_and_reported_again_after_a_restart() {
    let world = world().await;
    let account = world.add_account("stepper", true).await;
    let limit = json!({"max_window_commitment": 1e12});
    let (status, _) = world
        .call(Method::PUT, "/api/guardrails", Some(limit))
        .await;
    assert_eq!(status, StatusCode::OK, "auto_purchase needs a window limit");
    let plan = json!({
        "name": "auto ladder",
        "auto_purchase": true,
        "services": {"aws/rds": {"provider": "aws", "service": "rds", "term": 1, "payment": "all-upfront", "coverage": 100}},
        "account_ids": [account.id],
    });
    let (status, plan) = world.call(Method::POST, "/api/plans", Some(plan)).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let plan_id = plan["id"].as_str().unwrap();
    let mut line = recommendation(AwsService::Rds);
    line["count"] = json!(1);
    let (status, _) = world
        .call(
            Method::PUT,
            &format!("/api/plans/{plan_id}/recommendations"),
            Some(json!({"recommendations": [line]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, execution) = world
        .call(
            Method::POST,
            &format!("/api/plans/{plan_id}/executions"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{execution}");
    assert_eq!(execution["status"], "approved", "{execution}");
    let id = execution["id"].as_str().unwrap();
    let done = world.wait_terminal(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let root = Uuid::parse_str(id).unwrap();
    let reported = || async {
        let reported: bool =
            sqlx::query_scalar("SELECT step_reported FROM executions WHERE id = $1")
                .bind(root)
                .fetch_one(&world.pool)
                .await
                .unwrap();
        reported.then_some(())
    };
    eventually("the step to be reported", Duration::from_secs(30), reported)
        .await
        .unwrap();
    let (_, plan) = world
        .call(Method::GET, &format!("/api/plans/{plan_id}"), None)
        .await;
    assert_eq!(plan["ramp_schedule"]["current_step"], 1, "{plan}");

    // As if the executor had died before recording the acknowledgement: the poll
    // re-sends it, and the planner acknowledges the repeat without a second advance.
    sqlx::query("UPDATE executions SET step_reported = false WHERE id = $1")
        .bind(root)
        .execute(&world.pool)
        .await
        .unwrap();
    eventually(
        "the step to be reported again",
        Duration::from_secs(30),
        reported,
    )
    .await
    .unwrap();
    let (_, plan) = world
        .call(Method::GET, &format!("/api/plans/{plan_id}"), None)
        .await;
    assert_eq!(plan["ramp_schedule"]["current_step"], 1, "{plan}");
}
