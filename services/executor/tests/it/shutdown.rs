//! A graceful shutdown lets the purchase in flight finish and records it, starts nothing
//! new, and gives the lease up so a re-drive need not wait for the threshold.

use std::time::Duration;

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::FaultSpec;
use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_testkit::eventually;
use uuid::Uuid;

use crate::common::*;

#[tokio::test]
async fn a_shutdown_finishes_the_purchase_in_flight_and_leaves_the_rest_for_a_redrive() {
    // One item at a time, so that the second is not started when the first is in flight.
    let world = world_with(|config| config.executor.runner.max_item_parallelism = 1).await;
    let account = world.add_account("stopping", true).await;
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Rds.name()),
                purchase_operation(AwsService::Rds.name()),
            )
            .latency(1000, 0),
        )
        .await;
    let execution = world
        .create_direct(
            &account,
            vec![
                recommendation(AwsService::Rds),
                recommendation(AwsService::ElastiCache),
            ],
        )
        .await;
    world.approve(&execution).await;
    let root = Uuid::parse_str(execution["id"].as_str().unwrap()).unwrap();
    eventually("the first purchase to be sent", Duration::from_secs(30), || async {
        let sent: Option<bool> = sqlx::query_scalar(
            "SELECT sent_at IS NOT NULL FROM purchase_attempts WHERE root_id = $1 AND item_index = 0",
        )
        .bind(root)
        .fetch_optional(&world.pool)
        .await
        .unwrap();
        sent.filter(|sent| *sent)
    })
    .await
    .unwrap();

    let World { mut stack, pool } = world;
    assert_eq!(
        stack.sandbox().ledger().await.commitments.len(),
        0,
        "the purchase is still in flight"
    );
    stack.stop_services().await.expect("the services stop");

    let statuses: Vec<(i32, String, Option<String>)> = sqlx::query_as(
        "SELECT i.item_index, i.status, i.commitment_id FROM execution_items i \
         JOIN executions c ON c.id = i.execution_id WHERE c.parent_id = $1 ORDER BY i.item_index",
    )
    .bind(root)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        statuses[0].1, "bought",
        "the purchase in flight was finished and recorded: {statuses:?}"
    );
    assert!(statuses[0].2.is_some());
    assert_eq!(
        statuses[1].1, "pending",
        "nothing new was started: {statuses:?}"
    );
    let (status, heartbeat_is_epoch): (String, bool) =
        sqlx::query_as("SELECT status, heartbeat_at = 'epoch' FROM executions WHERE id = $1")
            .bind(root)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "running", "a re-drive resumes it");
    assert!(heartbeat_is_epoch, "the lease was given up");
    assert_eq!(
        stack.sandbox().ledger().await.commitments.len(),
        1,
        "one purchase, nothing more"
    );
}
