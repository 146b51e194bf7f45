use aws_sdk_ec2::types::InstanceType;
use aws_sdk_redshift::types::Tag;
use cudly_aws_sandbox::{
    Behaviour, BehaviourUpdate, CallOutcome, IDEMPOTENCY_TAG_KEY, RedshiftReservedNodeTags, Service,
};
use serde_json::{Value, json};

use crate::common::*;

/// How far apart two clocks may be in these tests: the calls take well under this.
const CLOCK_SLACK_SECONDS: i64 = 60;

fn assert_near(actual: i64, expected: i64, what: &str) {
    assert!(
        (actual - expected).abs() < CLOCK_SLACK_SECONDS,
        "{what}: {actual} is not near {expected}"
    );
}

fn idempotency_tag(value: &str) -> Tag {
    Tag::builder().key(IDEMPOTENCY_TAG_KEY).value(value).build()
}

async fn redshift_node(redshift: &aws_sdk_redshift::Client) -> String {
    let offering = redshift
        .describe_reserved_node_offerings()
        .send()
        .await
        .unwrap()
        .reserved_node_offerings()[0]
        .reserved_node_offering_id()
        .unwrap()
        .to_string();
    redshift
        .purchase_reserved_node_offering()
        .reserved_node_offering_id(offering)
        .node_count(1)
        .send()
        .await
        .unwrap()
        .reserved_node()
        .unwrap()
        .reserved_node_id()
        .unwrap()
        .to_string()
}

async fn opensearch_offering(opensearch: &aws_sdk_opensearch::Client) -> String {
    opensearch
        .describe_reserved_instance_offerings()
        .send()
        .await
        .unwrap()
        .reserved_instance_offerings()[0]
        .reserved_instance_offering_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn redshift_reserved_node_tags_are_refused_when_rejected_and_accepted_when_supported() {
    let handle = start().await;
    let redshift = aws_sdk_redshift::Client::new(&root_config(&handle).await);
    let node_id = redshift_node(&redshift).await;
    let arn = format!("arn:aws:redshift:{REGION}:{ROOT}:reservednode:{node_id}");

    // Supported, the default: the node is tagged and its tags are described.
    redshift
        .create_tags()
        .resource_name(&arn)
        .tags(idempotency_tag("first"))
        .send()
        .await
        .unwrap();
    let described = redshift
        .describe_tags()
        .resource_type("reserved-node")
        .send()
        .await
        .unwrap();
    assert_eq!(described.tagged_resources().len(), 1);

    handle
        .set_behaviour(Behaviour {
            redshift_reserved_node_tags: RedshiftReservedNodeTags::Rejected,
            ..Behaviour::default()
        })
        .await;
    let by_arn = redshift
        .create_tags()
        .resource_name(&arn)
        .tags(idempotency_tag("second"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&by_arn), "InvalidTagFault");
    assert!(by_arn.as_service_error().unwrap().is_invalid_tag_fault());
    assert_eq!(by_arn.raw_response().unwrap().status().as_u16(), 400);
    let by_id = redshift
        .create_tags()
        .resource_name(&node_id)
        .tags(idempotency_tag("second"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&by_id), "InvalidTagFault");
    let describe_by_arn = redshift
        .describe_tags()
        .resource_name(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&describe_by_arn), "InvalidTagFault");
    let describe_by_type = redshift
        .describe_tags()
        .resource_type("reserved-node")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&describe_by_type), "InvalidTagFault");
    // Nothing else is affected: no reserved node is listed as tagged, other resource
    // types describe as before, and an unknown resource is still not found.
    let by_key = redshift
        .describe_tags()
        .tag_keys(IDEMPOTENCY_TAG_KEY)
        .send()
        .await
        .unwrap();
    assert!(by_key.tagged_resources().is_empty());
    let clusters = redshift
        .describe_tags()
        .resource_type("cluster")
        .send()
        .await
        .unwrap();
    assert!(clusters.tagged_resources().is_empty());
    let unknown = redshift
        .create_tags()
        .resource_name(format!("arn:aws:redshift:{REGION}:{ROOT}:cluster:nope"))
        .tags(idempotency_tag("second"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&unknown), "ResourceNotFoundFault");

    // Every refused call is in the ledger, and the node kept its first tag.
    let ledger = handle.ledger().await;
    let refused = ledger
        .calls
        .iter()
        .filter(|call| {
            call.service == Service::Redshift
                && call.outcome == CallOutcome::Error
                && call.error_code.as_deref() == Some("InvalidTagFault")
        })
        .count();
    assert_eq!(refused, 4);
    assert_eq!(
        ledger.commitments[0]
            .tags
            .get(IDEMPOTENCY_TAG_KEY)
            .map(String::as_str),
        Some("first")
    );

    handle.set_behaviour(Behaviour::default()).await;
    redshift
        .create_tags()
        .resource_name(&node_id)
        .tags(idempotency_tag("second"))
        .send()
        .await
        .unwrap();
    let described = redshift
        .describe_tags()
        .resource_name(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.tagged_resources()[0]
            .tag()
            .and_then(|tag| tag.value()),
        Some("second")
    );
}

