use aws_sdk_redshift::types::Tag;
use cudly_aws_sandbox::IDEMPOTENCY_TAG_KEY;

use crate::common::*;

async fn offering_for(redshift: &aws_sdk_redshift::Client, node_type: &str) -> String {
    let offerings: Vec<_> = redshift
        .describe_reserved_node_offerings()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    offerings
        .iter()
        .find(|offering| {
            offering.node_type() == Some(node_type)
                && offering.duration() == Some(31_536_000)
                && offering.offering_type() == Some("All Upfront")
        })
        .and_then(|offering| offering.reserved_node_offering_id())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn redshift_offerings_purchase_describe_and_tags_round_trip() {
    let handle = start().await;
    let redshift = aws_sdk_redshift::Client::new(&root_config(&handle).await);
    let offering = offering_for(&redshift, "ra3.4xlarge").await;
    assert_eq!(offering, offering_for(&redshift, "ra3.4xlarge").await);
    let bought = redshift
        .purchase_reserved_node_offering()
        .reserved_node_offering_id(&offering)
        .node_count(2)
        .send()
        .await
        .unwrap();
    let node = bought.reserved_node().unwrap();
    let node_id = node.reserved_node_id().unwrap().to_string();
    assert_eq!(node.node_count(), Some(2));
    assert_eq!(node.node_type(), Some("ra3.4xlarge"));

    let arn = format!("arn:aws:redshift:{REGION}:{ROOT}:reservednode:{node_id}");
    let idempotency_token = token("redshift-lineage:0");
    redshift
        .create_tags()
        .resource_name(&arn)
        .tags(
            Tag::builder()
                .key(IDEMPOTENCY_TAG_KEY)
                .value(&idempotency_token)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tags = redshift
        .describe_tags()
        .resource_name(&arn)
        .send()
        .await
        .unwrap();
    let tagged = tags.tagged_resources();
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0].resource_name(), Some(arn.as_str()));
    assert_eq!(
        tagged[0].tag().and_then(|tag| tag.value()),
        Some(idempotency_token.as_str())
    );
    let by_key = redshift
        .describe_tags()
        .tag_keys(IDEMPOTENCY_TAG_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.tagged_resources().len(), 1);

    let described = redshift
        .describe_reserved_nodes()
        .reserved_node_id(&node_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.reserved_nodes()[0].reserved_node_offering_id(),
        Some(offering.as_str())
    );
    let ledger = handle.ledger().await;
    assert_eq!(ledger.commitments_for_token(&idempotency_token), 1);
    assert_eq!(
        ledger.commitments[0].tags.get(IDEMPOTENCY_TAG_KEY),
        Some(&idempotency_token)
    );
}

#[tokio::test]
async fn describe_reserved_nodes_is_paginated() {
    let handle = start().await;
    let redshift = aws_sdk_redshift::Client::new(&root_config(&handle).await);
    let offering = offering_for(&redshift, "dc2.large").await;
    for _ in 0..23 {
        redshift
            .purchase_reserved_node_offering()
            .reserved_node_offering_id(&offering)
            .node_count(1)
            .send()
            .await
            .unwrap();
    }
    let pages: Vec<_> = redshift
        .describe_reserved_nodes()
        .max_records(20)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    let total: usize = pages.iter().map(|page| page.reserved_nodes().len()).sum();
    assert_eq!(total, 23);
}

#[tokio::test]
async fn unknown_redshift_nodes_offerings_and_resources_are_not_found() {
    let handle = start().await;
    let redshift = aws_sdk_redshift::Client::new(&root_config(&handle).await);
    let missing = redshift
        .describe_reserved_nodes()
        .reserved_node_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ReservedNodeNotFound");
    let unknown_offering = redshift
        .purchase_reserved_node_offering()
        .reserved_node_offering_id("00000000-0000-4000-8000-000000000000")
        .node_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&unknown_offering), "ReservedNodeOfferingNotFound");
    let untaggable = redshift
        .create_tags()
        .resource_name("arn:aws:redshift:us-east-1:111111111111:reservednode:nope")
        .tags(Tag::builder().key("k").value("v").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&untaggable), "ResourceNotFoundFault");
}
