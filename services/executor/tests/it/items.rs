//! An account's items run concurrently (`CUDLY_MAX_ITEM_PARALLELISM`), except those that
//! share a purchase lock; purchases in flight stay under `CUDLY_MAX_PURCHASE_CALLS`
//! across the process, whatever the two parallelisms.

use std::time::Duration;

use cudly_aws::purchase::AwsService;
use cudly_aws_sandbox::FaultSpec;
use cudly_aws_sandbox::operations::{purchase_operation, sandbox_service};
use cudly_testkit::eventually;
use serde_json::{Value, json};

use crate::common::*;

/// Makes every purchase of `service` take `millis`, so that purchases running together
/// overlap at the sandbox.
async fn slow_purchases(world: &World, service: AwsService, millis: u64) {
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(service.name()),
                purchase_operation(service.name()),
            )
            .latency(millis, 0),
        )
        .await;
}

/// Returns the items of the execution's only child.
fn items_of(execution: &Value) -> &Vec<Value> {
    children(execution)[0]["items"]
        .as_array()
        .expect("the child lists its items")
}

/// Asserts that every item of the execution's only child was bought under its own
/// token, exactly once.
async fn assert_each_bought_once(world: &World, execution: &Value) {
    assert_eq!(execution["status"], "completed", "{execution}");
    let child_id = children(execution)[0]["id"].as_str().unwrap();
    let ledger = world.ledger().await;
    for (index, token) in world.tokens_of(child_id).await {
        let item = &items_of(execution)[usize::try_from(index).unwrap()];
        let service = match item["recommendation"]["service"].as_str() {
            Some("ec2") => AwsService::Ec2,
            Some("rds") => AwsService::Rds,
            Some("elasticache") => AwsService::ElastiCache,
            Some("memorydb") => AwsService::MemoryDb,
            other => panic!("an item of an unexpected service: {other:?}"),
        };
        assert_eq!(
            commitments_for(&ledger, service, &token),
            1,
            "item {index} bought once: {ledger:?}"
        );
    }
}

#[tokio::test]
async fn items_of_different_offerings_in_one_account_are_bought_at_the_same_time() {
    let world = world().await;
    let account = world.add_account("parallel", true).await;
    let services = [
        AwsService::Rds,
        AwsService::ElastiCache,
        AwsService::MemoryDb,
    ];
    for service in services {
        slow_purchases(&world, service, 600).await;
    }
    let done = world
        .buy(&account, services.map(recommendation).to_vec())
        .await;
    assert_each_bought_once(&world, &done).await;
    let concurrency = world.stack.sandbox().purchase_concurrency();
    assert_eq!(
        concurrency.peak, 3,
        "the three purchases were in flight together: {concurrency:?}"
    );
}

#[tokio::test]
async fn several_items_of_one_offering_in_one_account_are_bought_one_at_a_time_each_once() {
    let world = world().await;
    let account = world.add_account("same-offering", true).await;
    // Same shape and count of EC2 in one region: the purchase lock's rule. Each purchase
    // takes long enough that two running together would overlap at the sandbox.
    slow_purchases(&world, AwsService::Ec2, 400).await;
    let done = world
        .buy(&account, vec![recommendation(AwsService::Ec2); 3])
        .await;
    assert_each_bought_once(&world, &done).await;
    let ledger = world.ledger().await;
    assert_eq!(
        ledger.commitments.len(),
        3,
        "three commitments, one per item: {ledger:?}"
    );
    let concurrency = world.stack.sandbox().purchase_concurrency();
    assert_eq!(
        concurrency.peak, 1,
        "never two purchases of the shape at once: {concurrency:?}"
    );
}

