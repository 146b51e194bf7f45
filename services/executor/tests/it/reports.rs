//! Honest reports: an item whose purchase may have gone through is never reported
//! "nothing was bought". A run that cannot reach the accounts service leaves its
//! account for a re-drive instead of failing it.

use std::time::Duration;

use cudly_aws::purchase::AwsService;
use cudly_common::config::{Env, Layout};
use cudly_common::grpc::{Caller, client_channel};
use cudly_proto::common::v1::Fencing;
use cudly_proto::executor::v1::executor_service_client::ExecutorServiceClient;
use cudly_proto::executor::v1::{ApproveExecutionRequest, RedriveRequest, SafeFailRequest};
use secrecy::ExposeSecret;
use serde_json::Value;
use uuid::Uuid;

use crate::common::*;

fn item_errors(execution: &Value) -> Vec<String> {
    children(execution)[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["error"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn fencing() -> Option<Fencing> {
    Some(Fencing {
        task: "recover_stranded".to_owned(),
        token: 1,
    })
}

/// Two lines bought, then rewound as a crash would leave them: line 0's purchase was
/// sent with its outcome never written, line 1's recorded as bought on its attempt only.
async fn crashed_after_buying(world: &World, account: &TestAccount) -> String {
    let done = world
        .buy(
            account,
            vec![
                recommendation(AwsService::Ec2),
                recommendation(AwsService::Rds),
            ],
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let root_id = done["id"].as_str().unwrap().to_owned();
    rewind_to_a_crash_after_buying(world, &root_id).await;
    root_id
}

#[tokio::test]
async fn an_account_that_cannot_buy_any_more_reports_purchases_that_may_have_happened() {
    let world = world().await;
    let account = world.add_account("gone", true).await;
    let root_id = crashed_after_buying(&world, &account).await;
    let (status, _) = world
        .call(
            reqwest::Method::DELETE,
            &format!("/api/accounts/{}", account.id),
            None,
        )
        .await;
    assert_eq!(status, 204);

    let reply = world
        .executor_client(Caller::Sweeper)
        .redrive(RedriveRequest {
            execution_id: root_id.clone(),
            fencing: fencing(),
            expected_attempt: Some(0),
        })
        .await
        .expect("re-drive answered")
        .into_inner();
    assert!(reply.accepted, "{reply:?}");
    let ended = world.wait_terminal(&root_id).await;
    assert_eq!(ended["status"], "partially_completed", "{ended}");
    let errors = item_errors(&ended);
    assert!(
        errors[0].contains("outcome is unknown") && !errors[0].contains("nothing was bought"),
        "{errors:?}"
    );
    assert!(errors[1].contains("made by an earlier run"), "{errors:?}");
    // The sent purchase stays to be reconciled by a retry, never marked failed.
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM purchase_attempts WHERE root_id = $1 ORDER BY item_index",
    )
    .bind(Uuid::parse_str(&root_id).unwrap())
    .fetch_all(&world.pool)
    .await
    .unwrap();
    assert_eq!(states, ["in_flight", "bought"]);
}

#[tokio::test]
async fn a_safe_fail_settles_items_in_flight_by_what_their_purchase_says() {
    let world = world().await;
    let account = world.add_account("stranded", true).await;
    let root_id = crashed_after_buying(&world, &account).await;
    let reply = world
        .executor_client(Caller::Sweeper)
        .safe_fail(SafeFailRequest {
            execution_id: root_id.clone(),
            fencing: fencing(),
            reason: "verify in the cloud console, then retry".to_owned(),
            expected_attempt: Some(0),
        })
        .await
        .expect("safe-fail answered")
        .into_inner();
    assert!(!reply.race_lost, "{reply:?}");
    let ended = world.execution(&root_id).await;
    assert_eq!(ended["status"], "partially_completed", "{ended}");
    let child = &children(&ended)[0];
    let statuses: Vec<&str> = child["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["failed", "failed"],
        "no item is left in flight: {child}"
    );
    let errors = item_errors(&ended);
    assert!(errors[0].contains("outcome is unknown"), "{errors:?}");
    assert!(errors[1].contains("made by an earlier run"), "{errors:?}");
}

/// An executor of its own whose accounts service never answers.
async fn executor_without_accounts(world: &World) -> std::net::SocketAddr {
    let env = Env::from_pairs([
        (
            "DATABASE_URL",
            world.stack.db.secret_url().expose_secret().to_owned(),
        ),
        ("CUDLY_HEALTH_INTERVAL", "250ms".to_owned()),
        ("CUDLY_INTERNAL_CALL_TIMEOUT", "1s".to_owned()),
    ]);
    let mut config =
        cudly_executor::config::Config::read(&env, world.stack.secrets(), Layout::AllInOne)
            .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.accounts_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    config.planner_url = format!("http://{}", world.stack.stack().planner_addr());
    config.runner.poll_interval = Duration::from_secs(3600);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = cudly_executor::app::App::from_listener(config, listener).unwrap();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    addr
}

#[tokio::test]
async fn an_accounts_outage_leaves_the_account_for_a_re_drive_instead_of_failing_it() {
    let world = world_with(|config| {
        // Only the executor under test runs this execution.
        config.executor.runner.poll_interval = Duration::from_secs(3600);
    })
    .await;
    let account = world.add_account("outage", true).await;
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::Rds)])
        .await;
    let root_id = execution["id"].as_str().unwrap().to_owned();
    let addr = executor_without_accounts(&world).await;
    let channel = client_channel(
        &format!("http://{addr}"),
        &world.stack.secrets().internal_token(Caller::Gateway),
        Duration::from_secs(10),
    )
    .unwrap();
    ExecutorServiceClient::new(channel)
        .approve_execution(ApproveExecutionRequest {
            id: root_id.clone(),
            token: execution["approval_token"].as_str().map(str::to_owned),
            actor: "token".to_owned(),
            actor_key_id: None,
        })
        .await
        .expect("approved");
    // The run retries the accounts service for about 15 s, then gives up on this run.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let now = world.execution(&root_id).await;
    let child = &children(&now)[0];
    assert_eq!(child["status"], "running", "left for a re-drive: {child}");
    assert_eq!(child["items"][0]["status"], "pending", "{child}");
    assert_eq!(now["status"], "running", "{now}");
    assert_eq!(world.purchase_calls().await, 0);
}

