//! What the executor's benchmarks share: the lines every account buys.

use cudly_proto::common::v1::{Recommendation, RecommendationDetails};

/// The three lines every account buys.
pub fn lines() -> Vec<Recommendation> {
    let base = Recommendation {
        provider: "aws".to_owned(),
        region: "us-east-1".to_owned(),
        count: 1,
        term: 1,
        all_accounts: true,
        ..Recommendation::default()
    };
    vec![
        Recommendation {
            service: "rds".to_owned(),
            resource_type: "db.r5.large".to_owned(),
            engine: Some("postgresql".to_owned()),
            payment: "all-upfront".to_owned(),
            ..base.clone()
        },
        Recommendation {
            service: "ec2".to_owned(),
            resource_type: "m5.large".to_owned(),
            platform: Some("Linux/UNIX".to_owned()),
            payment: "no-upfront".to_owned(),
            details: Some(RecommendationDetails {
                tenancy: Some("default".to_owned()),
                offering_class: Some("standard".to_owned()),
                ..RecommendationDetails::default()
            }),
            ..base.clone()
        },
        Recommendation {
            service: "elasticache".to_owned(),
            resource_type: "cache.m5.large".to_owned(),
            engine: Some("redis".to_owned()),
            payment: "partial-upfront".to_owned(),
            ..base
        },
    ]
}
