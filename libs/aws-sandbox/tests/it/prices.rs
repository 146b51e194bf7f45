//! List prices in every service's own describe fields, price overrides over the control
//! API and the handle, and EC2's LimitPrice and DryRun on a purchase.

use std::collections::BTreeMap;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    CurrencyCodeValues, InstanceType, OfferingClassType, OfferingTypeValues,
    RecurringChargeFrequency, ReservedInstanceLimitPrice, RiProductDescription,
};
use aws_sdk_opensearch::types::ReservedInstancePaymentOption;
use aws_sdk_savingsplans::types::{
    SavingsPlanPaymentOption, SavingsPlanProductType, SavingsPlanRateUnit, SavingsPlanType,
};
use cudly_aws_sandbox::{
    CallOutcome, FaultError, FaultSpec, PriceUpdate, SandboxError, SandboxHandle, Service,
};
use serde_json::{Value, json};

use crate::common::*;

const ONE_YEAR: i64 = 31_536_000;
const HOURS_PER_YEAR: f64 = 8760.0;
/// An offering id no catalogue has.
const UNKNOWN_OFFERING: &str = "00000000-0000-4000-8000-000000000000";

/// Every service that sells commitments, by its wire name.
const PRICED: [Service; 7] = [
    Service::Ec2,
    Service::Savingsplans,
    Service::Rds,
    Service::Elasticache,
    Service::Memorydb,
    Service::Opensearch,
    Service::Redshift,
];

/// One offering's price as its service's describe call reports it.
#[derive(Debug, Clone, PartialEq)]
struct Quoted {
    offering_id: String,
    /// 0 for a Savings Plan, whose upfront the buyer chooses.
    fixed_price: f64,
    /// The hourly recurring charge; for a Savings Plan its usage rate.
    recurring_hourly: f64,
    duration_seconds: i64,
    /// `None` where the real API has no currency field (ElastiCache, MemoryDB).
    currency: Option<String>,
}

/// Sums the hourly recurring charges of a describe answer.
fn hourly<'a>(charges: impl IntoIterator<Item = (Option<&'a str>, Option<f64>)>) -> f64 {
    charges
        .into_iter()
        .filter(|(frequency, _)| *frequency == Some("Hourly"))
        .filter_map(|(_, amount)| amount)
        .sum()
}

/// The m5.large Linux standard 1-year Partial Upfront offering, the one price with
/// both an upfront and an hourly part.
async fn ec2_quote(handle: &SandboxHandle) -> Quoted {
    let ec2 = aws_sdk_ec2::Client::new(&root_config(handle).await);
    let described = ec2
        .describe_reserved_instances_offerings()
        .instance_type(InstanceType::M5Large)
        .product_description(RiProductDescription::LinuxUnix)
        .offering_class(OfferingClassType::Standard)
        .offering_type(OfferingTypeValues::PartialUpfront)
        .min_duration(ONE_YEAR)
        .max_duration(ONE_YEAR)
        .send()
        .await
        .unwrap();
    let offerings = described.reserved_instances_offerings();
    assert_eq!(offerings.len(), 1);
    let offering = &offerings[0];
    let charges = offering.recurring_charges();
    assert!(
        charges
            .iter()
            .all(|charge| charge.frequency() == Some(&RecurringChargeFrequency::Hourly))
    );
    Quoted {
        offering_id: offering
            .reserved_instances_offering_id()
            .unwrap()
            .to_string(),
        fixed_price: f64::from(offering.fixed_price().unwrap()),
        recurring_hourly: charges.iter().filter_map(|charge| charge.amount()).sum(),
        duration_seconds: offering.duration().unwrap(),
        currency: offering
            .currency_code()
            .map(|currency| currency.as_str().to_string()),
    }
}

