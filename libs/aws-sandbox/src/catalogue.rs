//! A deterministic catalogue of offerings. An offering's id is a hash of what it is
//! (service, region, type, product, duration, payment, class, multi-AZ, and the
//! availability zone of a zonal EC2 offering), so the same query always yields the same
//! ids, across restarts and across sandboxes, and any well-formed instance or node type
//! can be described and bought.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::service::Service;

/// One year, in seconds, as AWS counts terms.
pub const ONE_YEAR_SECONDS: i64 = 31_536_000;
/// Three years, in seconds.
pub const THREE_YEARS_SECONDS: i64 = 94_608_000;

const DURATIONS: [i64; 2] = [ONE_YEAR_SECONDS, THREE_YEARS_SECONDS];
const PAYMENTS_SPACED: [&str; 3] = ["No Upfront", "Partial Upfront", "All Upfront"];
const PAYMENTS_OPENSEARCH: [&str; 3] = ["NO_UPFRONT", "PARTIAL_UPFRONT", "ALL_UPFRONT"];

/// One offering, with the attributes every service's describe call reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offering {
    pub service: Service,
    pub offering_id: String,
    pub region: String,
    /// Instance or node type; for Savings Plans the plan type.
    pub instance_type: String,
    /// Product description or engine; empty where the service has none.
    pub product: String,
    pub duration_seconds: i64,
    /// Payment option in the service's own spelling (`All Upfront`, `ALL_UPFRONT`).
    pub payment: String,
    /// EC2 offering class (`standard`, `convertible`); `Regular` for Redshift; empty
    /// elsewhere.
    pub class: String,
    pub multi_az: bool,
    /// EC2 only: the availability zone of a zonal offering (scope `Availability
    /// Zone`); `None` for a regional one (scope `Region`) and for other services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    pub fixed_price: f64,
    pub usage_price: f64,
    pub recurring_hourly: f64,
    pub currency: String,
}

impl Offering {
    /// Returns the product types a Savings Plan of this plan type covers.
    pub fn savings_plan_product_types(&self) -> Vec<&'static str> {
        match self.instance_type.as_str() {
            "Compute" => vec!["EC2", "Fargate", "Lambda"],
            "EC2Instance" => vec!["EC2"],
            _ => vec!["SageMaker"],
        }
    }

    /// Returns what one hour of the term costs all told: the recurring charge plus the
    /// fixed price spread over the term's hours. A Savings Plan's usage rate is this, so
    /// its rates follow the offering's price (and its overrides) like other services'
    /// prices do.
    pub fn effective_hourly(&self) -> f64 {
        let hours = (self.duration_seconds / 3600) as f64;
        let spread = if hours > 0.0 {
            self.fixed_price / hours
        } else {
            0.0
        };
        round_cents(self.recurring_hourly + spread)
    }
}

/// What a describe call asks for; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct OfferingQuery {
    pub instance_type: Option<String>,
    pub product: Option<String>,
    pub durations: Option<Vec<i64>>,
    pub payment: Option<String>,
    pub class: Option<String>,
    pub multi_az: Option<bool>,
    /// EC2 only: zonal offerings in this availability zone of the region instead of
    /// regional ones; a zone of another region (or another service) has no offerings.
    pub availability_zone: Option<String>,
}

