use aws_sdk_ec2::types::{
    Filter, InstanceType, OfferingClassType, OfferingTypeValues, ReservedInstances,
    ReservedInstancesOffering, RiProductDescription, Scope, Tag,
};
use cudly_aws_sandbox::{IDEMPOTENCY_TAG_KEY, Service};

use crate::common::*;

async fn offering_id(ec2: &aws_sdk_ec2::Client, instance_type: InstanceType) -> String {
    let offerings = ec2
        .describe_reserved_instances_offerings()
        .instance_type(instance_type)
        .product_description(RiProductDescription::LinuxUnix)
        .offering_class(OfferingClassType::Standard)
        .offering_type(OfferingTypeValues::AllUpfront)
        .min_duration(31_536_000)
        .max_duration(31_536_000)
        .include_marketplace(false)
        .send()
        .await
        .unwrap();
    let offerings = offerings.reserved_instances_offerings();
    assert_eq!(offerings.len(), 1);
    offerings[0]
        .reserved_instances_offering_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn offering_lookups_return_stable_ids_for_the_same_query() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config(&handle).await);
    let first = offering_id(&ec2, InstanceType::M5Large).await;
    let second = offering_id(&ec2, InstanceType::M5Large).await;
    assert_eq!(first, second);
    let other = offering_id(&ec2, InstanceType::from("x2iedn.32xlarge")).await;
    assert_ne!(first, other);

    let restarted = start().await;
    let ec2_elsewhere = aws_sdk_ec2::Client::new(&root_config(&restarted).await);
    assert_eq!(
        offering_id(&ec2_elsewhere, InstanceType::M5Large).await,
        first
    );

    let described = ec2
        .describe_reserved_instances_offerings()
        .reserved_instances_offering_ids(&first)
        .send()
        .await
        .unwrap();
    let offering = &described.reserved_instances_offerings()[0];
    assert_eq!(offering.instance_type(), Some(&InstanceType::M5Large));
    assert_eq!(offering.duration(), Some(31_536_000));
    assert_eq!(
        offering.offering_type(),
        Some(&OfferingTypeValues::AllUpfront)
    );
    assert_eq!(
        offering.offering_class(),
        Some(&OfferingClassType::Standard)
    );
    assert_eq!(
        offering.product_description(),
        Some(&RiProductDescription::LinuxUnix)
    );
}

