//! AWS behaviours the documentation leaves open, run both ways against the sandbox's
//! behaviour switches: whether Redshift tags reserved nodes, and whether OpenSearch
//! refuses a second reservation of the same name. The purchase path must buy exactly
//! once either way.

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_aws_sandbox::{BehaviourUpdate, FaultSpec, RedshiftReservedNodeTags};

use crate::common::*;

/// Buys one line of `service` in a fresh account, the first purchase reply lost when
/// `lose_reply`; returns the execution and the number of commitments in the account.
async fn buy_once(
    world: &World,
    service: AwsService,
    lose_reply: bool,
) -> (serde_json::Value, usize) {
    let account = world.add_account(service.name(), true).await;
    if lose_reply {
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
    }
    let done = world.buy(&account, vec![recommendation(service)]).await;
    let ledger = world.ledger().await;
    let commitments = ledger
        .commitments
        .iter()
        .filter(|commitment| commitment.account_id == account.external_id)
        .count();
    (done, commitments)
}

#[tokio::test]
async fn redshift_buys_once_whether_or_not_aws_tags_reserved_nodes() {
    for tags in [
        RedshiftReservedNodeTags::Supported,
        RedshiftReservedNodeTags::Rejected,
    ] {
        let world = world().await;
        world
            .stack
            .sandbox()
            .update_behaviour(BehaviourUpdate {
                redshift_reserved_node_tags: Some(tags),
                ..BehaviourUpdate::default()
            })
            .await;
        for lose_reply in [false, true] {
            let (done, commitments) = buy_once(&world, AwsService::Redshift, lose_reply).await;
            assert_eq!(
                done["status"], "completed",
                "{tags:?}, reply lost {lose_reply}: {done}"
            );
            assert_eq!(
                commitments, 1,
                "{tags:?}, reply lost {lose_reply}: one reserved node"
            );
        }
    }
}

#[tokio::test]
async fn opensearch_buys_once_whether_or_not_aws_refuses_a_duplicate_reservation_name() {
    for unique in [true, false] {
        let world = world().await;
        world
            .stack
            .sandbox()
            .update_behaviour(BehaviourUpdate {
                opensearch_unique_reservation_name: Some(unique),
                ..BehaviourUpdate::default()
            })
            .await;
        let (done, commitments) = buy_once(&world, AwsService::OpenSearch, true).await;
        assert_eq!(done["status"], "completed", "unique {unique}: {done}");
        assert_eq!(commitments, 1, "unique names {unique}: one reservation");
    }
}

/// AWS stamps reservations with its own clock. With it minutes behind the database's,
/// the reservation of a lost reply looks older than the send; the reconciliation still
/// finds it (it looks back from the earlier clock with a wide margin) and buys nothing
/// more.
#[tokio::test]
async fn a_lost_ec2_reply_is_reconciled_once_with_the_aws_clock_behind_the_database() {
    let world = world().await;
    world
        .stack
        .sandbox()
        .update_behaviour(BehaviourUpdate {
            clock_offset_seconds: Some(-7 * 60),
            ..BehaviourUpdate::default()
        })
        .await;
    for service in [AwsService::Ec2, AwsService::Redshift] {
        let (done, commitments) = buy_once(&world, service, true).await;
        assert_eq!(done["status"], "completed", "{service}: {done}");
        assert_eq!(
            commitments, 1,
            "{service}: the lost reply's commitment adopted"
        );
    }
}
