//! The rules of a valid recommendation, each named by the field it is about, and the
//! target rule.

use cudly_vocabulary::limits::{MAX_COUNT, MAX_RECOMMENDATIONS};
use cudly_vocabulary::testing::{example, recommendation_list};
use cudly_vocabulary::{
    AwsService, Provider, Recommendation, RecommendationDetails, RecommendationInput,
    assign_targets, validate_recommendations,
};
use proptest::prelude::*;
use uuid::Uuid;

fn input(service: &str, resource_type: &str) -> RecommendationInput {
    example(service, resource_type)
}

fn with_details(
    mut line: RecommendationInput,
    edit: impl FnOnce(&mut RecommendationDetails),
) -> RecommendationInput {
    let mut details = line.details.take().unwrap_or_default();
    edit(&mut details);
    line.details = Some(details);
    line
}

fn savings_plan() -> RecommendationInput {
    with_details(input("savingsplans", "Compute"), |d| {
        d.hourly_commitment = Some("1.00".into())
    })
}

fn rds() -> RecommendationInput {
    input("rds", "db.r6g.large")
}

fn error_field(line: RecommendationInput) -> String {
    validate_recommendations(vec![line])
        .expect_err("refused")
        .field
}

fn validated(line: RecommendationInput) -> Recommendation {
    validate_recommendations(vec![line]).unwrap().remove(0)
}

#[test]
fn every_recommendation_rule_names_its_field() {
    let cases: Vec<(&str, RecommendationInput, &str)> = vec![
        (
            "azure",
            RecommendationInput {
                provider: "azure".into(),
                ..rds()
            },
            "provider",
        ),
        (
            "unknown provider",
            RecommendationInput {
                provider: "oci".into(),
                ..rds()
            },
            "provider",
        ),
        ("unknown service", input("lambda", "x"), "service"),
        (
            "bad region",
            RecommendationInput {
                region: "US East".into(),
                ..rds()
            },
            "region",
        ),
        (
            "region without number",
            RecommendationInput {
                region: "us-east".into(),
                ..rds()
            },
            "region",
        ),
        (
            "region with a long number",
            RecommendationInput {
                region: "us-east-100".into(),
                ..rds()
            },
            "region",
        ),
        ("empty type", input("rds", " "), "resource_type"),
        ("type with space", input("rds", "db r6g"), "resource_type"),
        (
            "type too long",
            input("rds", &"x".repeat(129)),
            "resource_type",
        ),
        (
            "savings plan of unknown type",
            RecommendationInput {
                resource_type: "Lambda".into(),
                ..savings_plan()
            },
            "resource_type",
        ),
        (
            "engine with a space",
            RecommendationInput {
                engine: Some("post gres".into()),
                ..rds()
            },
            "engine",
        ),
        (
            "platform with a control",
            RecommendationInput {
                platform: Some("Linux\u{7}".into()),
                ..rds()
            },
            "platform",
        ),
        (
            "count 0",
            RecommendationInput { count: 0, ..rds() },
            "count",
        ),
        (
            "count over the limit",
            RecommendationInput {
                count: MAX_COUNT + 1,
                ..rds()
            },
            "count",
        ),
        ("term 2", RecommendationInput { term: 2, ..rds() }, "term"),
        (
            "azure payment",
            RecommendationInput {
                payment: "monthly".into(),
                ..rds()
            },
            "payment",
        ),
        (
            "account and all accounts",
            RecommendationInput {
                cloud_account_id: Some(Uuid::new_v4()),
                all_accounts: Some(true),
                ..rds()
            },
            "all_accounts",
        ),
        (
            "tenancy on rds",
            with_details(rds(), |d| d.tenancy = Some("default".into())),
            "details.tenancy",
        ),
        (
            "multi_az on ec2",
            with_details(input("ec2", "m5.large"), |d| d.multi_az = Some(true)),
            "details.multi_az",
        ),
        (
            "commitment on ec2",
            with_details(input("ec2", "m5.large"), |d| {
                d.hourly_commitment = Some("1".into())
            }),
            "details.hourly_commitment",
        ),
        (
            "offering id on rds",
            with_details(rds(), |d| d.offering_id = Some("abc".into())),
            "details.offering_id",
        ),
        (
            "bad tenancy",
            with_details(input("ec2", "m5.large"), |d| {
                d.tenancy = Some("shared".into())
            }),
            "details.tenancy",
        ),
        (
            "bad offering class",
            with_details(input("ec2", "m5.large"), |d| {
                d.offering_class = Some("premium".into())
            }),
            "details.offering_class",
        ),
        (
            "zone of another region",
            with_details(input("ec2", "m5.large"), |d| {
                d.availability_zone = Some("eu-west-1a".into())
            }),
            "details.availability_zone",
        ),
        (
            "savings plan without commitment",
            input("savingsplans", "Compute"),
            "details.hourly_commitment",
        ),
        (
            "negative commitment",
            with_details(savings_plan(), |d| d.hourly_commitment = Some("-1".into())),
            "details.hourly_commitment",
        ),
        (
            "zero commitment",
            with_details(savings_plan(), |d| {
                d.hourly_commitment = Some("0.00".into())
            }),
            "details.hourly_commitment",
        ),
        (
            "commitment with a dangling dot",
            with_details(savings_plan(), |d| d.hourly_commitment = Some("1.".into())),
            "details.hourly_commitment",
        ),
        (
            "commitment with six decimals",
            with_details(savings_plan(), |d| {
                d.hourly_commitment = Some("1.000001".into())
            }),
            "details.hourly_commitment",
        ),
        (
            "commitment over a million an hour once counted",
            with_details(
                RecommendationInput {
                    count: 3,
                    ..savings_plan()
                },
                |d| d.hourly_commitment = Some("400000".into()),
            ),
            "details.hourly_commitment",
        ),
        (
            "plan type differs",
            with_details(savings_plan(), |d| d.plan_type = Some("SageMaker".into())),
            "details.plan_type",
        ),
        (
            "negative upfront",
            RecommendationInput {
                upfront_cost: Some(-5.0),
                ..rds()
            },
            "upfront_cost",
        ),
        (
            "negative savings",
            RecommendationInput {
                monthly_savings: Some(-5.0),
                ..rds()
            },
            "monthly_savings",
        ),
        (
            "infinite savings",
            RecommendationInput {
                monthly_savings: Some(f64::INFINITY),
                ..rds()
            },
            "monthly_savings",
        ),
    ];
    for (case, line, expected) in cases {
        assert_eq!(
            error_field(line),
            format!("recommendations[0].{expected}"),
            "{case}"
        );
    }
}