#[tokio::test]
async fn offerings_are_paginated_and_filterable() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config(&handle).await);
    let pages: Vec<_> = ec2
        .describe_reserved_instances_offerings()
        .instance_type(InstanceType::C5Large)
        .max_results(10)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let total: usize = pages
        .iter()
        .map(|page| page.reserved_instances_offerings().len())
        .sum();
    assert_eq!(pages.len(), 3);
    assert_eq!(total, 24);

    let filtered = ec2
        .describe_reserved_instances_offerings()
        .filters(
            Filter::builder()
                .name("instance-type")
                .values("r5.large")
                .build(),
        )
        .filters(
            Filter::builder()
                .name("duration")
                .values("94608000")
                .build(),
        )
        .offering_type(OfferingTypeValues::NoUpfront)
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.reserved_instances_offerings().len(), 4);

    let bad = ec2
        .describe_reserved_instances_offerings()
        .filters(Filter::builder().name("no-such-filter").values("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "InvalidParameterValue");
}

#[tokio::test]
async fn a_purchase_is_described_by_id_state_and_token_tag() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config(&handle).await);
    let offering = offering_id(&ec2, InstanceType::M5Large).await;
    let bought = ec2
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id(&offering)
        .instance_count(3)
        .send()
        .await
        .unwrap();
    let ri_id = bought.reserved_instances_id().unwrap().to_string();
    let idempotency_token = token("ec2-lineage:0");
    ec2.create_tags()
        .resources(&ri_id)
        .tags(
            Tag::builder()
                .key(IDEMPOTENCY_TAG_KEY)
                .value(&idempotency_token)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let by_tag = ec2
        .describe_reserved_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{IDEMPOTENCY_TAG_KEY}"))
                .values(&idempotency_token)
                .build(),
        )
        .filters(
            Filter::builder()
                .name("state")
                .values("active")
                .values("payment-pending")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let reserved = by_tag.reserved_instances();
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0].reserved_instances_id(), Some(ri_id.as_str()));
    assert_eq!(reserved[0].instance_count(), Some(3));
    assert_eq!(reserved[0].instance_type(), Some(&InstanceType::M5Large));
    assert_eq!(
        reserved[0].state(),
        Some(&aws_sdk_ec2::types::ReservedInstanceState::Active)
    );
    assert_eq!(
        reserved[0].tags()[0].value(),
        Some(idempotency_token.as_str())
    );
    assert!(reserved[0].start().is_some() && reserved[0].end().is_some());

    let other_token = ec2
        .describe_reserved_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{IDEMPOTENCY_TAG_KEY}"))
                .values(token("other"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(other_token.reserved_instances().is_empty());

    let by_id = ec2
        .describe_reserved_instances()
        .filters(
            Filter::builder()
                .name("reserved-instances-id")
                .values(&ri_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.reserved_instances().len(), 1);
    let by_param = ec2
        .describe_reserved_instances()
        .reserved_instances_ids(&ri_id)
        .send()
        .await
        .unwrap();
    assert_eq!(by_param.reserved_instances().len(), 1);
    let retired = ec2
        .describe_reserved_instances()
        .filters(Filter::builder().name("state").values("retired").build())
        .send()
        .await
        .unwrap();
    assert!(retired.reserved_instances().is_empty());

    let ledger = handle.ledger().await;
    assert_eq!(ledger.commitments_for_token(&idempotency_token), 1);
    let commitment = &ledger.commitments[0];
    assert_eq!(commitment.service, Service::Ec2);
    assert_eq!(commitment.count, 3);
    assert_eq!(commitment.offering_id, offering);
    assert_eq!(commitment.commitment_id, ri_id);
    let tag_call = ledger.calls_of("CreateTags").next().unwrap();
    assert_eq!(
        tag_call.idempotency_token.as_deref(),
        Some(idempotency_token.as_str())
    );
    assert_eq!(tag_call.commitment_id.as_deref(), Some(ri_id.as_str()));
}

#[tokio::test]
async fn state_is_separate_per_account_and_region() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config(&handle).await);
    let offering = offering_id(&ec2, InstanceType::T3Micro).await;
    ec2.purchase_reserved_instances_offering()
        .reserved_instances_offering_id(&offering)
        .instance_count(1)
        .send()
        .await
        .unwrap();
    let other_region = aws_sdk_ec2::Client::new(
        &sdk_config_with(
            &handle,
            ROOT_KEY,
            SECRET,
            None,
            "eu-west-1",
            quick_retries(),
        )
        .await,
    );
    assert!(
        other_region
            .describe_reserved_instances()
            .send()
            .await
            .unwrap()
            .reserved_instances()
            .is_empty()
    );
    let other_account = aws_sdk_ec2::Client::new(&key_config(&handle, SOLO_KEY).await);
    assert!(
        other_account
            .describe_reserved_instances()
            .send()
            .await
            .unwrap()
            .reserved_instances()
            .is_empty()
    );
    // An offering id of one region is unknown in another.
    let error = other_region
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id(&offering)
        .instance_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "InvalidReservedInstancesOfferingId");
}

#[tokio::test]
async fn purchase_errors_use_ec2_codes() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config(&handle).await);
    let unknown = ec2
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id("00000000-0000-4000-8000-000000000000")
        .instance_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&unknown), "InvalidReservedInstancesOfferingId");

    let offering = offering_id(&ec2, InstanceType::M5Large).await;
    let zero = ec2
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id(&offering)
        .instance_count(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&zero), "InvalidParameterValue");

    let dry_run = ec2
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id(&offering)
        .instance_count(1)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dry_run), "DryRunOperation");

    let untaggable = ec2
        .create_tags()
        .resources("not-a-reservation")
        .tags(Tag::builder().key("k").value("v").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&untaggable), "InvalidID");
    assert!(handle.ledger().await.commitments.is_empty());
}

