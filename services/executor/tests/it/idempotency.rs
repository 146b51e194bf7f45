//! No double purchase: a re-drive after the purchases were made buys nothing more, a
//! purchase whose response was lost ends with exactly one commitment, and a failed
//! guard look-up refuses to buy.

use std::time::Duration;

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::operations::{guard_operation, purchase_operation, sandbox_service};
use cudly_aws_sandbox::{FaultError, FaultSpec};
use cudly_common::grpc::Caller;
use cudly_proto::common::v1::Fencing;
use cudly_proto::executor::v1::RedriveRequest;
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn redriving_an_execution_that_bought_everything_buys_nothing_more_for_each_service() {
    let world = world().await;
    let account = world.add_account("all-services", true).await;
    let recommendations: Vec<Value> = AwsService::ALL
        .iter()
        .map(|service| recommendation(*service))
        .collect();
    let done = world.buy(&account, recommendations).await;
    assert_eq!(done["status"], "completed", "{done}");
    let child = &children(&done)[0];
    let first_commitments: Vec<Value> = child["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["commitment_id"].clone())
        .collect();
    let purchases_before = world.purchase_calls().await;
    assert_eq!(
        purchases_before,
        AwsService::ALL.len(),
        "one purchase call per item"
    );

    rewind_to_a_crash_after_buying(&world, done["id"].as_str().unwrap()).await;
    let reply = world
        .executor_client(Caller::Sweeper)
        .redrive(RedriveRequest {
            execution_id: done["id"].as_str().unwrap().to_owned(),
            fencing: Some(Fencing {
                task: "recover_stranded".to_owned(),
                token: 1,
            }),
            expected_attempt: Some(0),
        })
        .await
        .expect("re-drive answered")
        .into_inner();
    assert!(reply.accepted, "{reply:?}");
    assert_eq!(reply.outcome, "redriven");
    assert_eq!(reply.attempt, 1);

    let again = world.wait_terminal(done["id"].as_str().unwrap()).await;
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(again["attempt"], 1);
    let child = &children(&again)[0];
    let commitments_after: Vec<Value> = child["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["status"], "bought", "{item}");
            item["commitment_id"].clone()
        })
        .collect();
    assert_eq!(
        commitments_after, first_commitments,
        "the same commitments, found again"
    );
    assert_eq!(
        world.purchase_calls().await,
        purchases_before,
        "no purchase call was sent again"
    );
    let ledger = world.ledger().await;
    for (index, token) in world.tokens_of(child["id"].as_str().unwrap()).await {
        let service = AwsService::ALL[index as usize];
        assert_eq!(
            commitments_for(&ledger, service, &token),
            1,
            "{} bought once",
            service.name()
        );
    }
    let (_, history) = world
        .call(
            reqwest::Method::GET,
            &format!("/api/history?account_ids={}", account.id),
            None,
        )
        .await;
    assert_eq!(
        history["purchases"].as_array().unwrap().len(),
        AwsService::ALL.len(),
        "{history}"
    );
}

/// Buys one unit of `service` while the sandbox commits the purchase and then drops the
/// connection without answering; the run must end with exactly one commitment.
async fn a_lost_purchase_response_ends_with_exactly_one_commitment(service: AwsService) {
    let world = world().await;
    let account = world.add_account(service.name(), true).await;
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(service.name()),
                purchase_operation(service.name()),
            )
            .for_account(&account.external_id)
            .drop_after_commit()
            .times(1),
        )
        .await;
    let done = world.buy(&account, vec![recommendation(service)]).await;
    assert_eq!(done["status"], "completed", "{done}");
    let child = &children(&done)[0];
    let item = &child["items"][0];
    assert_eq!(item["status"], "bought", "{item}");
    let ledger = world.ledger().await;
    let (_, token) = world
        .tokens_of(child["id"].as_str().unwrap())
        .await
        .remove(0);
    assert_eq!(commitments_for(&ledger, service, &token), 1, "{ledger:?}");
    assert_eq!(
        ledger.commitments.len(),
        1,
        "exactly one commitment in the account"
    );
    assert_eq!(
        item["commitment_id"].as_str(),
        Some(ledger.commitments[0].commitment_id.as_str()),
        "the item names the commitment that exists"
    );
}

