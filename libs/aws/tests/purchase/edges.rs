//! Edges of the money path found in review (issue 17): purchases a reconciliation could
//! take for one another, and AWS behaviours the documentation leaves open, each tested
//! against the sandbox's behaviour switches both ways.

use chrono::Utc;
use cudly_aws::purchase::{AwsService, PurchaseSpec};

use crate::common::*;

fn zonal(spec: &PurchaseSpec, zone: &str) -> PurchaseSpec {
    let mut zonal = spec.clone();
    zonal.details.availability_zone = Some(zone.to_owned());
    zonal.token = cudly_common::idempotency::derive_token(zone, 1);
    zonal
}

#[tokio::test]
async fn zonal_and_regional_reserved_instances_are_never_candidates_of_each_other() {
    let fixture = start().await;
    let regional = spec(AwsService::Ec2, "placement");
    let in_zone_a = zonal(&regional, "us-east-1a");
    let in_zone_b = zonal(&regional, "us-east-1b");
    let regional_offering = fixture.purchaser.resolve_offering(&regional).await.unwrap();
    let zone_a_offering = fixture
        .purchaser
        .resolve_offering(&in_zone_a)
        .await
        .unwrap();
    let zone_b_offering = fixture
        .purchaser
        .resolve_offering(&in_zone_b)
        .await
        .unwrap();
    assert_ne!(regional_offering, zone_a_offering);
    let sent_at = Utc::now();
    // One untagged reservation of each placement, as purchases whose outcome is unknown
    // would leave them.
    let regional_id = fixture
        .purchaser
        .purchase(&regional, &regional_offering)
        .await
        .unwrap()
        .commitment()
        .commitment_id
        .clone();
    let zone_a_id = fixture
        .purchaser
        .purchase(&in_zone_a, &zone_a_offering)
        .await
        .unwrap()
        .commitment()
        .commitment_id
        .clone();
    let candidates = |spec: PurchaseSpec, offering: String| {
        let purchaser = &fixture.purchaser;
        async move {
            purchaser
                .untagged_candidates(&spec, &offering, sent_at, &[])
                .await
                .unwrap()
                .into_iter()
                .map(|candidate| candidate.commitment_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        candidates(regional.clone(), regional_offering).await,
        [regional_id],
        "a regional purchase adopts the regional reservation only"
    );
    assert_eq!(
        candidates(in_zone_a.clone(), zone_a_offering).await,
        [zone_a_id],
        "a zonal purchase adopts its zone's reservation only"
    );
    assert!(
        candidates(in_zone_b.clone(), zone_b_offering)
            .await
            .is_empty(),
        "another zone's reservation is not a candidate"
    );
    // Purchases that cannot be taken for one another do not wait for each other.
    let shapes = [&regional, &in_zone_a, &in_zone_b].map(|spec| spec.candidate_shape());
    assert_ne!(shapes[0], shapes[1]);
    assert_ne!(shapes[1], shapes[2]);
    assert_eq!(shapes[0], regional.candidate_shape());
}
