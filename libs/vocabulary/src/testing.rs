//! Test helpers: an example line, and proptest strategies that generate recommendations
//! as clients send them: mostly valid lines of every service, with the edge values the
//! rules allow, and now and then a line with broken fields, so property tests see both
//! sides of each rule while most generated lists still pass.

use proptest::prelude::*;
use uuid::Uuid;

use crate::limits::MAX_COUNT;
use crate::recommendation::{RecommendationDetails, RecommendationInput};
use crate::service::AWS_SERVICE_NAMES;
use crate::{AWS_PAYMENT_OPTIONS, SAVINGS_PLAN_TYPES};

/// Returns a valid line of `service` buying two `resource_type` in us-east-1 for one
/// year, all upfront (a Savings Plan also needs its hourly commitment).
pub fn example(service: &str, resource_type: &str) -> RecommendationInput {
    RecommendationInput {
        provider: "aws".into(),
        service: service.into(),
        region: "us-east-1".into(),
        resource_type: resource_type.into(),
        count: 2,
        term: 1,
        payment: "all-upfront".into(),
        ..RecommendationInput::default()
    }
}

fn region(valid_only: bool) -> BoxedStrategy<String> {
    let valid = prop_oneof![
        Just("us-east-1".to_owned()),
        Just("eu-west-3".to_owned()),
        Just("us-gov-west-1".to_owned()),
        Just("ap-southeast-2".to_owned()),
        Just(" us-east-1 ".to_owned()),
    ];
    if valid_only {
        return valid.boxed();
    }
    prop_oneof![
        valid,
        Just("US-EAST-1".to_owned()),
        Just("moon-1".to_owned()),
    ]
    .boxed()
}

fn count(valid_only: bool) -> BoxedStrategy<u32> {
    let valid = prop_oneof![
        8 => 1..=20u32,
        2 => Just(MAX_COUNT),
        1 => (MAX_COUNT - 5)..=MAX_COUNT,
    ];
    if valid_only {
        return valid.boxed();
    }
    prop_oneof![
        valid,
        (MAX_COUNT + 1)..=(MAX_COUNT + 5),
        Just(0u32),
        Just(100_000u32),
    ]
    .boxed()
}

fn hourly_commitment(valid_only: bool) -> BoxedStrategy<Option<String>> {
    // Valid per unit; times a large count it may pass the million an hour a plan allows.
    let valid = prop_oneof![
        6 => (1u32..=500_000, 3u32..=5).prop_map(|(mantissa, scale)| {
            let unit = 10u32.pow(scale);
            let width = scale as usize;
            Some(format!("{}.{:0width$}", mantissa / unit, mantissa % unit))
        }),
        1 => (1u32..=100).prop_map(|whole| Some(whole.to_string())),
        1 => Just(Some("0.00100000".to_owned())),
    ];
    if valid_only {
        return valid.boxed();
    }
    prop_oneof![
        valid,
        Just(Some("1000000".to_owned())),
        Just(Some("0.123456".to_owned())),
        Just(Some("-1".to_owned())),
        Just(None),
    ]
    .boxed()
}

fn money(valid_only: bool) -> BoxedStrategy<Option<f64>> {
    let valid = prop_oneof![
        1 => Just(None),
        2 => (0.0f64..1_000_000.0).prop_map(Some),
    ];
    if valid_only {
        return valid.boxed();
    }
    prop_oneof![valid, Just(Some(-1.0)), Just(Some(f64::NAN))].boxed()
}

