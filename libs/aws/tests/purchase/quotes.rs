//! Quotes: the offering a recommendation matches, priced as AWS lists it, compared
//! with what the service's own describe call answers when asked through the SDK
//! directly; and a list price raised after the quote.

use cudly_aws::purchase::{AwsService, PurchaseSpec, Quote};
use cudly_aws_sandbox::PriceUpdate;
use cudly_aws_sandbox::operations::sandbox_service;

use crate::common::*;

/// The per-unit prices of one offering, as read here.
#[derive(Debug)]
struct Listed {
    fixed_price: f64,
    recurring_hourly: f64,
}

/// What an offering costs per hour: its recurring charges, else its usage price.
fn hourly(charges: Vec<f64>, usage_price: Option<f64>) -> f64 {
    if charges.is_empty() {
        usage_price.unwrap_or(0.0)
    } else {
        charges.iter().sum()
    }
}

/// The listed prices of a reservation offering whose SDK type names them as RDS,
/// ElastiCache, OpenSearch and Redshift do.
macro_rules! listed_reservation {
    ($offering:expr) => {
        Listed {
            fixed_price: $offering.fixed_price().unwrap(),
            recurring_hourly: hourly(
                $offering
                    .recurring_charges()
                    .iter()
                    .filter_map(|charge| charge.recurring_charge_amount())
                    .collect(),
                $offering.usage_price(),
            ),
        }
    };
}

/// Asserts two amounts are equal but for float noise (EC2 reports prices as `f32`).
fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= expected.abs().max(1.0) * 1e-6,
        "{what}: {actual} is not {expected}"
    );
}

/// Reads the offering `offering_id` through the service's describe-offerings call,
/// filtered to that id. A Savings Plan offering has no price: its listed price is the
/// hourly commitment of `spec` paid as the offering's payment option over its term.
async fn listed(config: &aws_types::SdkConfig, spec: &PurchaseSpec, offering_id: &str) -> Listed {
    match spec.service {
        AwsService::Ec2 => {
            let output = aws_sdk_ec2::Client::new(config)
                .describe_reserved_instances_offerings()
                .reserved_instances_offering_ids(offering_id)
                .send()
                .await
                .unwrap();
            let offering = output
                .reserved_instances_offerings()
                .iter()
                .find(|offering| offering.reserved_instances_offering_id() == Some(offering_id))
                .expect("the offering is listed");
            Listed {
                fixed_price: f64::from(offering.fixed_price().unwrap()),
                recurring_hourly: hourly(
                    offering
                        .recurring_charges()
                        .iter()
                        .filter_map(|charge| charge.amount())
                        .collect(),
                    offering.usage_price().map(f64::from),
                ),
            }
        }
        AwsService::Rds => {
            let output = aws_sdk_rds::Client::new(config)
                .describe_reserved_db_instances_offerings()
                .reserved_db_instances_offering_id(offering_id)
                .send()
                .await
                .unwrap();
            let offering = &output.reserved_db_instances_offerings()[0];
            assert_eq!(
                offering.reserved_db_instances_offering_id(),
                Some(offering_id)
            );
            listed_reservation!(offering)
        }
        AwsService::ElastiCache => {
            let output = aws_sdk_elasticache::Client::new(config)
                .describe_reserved_cache_nodes_offerings()
                .reserved_cache_nodes_offering_id(offering_id)
                .send()
                .await
                .unwrap();
            let offering = &output.reserved_cache_nodes_offerings()[0];
            assert_eq!(
                offering.reserved_cache_nodes_offering_id(),
                Some(offering_id)
            );
            listed_reservation!(offering)
        }
        AwsService::MemoryDb => {
            let output = aws_sdk_memorydb::Client::new(config)
                .describe_reserved_nodes_offerings()
                .reserved_nodes_offering_id(offering_id)
                .send()
                .await
                .unwrap();
            let offering = &output.reserved_nodes_offerings()[0];
            assert_eq!(offering.reserved_nodes_offering_id(), Some(offering_id));
            Listed {
                fixed_price: offering.fixed_price(),
                recurring_hourly: hourly(
                    offering
                        .recurring_charges()
                        .iter()
                        .map(|charge| charge.recurring_charge_amount())
                        .collect(),
                    None,
                ),
            }
        }
        AwsService::OpenSearch => {
            let output = aws_sdk_opensearch::Client::new(config)
                .describe_reserved_instance_offerings()
                .reserved_instance_offering_id(offering_id)
                .send()
                .await
                .unwrap();
            let offering = &output.reserved_instance_offerings()[0];
            assert_eq!(offering.reserved_instance_offering_id(), Some(offering_id));
            listed_reservation!(offering)
        }
        AwsService::Redshift => {
            let output = aws_sdk_redshift::Client::new(config)
                .describe_reserved_node_offerings()
                .reserved_node_offering_id(offering_id)
                .send()
                .await
                .unwrap();
            let offering = &output.reserved_node_offerings()[0];
            assert_eq!(offering.reserved_node_offering_id(), Some(offering_id));
            listed_reservation!(offering)
        }
        AwsService::SavingsPlans => {
            let output = aws_sdk_savingsplans::Client::new(config)
                .describe_savings_plans_offerings()
                .offering_ids(offering_id)
                .send()
                .await
                .unwrap();
            let offering = &output.search_results()[0];
            assert_eq!(offering.offering_id(), Some(offering_id));
            let commitment: f64 = spec
                .details
                .hourly_commitment
                .as_deref()
                .unwrap()
                .parse()
                .unwrap();
            let hours = offering.duration_seconds() as f64 / 3600.0;
            let (fixed_price, recurring_hourly) = match offering.payment_option().unwrap().as_str()
            {
                "All Upfront" => (commitment * hours, 0.0),
                "Partial Upfront" => (commitment * hours / 2.0, commitment / 2.0),
                "No Upfront" => (0.0, commitment),
                other => panic!("unexpected payment option {other}"),
            };
            Listed {
                fixed_price,
                recurring_hourly,
            }
        }
    }
}