/// The one m5.large Linux standard 1-year All Upfront offering, regional or in `zone`.
async fn m5_offering_in(
    ec2: &aws_sdk_ec2::Client,
    zone: Option<&str>,
) -> ReservedInstancesOffering {
    let offerings = ec2
        .describe_reserved_instances_offerings()
        .instance_type(InstanceType::M5Large)
        .product_description(RiProductDescription::LinuxUnix)
        .offering_class(OfferingClassType::Standard)
        .offering_type(OfferingTypeValues::AllUpfront)
        .min_duration(31_536_000)
        .max_duration(31_536_000)
        .include_marketplace(false)
        .set_availability_zone(zone.map(str::to_string))
        .send()
        .await
        .unwrap();
    let offerings = offerings.reserved_instances_offerings();
    assert_eq!(offerings.len(), 1);
    offerings[0].clone()
}

async fn buy_one(ec2: &aws_sdk_ec2::Client, offering_id: &str) -> String {
    ec2.purchase_reserved_instances_offering()
        .reserved_instances_offering_id(offering_id)
        .instance_count(1)
        .send()
        .await
        .unwrap()
        .reserved_instances_id()
        .unwrap()
        .to_string()
}

async fn reserved_instance(ec2: &aws_sdk_ec2::Client, id: &str) -> ReservedInstances {
    let described = ec2
        .describe_reserved_instances()
        .reserved_instances_ids(id)
        .send()
        .await
        .unwrap();
    assert_eq!(described.reserved_instances().len(), 1);
    described.reserved_instances()[0].clone()
}