#[tokio::test]
async fn a_purchase_lock_held_too_long_fails_the_item_instead_of_waiting_forever() {
    let world = world().await;
    let account = world.add_account("blocked", true).await;
    let line = recommendation(AwsService::Ec2);
    let recommendation: cudly_vocabulary::Recommendation =
        serde_json::from_value(line.clone()).unwrap();
    let spec = cudly_aws::purchase::PurchaseSpec::new(&recommendation, "");
    let key = cudly_executor::runner::lock::OfferingLock::key(
        &account.id,
        &spec.candidate_shape().expect("ec2 purchases are locked"),
    );
    // Another holder that never lets go.
    let mut holder = world.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(&key)
        .execute(&mut *holder)
        .await
        .unwrap();

    let ended = world.buy(&account, vec![line]).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    let errors = item_errors(&ended);
    assert!(
        errors[0].contains("held the purchase lock too long"),
        "{errors:?}"
    );
    assert_eq!(world.purchase_calls().await, 0, "nothing was sent");
    drop(holder);
}

#[tokio::test]
async fn an_outcome_no_reconciliation_can_settle_becomes_in_doubt_and_an_operator_resolves_it() {
    use cudly_aws_sandbox::operations::{guard_operation, sandbox_service};
    use cudly_aws_sandbox::{FaultError, FaultSpec};
    let world = world().await;
    let account = world.add_account("unsettled", true).await;
    let done = world
        .buy(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let commitment_id = children(&done)[0]["items"][0]["commitment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut root_id = done["id"].as_str().unwrap().to_owned();
    // The purchase was sent, its outcome never written; from now on no look-up answers.
    rewind_to_a_crash_after_buying(&world, &root_id).await;
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(sandbox_service("ec2"), guard_operation("ec2"))
                .for_account(&account.external_id)
                .error(FaultError::Internal),
        )
        .await;
    world
        .executor_client(Caller::Sweeper)
        .redrive(RedriveRequest {
            execution_id: root_id.clone(),
            fencing: fencing(),
            expected_attempt: Some(0),
        })
        .await
        .expect("re-drive answered");
    let mut ended = world.wait_terminal(&root_id).await;
    for _ in 0..2 {
        assert_eq!(ended["status"], "failed", "{ended}");
        let (status, retried) = world
            .call(
                reqwest::Method::POST,
                &format!("/api/executions/{root_id}/retry"),
                None,
            )
            .await;
        assert_eq!(status, 201, "{retried}");
        root_id = retried["id"].as_str().unwrap().to_owned();
        ended = world.wait_terminal(&root_id).await;
    }
    let errors = item_errors(&ended);
    assert!(
        errors[0].contains("in doubt") || errors[0].contains("resolve the attempt"),
        "{errors:?}"
    );
    let child_id = children(&ended)[0]["id"].as_str().unwrap().to_owned();
    let (status, resolved) = world
        .call(
            reqwest::Method::POST,
            &format!("/api/executions/{child_id}/items/0/resolve"),
            Some(serde_json::json!({"outcome": "bought", "commitment_id": commitment_id})),
        )
        .await;
    assert_eq!(status, 200, "an operator can resolve it: {resolved}");
    assert_eq!(resolved["attempt"]["state"], "bought");
    assert_eq!(world.purchase_calls().await, 1, "never bought twice");
}

/// A sender frozen between recording sent_at and dispatching (a GC pause, a suspended
/// VM) must not send once a reconciliation elsewhere may have concluded that nothing was
/// sent: past its deadline it reconciles instead. Every purchase call lands within the
/// dispatch window after the sent_at it belongs to.
#[tokio::test]
async fn a_sender_frozen_past_its_send_deadline_reconciles_instead_of_sending_late() {
    let world = world_with(|config| {
        config.executor.runner.stall_before_first_send = Duration::from_secs(5);
    })
    .await;
    let account = world.add_account("frozen", true).await;
    let done = world
        .buy(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let sent_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT sent_at FROM purchase_attempts WHERE root_id = $1")
            .bind(Uuid::parse_str(done["id"].as_str().unwrap()).unwrap())
            .fetch_one(&world.pool)
            .await
            .unwrap();
    // Test settings: 2 s calls, 2 attempts, 0.5 s pause, 0.2 s settle margin.
    let window = chrono::Duration::milliseconds(4_500 + 200 - 2_000);
    let ledger = world.ledger().await;
    let calls: Vec<_> = ledger
        .calls_of(cudly_aws_sandbox::operations::purchase_operation("ec2"))
        .collect();
    assert_eq!(calls.len(), 1, "bought once: {calls:?}");
    for call in calls {
        assert!(
            call.at <= sent_at + window,
            "a purchase call {:?} after its send deadline",
            call.at - sent_at
        );
    }
}