/// Every payment option of `spec`'s service, so each way of paying is priced once.
fn each_payment(spec: &PurchaseSpec) -> Vec<PurchaseSpec> {
    ["all-upfront", "partial-upfront", "no-upfront"]
        .into_iter()
        .map(|payment| PurchaseSpec {
            payment: payment.to_owned(),
            ..spec.clone()
        })
        .collect()
}

pub async fn a_quote_is_the_listed_price_of_the_matched_offering(service: AwsService) {
    let fixture = start().await;
    let config = sdk_config(&fixture.handle);
    for spec in each_payment(&spec(service, "quote")) {
        let quote: Quote = fixture.purchaser.quote(&spec).await.unwrap();
        assert_eq!(
            quote.offering_id,
            fixture.purchaser.resolve_offering(&spec).await.unwrap(),
            "the quote prices the offering that is bought"
        );
        let read = listed(&config, &spec, &quote.offering_id).await;
        assert_close(quote.fixed_price, read.fixed_price, "fixed price");
        assert_close(
            quote.recurring_hourly,
            read.recurring_hourly,
            "recurring hourly",
        );
        assert_eq!(quote.currency, "USD");
        assert_eq!(quote.count, spec.count);
        assert_eq!(quote.term_months, spec.term_years * 12);
        assert_close(
            quote.upfront(),
            quote.fixed_price * f64::from(spec.count),
            "upfront",
        );
        assert!(quote.total_commitment() > 0.0, "{quote:?}");
    }
}

pub async fn a_raised_list_price_shows_in_a_new_quote_and_is_a_price_rise(service: AwsService) {
    let fixture = start().await;
    let spec = spec(service, "price-rise");
    let before = fixture.purchaser.quote(&spec).await.unwrap();
    let raised = before.fixed_price + 100.0;
    fixture
        .handle
        .set_price(
            PriceUpdate::new(sandbox_service(service.name()), before.offering_id.clone())
                .with_fixed_price(raised),
        )
        .await
        .unwrap();
    let after = fixture.purchaser.quote(&spec).await.unwrap();
    assert_eq!(after.offering_id, before.offering_id);
    if service == AwsService::SavingsPlans {
        // The buyer chooses a plan's commitment: no list price moves its quote.
        assert_eq!(after, before);
        assert_eq!(before.price_rise(&after, 0.01), None);
        return;
    }
    assert_close(after.fixed_price, raised, "raised fixed price");
    assert_close(
        after.recurring_hourly,
        before.recurring_hourly,
        "recurring hourly",
    );
    let problem = before
        .price_rise(&after, 0.01)
        .expect("a rise of 100 is beyond 1 %");
    assert!(
        problem.starts_with("price moved since approval: quoted fixed_price")
            && !problem.contains("recurring_hourly"),
        "{problem}"
    );
    assert_eq!(
        after.price_rise(&before, 0.01),
        None,
        "a lower price is never refused"
    );
}