#[test]
fn the_error_names_the_index_of_the_bad_line_and_never_its_value() {
    let bad = RecommendationInput {
        region: "secret-value-1x".into(),
        ..rds()
    };
    let error = validate_recommendations(vec![rds(), bad]).unwrap_err();
    assert_eq!(error.field, "recommendations[1].region");
    assert!(!error.to_string().contains("secret-value"), "{error}");
}

#[test]
fn too_many_lines_are_refused_and_an_empty_list_is_valid() {
    let list = vec![rds(); MAX_RECOMMENDATIONS + 1];
    assert_eq!(
        validate_recommendations(list).unwrap_err().field,
        "recommendations"
    );
    assert_eq!(validate_recommendations(vec![]).unwrap(), vec![]);
}

#[test]
fn service_defaults_are_applied() {
    let list = validate_recommendations(vec![
        input("ec2", "m5.large"),
        rds(),
        savings_plan(),
        input("redshift", "ra3.xlplus"),
    ])
    .unwrap();
    assert_eq!(list[0].details.tenancy.as_deref(), Some("default"));
    assert_eq!(list[0].details.offering_class.as_deref(), Some("standard"));
    assert_eq!(list[1].details.multi_az, Some(false));
    assert_eq!(list[2].details.plan_type.as_deref(), Some("Compute"));
    assert_eq!(list[3].details, RecommendationDetails::default());
    assert_eq!(list[3].service, AwsService::Redshift);
    assert_eq!(list[3].provider, Provider::Aws);
}

