//! Concurrency: two retries posted at once, and a re-drive racing a live owner; still one
//! purchase per token.

use std::time::Duration;

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::operations::{guard_operation, purchase_operation, sandbox_service};
use cudly_aws_sandbox::{FaultError, FaultSpec};
use cudly_common::grpc::Caller;
use cudly_proto::common::v1::Fencing;
use cudly_proto::executor::v1::{ListStaleExecutionsRequest, RedriveRequest, SafeFailRequest};
use cudly_testkit::eventually;
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::common::*;

#[tokio::test]
async fn two_retries_posted_at_once_make_one_execution_and_buy_each_token_once() {
    let world = world().await;
    let account = world.add_account("retried", true).await;
    let guard_fault = world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Ec2.name()),
                guard_operation(AwsService::Ec2.name()),
            )
            .error(FaultError::Internal),
        )
        .await;
    let first = world
        .buy(
            &account,
            vec![
                recommendation(AwsService::Rds),
                recommendation(AwsService::Ec2),
            ],
        )
        .await;
    assert_eq!(first["status"], "partially_completed", "{first}");
    world.stack.sandbox().remove_fault(guard_fault).await;

    let first_id = first["id"].as_str().unwrap();
    let path = format!("/api/executions/{first_id}/retry");
    let (one, two) = tokio::join!(
        world.call(Method::POST, &path, None),
        world.call(Method::POST, &path, None)
    );
    let mut statuses = [one.0, two.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{} / {}",
        one.1,
        two.1
    );
    let retry = if one.0 == StatusCode::CREATED {
        one.1
    } else {
        two.1
    };
    assert_eq!(
        retry["status"], "approved",
        "the retry is the approval: {retry}"
    );
    assert_eq!(retry["source"], "retry");
    assert_eq!(
        retry["recommendations"], first["recommendations"],
        "same list, same order"
    );

    let done = world.wait_terminal(retry["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let ledger = world.ledger().await;
    let first_tokens = world
        .tokens_of(children(&first)[0]["id"].as_str().unwrap())
        .await;
    let retry_tokens = world
        .tokens_of(children(&done)[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(first_tokens, retry_tokens, "the retry keeps every token");
    for (index, token) in retry_tokens {
        let service = [AwsService::Rds, AwsService::Ec2][index as usize];
        assert_eq!(
            commitments_for(&ledger, service, &token),
            1,
            "{} bought once",
            service.name()
        );
    }
    assert_eq!(
        world.purchase_calls().await,
        2,
        "one purchase call per token"
    );

    // The older execution has a newer one in its lineage; a completed one is no retry.
    let (status, error) = world.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let (status, error) = world
        .call(
            Method::POST,
            &format!("/api/executions/{}/retry", done["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["status"], "completed");
}

#[tokio::test]
async fn a_redrive_racing_a_live_owner_is_refused_until_the_lease_is_stale_and_buys_once() {
    let world = world().await;
    let account = world.add_account("raced", true).await;
    // EC2: a purchase without idempotency of its own, so a second call would buy twice.
    // The purchase stays in flight for 1.5 s (within the 2 s call timeout).
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Ec2.name()),
                purchase_operation(AwsService::Ec2.name()),
            )
            .latency(1500, 0),
        )
        .await;
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    let root_id = execution["id"].as_str().unwrap().to_owned();
    world.approve(&execution).await;
    let root = Uuid::parse_str(&root_id).unwrap();
    eventually(
        "the purchase call to be sent",
        Duration::from_secs(30),
        || async {
            let sent: Option<bool> = sqlx::query_scalar(
                "SELECT sent_at IS NOT NULL FROM purchase_attempts WHERE root_id = $1",
            )
            .bind(root)
            .fetch_optional(&world.pool)
            .await
            .unwrap();
            sent.filter(|sent| *sent)
        },
    )
    .await
    .unwrap();

    let mut sweeper = world.executor_client(Caller::Sweeper);
    let redrive = |token: i64| RedriveRequest {
        execution_id: root_id.clone(),
        fencing: Some(Fencing {
            task: "recover_stranded".to_owned(),
            token,
        }),
        expected_attempt: None,
    };
    let refused = sweeper
        .redrive(redrive(10))
        .await
        .expect("answered")
        .into_inner();
    assert!(!refused.accepted, "{refused:?}");
    assert_eq!(refused.outcome, "lease_fresh");

    // The owner stalls (its heartbeat goes stale) while its purchase is still in flight:
    // the re-drive takes the lease over.
    sqlx::query("UPDATE executions SET heartbeat_at = now() - interval '1 hour' WHERE id = $1")
        .bind(root)
        .execute(&world.pool)
        .await
        .unwrap();
    let taken = sweeper
        .redrive(redrive(11))
        .await
        .expect("answered")
        .into_inner();
    assert!(taken.accepted, "{taken:?}");
    assert_eq!(taken.attempt, 1);
    let stale = sweeper
        .redrive(redrive(9))
        .await
        .expect_err("a lower fencing token is refused");
    assert_eq!(stale.code(), tonic::Code::Aborted);
    assert_eq!(
        cudly_proto::status::error_detail(&stale)
            .map(|detail| detail.code)
            .as_deref(),
        Some("stale_fencing_token")
    );

    let done = world.wait_terminal(&root_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempt"], 1);
    let child = &children(&done)[0];
    assert_eq!(child["items"][0]["status"], "bought", "{child}");
    let ledger = world.ledger().await;
    let (_, token) = world
        .tokens_of(child["id"].as_str().unwrap())
        .await
        .remove(0);
    assert_eq!(
        commitments_for(&ledger, AwsService::Ec2, &token),
        1,
        "{ledger:?}"
    );
    assert_eq!(ledger.commitments.len(), 1);
    assert_eq!(
        world.purchase_calls().await,
        1,
        "the new owner reconciled instead of buying"
    );
    let owners: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT lease_owner FROM purchase_attempts WHERE root_id = $1")
            .bind(root)
            .fetch_all(&world.pool)
            .await
            .unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
}

#[tokio::test]
async fn an_executor_whose_clock_runs_ahead_sees_a_live_lease_as_fresh() {
    // This process's clock is an hour ahead of the database's: by it, every heartbeat
    // the database stamps looks an hour old.
    let world = world_with(|config| {
        config.executor.runner.process_clock_offset = chrono::TimeDelta::hours(1);
    })
    .await;
    let account = world.add_account("drifted", true).await;
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Ec2.name()),
                purchase_operation(AwsService::Ec2.name()),
            )
            .latency(1500, 0),
        )
        .await;
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    let root_id = execution["id"].as_str().unwrap().to_owned();
    world.approve(&execution).await;
    let root = Uuid::parse_str(&root_id).unwrap();
    eventually(
        "the purchase call to be sent",
        Duration::from_secs(30),
        || async {
            let sent: Option<bool> = sqlx::query_scalar(
                "SELECT sent_at IS NOT NULL FROM purchase_attempts WHERE root_id = $1",
            )
            .bind(root)
            .fetch_optional(&world.pool)
            .await
            .unwrap();
            sent.filter(|sent| *sent)
        },
    )
    .await
    .unwrap();

    let mut sweeper = world.executor_client(Caller::Sweeper);
    let fencing = |token: i64| {
        Some(Fencing {
            task: "recover_stranded".to_owned(),
            token,
        })
    };
    let stale = sweeper
        .list_stale_executions(ListStaleExecutionsRequest {
            fencing: fencing(10),
            approved_after_seconds: 60,
            running_after_seconds: 60,
            limit: 0,
            now: None,
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(stale.executions.is_empty(), "{stale:?}");
    let refused = sweeper
        .redrive(RedriveRequest {
            execution_id: root_id.clone(),
            fencing: fencing(11),
            expected_attempt: None,
        })
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(refused.outcome, "lease_fresh", "{refused:?}");
    let kept = sweeper
        .safe_fail(SafeFailRequest {
            execution_id: root_id.clone(),
            fencing: fencing(12),
            reason: String::new(),
            expected_attempt: None,
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(
        kept.race_lost,
        "a live execution is not safe-failed: {kept:?}"
    );

    let done = world.wait_terminal(&root_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempt"], 0, "never re-driven");
    assert_eq!(world.purchase_calls().await, 1);
}