#[tokio::test]
async fn a_reused_opensearch_reservation_name_is_refused_unless_names_need_not_be_unique() {
    let handle = start().await;
    let opensearch = aws_sdk_opensearch::Client::new(&root_config(&handle).await);
    let offering = opensearch_offering(&opensearch).await;
    let name = reservation_id("opensearch-id-", &token("opensearch-duplicate"));
    let purchase = || {
        opensearch
            .purchase_reserved_instance_offering()
            .reserved_instance_offering_id(&offering)
            .reservation_name(&name)
            .instance_count(1)
            .send()
    };
    let first = purchase().await.unwrap();
    let refused = purchase().await.unwrap_err();
    assert_eq!(code(&refused), "ResourceAlreadyExistsException");

    let behaviour = handle
        .update_behaviour(BehaviourUpdate {
            opensearch_unique_reservation_name: Some(false),
            ..BehaviourUpdate::default()
        })
        .await;
    assert!(!behaviour.opensearch_unique_reservation_name);
    let second = purchase().await.unwrap();
    assert_eq!(second.reservation_name(), Some(name.as_str()));
    assert_ne!(second.reserved_instance_id(), first.reserved_instance_id());
    let described = opensearch
        .describe_reserved_instances()
        .send()
        .await
        .unwrap();
    let named = described
        .reserved_instances()
        .iter()
        .filter(|instance| instance.reservation_name() == Some(name.as_str()))
        .count();
    assert_eq!(named, 2);
    assert_eq!(handle.ledger().await.by_reservation_id.get(&name), Some(&2));

    handle
        .update_behaviour(BehaviourUpdate {
            opensearch_unique_reservation_name: Some(true),
            ..BehaviourUpdate::default()
        })
        .await;
    let refused_again = purchase().await.unwrap_err();
    assert_eq!(code(&refused_again), "ResourceAlreadyExistsException");
    assert_eq!(handle.ledger().await.commitments.len(), 2);
}