/// Returns every offering of `service` in `region` matching `query`, in a stable order.
pub fn generate(service: Service, region: &str, query: &OfferingQuery) -> Vec<Offering> {
    let dimensions = Dimensions::of(service);
    let types = match &query.instance_type {
        Some(instance_type) if is_well_formed_type(service, instance_type) => {
            vec![instance_type.clone()]
        }
        Some(_) => return Vec::new(),
        None => dimensions.types.iter().map(|t| t.to_string()).collect(),
    };
    // Services without a product dimension ignore a product in the query.
    let has_products = dimensions
        .products
        .iter()
        .any(|product| !product.is_empty());
    let products = match &query.product {
        Some(product) if has_products && !product.is_empty() => vec![product.clone()],
        _ => dimensions.products_owned(),
    };
    let payments: Vec<String> = match &query.payment {
        Some(payment) => match canonical_payment(service, payment) {
            Some(canonical) => vec![canonical.to_string()],
            None => return Vec::new(),
        },
        None => dimensions.payments.iter().map(|p| p.to_string()).collect(),
    };
    let classes: Vec<String> = match &query.class {
        Some(class) => match dimensions
            .classes
            .iter()
            .find(|known| known.eq_ignore_ascii_case(class))
        {
            Some(known) => vec![known.to_string()],
            None => return Vec::new(),
        },
        None => dimensions.classes.iter().map(|c| c.to_string()).collect(),
    };
    let durations: Vec<i64> = match &query.durations {
        Some(wanted) => DURATIONS
            .into_iter()
            .filter(|duration| wanted.contains(duration))
            .collect(),
        None => DURATIONS.to_vec(),
    };
    let availability_zone = match &query.availability_zone {
        None => None,
        Some(zone) if service == Service::Ec2 && is_zone_of(region, zone) => Some(zone.as_str()),
        Some(_) => return Vec::new(),
    };
    let multi_azs: Vec<bool> = match (service, query.multi_az) {
        (Service::Rds, Some(multi_az)) => vec![multi_az],
        (Service::Rds, None) => vec![false, true],
        _ => vec![false],
    };
    // Savings Plans are bought through a global endpoint: their offerings do not vary
    // by the region a client happens to sign for.
    let offering_region = if service == Service::Savingsplans {
        ""
    } else {
        region
    };

    let mut offerings = Vec::new();
    for instance_type in &types {
        for product in &products {
            for class in &classes {
                for multi_az in &multi_azs {
                    for duration_seconds in &durations {
                        for payment in &payments {
                            offerings.push(build(
                                service,
                                offering_region,
                                instance_type,
                                product,
                                *duration_seconds,
                                payment,
                                class,
                                *multi_az,
                                availability_zone,
                            ));
                        }
                    }
                }
            }
        }
    }
    offerings
}

#[allow(clippy::too_many_arguments)]
fn build(
    service: Service,
    region: &str,
    instance_type: &str,
    product: &str,
    duration_seconds: i64,
    payment: &str,
    class: &str,
    multi_az: bool,
    availability_zone: Option<&str>,
) -> Offering {
    let mut identity = format!(
        "{service}|{region}|{instance_type}|{product}|{duration_seconds}|{payment}|{class}|{multi_az}"
    );
    // Only a zonal offering hashes its zone, so regional ids stay what they were.
    if let Some(zone) = availability_zone {
        identity.push('|');
        identity.push_str(zone);
    }
    let digest = Sha256::digest(identity.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let offering_id = uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string();

    // A list price per hour between 0.01 and 2.56, stable per type, with the usual
    // shape: longer terms and more upfront are cheaper per hour.
    let type_digest = Sha256::digest(format!("{service}|{instance_type}").as_bytes());
    let base_hourly = (f64::from(type_digest[0]) + 1.0) / 100.0;
    let term_discount = if duration_seconds == THREE_YEARS_SECONDS {
        0.45
    } else {
        0.65
    };
    let az_factor = if multi_az { 2.0 } else { 1.0 };
    let hourly = round_cents(base_hourly * term_discount * az_factor);
    let hours = (duration_seconds / 3600) as f64;
    let lowered = payment.to_ascii_lowercase().replace('_', " ");
    let (fixed_price, recurring_hourly) = if lowered.starts_with("all") {
        (round_cents(hourly * hours * 0.95), 0.0)
    } else if lowered.starts_with("partial") {
        (round_cents(hourly * hours * 0.5), round_cents(hourly * 0.5))
    } else {
        (0.0, hourly)
    };

    Offering {
        service,
        offering_id,
        region: region.to_string(),
        instance_type: instance_type.to_string(),
        product: product.to_string(),
        duration_seconds,
        payment: payment.to_string(),
        class: class.to_string(),
        multi_az,
        availability_zone: availability_zone.map(str::to_string),
        fixed_price,
        usage_price: 0.0,
        recurring_hourly,
        currency: "USD".to_string(),
    }
}

fn round_cents(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

/// Returns the service's spelling of a payment option given in any common spelling
/// (`All Upfront`, `ALL_UPFRONT`, `all-upfront`), or `None` if it is not one.
pub fn canonical_payment(service: Service, payment: &str) -> Option<&'static str> {
    let normalized: String = payment
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let index = match normalized.as_str() {
        "noupfront" => 0,
        "partialupfront" => 1,
        "allupfront" => 2,
        _ => return None,
    };
    Some(match service {
        Service::Opensearch => PAYMENTS_OPENSEARCH[index],
        _ => PAYMENTS_SPACED[index],
    })
}

/// Returns the duration in seconds of a duration given in years (`1`, `3`) or seconds.
pub fn normalize_duration(value: i64) -> i64 {
    if value > 0 && value <= 10 {
        value * ONE_YEAR_SECONDS
    } else {
        value
    }
}

/// Whether `zone` is an availability zone of `region`: the region's name followed by
/// one to three lowercase letters (`us-east-1a`).
pub fn is_zone_of(region: &str, zone: &str) -> bool {
    zone.strip_prefix(region).is_some_and(|suffix| {
        (1..=3).contains(&suffix.len()) && suffix.chars().all(|c| c.is_ascii_lowercase())
    })
}

/// Whether `instance_type` looks like a type of `service` (e.g. `m5.large`,
/// `db.r5.large`, `r6g.large.search`): only such types are in the catalogue.
pub fn is_well_formed_type(service: Service, instance_type: &str) -> bool {
    if service == Service::Savingsplans {
        return ["Compute", "EC2Instance", "SageMaker"].contains(&instance_type);
    }
    let parts: Vec<&str> = instance_type.split('.').collect();
    let shape_ok = parts.len() >= 2
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if !shape_ok {
        return false;
    }
    match service {
        Service::Rds | Service::Memorydb => parts[0] == "db" && parts.len() == 3,
        Service::Elasticache => parts[0] == "cache" && parts.len() == 3,
        Service::Opensearch => parts.last() == Some(&"search") && parts.len() == 3,
        _ => parts.len() == 2,
    }
}

struct Dimensions {
    types: &'static [&'static str],
    products: &'static [&'static str],
    payments: &'static [&'static str],
    classes: &'static [&'static str],
}