fn details(
    service: &'static str,
    valid_only: bool,
) -> BoxedStrategy<Option<RecommendationDetails>> {
    match service {
        "ec2" => (
            prop::option::of(prop_oneof![
                Just("default"),
                Just("dedicated"),
                Just("host")
            ]),
            prop::option::of(prop_oneof![Just("standard"), Just("convertible")]),
            prop::option::of(prop_oneof![
                Just("us-east-1a"),
                Just("us-east-1b"),
                Just("eu-west-3c")
            ]),
        )
            .prop_map(|(tenancy, class, zone)| {
                Some(RecommendationDetails {
                    tenancy: tenancy.map(str::to_owned),
                    offering_class: class.map(str::to_owned),
                    availability_zone: zone.map(str::to_owned),
                    ..RecommendationDetails::default()
                })
            })
            .boxed(),
        "rds" => prop::option::of(any::<bool>())
            .prop_map(|multi_az| {
                Some(RecommendationDetails {
                    multi_az,
                    ..RecommendationDetails::default()
                })
            })
            .boxed(),
        "savingsplans" => (
            hourly_commitment(valid_only),
            prop::option::of(Just("0f1e2d3c-offering")),
        )
            .prop_map(|(hourly_commitment, offering_id)| {
                Some(RecommendationDetails {
                    hourly_commitment,
                    offering_id: offering_id.map(str::to_owned),
                    ..RecommendationDetails::default()
                })
            })
            .boxed(),
        _ if valid_only => Just(None).boxed(),
        _ => prop_oneof![
            Just(None),
            Just(Some(RecommendationDetails {
                multi_az: Some(true),
                ..RecommendationDetails::default()
            })),
        ]
        .boxed(),
    }
}

/// Generates one recommendation as a client could send it, naming one of `accounts`
/// (or none, or an account outside them) as its buyer. About one line in thirty may
/// break a rule.
pub fn recommendation_input(accounts: Vec<Uuid>) -> impl Strategy<Value = RecommendationInput> {
    prop_oneof![
        30 => line(accounts.clone(), true),
        1 => line(accounts, false),
    ]
}

fn line(accounts: Vec<Uuid>, valid_only: bool) -> BoxedStrategy<RecommendationInput> {
    let service = if valid_only {
        prop::sample::select(AWS_SERVICE_NAMES.to_vec()).boxed()
    } else {
        prop_oneof![
            prop::sample::select(AWS_SERVICE_NAMES.to_vec()),
            Just("lambda")
        ]
        .boxed()
    };
    let buyer = prop_oneof![
        4 => Just(None),
        4 => prop::sample::select(accounts).prop_map(Some),
        1 => Just(Some(Uuid::from_u128(7))),
    ];
    let all_accounts = prop_oneof![
        3 => Just(Some(true)),
        1 => Just(Some(false)),
        1 => Just(None),
    ];
    (
        service,
        region(valid_only),
        count(valid_only),
        buyer,
        all_accounts,
    )
        .prop_flat_map(move |(service, region, count, buyer, all_accounts)| {
            let resource_type = if service == "savingsplans" {
                prop::sample::select(SAVINGS_PLAN_TYPES.to_vec())
                    .prop_map(str::to_owned)
                    .boxed()
            } else if valid_only {
                Just("db.r6g.large".to_owned()).boxed()
            } else {
                Just("m5 large".to_owned()).boxed()
            };
            let payment = if valid_only {
                prop::sample::select(AWS_PAYMENT_OPTIONS.to_vec())
                    .prop_map(str::to_owned)
                    .boxed()
            } else {
                Just("monthly".to_owned()).boxed()
            };
            let term = if valid_only {
                prop::sample::select(vec![1u32, 3]).boxed()
            } else {
                Just(2u32).boxed()
            };
            // A line naming its buyer must not also say all_accounts.
            let all_accounts = if valid_only && buyer.is_some() {
                None
            } else {
                all_accounts
            };
            (
                resource_type,
                payment,
                term,
                details(service, valid_only),
                money(valid_only),
                money(valid_only),
                prop::option::of(Just("postgresql".to_owned())),
            )
                .prop_map(
                    move |(resource_type, payment, term, details, upfront, savings, engine)| {
                        RecommendationInput {
                            provider: "aws".to_owned(),
                            service: service.to_owned(),
                            region: region.clone(),
                            resource_type,
                            engine,
                            platform: None,
                            count,
                            term,
                            payment,
                            cloud_account_id: buyer,
                            all_accounts,
                            details,
                            upfront_cost: upfront,
                            monthly_savings: savings,
                        }
                    },
                )
        })
        .boxed()
}

/// Generates a purchase list of up to `max_len` lines over `accounts`.
pub fn recommendation_list(
    accounts: Vec<Uuid>,
    max_len: usize,
) -> impl Strategy<Value = Vec<RecommendationInput>> {
    prop::collection::vec(recommendation_input(accounts), 0..=max_len)
}