/// The Compute plan's 1-year Partial Upfront rate for EC2 usage.
async fn savings_plan_quote(handle: &SandboxHandle) -> Quoted {
    let savings_plans = aws_sdk_savingsplans::Client::new(&root_config(handle).await);
    let described = savings_plans
        .describe_savings_plans_offering_rates()
        .savings_plan_types(SavingsPlanType::Compute)
        .savings_plan_payment_options(SavingsPlanPaymentOption::PartialUpfront)
        .products(SavingsPlanProductType::Ec2)
        .send()
        .await
        .unwrap();
    let rates = described.search_results();
    // One per term.
    assert_eq!(rates.len(), 2);
    let rate = rates
        .iter()
        .find(|rate| {
            rate.savings_plan_offering()
                .map(|offering| offering.duration_seconds())
                == Some(ONE_YEAR)
        })
        .unwrap();
    assert_eq!(rate.unit(), Some(&SavingsPlanRateUnit::Hours));
    assert_eq!(rate.product_type(), Some(&SavingsPlanProductType::Ec2));
    let offering = rate.savings_plan_offering().unwrap();
    Quoted {
        offering_id: offering.offering_id().unwrap().to_string(),
        fixed_price: 0.0,
        recurring_hourly: rate.rate().unwrap().parse().unwrap(),
        duration_seconds: offering.duration_seconds(),
        currency: offering
            .currency()
            .map(|currency| currency.as_str().to_string()),
    }
}

async fn rds_quote(handle: &SandboxHandle) -> Quoted {
    let rds = aws_sdk_rds::Client::new(&root_config(handle).await);
    let described = rds
        .describe_reserved_db_instances_offerings()
        .db_instance_class("db.r5.large")
        .product_description("postgresql")
        .duration("1")
        .offering_type("Partial Upfront")
        .multi_az(false)
        .send()
        .await
        .unwrap();
    let offerings = described.reserved_db_instances_offerings();
    assert_eq!(offerings.len(), 1);
    let offering = &offerings[0];
    Quoted {
        offering_id: offering
            .reserved_db_instances_offering_id()
            .unwrap()
            .to_string(),
        fixed_price: offering.fixed_price().unwrap(),
        recurring_hourly: hourly(offering.recurring_charges().iter().map(|charge| {
            (
                charge.recurring_charge_frequency(),
                charge.recurring_charge_amount(),
            )
        })),
        duration_seconds: i64::from(offering.duration().unwrap()),
        currency: offering.currency_code().map(str::to_string),
    }
}

async fn elasticache_quote(handle: &SandboxHandle) -> Quoted {
    let elasticache = aws_sdk_elasticache::Client::new(&root_config(handle).await);
    let described = elasticache
        .describe_reserved_cache_nodes_offerings()
        .cache_node_type("cache.r6g.large")
        .product_description("redis")
        .duration("1")
        .offering_type("Partial Upfront")
        .send()
        .await
        .unwrap();
    let offerings = described.reserved_cache_nodes_offerings();
    assert_eq!(offerings.len(), 1);
    let offering = &offerings[0];
    Quoted {
        offering_id: offering
            .reserved_cache_nodes_offering_id()
            .unwrap()
            .to_string(),
        fixed_price: offering.fixed_price().unwrap(),
        recurring_hourly: hourly(offering.recurring_charges().iter().map(|charge| {
            (
                charge.recurring_charge_frequency(),
                charge.recurring_charge_amount(),
            )
        })),
        duration_seconds: i64::from(offering.duration().unwrap()),
        currency: None,
    }
}

async fn memorydb_quote(handle: &SandboxHandle) -> Quoted {
    let memorydb = aws_sdk_memorydb::Client::new(&root_config(handle).await);
    let described = memorydb
        .describe_reserved_nodes_offerings()
        .node_type("db.r6g.large")
        .duration("1")
        .offering_type("Partial Upfront")
        .send()
        .await
        .unwrap();
    let offerings = described.reserved_nodes_offerings();
    assert_eq!(offerings.len(), 1);
    let offering = &offerings[0];
    Quoted {
        offering_id: offering.reserved_nodes_offering_id().unwrap().to_string(),
        fixed_price: offering.fixed_price(),
        recurring_hourly: hourly(offering.recurring_charges().iter().map(|charge| {
            (
                charge.recurring_charge_frequency(),
                Some(charge.recurring_charge_amount()),
            )
        })),
        duration_seconds: i64::from(offering.duration()),
        currency: None,
    }
}