impl Dimensions {
    fn of(service: Service) -> Dimensions {
        match service {
            Service::Ec2 => Dimensions {
                types: &[
                    "t3.micro",
                    "t3.large",
                    "m5.large",
                    "m5.xlarge",
                    "c5.large",
                    "r5.large",
                ],
                products: &["Linux/UNIX", "Windows"],
                payments: &PAYMENTS_SPACED,
                classes: &["standard", "convertible"],
            },
            Service::Rds => Dimensions {
                types: &["db.t3.micro", "db.m5.large", "db.r5.large"],
                products: &["mysql", "postgresql"],
                payments: &PAYMENTS_SPACED,
                classes: &[""],
            },
            Service::Elasticache => Dimensions {
                types: &["cache.t3.micro", "cache.m5.large", "cache.r6g.large"],
                products: &["redis", "memcached", "valkey"],
                payments: &PAYMENTS_SPACED,
                classes: &[""],
            },
            Service::Memorydb => Dimensions {
                types: &["db.t4g.small", "db.r6g.large", "db.r7g.large"],
                products: &[""],
                payments: &PAYMENTS_SPACED,
                classes: &[""],
            },
            Service::Opensearch => Dimensions {
                types: &[
                    "t3.medium.search",
                    "m6g.large.search",
                    "r6g.large.search",
                    "r6g.xlarge.search",
                ],
                products: &[""],
                payments: &PAYMENTS_OPENSEARCH,
                classes: &[""],
            },
            Service::Redshift => Dimensions {
                types: &[
                    "dc2.large",
                    "dc2.8xlarge",
                    "ra3.xlplus",
                    "ra3.4xlarge",
                    "ra3.16xlarge",
                ],
                products: &[""],
                payments: &PAYMENTS_SPACED,
                classes: &["Regular"],
            },
            Service::Savingsplans => Dimensions {
                types: &["Compute", "EC2Instance", "SageMaker"],
                products: &[""],
                payments: &PAYMENTS_SPACED,
                classes: &[""],
            },
            Service::Sts | Service::Organizations | Service::Costexplorer => Dimensions {
                types: &[],
                products: &[],
                payments: &[],
                classes: &[],
            },
        }
    }

