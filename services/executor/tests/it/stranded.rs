//! What the sweeper asks of the executor: expire pending approvals, list stranded roots,
//! safe-fail them; every call fenced by the sweeper's token.

use cudly_aws::purchase::AwsService;
use cudly_common::grpc::Caller;
use cudly_proto::common::v1::Fencing;
use cudly_proto::executor::v1::{
    ExpirePendingRequest, HasLiveExecutionRequest, ListStaleExecutionsRequest, SafeFailRequest,
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::common::*;

fn fencing(task: &str, token: i64) -> Option<Fencing> {
    Some(Fencing {
        task: task.to_owned(),
        token,
    })
}

fn stale_fencing_code(status: &tonic::Status) -> Option<String> {
    cudly_proto::status::error_detail(status).map(|detail| detail.code)
}

#[tokio::test]
async fn expiring_pending_executions_is_fenced_and_counts_what_it_did() {
    let world = world().await;
    let account = world.add_account("expiring", true).await;
    let old = world
        .create_direct(&account, vec![recommendation(AwsService::Rds)])
        .await;
    let fresh = world
        .create_direct(&account, vec![recommendation(AwsService::Rds)])
        .await;
    let old_id = old["id"].as_str().unwrap();
    sqlx::query(
        "UPDATE executions SET approval_expires_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(Uuid::parse_str(old_id).unwrap())
    .execute(&world.pool)
    .await
    .unwrap();
    let mut sweeper = world.executor_client(Caller::Sweeper);
    let counts = sweeper
        .expire_pending(ExpirePendingRequest {
            fencing: fencing("expire_pending", 5),
            now: None,
        })
        .await
        .expect("expired")
        .into_inner();
    assert_eq!((counts.found, counts.acted, counts.race_lost), (1, 1, 0));
    let expired = world.execution(old_id).await;
    assert_eq!(expired["status"], "expired");
    assert!(
        children(&expired)
            .iter()
            .all(|child| child["status"] == "expired"),
        "{expired}"
    );
    assert_eq!(
        world.execution(fresh["id"].as_str().unwrap()).await["status"],
        "pending"
    );

    let stale = sweeper
        .expire_pending(ExpirePendingRequest {
            fencing: fencing("expire_pending", 4),
            now: None,
        })
        .await
        .expect_err("a lower token is refused");
    assert_eq!(stale.code(), tonic::Code::Aborted);
    assert_eq!(
        stale_fencing_code(&stale).as_deref(),
        Some("stale_fencing_token")
    );

    let token = old["approval_token"].as_str().unwrap();
    let (status, _) = world
        .call_anonymous(
            Method::POST,
            &format!("/api/executions/{old_id}/approve"),
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::GONE,
        "an expired execution cannot be approved"
    );
    assert!(world.ledger().await.commitments.is_empty());
}

#[tokio::test]
async fn a_stranded_execution_is_listed_and_safe_failed_only_while_its_lease_is_stale() {
    let world = world().await;
    let account = world.add_account("stranded", true).await;
    let done = world
        .buy(
            &account,
            vec![
                recommendation(AwsService::Rds),
                recommendation(AwsService::ElastiCache),
            ],
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let root_id = done["id"].as_str().unwrap();
    let root = Uuid::parse_str(root_id).unwrap();
    // A crash after the first purchase: the second item never started.
    for statement in [
        "UPDATE executions SET status = 'running', completed_at = NULL, lease_owner = 'crashed:1', \
             heartbeat_at = now() - interval '1 hour' WHERE id = $1",
        "UPDATE executions SET status = 'running', completed_at = NULL, lease_owner = 'crashed:1' WHERE parent_id = $1",
        "UPDATE execution_items SET status = 'pending', commitment_id = NULL WHERE item_index = 1 \
             AND execution_id IN (SELECT id FROM executions WHERE parent_id = $1)",
    ] {
        sqlx::query(statement)
            .bind(root)
            .execute(&world.pool)
            .await
            .unwrap();
    }
    let mut sweeper = world.executor_client(Caller::Sweeper);
    let listed = sweeper
        .list_stale_executions(ListStaleExecutionsRequest {
            fencing: fencing("recover_stranded", 1),
            approved_after_seconds: 900,
            running_after_seconds: 600,
            limit: 0,
            now: None,
        })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.executions.len(), 1, "{listed:?}");
    assert_eq!(listed.executions[0].id, root_id);
    assert_eq!(listed.executions[0].status, "running");

    let live = world
        .executor_client(Caller::Planner)
        .has_live_execution(HasLiveExecutionRequest {
            plan_id: Uuid::new_v4().to_string(),
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(!live.live);

    let reply = sweeper
        .safe_fail(SafeFailRequest {
            execution_id: root_id.to_owned(),
            fencing: fencing("recover_stranded", 1),
            reason: "verify in the cloud console, then retry".to_owned(),
            expected_attempt: Some(0),
        })
        .await
        .expect("safe-failed")
        .into_inner();
    assert!(!reply.race_lost);
    assert_eq!(reply.status, "partially_completed", "something was bought");
    let ended = world.execution(root_id).await;
    assert_eq!(ended["status"], "partially_completed");
    assert_eq!(ended["error"], "verify in the cloud console, then retry");
    let child = &children(&ended)[0];
    assert_eq!(child["status"], "partially_completed", "{child}");
    assert_eq!(child["items"][1]["status"], "skipped", "{child}");
    let lease: Option<String> =
        sqlx::query_scalar("SELECT lease_owner FROM executions WHERE id = $1")
            .bind(root)
            .fetch_one(&world.pool)
            .await
            .unwrap();
    assert_eq!(lease, None, "the lease is cleared so a zombie cannot write");

    let again = sweeper
        .safe_fail(SafeFailRequest {
            execution_id: root_id.to_owned(),
            fencing: fencing("recover_stranded", 1),
            reason: "again".to_owned(),
            expected_attempt: None,
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(
        again.race_lost,
        "a terminal execution is not safe-failed twice"
    );

    // A live run is never safe-failed.
    let running = world
        .create_direct(&account, vec![recommendation(AwsService::MemoryDb)])
        .await;
    let running_id = running["id"].as_str().unwrap();
    sqlx::query(
        "UPDATE executions SET status = 'running', lease_owner = 'alive:1', heartbeat_at = now() WHERE id = $1",
    )
    .bind(Uuid::parse_str(running_id).unwrap())
    .execute(&world.pool)
    .await
    .unwrap();
    let refused = sweeper
        .safe_fail(SafeFailRequest {
            execution_id: running_id.to_owned(),
            fencing: fencing("recover_stranded", 2),
            reason: "no".to_owned(),
            expected_attempt: None,
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(refused.race_lost);
    assert_eq!(refused.status, "running");
}