#[tokio::test]
async fn a_clock_offset_shifts_the_reported_start_of_new_commitments_only() {
    let handle = start().await;
    let config = root_config(&handle).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let offering = ec2
        .describe_reserved_instances_offerings()
        .instance_type(InstanceType::T3Micro)
        .send()
        .await
        .unwrap()
        .reserved_instances_offerings()[0]
        .reserved_instances_offering_id()
        .unwrap()
        .to_string();
    let buy = || {
        ec2.purchase_reserved_instances_offering()
            .reserved_instances_offering_id(&offering)
            .instance_count(1)
            .send()
    };
    let before = buy()
        .await
        .unwrap()
        .reserved_instances_id()
        .unwrap()
        .to_string();
    handle
        .set_behaviour(Behaviour {
            clock_offset_seconds: -7200,
            ..Behaviour::default()
        })
        .await;
    let behind = buy()
        .await
        .unwrap()
        .reserved_instances_id()
        .unwrap()
        .to_string();

    let now = chrono::Utc::now().timestamp();
    let described = ec2.describe_reserved_instances().send().await.unwrap();
    let start_of = |id: &str| {
        described
            .reserved_instances()
            .iter()
            .find(|reserved| reserved.reserved_instances_id() == Some(id))
            .and_then(|reserved| reserved.start())
            .map(|time| time.secs())
            .unwrap()
    };
    assert_near(
        start_of(before.as_str()),
        now,
        "an existing reserved instance",
    );
    assert_near(
        start_of(behind.as_str()),
        now - 7200,
        "a reserved instance bought behind",
    );

    // Ahead, for a service of another protocol each.
    handle
        .update_behaviour(BehaviourUpdate {
            clock_offset_seconds: Some(3600),
            ..BehaviourUpdate::default()
        })
        .await;
    let now = chrono::Utc::now().timestamp();
    let redshift = aws_sdk_redshift::Client::new(&config);
    let node_id = redshift_node(&redshift).await;
    let nodes = redshift
        .describe_reserved_nodes()
        .reserved_node_id(&node_id)
        .send()
        .await
        .unwrap();
    let node_start = nodes.reserved_nodes()[0].start_time().unwrap().secs();
    assert_near(node_start, now + 3600, "a redshift node bought ahead");

    let opensearch = aws_sdk_opensearch::Client::new(&config);
    let search_offering = opensearch_offering(&opensearch).await;
    let bought = opensearch
        .purchase_reserved_instance_offering()
        .reserved_instance_offering_id(search_offering)
        .reservation_name("opensearch-id-ahead")
        .send()
        .await
        .unwrap();
    let instances = opensearch
        .describe_reserved_instances()
        .reserved_instance_id(bought.reserved_instance_id().unwrap())
        .send()
        .await
        .unwrap();
    let instance_start = instances.reserved_instances()[0]
        .start_time()
        .unwrap()
        .secs();
    assert_near(
        instance_start,
        now + 3600,
        "an opensearch reservation bought ahead",
    );

    // The ledger stamps commitments with the same clock, and a reset sets it right.
    let ledger = handle.ledger().await;
    let created: Vec<i64> = ledger
        .commitments
        .iter()
        .map(|commitment| commitment.created_at.timestamp())
        .collect();
    assert_eq!(created.len(), 4);
    assert_near(created[0], now, "the first commitment in the ledger");
    assert_near(
        created[1],
        now - 7200,
        "the second commitment in the ledger",
    );
    assert_near(created[3], now + 3600, "the last commitment in the ledger");
    handle.reset().await;
    assert_eq!(handle.behaviour().await, Behaviour::default());
}

#[tokio::test]
async fn the_behaviour_control_api_changes_named_switches_refuses_bad_bodies_and_resets() {
    let handle = start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/_sandbox/behaviour", handle.endpoint());
    let defaults = json!({
        "redshift_reserved_node_tags": "supported",
        "opensearch_unique_reservation_name": true,
        "clock_offset_seconds": 0
    });
    let current: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(current, defaults);

    let changed = http
        .post(&url)
        .json(&json!({"clock_offset_seconds": -90}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_eq!(
        changed.json::<Value>().await.unwrap(),
        json!({
            "redshift_reserved_node_tags": "supported",
            "opensearch_unique_reservation_name": true,
            "clock_offset_seconds": -90
        })
    );
    let changed = http
        .post(&url)
        .json(&json!({
            "redshift_reserved_node_tags": "rejected",
            "opensearch_unique_reservation_name": false
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let expected = json!({
        "redshift_reserved_node_tags": "rejected",
        "opensearch_unique_reservation_name": false,
        "clock_offset_seconds": -90
    });
    assert_eq!(changed.json::<Value>().await.unwrap(), expected);
    assert_eq!(
        handle.behaviour().await,
        Behaviour {
            redshift_reserved_node_tags: RedshiftReservedNodeTags::Rejected,
            opensearch_unique_reservation_name: false,
            clock_offset_seconds: -90,
        }
    );

    for bad in [
        json!({"colour": "blue"}),
        json!({"clock_offset_seconds": "soon"}),
        json!({"clock_offset_seconds": 1.5}),
        json!({"clock_offset_seconds": null}),
        json!({"clock_offset_seconds": 10_000_000_000_i64}),
        json!({"opensearch_unique_reservation_name": "no"}),
        json!({"redshift_reserved_node_tags": "sometimes"}),
        json!([]),
    ] {
        let refused = http.post(&url).json(&bad).send().await.unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
        let body: Value = refused.json().await.unwrap();
        assert!(body["error"].is_string(), "{bad}");
    }
    let not_json = http
        .post(&url)
        .header("content-type", "application/json")
        .body("switch it all")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let unchanged: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(unchanged, expected);

    let reset = http
        .post(format!("{}/_sandbox/reset", handle.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    let restored: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(restored, defaults);
    assert_eq!(handle.behaviour().await, Behaviour::default());
}