#[tokio::test]
async fn a_lost_ec2_purchase_response_ends_with_exactly_one_commitment() {
    a_lost_purchase_response_ends_with_exactly_one_commitment(AwsService::Ec2).await;
}

#[tokio::test]
async fn a_lost_savings_plan_purchase_response_ends_with_exactly_one_commitment() {
    a_lost_purchase_response_ends_with_exactly_one_commitment(AwsService::SavingsPlans).await;
}

#[tokio::test]
async fn a_lost_rds_purchase_response_ends_with_exactly_one_commitment() {
    a_lost_purchase_response_ends_with_exactly_one_commitment(AwsService::Rds).await;
}

#[tokio::test]
async fn a_lost_elasticache_purchase_response_ends_with_exactly_one_commitment() {
    a_lost_purchase_response_ends_with_exactly_one_commitment(AwsService::ElastiCache).await;
}

#[tokio::test]
async fn a_lost_memorydb_purchase_response_ends_with_exactly_one_commitment() {
    a_lost_purchase_response_ends_with_exactly_one_commitment(AwsService::MemoryDb).await;
}

#[tokio::test]
async fn a_lost_opensearch_purchase_response_ends_with_exactly_one_commitment() {
    a_lost_purchase_response_ends_with_exactly_one_commitment(AwsService::OpenSearch).await;
}

#[tokio::test]
async fn a_lost_redshift_purchase_response_ends_with_exactly_one_commitment() {
    a_lost_purchase_response_ends_with_exactly_one_commitment(AwsService::Redshift).await;
}

#[tokio::test]
async fn a_failed_guard_look_up_refuses_to_buy_and_fails_the_item() {
    let world = world().await;
    let account = world.add_account("guarded", true).await;
    for service in [AwsService::Rds, AwsService::Ec2] {
        world
            .stack
            .sandbox()
            .add_fault(
                FaultSpec::on(
                    sandbox_service(service.name()),
                    guard_operation(service.name()),
                )
                .error(FaultError::Internal),
            )
            .await;
    }
    let done = world
        .buy(
            &account,
            vec![
                recommendation(AwsService::Rds),
                recommendation(AwsService::Ec2),
            ],
        )
        .await;
    assert_eq!(done["status"], "failed", "nothing was bought: {done}");
    let child = &children(&done)[0];
    assert_eq!(child["status"], "failed", "{child}");
    for item in child["items"].as_array().unwrap() {
        assert_eq!(item["status"], "failed", "{item}");
        assert_eq!(item["commitment_id"], Value::Null);
        let error = item["error"].as_str().expect("the item says why");
        assert!(
            error.contains("guard look-up failed, nothing was bought"),
            "{error}"
        );
    }
    assert_eq!(world.purchase_calls().await, 0, "no purchase call was sent");
    assert!(world.ledger().await.commitments.is_empty());
}

