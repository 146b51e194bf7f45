use aws_sdk_elasticache::types::Tag;
use cudly_aws_sandbox::IDEMPOTENCY_TAG_KEY;

use crate::common::*;

async fn offering_id(elasticache: &aws_sdk_elasticache::Client) -> String {
    let offerings = elasticache
        .describe_reserved_cache_nodes_offerings()
        .cache_node_type("cache.r6g.large")
        .product_description("redis")
        .duration("3")
        .offering_type("Partial Upfront")
        .send()
        .await
        .unwrap();
    let offerings = offerings.reserved_cache_nodes_offerings();
    assert_eq!(offerings.len(), 1);
    assert_eq!(offerings[0].duration(), Some(94_608_000));
    offerings[0]
        .reserved_cache_nodes_offering_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn elasticache_offerings_purchase_and_describe_round_trip() {
    let handle = start().await;
    let elasticache = aws_sdk_elasticache::Client::new(&root_config(&handle).await);
    let offering = offering_id(&elasticache).await;
    assert_eq!(offering, offering_id(&elasticache).await);
    let idempotency_token = token("elasticache-lineage:0");
    let reservation = reservation_id("elasticache-id-", &idempotency_token);
    let bought = elasticache
        .purchase_reserved_cache_nodes_offering()
        .reserved_cache_nodes_offering_id(&offering)
        .reserved_cache_node_id(&reservation)
        .cache_node_count(4)
        .tags(
            Tag::builder()
                .key(IDEMPOTENCY_TAG_KEY)
                .value(&idempotency_token)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let node = bought.reserved_cache_node().unwrap();
    assert_eq!(node.reserved_cache_node_id(), Some(reservation.as_str()));
    assert_eq!(node.cache_node_count(), Some(4));
    assert_eq!(node.cache_node_type(), Some("cache.r6g.large"));

    let described = elasticache
        .describe_reserved_cache_nodes()
        .reserved_cache_node_id(&reservation)
        .send()
        .await
        .unwrap();
    assert_eq!(described.reserved_cache_nodes().len(), 1);
    assert_eq!(
        described.reserved_cache_nodes()[0].reserved_cache_nodes_offering_id(),
        Some(offering.as_str())
    );
    let all = elasticache
        .describe_reserved_cache_nodes()
        .send()
        .await
        .unwrap();
    assert_eq!(all.reserved_cache_nodes().len(), 1);
    assert_eq!(
        handle
            .ledger()
            .await
            .commitments_for_token(&idempotency_token),
        1
    );
}

#[tokio::test]
async fn repeated_elasticache_reservation_id_is_already_exists() {
    let handle = start().await;
    let elasticache = aws_sdk_elasticache::Client::new(&root_config(&handle).await);
    let offering = offering_id(&elasticache).await;
    let reservation = reservation_id("elasticache-id-", &token("elasticache-lineage:1"));
    for attempt in 0..2 {
        let result = elasticache
            .purchase_reserved_cache_nodes_offering()
            .reserved_cache_nodes_offering_id(&offering)
            .reserved_cache_node_id(&reservation)
            .send()
            .await;
        if attempt == 0 {
            result.unwrap();
        } else {
            let error = result.unwrap_err();
            assert_eq!(code(&error), "ReservedCacheNodeAlreadyExists");
            assert!(
                error
                    .as_service_error()
                    .unwrap()
                    .is_reserved_cache_node_already_exists_fault()
            );
        }
    }
    assert_eq!(
        handle.ledger().await.by_reservation_id.get(&reservation),
        Some(&1)
    );
}

#[tokio::test]
async fn unknown_elasticache_reservations_and_offerings_are_not_found() {
    let handle = start().await;
    let elasticache = aws_sdk_elasticache::Client::new(&root_config(&handle).await);
    let missing = elasticache
        .describe_reserved_cache_nodes()
        .reserved_cache_node_id("elasticache-id-missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ReservedCacheNodeNotFound");
    assert!(
        missing
            .as_service_error()
            .unwrap()
            .is_reserved_cache_node_not_found_fault()
    );
    let unknown_offering = elasticache
        .purchase_reserved_cache_nodes_offering()
        .reserved_cache_nodes_offering_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&unknown_offering),
        "ReservedCacheNodesOfferingNotFound"
    );
}
