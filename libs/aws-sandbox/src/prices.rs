//! Price overrides: `PUT /_sandbox/prices` changes one offering's list price from then
//! on, so a test can move a price between a quote and its purchase (price drift). The
//! catalogue keeps generating the list price; an override is laid over it wherever an
//! offering leaves the state (describe answers, purchases), so a purchase records the
//! price it was made at.

use serde::{Deserialize, Serialize};

use crate::behaviour::present;
use crate::catalogue::Offering;
use crate::error::{SandboxError, SandboxResult};
use crate::service::Service;

/// A change of one offering's list price, the body of `PUT /_sandbox/prices`: the prices
/// it names change, the others stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceUpdate {
    pub service: Service,
    pub offering_id: String,
    /// The upfront price of one unit, in USD.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub fixed_price: Option<f64>,
    /// The recurring charge of one unit per hour, in USD.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub recurring_hourly: Option<f64>,
}

impl PriceUpdate {
    /// Returns an update of the offering `offering_id` of `service` that changes nothing
    /// yet; name the prices with [`PriceUpdate::with_fixed_price`] and
    /// [`PriceUpdate::with_recurring_hourly`].
    pub fn new(service: Service, offering_id: impl Into<String>) -> PriceUpdate {
        PriceUpdate {
            service,
            offering_id: offering_id.into(),
            fixed_price: None,
            recurring_hourly: None,
        }
    }

    pub fn with_fixed_price(mut self, fixed_price: f64) -> PriceUpdate {
        self.fixed_price = Some(fixed_price);
        self
    }

    pub fn with_recurring_hourly(mut self, recurring_hourly: f64) -> PriceUpdate {
        self.recurring_hourly = Some(recurring_hourly);
        self
    }

    /// Checks that the update names at least one price and that every price it names is
    /// a finite, non-negative amount.
    pub fn validate(&self) -> SandboxResult<()> {
        validate_prices(self.fixed_price, self.recurring_hourly)
    }
}

/// Checks the prices of an update: at least one, since an update without a price would
/// change nothing, which is always a mistake in the test that sends it; each a finite
/// amount of at least 0.
pub(crate) fn validate_prices(
    fixed_price: Option<f64>,
    recurring_hourly: Option<f64>,
) -> SandboxResult<()> {
    if fixed_price.is_none() && recurring_hourly.is_none() {
        return Err(SandboxError::InvalidPrice(
            "name fixed_price, recurring_hourly or both".to_string(),
        ));
    }
    for (name, price_opt) in [
        ("fixed_price", fixed_price),
        ("recurring_hourly", recurring_hourly),
    ] {
        let Some(price) = price_opt else {
            continue;
        };
        if !price.is_finite() || price < 0.0 {
            return Err(SandboxError::InvalidPrice(format!(
                "{name} must be a finite amount of at least 0, not {price}"
            )));
        }
    }
    Ok(())
}

/// The prices an offering has while overridden; `None` keeps the catalogue's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PriceOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurring_hourly: Option<f64>,
}

impl PriceOverride {
    /// Returns this override with the prices `update` names replaced, so two updates
    /// naming one price each add up.
    pub fn merged(self, update: &PriceUpdate) -> PriceOverride {
        PriceOverride {
            fixed_price: update.fixed_price.or(self.fixed_price),
            recurring_hourly: update.recurring_hourly.or(self.recurring_hourly),
        }
    }

    /// Lays the override over an offering's catalogue prices.
    pub fn apply(&self, offering: &mut Offering) {
        if let Some(fixed_price) = self.fixed_price {
            offering.fixed_price = fixed_price;
        }
        if let Some(recurring_hourly) = self.recurring_hourly {
            offering.recurring_hourly = recurring_hourly;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_needs_a_finite_non_negative_price() {
        let offering = PriceUpdate::new(Service::Rds, "offering");
        assert!(offering.validate().is_err());
        assert!(offering.clone().with_fixed_price(-1.0).validate().is_err());
        assert!(
            offering
                .clone()
                .with_recurring_hourly(f64::NAN)
                .validate()
                .is_err()
        );
        assert!(
            offering
                .clone()
                .with_fixed_price(f64::INFINITY)
                .validate()
                .is_err()
        );
        assert!(offering.clone().with_fixed_price(0.0).validate().is_ok());
        assert!(offering.with_recurring_hourly(0.25).validate().is_ok());
    }

    #[test]
    fn unknown_fields_wrong_types_and_nulls_are_refused() {
        for body in [
            r#"{"service": "rds", "offering_id": "x", "fixed_price": 1, "colour": "blue"}"#,
            r#"{"service": "rds", "offering_id": "x", "fixed_price": "1"}"#,
            r#"{"service": "rds", "offering_id": "x", "fixed_price": null}"#,
            r#"{"service": "rds", "fixed_price": 1}"#,
        ] {
            assert!(
                serde_json::from_str::<PriceUpdate>(body).is_err(),
                "{body} was accepted"
            );
        }
        let update: PriceUpdate =
            serde_json::from_str(r#"{"service": "ec2", "offering_id": "x", "fixed_price": 12}"#)
                .unwrap();
        assert_eq!(
            update,
            PriceUpdate::new(Service::Ec2, "x").with_fixed_price(12.0)
        );
    }

    #[test]
    fn updates_merge_and_override_only_the_prices_they_name() {
        let first = PriceUpdate::new(Service::Ec2, "x").with_fixed_price(100.0);
        let second = PriceUpdate::new(Service::Ec2, "x").with_recurring_hourly(0.5);
        let merged = PriceOverride::default().merged(&first).merged(&second);
        assert_eq!(merged.fixed_price, Some(100.0));
        assert_eq!(merged.recurring_hourly, Some(0.5));
        let only_fixed = PriceOverride::default().merged(&first);
        let mut offering = crate::catalogue::generate(
            Service::Ec2,
            "us-east-1",
            &crate::catalogue::OfferingQuery::default(),
        )
        .remove(0);
        let recurring = offering.recurring_hourly;
        only_fixed.apply(&mut offering);
        assert_eq!(offering.fixed_price, 100.0);
        assert_eq!(offering.recurring_hourly, recurring);
    }
}
