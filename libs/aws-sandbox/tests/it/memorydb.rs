use aws_sdk_memorydb::types::Tag;
use cudly_aws_sandbox::IDEMPOTENCY_TAG_KEY;

use crate::common::*;

async fn offering_id(memorydb: &aws_sdk_memorydb::Client) -> String {
    let offerings = memorydb
        .describe_reserved_nodes_offerings()
        .node_type("db.r6g.large")
        .duration("1")
        .offering_type("No Upfront")
        .send()
        .await
        .unwrap();
    let offerings = offerings.reserved_nodes_offerings();
    assert_eq!(offerings.len(), 1);
    offerings[0]
        .reserved_nodes_offering_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn memorydb_offerings_purchase_and_describe_round_trip() {
    let handle = start().await;
    let memorydb = aws_sdk_memorydb::Client::new(&root_config(&handle).await);
    let offering = offering_id(&memorydb).await;
    assert_eq!(offering, offering_id(&memorydb).await);
    let idempotency_token = token("memorydb-lineage:0");
    let reservation = reservation_id("memorydb-id-", &idempotency_token);
    let bought = memorydb
        .purchase_reserved_nodes_offering()
        .reserved_nodes_offering_id(&offering)
        .reservation_id(&reservation)
        .node_count(2)
        .tags(
            Tag::builder()
                .key(IDEMPOTENCY_TAG_KEY)
                .value(&idempotency_token)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let node = bought.reserved_node().unwrap();
    assert_eq!(node.reservation_id(), Some(reservation.as_str()));
    assert_eq!(node.node_count(), 2);
    assert_eq!(node.state(), Some("active"));
    assert!(node.start_time().is_some());

    let described = memorydb
        .describe_reserved_nodes()
        .reservation_id(&reservation)
        .send()
        .await
        .unwrap();
    assert_eq!(described.reserved_nodes().len(), 1);
    assert_eq!(
        described.reserved_nodes()[0].reserved_nodes_offering_id(),
        Some(offering.as_str())
    );
    let paged = memorydb
        .describe_reserved_nodes_offerings()
        .max_results(5)
        .send()
        .await
        .unwrap();
    assert_eq!(paged.reserved_nodes_offerings().len(), 5);
    assert!(paged.next_token().is_some());
    assert_eq!(
        handle
            .ledger()
            .await
            .commitments_for_token(&idempotency_token),
        1
    );
}

#[tokio::test]
async fn repeated_memorydb_reservation_id_is_already_exists() {
    let handle = start().await;
    let memorydb = aws_sdk_memorydb::Client::new(&root_config(&handle).await);
    let offering = offering_id(&memorydb).await;
    let reservation = reservation_id("memorydb-id-", &token("memorydb-lineage:1"));
    memorydb
        .purchase_reserved_nodes_offering()
        .reserved_nodes_offering_id(&offering)
        .reservation_id(&reservation)
        .send()
        .await
        .unwrap();
    let error = memorydb
        .purchase_reserved_nodes_offering()
        .reserved_nodes_offering_id(&offering)
        .reservation_id(&reservation)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "ReservedNodeAlreadyExistsFault");
    assert!(
        error
            .as_service_error()
            .unwrap()
            .is_reserved_node_already_exists_fault()
    );
    assert_eq!(handle.ledger().await.commitments.len(), 1);
}

#[tokio::test]
async fn unknown_memorydb_reservations_and_offerings_are_not_found() {
    let handle = start().await;
    let memorydb = aws_sdk_memorydb::Client::new(&root_config(&handle).await);
    let missing = memorydb
        .describe_reserved_nodes()
        .reservation_id("memorydb-id-missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ReservedNodeNotFoundFault");
    assert!(
        missing
            .as_service_error()
            .unwrap()
            .is_reserved_node_not_found_fault()
    );
    let unknown_offering = memorydb
        .purchase_reserved_nodes_offering()
        .reserved_nodes_offering_id("00000000-0000-4000-8000-000000000000")
        .reservation_id("memorydb-id-x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&unknown_offering),
        "ReservedNodesOfferingNotFoundFault"
    );
}