    fn products_owned(&self) -> Vec<String> {
        self.products.iter().map(|p| p.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_query_yields_the_same_ids() {
        let query = OfferingQuery {
            instance_type: Some("m5.large".into()),
            ..Default::default()
        };
        let first = generate(Service::Ec2, "us-east-1", &query);
        let second = generate(Service::Ec2, "us-east-1", &query);
        assert_eq!(first, second);
        assert_eq!(first.len(), 2 * 2 * 2 * 3);
    }

    #[test]
    fn a_narrower_query_yields_a_subset_with_the_same_ids() {
        let wide = generate(Service::Rds, "eu-west-1", &OfferingQuery::default());
        let narrow = generate(
            Service::Rds,
            "eu-west-1",
            &OfferingQuery {
                instance_type: Some("db.r5.large".into()),
                product: Some("postgresql".into()),
                durations: Some(vec![ONE_YEAR_SECONDS]),
                payment: Some("ALL_UPFRONT".into()),
                multi_az: Some(false),
                ..Default::default()
            },
        );
        assert_eq!(narrow.len(), 1);
        assert!(wide.contains(&narrow[0]));
        assert_eq!(narrow[0].payment, "All Upfront");
    }

    #[test]
    fn regions_have_distinct_ids() {
        let query = OfferingQuery::default();
        let east = generate(Service::Redshift, "us-east-1", &query);
        let west = generate(Service::Redshift, "us-west-2", &query);
        assert_ne!(east[0].offering_id, west[0].offering_id);
    }

    #[test]
    fn regional_ids_do_not_hash_a_zone() {
        let query = OfferingQuery {
            instance_type: Some("m5.large".into()),
            product: Some("Linux/UNIX".into()),
            durations: Some(vec![ONE_YEAR_SECONDS]),
            payment: Some("All Upfront".into()),
            class: Some("standard".into()),
            ..Default::default()
        };
        let regional = generate(Service::Ec2, "us-east-1", &query);
        assert_eq!(regional.len(), 1);
        // The id this offering had before zonal offerings existed.
        assert_eq!(
            regional[0].offering_id,
            "87bc1ec6-ac75-4053-9cfc-89b357a689c5"
        );
        assert_eq!(regional[0].availability_zone, None);
    }

    #[test]
    fn zonal_offerings_have_their_own_ids_per_zone() {
        let zonal = |zone: &str| {
            generate(
                Service::Ec2,
                "us-east-1",
                &OfferingQuery {
                    instance_type: Some("m5.large".into()),
                    availability_zone: Some(zone.into()),
                    ..Default::default()
                },
            )
        };
        let regional = generate(
            Service::Ec2,
            "us-east-1",
            &OfferingQuery {
                instance_type: Some("m5.large".into()),
                ..Default::default()
            },
        );
        let zone_a = zonal("us-east-1a");
        let zone_b = zonal("us-east-1b");
        assert_eq!(zone_a.len(), regional.len());
        assert_eq!(zone_a, zonal("us-east-1a"));
        assert_eq!(zone_a[0].availability_zone.as_deref(), Some("us-east-1a"));
        assert_ne!(zone_a[0].offering_id, regional[0].offering_id);
        assert_ne!(zone_a[0].offering_id, zone_b[0].offering_id);
        assert!(zonal("eu-west-1a").is_empty());
        assert!(zonal("us-east-1").is_empty());
        assert!(zonal("us-east-1abcd").is_empty());
        assert!(zonal("us-east-1A").is_empty());
        assert!(
            generate(
                Service::Rds,
                "us-east-1",
                &OfferingQuery {
                    availability_zone: Some("us-east-1a".into()),
                    ..Default::default()
                },
            )
            .is_empty()
        );
    }

    #[test]
    fn an_offering_saved_without_a_zone_loads_as_regional() {
        let offering = generate(Service::Ec2, "us-east-1", &OfferingQuery::default()).remove(0);
        let saved = serde_json::to_value(offering).unwrap();
        assert!(saved.get("availability_zone").is_none());
        let loaded: Offering = serde_json::from_value(saved).unwrap();
        assert_eq!(loaded.availability_zone, None);
    }

    #[test]
    fn ill_formed_types_have_no_offerings() {
        let query = OfferingQuery {
            instance_type: Some("not a type".into()),
            ..Default::default()
        };
        assert!(generate(Service::Ec2, "us-east-1", &query).is_empty());
        assert!(is_well_formed_type(Service::Ec2, "x2iedn.32xlarge"));
        assert!(is_well_formed_type(
            Service::Opensearch,
            "or1.medium.search"
        ));
        assert!(!is_well_formed_type(Service::Rds, "r5.large"));
    }

    #[test]
    fn every_offering_costs_something_and_more_upfront_costs_less_per_hour() {
        for service in [
            Service::Ec2,
            Service::Savingsplans,
            Service::Rds,
            Service::Elasticache,
            Service::Memorydb,
            Service::Opensearch,
            Service::Redshift,
        ] {
            let offerings = generate(service, "us-east-1", &OfferingQuery::default());
            assert!(!offerings.is_empty(), "{service}");
            for offering in &offerings {
                assert!(offering.effective_hourly() > 0.0, "{offering:?}");
                assert_eq!(offering.currency, "USD");
            }
        }
        let plan = |payment: &str| {
            generate(
                Service::Savingsplans,
                "",
                &OfferingQuery {
                    instance_type: Some("Compute".into()),
                    durations: Some(vec![ONE_YEAR_SECONDS]),
                    payment: Some(payment.into()),
                    ..Default::default()
                },
            )
            .remove(0)
            .effective_hourly()
        };
        assert!(plan("All Upfront") < plan("No Upfront"));
    }
}
