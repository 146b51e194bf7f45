use crate::common::*;

async fn first_offering(opensearch: &aws_sdk_opensearch::Client) -> String {
    let offerings = opensearch
        .describe_reserved_instance_offerings()
        .send()
        .await
        .unwrap();
    offerings.reserved_instance_offerings()[0]
        .reserved_instance_offering_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn opensearch_offerings_are_stable_and_paginated() {
    let handle = start().await;
    let opensearch = aws_sdk_opensearch::Client::new(&root_config(&handle).await);
    let first = first_offering(&opensearch).await;
    assert_eq!(first, first_offering(&opensearch).await);
    let by_id = opensearch
        .describe_reserved_instance_offerings()
        .reserved_instance_offering_id(&first)
        .send()
        .await
        .unwrap();
    let offering = &by_id.reserved_instance_offerings()[0];
    assert_eq!(
        offering.instance_type().map(|t| t.as_str()),
        Some("t3.medium.search")
    );
    assert!(offering.payment_option().is_some());
    let pages: Vec<_> = opensearch
        .describe_reserved_instance_offerings()
        .max_results(7)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let total: usize = pages
        .iter()
        .map(|page| page.reserved_instance_offerings().len())
        .sum();
    assert_eq!(total, 4 * 2 * 3);
    assert_eq!(pages.len(), 4);
}

#[tokio::test]
async fn repeated_opensearch_reservation_name_is_resource_already_exists() {
    let handle = start().await;
    let opensearch = aws_sdk_opensearch::Client::new(&root_config(&handle).await);
    let offering = first_offering(&opensearch).await;
    let reservation = reservation_id("opensearch-id-", &token("opensearch-lineage:0"));
    let bought = opensearch
        .purchase_reserved_instance_offering()
        .reserved_instance_offering_id(&offering)
        .reservation_name(&reservation)
        .instance_count(3)
        .send()
        .await
        .unwrap();
    assert_eq!(bought.reservation_name(), Some(reservation.as_str()));
    let reserved_instance_id = bought.reserved_instance_id().unwrap().to_string();

    let again = opensearch
        .purchase_reserved_instance_offering()
        .reserved_instance_offering_id(&offering)
        .reservation_name(&reservation)
        .instance_count(3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ResourceAlreadyExistsException");
    assert!(
        again
            .as_service_error()
            .unwrap()
            .is_resource_already_exists_exception()
    );

    let described = opensearch
        .describe_reserved_instances()
        .reserved_instance_id(&reserved_instance_id)
        .send()
        .await
        .unwrap();
    let instance = &described.reserved_instances()[0];
    assert_eq!(instance.reservation_name(), Some(reservation.as_str()));
    assert_eq!(instance.instance_count(), 3);
    assert_eq!(instance.state(), Some("active"));
    let ledger = handle.ledger().await;
    assert_eq!(ledger.commitments_for_token(&reservation), 1);
    assert_eq!(ledger.commitments[0].commitment_id, reserved_instance_id);
}

#[tokio::test]
async fn describe_reserved_instances_pages_and_matches_by_name() {
    let handle = start().await;
    let opensearch = aws_sdk_opensearch::Client::new(&root_config(&handle).await);
    let offering = first_offering(&opensearch).await;
    let names: Vec<String> = (0..5)
        .map(|index| reservation_id("opensearch-id-", &token(&format!("os:{index}"))))
        .collect();
    for name in &names {
        opensearch
            .purchase_reserved_instance_offering()
            .reserved_instance_offering_id(&offering)
            .reservation_name(name)
            .instance_count(1)
            .send()
            .await
            .unwrap();
    }
    let pages: Vec<_> = opensearch
        .describe_reserved_instances()
        .max_results(2)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    let found: Vec<String> = pages
        .iter()
        .flat_map(|page| page.reserved_instances())
        .filter_map(|instance| instance.reservation_name().map(str::to_string))
        .collect();
    assert_eq!(found, names);
}

#[tokio::test]
async fn unknown_opensearch_reservations_and_offerings_are_not_found() {
    let handle = start().await;
    let opensearch = aws_sdk_opensearch::Client::new(&root_config(&handle).await);
    let missing = opensearch
        .describe_reserved_instances()
        .reserved_instance_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ResourceNotFoundException");
    let unknown_offering = opensearch
        .purchase_reserved_instance_offering()
        .reserved_instance_offering_id("00000000-0000-4000-8000-000000000000")
        .reservation_name("opensearch-id-x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&unknown_offering), "ResourceNotFoundException");
}