/// The first 1-year Partial Upfront offering of the default list.
async fn opensearch_quote(handle: &SandboxHandle) -> Quoted {
    let opensearch = aws_sdk_opensearch::Client::new(&root_config(handle).await);
    let described = opensearch
        .describe_reserved_instance_offerings()
        .send()
        .await
        .unwrap();
    let offering = described
        .reserved_instance_offerings()
        .iter()
        .find(|offering| {
            offering.payment_option() == Some(&ReservedInstancePaymentOption::PartialUpfront)
                && i64::from(offering.duration()) == ONE_YEAR
        })
        .unwrap();
    Quoted {
        offering_id: offering
            .reserved_instance_offering_id()
            .unwrap()
            .to_string(),
        fixed_price: offering.fixed_price().unwrap(),
        recurring_hourly: hourly(offering.recurring_charges().iter().map(|charge| {
            (
                charge.recurring_charge_frequency(),
                charge.recurring_charge_amount(),
            )
        })),
        duration_seconds: i64::from(offering.duration()),
        currency: offering.currency_code().map(str::to_string),
    }
}

/// The first 1-year Partial Upfront offering of the default list.
async fn redshift_quote(handle: &SandboxHandle) -> Quoted {
    let redshift = aws_sdk_redshift::Client::new(&root_config(handle).await);
    let described = redshift
        .describe_reserved_node_offerings()
        .send()
        .await
        .unwrap();
    let offering = described
        .reserved_node_offerings()
        .iter()
        .find(|offering| {
            offering.offering_type() == Some("Partial Upfront")
                && offering.duration().map(i64::from) == Some(ONE_YEAR)
        })
        .unwrap();
    Quoted {
        offering_id: offering.reserved_node_offering_id().unwrap().to_string(),
        fixed_price: offering.fixed_price().unwrap(),
        recurring_hourly: hourly(offering.recurring_charges().iter().map(|charge| {
            (
                charge.recurring_charge_frequency(),
                charge.recurring_charge_amount(),
            )
        })),
        duration_seconds: i64::from(offering.duration().unwrap()),
        currency: offering.currency_code().map(str::to_string),
    }
}

/// Describes the same offering of `service` every time, through its real client.
async fn quote(handle: &SandboxHandle, service: Service) -> Quoted {
    match service {
        Service::Ec2 => ec2_quote(handle).await,
        Service::Savingsplans => savings_plan_quote(handle).await,
        Service::Rds => rds_quote(handle).await,
        Service::Elasticache => elasticache_quote(handle).await,
        Service::Memorydb => memorydb_quote(handle).await,
        Service::Opensearch => opensearch_quote(handle).await,
        Service::Redshift => redshift_quote(handle).await,
        other => panic!("{other} sells no commitments"),
    }
}

/// Every db.r5.large offering's (fixed price, hourly charge), by id.
async fn rds_prices(handle: &SandboxHandle) -> BTreeMap<String, (f64, f64)> {
    let rds = aws_sdk_rds::Client::new(&root_config(handle).await);
    let described = rds
        .describe_reserved_db_instances_offerings()
        .db_instance_class("db.r5.large")
        .send()
        .await
        .unwrap();
    described
        .reserved_db_instances_offerings()
        .iter()
        .map(|offering| {
            let recurring = hourly(offering.recurring_charges().iter().map(|charge| {
                (
                    charge.recurring_charge_frequency(),
                    charge.recurring_charge_amount(),
                )
            }));
            (
                offering
                    .reserved_db_instances_offering_id()
                    .unwrap()
                    .to_string(),
                (offering.fixed_price().unwrap(), recurring),
            )
        })
        .collect()
}

