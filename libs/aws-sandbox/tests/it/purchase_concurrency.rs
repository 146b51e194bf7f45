use cudly_aws_sandbox::{FaultError, FaultSpec, PurchaseConcurrency, Service};
use serde_json::{Value, json};

use crate::common::*;

/// Purchases fired at once.
const PURCHASES: usize = 5;
/// The latency every call under test waits: long enough for the calls fired at once to
/// be open together even on a busy machine.
const LATENCY_MS: u64 = 1_000;

const PURCHASE: &str = "PurchaseReservedDBInstancesOffering";
const DESCRIBE: &str = "DescribeReservedDBInstances";

async fn rds_offering(rds: &aws_sdk_rds::Client) -> String {
    rds.describe_reserved_db_instances_offerings()
        .db_instance_class("db.t3.micro")
        .send()
        .await
        .unwrap()
        .reserved_db_instances_offerings()[0]
        .reserved_db_instances_offering_id()
        .unwrap()
        .to_string()
}

/// Fires `count` describes at once and waits for them all.
async fn describe_at_once(rds: &aws_sdk_rds::Client, count: usize) {
    let describes: Vec<_> = (0..count)
        .map(|_| {
            let rds = rds.clone();
            tokio::spawn(async move { rds.describe_reserved_db_instances().send().await })
        })
        .collect();
    for describe in describes {
        describe.await.unwrap().unwrap();
    }
}

/// Fires `count` purchases at once, each with its own reservation id, and waits for
/// them all.
async fn purchase_at_once(rds: &aws_sdk_rds::Client, offering: &str, count: usize) {
    let purchases: Vec<_> = (0..count)
        .map(|index| {
            let rds = rds.clone();
            let offering = offering.to_string();
            tokio::spawn(async move {
                rds.purchase_reserved_db_instances_offering()
                    .reserved_db_instances_offering_id(offering)
                    .reserved_db_instance_id(format!("rds-id-overlap-{index}"))
                    .send()
                    .await
            })
        })
        .collect();
    for purchase in purchases {
        purchase.await.unwrap().unwrap();
    }
}

fn concurrency(in_flight: usize, peak: usize) -> PurchaseConcurrency {
    PurchaseConcurrency { in_flight, peak }
}

#[tokio::test]
async fn overlapping_purchases_set_the_peak_and_describes_are_not_counted() {
    let handle = start().await;
    // No retries: each purchase is one call.
    let rds = aws_sdk_rds::Client::new(&root_config_no_retry(&handle).await);
    let offering = rds_offering(&rds).await;
    handle
        .add_fault(FaultSpec::on(Service::Rds, DESCRIBE).latency(LATENCY_MS, 0))
        .await;
    handle
        .add_fault(FaultSpec::on(Service::Rds, PURCHASE).latency(LATENCY_MS, 0))
        .await;

    describe_at_once(&rds, PURCHASES).await;
    assert_eq!(handle.purchase_concurrency(), concurrency(0, 0));

    // Describes open alongside the purchases do not raise the peak above them.
    let describes = describe_at_once(&rds, PURCHASES);
    let purchases = purchase_at_once(&rds, &offering, PURCHASES);
    tokio::join!(describes, purchases);
    assert_eq!(handle.purchase_concurrency(), concurrency(0, PURCHASES));
    assert_eq!(handle.ledger().await.commitments.len(), PURCHASES);

    handle.reset_purchase_peak();
    assert_eq!(handle.purchase_concurrency(), concurrency(0, 0));
}

#[tokio::test]
async fn purchase_concurrency_is_read_and_reset_over_http_and_a_refused_purchase_closes() {
    let handle = start().await;
    let rds = aws_sdk_rds::Client::new(&root_config_no_retry(&handle).await);
    let offering = rds_offering(&rds).await;
    handle
        .add_fault(FaultSpec::on(Service::Rds, PURCHASE).latency(LATENCY_MS, 0))
        .await;
    purchase_at_once(&rds, &offering, 2).await;

    let http = reqwest::Client::new();
    let url = format!("{}/_sandbox/purchase-concurrency", handle.endpoint());
    let read: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, json!({"in_flight": 0, "peak": 2}));
    let reset = http.delete(&url).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    let read: PurchaseConcurrency = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, concurrency(0, 0));

    // A purchase a fault refuses is open until refused, then closed like any other.
    handle
        .add_fault(
            FaultSpec::on(Service::Rds, PURCHASE)
                .error(FaultError::Throttle)
                .times(1),
        )
        .await;
    let refused = rds
        .purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&offering)
        .reserved_db_instance_id("rds-id-refused")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "Throttling");
    let read: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, json!({"in_flight": 0, "peak": 1}));
}