async fn reserved_ids_where(ec2: &aws_sdk_ec2::Client, name: &str, value: &str) -> Vec<String> {
    let described = ec2
        .describe_reserved_instances()
        .filters(Filter::builder().name(name).values(value).build())
        .send()
        .await
        .unwrap();
    described
        .reserved_instances()
        .iter()
        .filter_map(|reserved| reserved.reserved_instances_id().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_zonal_offering_has_its_own_stable_id_and_reports_its_zone_and_scope() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config(&handle).await);
    let regional = m5_offering_in(&ec2, None).await;
    let zonal = m5_offering_in(&ec2, Some("us-east-1a")).await;
    assert_eq!(regional.scope(), Some(&Scope::Regional));
    assert_eq!(regional.availability_zone(), None);
    assert_eq!(zonal.scope(), Some(&Scope::AvailabilityZone));
    assert_eq!(zonal.availability_zone(), Some("us-east-1a"));
    assert_eq!(zonal.instance_type(), regional.instance_type());
    assert_eq!(zonal.fixed_price(), regional.fixed_price());

    let regional_id = regional.reserved_instances_offering_id().unwrap();
    let zonal_id = zonal.reserved_instances_offering_id().unwrap();
    assert_ne!(regional_id, zonal_id);
    assert_eq!(
        m5_offering_in(&ec2, None)
            .await
            .reserved_instances_offering_id(),
        Some(regional_id)
    );
    assert_eq!(
        m5_offering_in(&ec2, Some("us-east-1a"))
            .await
            .reserved_instances_offering_id(),
        Some(zonal_id)
    );
    let other_zone = m5_offering_in(&ec2, Some("us-east-1b")).await;
    let other_zone_id = other_zone.reserved_instances_offering_id().unwrap();
    assert!(other_zone_id != zonal_id && other_zone_id != regional_id);

    // A zone of another region, or no zone at all, has no offerings.
    for zone in ["eu-west-1a", "us-east-1", "us-east-1abcd"] {
        let none = ec2
            .describe_reserved_instances_offerings()
            .instance_type(InstanceType::M5Large)
            .availability_zone(zone)
            .send()
            .await
            .unwrap();
        assert!(none.reserved_instances_offerings().is_empty(), "{zone}");
    }

    // The filters see each offering's real zone and scope.
    let zonal_filters = ec2
        .describe_reserved_instances_offerings()
        .instance_type(InstanceType::M5Large)
        .availability_zone("us-east-1a")
        .filters(
            Filter::builder()
                .name("scope")
                .values("Availability Zone")
                .build(),
        )
        .filters(
            Filter::builder()
                .name("availability-zone")
                .values("us-east-1*")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(zonal_filters.reserved_instances_offerings().len(), 24);
    let regional_scope_in_a_zone = ec2
        .describe_reserved_instances_offerings()
        .instance_type(InstanceType::M5Large)
        .availability_zone("us-east-1a")
        .filters(Filter::builder().name("scope").values("Region").build())
        .send()
        .await
        .unwrap();
    assert!(
        regional_scope_in_a_zone
            .reserved_instances_offerings()
            .is_empty()
    );
    let zone_filter_on_regional = ec2
        .describe_reserved_instances_offerings()
        .instance_type(InstanceType::M5Large)
        .filters(
            Filter::builder()
                .name("availability-zone")
                .values("us-east-1a")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        zone_filter_on_regional
            .reserved_instances_offerings()
            .is_empty()
    );

    // Once described, the zonal offering is found by id.
    let by_id = ec2
        .describe_reserved_instances_offerings()
        .reserved_instances_offering_ids(zonal_id)
        .send()
        .await
        .unwrap();
    let found = &by_id.reserved_instances_offerings()[0];
    assert_eq!(found.availability_zone(), Some("us-east-1a"));
    assert_eq!(found.scope(), Some(&Scope::AvailabilityZone));
    let in_another_zone = ec2
        .describe_reserved_instances_offerings()
        .reserved_instances_offering_ids(zonal_id)
        .availability_zone("us-east-1b")
        .send()
        .await
        .unwrap();
    assert!(in_another_zone.reserved_instances_offerings().is_empty());
}

#[tokio::test]
async fn a_zonal_purchase_reports_its_zone_while_a_regional_one_does_not() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config(&handle).await);
    let zonal_offering = m5_offering_in(&ec2, Some("us-east-1a")).await;
    let zonal_offering_id = zonal_offering.reserved_instances_offering_id().unwrap();
    let regional_offering = m5_offering_in(&ec2, None).await;
    let zonal_id = buy_one(&ec2, zonal_offering_id).await;
    let regional_id = buy_one(
        &ec2,
        regional_offering.reserved_instances_offering_id().unwrap(),
    )
    .await;

    let zonal = reserved_instance(&ec2, &zonal_id).await;
    assert_eq!(zonal.scope(), Some(&Scope::AvailabilityZone));
    assert_eq!(zonal.availability_zone(), Some("us-east-1a"));
    assert_eq!(zonal.instance_type(), Some(&InstanceType::M5Large));
    let regional = reserved_instance(&ec2, &regional_id).await;
    assert_eq!(regional.scope(), Some(&Scope::Regional));
    assert_eq!(regional.availability_zone(), None);

    assert_eq!(
        reserved_ids_where(&ec2, "scope", "Availability Zone").await,
        vec![zonal_id.clone()]
    );
    assert_eq!(
        reserved_ids_where(&ec2, "availability-zone", "us-east-1a").await,
        vec![zonal_id.clone()]
    );
    assert_eq!(
        reserved_ids_where(&ec2, "scope", "Region").await,
        vec![regional_id]
    );
    assert!(
        reserved_ids_where(&ec2, "availability-zone", "us-east-1b")
            .await
            .is_empty()
    );

    let ledger = handle.ledger().await;
    let commitment = ledger
        .commitments
        .iter()
        .find(|commitment| commitment.commitment_id == zonal_id)
        .unwrap();
    assert_eq!(commitment.offering_id, zonal_offering_id);
    assert_eq!(
        commitment.offering.availability_zone.as_deref(),
        Some("us-east-1a")
    );
}