#[test]
fn valid_edge_values_are_accepted() {
    let mut zonal = with_details(input("ec2", "m5.large"), |d| {
        d.availability_zone = Some("us-east-1a".into())
    });
    zonal.platform = Some("Red Hat Enterprise Linux".into());
    let gov = RecommendationInput {
        region: "us-gov-west-1".into(),
        engine: Some(" postgresql ".into()),
        cloud_account_id: Some(Uuid::new_v4()),
        count: MAX_COUNT,
        ..rds()
    };
    let precise = with_details(savings_plan(), |d| {
        d.hourly_commitment = Some("0.001".into())
    });
    let largest = with_details(
        RecommendationInput {
            count: 4,
            ..savings_plan()
        },
        |d| d.hourly_commitment = Some("250000".into()),
    );
    let list = validate_recommendations(vec![zonal, gov, precise, largest]).unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[1].engine.as_deref(), Some("postgresql"));
}

#[test]
fn stored_json_keeps_every_field() {
    let mut line = validated(with_details(rds(), |d| d.multi_az = Some(true)));
    line.cloud_account_id = Some(Uuid::new_v4());
    line.upfront_cost = Some(1234.5);
    let json = serde_json::to_value(&line).unwrap();
    assert_eq!(json["provider"], "aws");
    assert_eq!(json["service"], "rds");
    assert_eq!(json["details"], serde_json::json!({"multi_az": true}));
    let back: Recommendation = serde_json::from_value(json).unwrap();
    assert_eq!(back, line);
}

#[test]
fn one_target_buys_every_line() {
    let targets = [Uuid::new_v4()];
    let list = [validated(rds()), validated(rds())];
    assert_eq!(
        assign_targets(&targets, &list).unwrap()[0].item_indices,
        vec![0, 1]
    );
}

#[test]
fn a_named_account_buys_its_line_alone_and_all_accounts_buy_the_rest() {
    let targets = [Uuid::new_v4(), Uuid::new_v4()];
    let named = validated(RecommendationInput {
        cloud_account_id: Some(targets[1]),
        ..rds()
    });
    let everyone = validated(RecommendationInput {
        all_accounts: Some(true),
        ..rds()
    });
    let assigned = assign_targets(&targets, &[named, everyone]).unwrap();
    assert_eq!(assigned[0].item_indices, vec![1]);
    assert_eq!(assigned[1].item_indices, vec![0, 1]);
}

#[test]
fn a_line_naming_a_non_target_or_no_one_among_several_is_refused() {
    let targets = [Uuid::new_v4(), Uuid::new_v4()];
    let stranger = validated(RecommendationInput {
        cloud_account_id: Some(Uuid::new_v4()),
        ..rds()
    });
    let error = assign_targets(&targets, &[stranger]).unwrap_err();
    assert_eq!(error.field, "recommendations[0].cloud_account_id");
    let unnamed = validated(rds());
    let error = assign_targets(&targets, &[validated(rds()), unnamed]).unwrap_err();
    assert_eq!(error.field, "recommendations[0].cloud_account_id");
    assert!(error.problem.contains("all_accounts"), "{}", error.problem);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A validated line is a fixed point: sent on as a client would send it, it
    /// validates to itself. This is what lets any service re-check a stored line.
    #[test]
    fn validation_is_a_fixed_point(list in recommendation_list(vec![Uuid::from_u128(1), Uuid::from_u128(2)], 8)) {
        if let Ok(validated) = validate_recommendations(list) {
            let again: Vec<RecommendationInput> = validated.iter().cloned().map(Into::into).collect();
            prop_assert_eq!(validate_recommendations(again), Ok(validated));
        }
    }

    /// Lowering a count never makes a valid line invalid (a ramp step scales counts
    /// down).
    #[test]
    fn a_smaller_count_stays_valid(list in recommendation_list(vec![Uuid::from_u128(1)], 4), divisor in 1u32..100) {
        if let Ok(validated) = validate_recommendations(list) {
            let scaled: Vec<RecommendationInput> = validated
                .into_iter()
                .map(|mut line| { line.count = (line.count / divisor).max(1); line.into() })
                .collect();
            prop_assert!(validate_recommendations(scaled).is_ok());
        }
    }
}