#[tokio::test]
async fn several_matching_commitments_make_the_purchase_in_doubt_until_an_operator_resolves_it() {
    let world = world().await;
    let account = world.add_account("doubtful", true).await;
    // Our purchase commits after a delay and its response is lost; meanwhile someone
    // buys the same offering and count by hand, untagged.
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Ec2.name()),
                purchase_operation(AwsService::Ec2.name()),
            )
            .for_account(&account.external_id)
            .latency(1_500, 0)
            .drop_after_commit()
            .times(1),
        )
        .await;
    let execution = world
        .create_direct(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    world.approve(&execution).await;
    cudly_testkit::eventually(
        "our purchase call to arrive",
        Duration::from_secs(30),
        || async {
            world
                .stack
                .sandbox()
                .faults()
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await
    .expect("our purchase call arrived");
    let foreign = world.buy_by_hand(&account, AwsService::Ec2).await;
    let done = world.wait_terminal(execution["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "nothing provably bought: {done}");
    let child = &children(&done)[0];
    let item = &child["items"][0];
    assert_eq!(item["status"], "failed", "{item}");
    let error = item["error"].as_str().unwrap();
    assert!(error.contains("verify in the cloud console"), "{error}");
    assert_eq!(world.ledger().await.commitments.len(), 2);
    let purchases = world.purchase_calls().await;

    // A retry does not buy past the doubt.
    let (status, retry) = world
        .call(
            reqwest::Method::POST,
            &format!("/api/executions/{}/retry", done["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{retry}");
    let retried = world.wait_terminal(retry["id"].as_str().unwrap()).await;
    assert_eq!(retried["status"], "failed", "{retried}");
    assert!(
        children(&retried)[0]["items"][0]["error"]
            .as_str()
            .unwrap()
            .contains("in doubt")
    );
    assert_eq!(
        world.purchase_calls().await,
        purchases,
        "no purchase past the doubt"
    );

    // The operator finds ours in the console and resolves the item.
    let (_, token) = world
        .tokens_of(child["id"].as_str().unwrap())
        .await
        .remove(0);
    let ours = world
        .ledger()
        .await
        .commitments
        .iter()
        .map(|commitment| commitment.commitment_id.clone())
        .find(|id| *id != foreign)
        .expect("our commitment exists");
    let retried_child = &children(&retried)[0];
    let path = format!(
        "/api/executions/{}/items/0/resolve",
        retried_child["id"].as_str().unwrap()
    );
    let (status, resolved) = world
        .call(
            reqwest::Method::POST,
            &path,
            Some(serde_json::json!({"outcome": "bought", "commitment_id": ours})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{resolved}");
    assert_eq!(resolved["attempt"]["state"], "bought");
    // The resolution is in the audit trail, naming the attempt by its masked token.
    let (status, trail) = world
        .call(
            reqwest::Method::GET,
            "/api/audit?action=purchase_attempt.*",
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{trail}");
    let events = trail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{trail}");
    assert_eq!(events[0]["action"], "purchase_attempt.resolve_bought");
    assert_eq!(events[0]["actor"], "key:bootstrap");
    assert_eq!(events[0]["target_id"], format!("{}...", &token[..8]));
    assert_eq!(
        resolved["attempt"]["token_masked"],
        format!("{}...", &token[..8])
    );
    let (status, _) = world
        .call(
            reqwest::Method::POST,
            &path,
            Some(serde_json::json!({"outcome": "not_bought"})),
        )
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::CONFLICT,
        "only an in-doubt attempt is resolved"
    );
    let item = &world.execution(retried_child["id"].as_str().unwrap()).await["items"][0];
    assert_eq!(item["status"], "bought", "{item}");
    assert_eq!(item["commitment_id"], ours.as_str());
    let (_, history) = world
        .call(
            reqwest::Method::GET,
            &format!("/api/history?account_ids={}", account.id),
            None,
        )
        .await;
    assert_eq!(
        history["purchases"][0]["commitment_id"],
        ours.as_str(),
        "{history}"
    );
}

#[tokio::test]
async fn an_unrecorded_untagged_commitment_of_the_shape_stops_the_first_send_until_an_operator_resolves_it()
 {
    let world = world().await;
    for service in [AwsService::Ec2, AwsService::Redshift] {
        // Stands for a purchase whose attempt row a database failover lost: untagged, and
        // recorded on no attempt.
        let account = world.add_account(service.name(), true).await;
        let unrecorded = world.buy_by_hand(&account, service).await;
        let calls = world.purchase_calls().await;
        let done = world.buy(&account, vec![recommendation(service)]).await;
        assert_eq!(done["status"], "failed", "{service}: {done}");
        let child = &children(&done)[0];
        let item = &child["items"][0];
        let error = item["error"].as_str().unwrap();
        assert!(
            error.contains("nothing was sent") && error.contains(&unrecorded),
            "{service}: {error}"
        );
        assert_eq!(
            world.purchase_calls().await,
            calls,
            "{service}: nothing sent"
        );
        let in_account = |ledger: &cudly_aws_sandbox::Ledger| {
            ledger
                .commitments
                .iter()
                .filter(|commitment| commitment.account_id == account.external_id)
                .count()
        };
        assert_eq!(in_account(&world.ledger().await), 1, "{service}");

        // The operator finds it is not ours: a retry buys.
        let path = format!(
            "/api/executions/{}/items/0/resolve",
            child["id"].as_str().unwrap()
        );
        let (status, resolved) = world
            .call(
                reqwest::Method::POST,
                &path,
                Some(serde_json::json!({"outcome": "not_bought"})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{service}: {resolved}");
        let (status, retry) = world
            .call(
                reqwest::Method::POST,
                &format!("/api/executions/{}/retry", done["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{service}: {retry}");
        let retried = world.wait_terminal(retry["id"].as_str().unwrap()).await;
        assert_eq!(retried["status"], "completed", "{service}: {retried}");
        assert_eq!(in_account(&world.ledger().await), 2, "{service}");
    }
}

#[tokio::test]
async fn an_unrecorded_commitment_that_another_sent_purchase_accounts_for_does_not_stop_a_send() {
    let world = world().await;
    let account = world.add_account("concurrent", true).await;
    // B is asked for first, so its lineage began before A's purchase.
    let second = world
        .create_direct(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    // A buys the same shape; its tag call fails, so its commitment is untagged.
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(sandbox_service(AwsService::Ec2.name()), "CreateTags")
                .for_account(&account.external_id)
                .error(FaultError::AccessDenied)
                .times(1),
        )
        .await;
    let first = world
        .buy(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    let first_id = first["id"].as_str().unwrap();
    // A's run died after sending, before recording: its commitment is recorded on no
    // attempt, and A's attempt is in flight. Its lease looks fresh, so nothing re-drives
    // it before B runs.
    rewind_to_a_crash_after_buying(&world, first_id).await;
    sqlx::query("UPDATE executions SET heartbeat_at = now() WHERE id = $1::uuid")
        .bind(first_id)
        .execute(&world.pool)
        .await
        .unwrap();

    // B finds the untagged commitment, which A's sent purchase accounts for: it buys.
    world.approve(&second).await;
    let done = world.wait_terminal(second["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");

    // A is re-driven and adopts its own commitment.
    sqlx::query(
        "UPDATE executions SET heartbeat_at = now() - interval '1 hour' WHERE id = $1::uuid",
    )
    .bind(first_id)
    .execute(&world.pool)
    .await
    .unwrap();
    let reply = world
        .executor_client(Caller::Sweeper)
        .redrive(RedriveRequest {
            execution_id: first_id.to_owned(),
            fencing: Some(Fencing {
                task: "recover_stranded".to_owned(),
                token: 1,
            }),
            expected_attempt: Some(0),
        })
        .await
        .expect("re-drive answered")
        .into_inner();
    assert!(reply.accepted, "{reply:?}");
    let again = world.wait_terminal(first_id).await;
    assert_eq!(again["status"], "completed", "{again}");
    let ledger = world.ledger().await;
    assert_eq!(ledger.commitments.len(), 2, "one each: {ledger:?}");
    let bought: std::collections::HashSet<&str> = [&again, &done]
        .iter()
        .map(|execution| {
            children(execution)[0]["items"][0]["commitment_id"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(bought.len(), 2, "each item names its own commitment");
    assert_eq!(world.purchase_calls().await, 2, "nothing bought again");
}

#[tokio::test]
async fn an_ec2_tag_missed_before_a_crash_is_written_when_the_attempt_is_next_seen() {
    let world = world().await;
    let account = world.add_account("untagged", true).await;
    // The tag call fails once: the commitment stays untagged, its id recorded.
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(sandbox_service(AwsService::Ec2.name()), "CreateTags")
                .for_account(&account.external_id)
                .error(FaultError::AccessDenied)
                .times(1),
        )
        .await;
    let done = world
        .buy(&account, vec![recommendation(AwsService::Ec2)])
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, token) = world
        .tokens_of(children(&done)[0]["id"].as_str().unwrap())
        .await
        .remove(0);
    let tag_of = |ledger: cudly_aws_sandbox::Ledger| {
        ledger.commitments[0]
            .tags
            .get(cudly_common::idempotency::TAG_KEY)
            .cloned()
    };
    assert_eq!(tag_of(world.ledger().await), None, "the tag was missed");

    // The process died after recording the commitment, before writing its item.
    rewind_to_a_crash_after_recording(&world, done["id"].as_str().unwrap()).await;
    let reply = world
        .executor_client(Caller::Sweeper)
        .redrive(RedriveRequest {
            execution_id: done["id"].as_str().unwrap().to_owned(),
            fencing: Some(Fencing {
                task: "recover_stranded".to_owned(),
                token: 1,
            }),
            expected_attempt: Some(0),
        })
        .await
        .expect("re-drive answered")
        .into_inner();
    assert!(reply.accepted, "{reply:?}");
    let again = world.wait_terminal(done["id"].as_str().unwrap()).await;
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(
        tag_of(world.ledger().await),
        Some(token),
        "the tag was repaired"
    );
    assert_eq!(world.purchase_calls().await, 1, "nothing bought again");
}