/// The usage rate the sandbox reports for a Savings Plan offering of one year at these
/// prices: the hourly charge plus the upfront spread over the term's hours.
fn one_year_rate(fixed_price: f64, recurring_hourly: f64) -> f64 {
    ((recurring_hourly + fixed_price / HOURS_PER_YEAR) * 10_000.0).round() / 10_000.0
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn put_price(handle: &SandboxHandle, body: String) -> (u16, Value) {
    let response = http()
        .put(format!("{}/_sandbox/prices", handle.endpoint()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_service_reports_a_positive_list_price_in_its_own_fields() {
    let handle = start().await;
    let elsewhere = start().await;
    for service in PRICED {
        let first = quote(&handle, service).await;
        assert_eq!(quote(&handle, service).await, first, "{service}");
        assert_eq!(quote(&elsewhere, service).await, first, "{service}");
        assert!(first.recurring_hourly > 0.0, "{service}: {first:?}");
        if service != Service::Savingsplans {
            assert!(first.fixed_price > 0.0, "{service}: {first:?}");
        }
        assert_eq!(first.duration_seconds, ONE_YEAR, "{service}");
        let currency = match service {
            Service::Elasticache | Service::Memorydb => None,
            _ => Some("USD".to_string()),
        };
        assert_eq!(first.currency, currency, "{service}");
    }
}

#[tokio::test]
async fn a_savings_plan_offering_carries_currency_and_term_and_its_rates_follow_the_payment() {
    let handle = start().await;
    let savings_plans = aws_sdk_savingsplans::Client::new(&root_config(&handle).await);
    let offerings = savings_plans
        .describe_savings_plans_offerings()
        .plan_types(SavingsPlanType::Compute)
        .durations(ONE_YEAR)
        .send()
        .await
        .unwrap();
    for offering in offerings.search_results() {
        assert_eq!(offering.duration_seconds(), ONE_YEAR);
        assert_eq!(
            offering.currency().map(|currency| currency.as_str()),
            Some("USD")
        );
    }
    let rate_of = |payment: SavingsPlanPaymentOption| {
        let client = savings_plans.clone();
        async move {
            let described = client
                .describe_savings_plans_offering_rates()
                .savings_plan_types(SavingsPlanType::Compute)
                .savings_plan_payment_options(payment)
                .products(SavingsPlanProductType::Ec2)
                .send()
                .await
                .unwrap();
            described
                .search_results()
                .iter()
                .find(|rate| {
                    rate.savings_plan_offering()
                        .map(|offering| offering.duration_seconds())
                        == Some(ONE_YEAR)
                })
                .and_then(|rate| rate.rate())
                .unwrap()
                .parse::<f64>()
                .unwrap()
        }
    };
    let all_upfront = rate_of(SavingsPlanPaymentOption::AllUpfront).await;
    let no_upfront = rate_of(SavingsPlanPaymentOption::NoUpfront).await;
    assert!(0.0 < all_upfront && all_upfront < no_upfront);

    // A Compute plan covers EC2, Fargate and Lambda: one rate each, per term and payment.
    let every_rate = savings_plans
        .describe_savings_plans_offering_rates()
        .savings_plan_types(SavingsPlanType::Compute)
        .send()
        .await
        .unwrap();
    assert_eq!(every_rate.search_results().len(), 3 * 2 * 3);
    let bad_filter = savings_plans
        .describe_savings_plans_offering_rates()
        .filters(
            aws_sdk_savingsplans::types::SavingsPlanOfferingRateFilterElement::builder()
                .name(aws_sdk_savingsplans::types::SavingsPlanRateFilterAttribute::from("colour"))
                .values("blue")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad_filter), "ValidationException");
}

#[tokio::test]
async fn a_price_override_changes_that_offering_only_until_reset() {
    let handle = start().await;
    let mut before = BTreeMap::new();
    for service in PRICED {
        let listed = quote(&handle, service).await;
        handle
            .set_price(
                PriceUpdate::new(service, &listed.offering_id)
                    .with_fixed_price(1000.0)
                    .with_recurring_hourly(0.5),
            )
            .await
            .unwrap();
        let changed = quote(&handle, service).await;
        assert_eq!(changed.offering_id, listed.offering_id, "{service}");
        if service == Service::Savingsplans {
            assert_eq!(changed.recurring_hourly, one_year_rate(1000.0, 0.5));
        } else {
            assert_eq!(changed.fixed_price, 1000.0, "{service}");
            assert_eq!(changed.recurring_hourly, 0.5, "{service}");
        }
        before.insert(service, listed);
    }

    // A second update naming one price keeps the other, and no other offering moves.
    let rds_before = rds_prices(&handle).await;
    let rds_offering = before[&Service::Rds].offering_id.clone();
    handle
        .set_price(PriceUpdate::new(Service::Rds, &rds_offering).with_fixed_price(1500.0))
        .await
        .unwrap();
    let rds_after = rds_prices(&handle).await;
    assert_eq!(rds_after[&rds_offering], (1500.0, 0.5));
    for (id, prices) in &rds_after {
        if id != &rds_offering {
            assert_eq!(&rds_before[id], prices, "{id}");
        }
    }

    handle.reset().await;
    for service in PRICED {
        assert_eq!(quote(&handle, service).await, before[&service], "{service}");
    }
}

#[tokio::test]
async fn a_purchase_records_the_price_it_was_made_at() {
    let handle = start().await;
    let rds = aws_sdk_rds::Client::new(&root_config(&handle).await);
    let offering = rds_quote(&handle).await;
    handle
        .set_price(
            PriceUpdate::new(Service::Rds, &offering.offering_id)
                .with_fixed_price(1200.0)
                .with_recurring_hourly(0.25),
        )
        .await
        .unwrap();
    let reservation = reservation_id("rds-priced-", &token("priced"));
    rds.purchase_reserved_db_instances_offering()
        .reserved_db_instances_offering_id(&offering.offering_id)
        .reserved_db_instance_id(&reservation)
        .send()
        .await
        .unwrap();
    // A later price change leaves what was bought as it was.
    handle
        .set_price(PriceUpdate::new(Service::Rds, &offering.offering_id).with_fixed_price(9999.0))
        .await
        .unwrap();

    let described = rds
        .describe_reserved_db_instances()
        .reserved_db_instance_id(&reservation)
        .send()
        .await
        .unwrap();
    let reserved = &described.reserved_db_instances()[0];
    assert_eq!(reserved.fixed_price(), Some(1200.0));
    assert_eq!(reserved.currency_code(), Some("USD"));
    assert_eq!(reserved.duration(), Some(31_536_000));
    assert_eq!(
        reserved.recurring_charges()[0].recurring_charge_amount(),
        Some(0.25)
    );
    let ledger = handle.ledger().await;
    let commitment = &ledger.commitments[0];
    assert_eq!(commitment.offering.fixed_price, 1200.0);
    assert_eq!(commitment.offering.recurring_hourly, 0.25);
}

#[tokio::test]
async fn prices_are_set_over_http_and_a_reset_restores_the_list_price() {
    let handle = start().await;
    let listed = redshift_quote(&handle).await;
    let body = json!({
        "service": "redshift",
        "offering_id": listed.offering_id.as_str(),
        "recurring_hourly": 0.75,
    });
    let (status, _) = put_price(&handle, body.to_string()).await;
    assert_eq!(status, 204);
    let changed = redshift_quote(&handle).await;
    assert_eq!(changed.recurring_hourly, 0.75);
    assert_eq!(changed.fixed_price, listed.fixed_price);

    let reset = http()
        .post(format!("{}/_sandbox/reset", handle.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(redshift_quote(&handle).await, listed);
}

#[tokio::test]
async fn a_bad_price_update_is_refused_and_changes_nothing() {
    let handle = start().await;
    let listed = rds_quote(&handle).await;
    let id = listed.offering_id.as_str();
    let ec2_offering = ec2_quote(&handle).await.offering_id;

    let bad_requests = [
        json!({"service": "rds", "offering_id": id}).to_string(),
        json!({"service": "rds", "offering_id": id, "fixed_price": -1}).to_string(),
        json!({"service": "rds", "offering_id": id, "recurring_hourly": -0.01}).to_string(),
        json!({"service": "rds", "offering_id": id, "fixed_price": "12"}).to_string(),
        json!({"service": "rds", "offering_id": id, "fixed_price": null}).to_string(),
        json!({"service": "rds", "offering_id": id, "fixed_price": 1, "colour": "blue"})
            .to_string(),
        json!({"service": "rds", "fixed_price": 1}).to_string(),
        // Not finite: JSON cannot carry infinity, and this overflows a double.
        format!(r#"{{"service": "rds", "offering_id": "{id}", "fixed_price": 1e400}}"#),
        "[1, 2]".to_string(),
        "not json".to_string(),
    ];
    for body in bad_requests {
        let (status, reply) = put_price(&handle, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(reply["error"].is_string(), "{body}: {reply}");
    }

    let unknown = [
        json!({"service": "lambda", "offering_id": id, "fixed_price": 1}),
        json!({"service": "sts", "offering_id": id, "fixed_price": 1}),
        json!({"service": "ec2", "offering_id": id, "fixed_price": 1}),
        json!({"service": "rds", "offering_id": ec2_offering.as_str(), "fixed_price": 1}),
        json!({"service": "rds", "offering_id": UNKNOWN_OFFERING, "fixed_price": 1}),
    ];
    for body in unknown {
        let (status, reply) = put_price(&handle, body.to_string()).await;
        assert_eq!(status, 404, "{body}");
        assert!(reply["error"].is_string(), "{body}: {reply}");
    }

    let invalid = handle
        .set_price(PriceUpdate::new(Service::Rds, id).with_fixed_price(f64::NAN))
        .await
        .unwrap_err();
    assert!(
        matches!(invalid, SandboxError::InvalidPrice(_)),
        "{invalid}"
    );
    let no_price = handle
        .set_price(PriceUpdate::new(Service::Rds, id))
        .await
        .unwrap_err();
    assert!(
        matches!(no_price, SandboxError::InvalidPrice(_)),
        "{no_price}"
    );
    let unknown_offering = handle
        .set_price(PriceUpdate::new(Service::Rds, &ec2_offering).with_fixed_price(1.0))
        .await
        .unwrap_err();
    assert!(
        matches!(unknown_offering, SandboxError::UnknownOffering(_)),
        "{unknown_offering}"
    );

    assert_eq!(rds_quote(&handle).await, listed);
}

fn limit_price(amount: f64) -> ReservedInstanceLimitPrice {
    ReservedInstanceLimitPrice::builder()
        .amount(amount)
        .currency_code(CurrencyCodeValues::Usd)
        .build()
}

#[tokio::test]
async fn an_ec2_purchase_above_its_limit_price_is_refused_and_at_or_below_it_buys() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config_no_retry(&handle).await);
    let offering = ec2_quote(&handle).await.offering_id;
    // An exact price, so the limits below are exact too.
    handle
        .set_price(PriceUpdate::new(Service::Ec2, &offering).with_fixed_price(1000.0))
        .await
        .unwrap();
    let buy = |limit: Option<ReservedInstanceLimitPrice>| {
        ec2.purchase_reserved_instances_offering()
            .reserved_instances_offering_id(&offering)
            .instance_count(2)
            .set_limit_price(limit)
            .send()
    };

    let refused = buy(Some(limit_price(1999.99))).await.unwrap_err();
    assert_eq!(code(&refused), "LimitPriceExceeded");
    let ledger = handle.ledger().await;
    assert!(ledger.commitments.is_empty());
    let call = ledger
        .calls_of("PurchaseReservedInstancesOffering")
        .last()
        .unwrap();
    assert_eq!(call.outcome, CallOutcome::Error);
    assert_eq!(call.error_code.as_deref(), Some("LimitPriceExceeded"));
    assert_eq!(call.commitment_id, None);

    let euros = ReservedInstanceLimitPrice::builder()
        .amount(5000.0)
        .currency_code(CurrencyCodeValues::from("EUR"))
        .build();
    let wrong_currency = buy(Some(euros)).await.unwrap_err();
    assert_eq!(code(&wrong_currency), "InvalidParameterValue");
    assert!(handle.ledger().await.commitments.is_empty());

    let at_the_limit = buy(Some(limit_price(2000.0))).await.unwrap();
    let above_the_price = buy(Some(limit_price(2500.0))).await.unwrap();
    buy(None).await.unwrap();
    let ledger = handle.ledger().await;
    assert_eq!(ledger.commitments.len(), 3);
    assert!(
        ledger
            .commitments
            .iter()
            .all(|commitment| commitment.offering.fixed_price == 1000.0 && commitment.count == 2)
    );
    let described = ec2
        .describe_reserved_instances()
        .reserved_instances_ids(at_the_limit.reserved_instances_id().unwrap())
        .reserved_instances_ids(above_the_price.reserved_instances_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(described.reserved_instances().len(), 2);
    for reserved in described.reserved_instances() {
        assert_eq!(reserved.fixed_price(), Some(1000.0));
        assert_eq!(reserved.currency_code(), Some(&CurrencyCodeValues::Usd));
        assert_eq!(reserved.duration(), Some(ONE_YEAR));
    }
}

#[tokio::test]
async fn an_ec2_dry_run_purchase_buys_nothing_and_tells_whether_it_would_succeed() {
    let handle = start().await;
    let ec2 = aws_sdk_ec2::Client::new(&root_config_no_retry(&handle).await);
    let offering = ec2_quote(&handle).await.offering_id;
    let dry_run = |limit: Option<ReservedInstanceLimitPrice>| {
        ec2.purchase_reserved_instances_offering()
            .reserved_instances_offering_id(&offering)
            .instance_count(1)
            .set_limit_price(limit)
            .dry_run(true)
            .send()
    };

    let would_succeed = dry_run(None).await.unwrap_err();
    assert_eq!(code(&would_succeed), "DryRunOperation");
    assert_eq!(
        would_succeed
            .raw_response()
            .map(|response| response.status().as_u16()),
        Some(412)
    );
    assert_eq!(
        would_succeed
            .as_service_error()
            .and_then(|error| error.message()),
        Some("Request would have succeeded, but DryRun flag is set.")
    );

    // A dry run is checked like the purchase: above the limit price it is refused the
    // same way.
    let over_the_limit = dry_run(Some(limit_price(0.01))).await.unwrap_err();
    assert_eq!(code(&over_the_limit), "LimitPriceExceeded");
    let unknown = ec2
        .purchase_reserved_instances_offering()
        .reserved_instances_offering_id(UNKNOWN_OFFERING)
        .instance_count(1)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&unknown), "InvalidReservedInstancesOfferingId");

    // A caller refused the purchase is refused the dry run.
    handle
        .add_fault(
            FaultSpec::on(Service::Ec2, "PurchaseReservedInstancesOffering")
                .error(FaultError::AccessDenied)
                .times(1),
        )
        .await;
    let unauthorized = dry_run(None).await.unwrap_err();
    assert_eq!(code(&unauthorized), "UnauthorizedOperation");

    let ledger = handle.ledger().await;
    assert!(ledger.commitments.is_empty());
    let codes: Vec<Option<&str>> = ledger
        .calls_of("PurchaseReservedInstancesOffering")
        .map(|call| call.error_code.as_deref())
        .collect();
    assert_eq!(
        codes,
        vec![
            Some("DryRunOperation"),
            Some("LimitPriceExceeded"),
            Some("InvalidReservedInstancesOfferingId"),
            Some("UnauthorizedOperation"),
        ]
    );
}