#[tokio::test]
async fn one_items_lost_reply_does_not_hold_back_the_other_items_of_its_account() {
    let world = world().await;
    let account = world.add_account("lost-reply", true).await;
    // The first item's purchase takes a second, commits, and its reply is lost: the
    // item settles only after that and a second call or a reconciliation.
    world
        .stack
        .sandbox()
        .add_fault(
            FaultSpec::on(
                sandbox_service(AwsService::Rds.name()),
                purchase_operation(AwsService::Rds.name()),
            )
            .for_account(&account.external_id)
            .latency(1000, 0)
            .drop_after_commit()
            .times(1),
        )
        .await;
    let execution = world
        .create_direct(
            &account,
            vec![
                recommendation(AwsService::Rds),
                recommendation(AwsService::ElastiCache),
                recommendation(AwsService::MemoryDb),
            ],
        )
        .await;
    world.approve(&execution).await;
    let id = execution["id"].as_str().unwrap();
    // The other two are bought while the first is still being reconciled.
    let while_reconciling = eventually(
        "the other items bought while the first reconciles",
        Duration::from_secs(30),
        || async {
            let current = world.execution(id).await;
            let statuses: Vec<String> = items_of(&current)
                .iter()
                .map(|item| item["status"].as_str().unwrap_or_default().to_owned())
                .collect();
            (statuses[1] == "bought" && statuses[2] == "bought").then_some(statuses)
        },
    )
    .await
    .expect("the other items were bought");
    assert_eq!(
        while_reconciling[0], "in_flight",
        "the first item was still reconciling: {while_reconciling:?}"
    );
    let done = world.wait_terminal(id).await;
    assert_each_bought_once(&world, &done).await;
}

#[tokio::test]
async fn purchases_in_flight_never_exceed_the_process_bound_however_wide_the_fan_out() {
    const MAX_PURCHASE_CALLS: usize = 16;
    const ACCOUNTS: usize = 30;
    let world = world_with(|config| {
        config.executor.runner.max_account_parallelism = 200;
        config.executor.runner.max_purchase_calls = MAX_PURCHASE_CALLS;
    })
    .await;
    let services = [
        AwsService::Ec2,
        AwsService::Rds,
        AwsService::ElastiCache,
        AwsService::MemoryDb,
    ];
    for service in services {
        slow_purchases(&world, service, 300).await;
    }
    // Eight items per account (two of each service, the EC2 pair of different shapes):
    // up to four per account at once, 120 in all, against a bound of sixteen.
    let mut second_ec2 = recommendation(AwsService::Ec2);
    second_ec2["resource_type"] = json!("m5.xlarge");
    let mut second_rds = recommendation(AwsService::Rds);
    second_rds["count"] = json!(1);
    let mut second_elasticache = recommendation(AwsService::ElastiCache);
    second_elasticache["count"] = json!(2);
    let mut second_memorydb = recommendation(AwsService::MemoryDb);
    second_memorydb["count"] = json!(1);
    let items = vec![
        recommendation(AwsService::Ec2),
        recommendation(AwsService::Rds),
        recommendation(AwsService::ElastiCache),
        recommendation(AwsService::MemoryDb),
        second_ec2,
        second_rds,
        second_elasticache,
        second_memorydb,
    ];
    let mut executions = Vec::with_capacity(ACCOUNTS);
    for index in 0..ACCOUNTS {
        let account = world.add_account(&format!("load-{index}"), true).await;
        executions.push(world.create_direct(&account, items.clone()).await);
    }
    for execution in &executions {
        world.approve(execution).await;
    }
    for execution in &executions {
        let done = world.wait_terminal(execution["id"].as_str().unwrap()).await;
        assert_each_bought_once(&world, &done).await;
    }
    let concurrency = world.stack.sandbox().purchase_concurrency();
    assert!(
        concurrency.peak <= MAX_PURCHASE_CALLS,
        "the bound held: {concurrency:?}"
    );
    // Not vacuous: up to 120 purchases wanted to run at once, and the bound was what
    // held them (a loaded machine may keep a permit holder or two off the sandbox at
    // the peak, in its database steps).
    assert!(
        concurrency.peak >= MAX_PURCHASE_CALLS - 2,
        "the fan-out was wide enough to reach the bound: {concurrency:?}"
    );
}
