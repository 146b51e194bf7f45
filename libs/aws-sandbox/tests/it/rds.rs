use aws_sdk_rds::types::Tag;
use cudly_aws_sandbox::IDEMPOTENCY_TAG_KEY;

use crate::common::*;

async fn offering_id(rds: &aws_sdk_rds::Client) -> String {
    let offerings = rds
        .describe_reserved_db_instances_offerings()
        .db_instance_class("db.r5.large")
        .product_description("postgresql")
        .duration("1")
        .offering_type("All Upfront")
        .multi_az(false)
        .send()
        .await
        .unwrap();
    let offerings = offerings.reserved_db_instances_offerings();
    assert_eq!(offerings.len(), 1);
    offerings[0]
        .reserved_db_instances_offering_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn offerings_are_stable_and_describable_by_id() {
    let handle = start().await;
    let rds = aws_sdk_rds::Client::new(&root_config(&handle).await);
    let offering = offering_id(&rds).await;
    assert_eq!(offering, offering_id(&rds).await);
    let by_id = rds
        .describe_reserved_db_instances_offerings()
        .reserved_db_instances_offering_id(&offering)
        .send()
        .await
        .unwrap();
    let described = &by_id.reserved_db_instances_offerings()[0];
    assert_eq!(described.db_instance_class(), Some("db.r5.large"));
    assert_eq!(described.duration(), Some(31_536_000));
    assert_eq!(described.multi_az(), Some(false));
    let pages: Vec<_> = rds
        .describe_reserved_db_instances_offerings()
        .db_instance_class("db.m5.large")
        .max_records(20)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let total: usize = pages
        .iter()
        .map(|page| page.reserved_db_instances_offerings().len())
        .sum();
    assert_eq!(total, 2 * 2 * 2 * 3);
    let missing = rds
        .describe_reserved_db_instances_offerings()
        .reserved_db_instances_offering_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ReservedDBInstancesOfferingNotFound");
}

#[tokio::test]
async fn repeated_rds_reservation_id_is_already_exists() {
    let handle = start().await;
    let rds = aws_sdk_rds::Client::new(&root_config(&handle).await);
    let offering = offering_id(&rds).await;
    let idempotency_token = token("rds-lineage:0");
    let reservation = reservation_id("rds-id-", &idempotency_token);
    let bought = rds
        .purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&offering)
        .reserved_db_instance_id(&reservation)
        .db_instance_count(2)
        .tags(
            Tag::builder()
                .key(IDEMPOTENCY_TAG_KEY)
                .value(&idempotency_token)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let instance = bought.reserved_db_instance().unwrap();
    assert_eq!(
        instance.reserved_db_instance_id(),
        Some(reservation.as_str())
    );
    assert_eq!(instance.db_instance_count(), Some(2));
    assert_eq!(instance.state(), Some("active"));

    let again = rds
        .purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&offering)
        .reserved_db_instance_id(&reservation)
        .db_instance_count(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ReservedDBInstanceAlreadyExists");
    assert!(
        again
            .as_service_error()
            .unwrap()
            .is_reserved_db_instance_already_exists_fault()
    );

    let ledger = handle.ledger().await;
    assert_eq!(ledger.commitments.len(), 1);
    assert_eq!(ledger.commitments_for_token(&idempotency_token), 1);
    assert_eq!(ledger.commitments_for_token(&reservation), 1);
    assert_eq!(ledger.by_reservation_id.get(&reservation), Some(&1));
    assert_eq!(
        ledger
            .calls_of("PurchaseReservedDBInstancesOffering")
            .count(),
        2
    );
}

#[tokio::test]
async fn describe_reserved_db_instances_finds_by_id_or_is_not_found() {
    let handle = start().await;
    let rds = aws_sdk_rds::Client::new(&root_config(&handle).await);
    let offering = offering_id(&rds).await;
    let reservation = reservation_id("rds-id-", &token("rds-lineage:1"));
    rds.purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&offering)
        .reserved_db_instance_id(&reservation)
        .send()
        .await
        .unwrap();
    let found = rds
        .describe_reserved_db_instances()
        .reserved_db_instance_id(&reservation)
        .send()
        .await
        .unwrap();
    let instance = &found.reserved_db_instances()[0];
    assert_eq!(
        instance.reserved_db_instances_offering_id(),
        Some(offering.as_str())
    );
    assert_eq!(instance.db_instance_count(), Some(1));
    assert!(
        instance
            .reserved_db_instance_arn()
            .unwrap()
            .ends_with(&reservation)
    );

    let missing = rds
        .describe_reserved_db_instances()
        .reserved_db_instance_id(reservation_id("rds-id-", &token("never bought")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ReservedDBInstanceNotFound");
    assert!(
        missing
            .as_service_error()
            .unwrap()
            .is_reserved_db_instance_not_found_fault()
    );

    let unknown_offering = rds
        .purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id("00000000-0000-4000-8000-000000000000")
        .reserved_db_instance_id("rds-id-x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&unknown_offering),
        "ReservedDBInstancesOfferingNotFound"
    );
}

#[tokio::test]
async fn describe_reserved_db_instances_is_paginated() {
    let handle = start().await;
    let rds = aws_sdk_rds::Client::new(&root_config(&handle).await);
    let offering = offering_id(&rds).await;
    for index in 0..25 {
        rds.purchase_reserved_db_instances_offering()
            .reserved_db_instances_offering_id(&offering)
            .reserved_db_instance_id(reservation_id("rds-id-", &token(&format!("page:{index}"))))
            .send()
            .await
            .unwrap();
    }
    let pages: Vec<_> = rds
        .describe_reserved_db_instances()
        .max_records(20)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    let total: usize = pages
        .iter()
        .map(|page| page.reserved_db_instances().len())
        .sum();
    assert_eq!(total, 25);
}
