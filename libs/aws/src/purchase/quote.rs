//! What a purchase costs, priced from the offering the look-up matched (docs/design/
//! DOMAIN.md "Quotes, dry run and spend limits"): an approver sees the price AWS lists,
//! never one a requester typed, and the executor refuses a purchase whose price rose
//! since the approval.
//!
//! Money is `f64`, as the SDKs and the sandbox give it: the amounts are list prices
//! with a few decimals, compared with a tolerance, never summed into a ledger here.

use serde::{Deserialize, Serialize};

use super::support::{ONE_YEAR_SECONDS, Payment, count_of};
use super::{PurchaseError, PurchaseSpec};
use crate::error::AwsFailure;

/// Hours in a month of a quote: AWS's own convention (8 760 hours a year / 12), so that
/// `monthly × term_months` is exactly the recurring charges of the term.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// The currency of an offering whose API names none (ElastiCache, MemoryDB): AWS lists
/// reservation prices in USD.
pub const DEFAULT_CURRENCY: &str = "USD";
/// Seconds in a month of a term, as the reservation APIs count terms (a year / 12).
const SECONDS_PER_MONTH: i64 = ONE_YEAR_SECONDS / 12;
/// Seconds in an hour of a Savings Plan's term.
const SECONDS_PER_HOUR: f64 = 3_600.0;
/// Relative slack of [`Quote::price_rise`]: a price computed from the same list price in
/// two places may differ in its last bits, which must never read as a rise.
const FLOAT_SLACK: f64 = 1e-9;

/// The price of one item: the offering it buys, the per-unit prices AWS lists for it,
/// and how many units for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub offering_id: String,
    /// ISO 4217 code as the offering API reports it, [`DEFAULT_CURRENCY`] where the API
    /// has no currency field.
    pub currency: String,
    /// The upfront price of one unit (for a Savings Plan: of one unit of the hourly
    /// commitment).
    pub fixed_price: f64,
    /// The recurring price of one unit per hour.
    pub recurring_hourly: f64,
    /// Instances or nodes; for a Savings Plan the multiplier of the hourly commitment.
    pub count: u32,
    pub term_months: u32,
}

impl Quote {
    /// Returns what the purchase costs upfront: `fixed_price × count`.
    pub fn upfront(&self) -> f64 {
        self.fixed_price * f64::from(self.count)
    }

    /// Returns what the purchase costs per month after the upfront payment:
    /// `recurring_hourly × count × 730`.
    pub fn monthly(&self) -> f64 {
        self.recurring_hourly * f64::from(self.count) * HOURS_PER_MONTH
    }

    /// Returns everything the purchase commits to over its term:
    /// `upfront + monthly × term_months`.
    pub fn total_commitment(&self) -> f64 {
        self.upfront() + self.monthly() * f64::from(self.term_months)
    }

    /// Returns the problem to store when `now` (the same offering priced again) costs
    /// more than this quote allows: "price moved since approval: quoted X, now Y",
    /// naming each per-unit price that rose by more than `tolerance` (a fraction: 0.01
    /// is 1 %), or a change of currency, which makes the prices incomparable. A rise of
    /// exactly `tolerance` is within it, and a price that went down is never a problem:
    /// the buyer pays less than approved. A negative or non-finite tolerance counts as 0.
    pub fn price_rise(&self, now: &Quote, tolerance: f64) -> Option<String> {
        let tolerance = if tolerance.is_finite() && tolerance > 0.0 {
            tolerance
        } else {
            0.0
        };
        if !self
            .currency
            .trim()
            .eq_ignore_ascii_case(now.currency.trim())
        {
            return Some(format!(
                "price moved since approval: quoted in {}, now in {}",
                crate::error::scrub(&self.currency),
                crate::error::scrub(&now.currency)
            ));
        }
        let moved: Vec<String> = [
            ("fixed_price", self.fixed_price, now.fixed_price),
            (
                "recurring_hourly",
                self.recurring_hourly,
                now.recurring_hourly,
            ),
        ]
        .into_iter()
        .filter(|(_, quoted, current)| rose_beyond(*quoted, *current, tolerance))
        .map(|(field, quoted, current)| {
            format!(
                "quoted {field} {} {currency}, now {} {currency}",
                amount(quoted),
                amount(current),
                currency = crate::error::scrub(&self.currency)
            )
        })
        .collect();
        if moved.is_empty() {
            None
        } else {
            Some(format!("price moved since approval: {}", moved.join("; ")))
        }
    }
}

/// True when `current` is above `quoted` by more than `tolerance` of it and more than
/// float noise: from a quoted 0 (no upfront), any real rise is beyond every tolerance.
fn rose_beyond(quoted: f64, current: f64, tolerance: f64) -> bool {
    let allowed = quoted * (1.0 + tolerance);
    current > allowed + allowed.abs().max(1.0) * FLOAT_SLACK
}

/// Writes an amount with 2 to 4 decimals: cents always, fractions of a cent (hourly
/// prices) when there are any.
fn amount(value: f64) -> String {
    let mut text = format!("{value:.4}");
    while text.ends_with('0') && text.split_once('.').is_some_and(|(_, f)| f.len() > 2) {
        text.pop();
    }
    text
}

/// One recurring charge as a reservation offering API reports it.
pub(super) struct Charge<'a> {
    pub amount: Option<f64>,
    pub frequency: Option<&'a str>,
}

/// The price fields of one reservation offering (EC2, RDS, ElastiCache, MemoryDB,
/// OpenSearch, Redshift) as its API reports them, read into a [`Quote`] by
/// [`Listed::quote`], the one place that decides what they mean.
pub(super) struct Listed<'a> {
    /// The describe call, named in a malformed-reply error.
    pub operation: &'static str,
    pub offering_id: String,
    pub currency: Option<&'a str>,
    pub fixed_price: Option<f64>,
    pub usage_price: Option<f64>,
    pub charges: Vec<Charge<'a>>,
    pub duration_seconds: i64,
}

impl Listed<'_> {
    /// Returns the quote of `spec.count` units: the fixed price, the sum of the hourly
    /// recurring charges (or the hourly usage price when there is no recurring charge:
    /// older offerings bill usage that way), the currency ([`DEFAULT_CURRENCY`] when
    /// absent) and the term. A price missing or negative is a malformed reply (the
    /// executor never buys what it cannot price); a charge that is not hourly cannot be
    /// priced per hour and makes the offering [`PurchaseError::Invalid`].
    pub(super) fn quote(self, spec: &PurchaseSpec) -> Result<Quote, PurchaseError> {
        let fixed_price = self
            .fixed_price
            .ok_or_else(|| malformed(self.operation, "fixed price"))
            .and_then(|price| checked(self.operation, "fixed price", price))?;
        let recurring_hourly = self.recurring_hourly(spec)?;
        Ok(Quote {
            offering_id: self.offering_id,
            currency: currency(self.currency),
            fixed_price,
            recurring_hourly,
            count: count_u32(spec)?,
            term_months: term_months(self.operation, self.duration_seconds)?,
        })
    }

    fn recurring_hourly(&self, spec: &PurchaseSpec) -> Result<f64, PurchaseError> {
        if self.charges.is_empty() {
            return checked(
                self.operation,
                "usage price",
                self.usage_price.unwrap_or(0.0),
            );
        }
        let mut hourly = 0.0;
        for charge in &self.charges {
            let frequency = charge.frequency.map(str::trim).unwrap_or_default();
            if !frequency.eq_ignore_ascii_case("Hourly") {
                return Err(PurchaseError::Invalid(format!(
                    "{} offering {} has a recurring charge billed {:?}, not hourly: it cannot \
                     be priced",
                    spec.service.name(),
                    crate::error::scrub(&self.offering_id),
                    crate::error::scrub(frequency)
                )));
            }
            let amount = charge
                .amount
                .ok_or_else(|| malformed(self.operation, "amount on every recurring charge"))?;
            hourly += checked(self.operation, "recurring charge", amount)?;
        }
        Ok(hourly)
    }
}

/// Returns the [`Listed`] prices of a reservation offering whose SDK type names them as
/// RDS, OpenSearch and Redshift do (`currency_code`, `fixed_price`, `usage_price`,
/// `recurring_charges` of `recurring_charge_amount` and `_frequency`): one reading of
/// those fields for types that share no trait.
macro_rules! listed_charges {
    ($operation:expr, $offering_id:expr, $offering:expr, $duration_seconds:expr) => {
        $crate::purchase::quote::Listed {
            operation: $operation,
            offering_id: $offering_id,
            currency: $offering.currency_code(),
            fixed_price: $offering.fixed_price(),
            usage_price: $offering.usage_price(),
            charges: $offering
                .recurring_charges()
                .iter()
                .map(|charge| $crate::purchase::quote::Charge {
                    amount: charge.recurring_charge_amount(),
                    frequency: charge.recurring_charge_frequency(),
                })
                .collect(),
            duration_seconds: $duration_seconds,
        }
    };
}
pub(super) use listed_charges;

/// Returns the quote of a Savings Plan of `spec` on the offering `offering_id` of
/// `duration_seconds`: the buyer chooses the commitment (`details.hourly_commitment`
/// per unit), so its price is that commitment over the term's hours, paid all upfront,
/// half upfront and half by the hour, or all by the hour.
pub(super) fn savings_plan(
    spec: &PurchaseSpec,
    offering_id: &str,
    currency_code: Option<&str>,
    duration_seconds: i64,
    payment: Payment,
    hourly_per_unit: f64,
) -> Result<Quote, PurchaseError> {
    const OPERATION: &str = "DescribeSavingsPlansOfferings";
    let term_months = term_months(OPERATION, duration_seconds)?;
    // Whole months, so whole hours: the cast is exact.
    let hours = duration_seconds as f64 / SECONDS_PER_HOUR;
    let (fixed_price, recurring_hourly) = match payment {
        Payment::All => (hourly_per_unit * hours, 0.0),
        Payment::Partial => (hourly_per_unit * hours / 2.0, hourly_per_unit / 2.0),
        Payment::No => (0.0, hourly_per_unit),
    };
    Ok(Quote {
        offering_id: offering_id.to_owned(),
        currency: currency(currency_code),
        fixed_price,
        recurring_hourly,
        count: count_u32(spec)?,
        term_months,
    })
}

/// Returns an EC2 price (the SDK reads it as `f32`) as the decimal AWS sent: through
/// its shortest text, so `1234.56` stays `1234.56` rather than `1234.5600585…`, and an
/// upfront sent as EC2's LimitPrice is never below the price AWS compares it with.
pub(super) fn widen(price: f32) -> f64 {
    price
        .to_string()
        .parse()
        .unwrap_or_else(|_| f64::from(price))
}

fn currency(code: Option<&str>) -> String {
    code.map(str::trim)
        .filter(|code| !code.is_empty())
        .map_or_else(|| DEFAULT_CURRENCY.to_owned(), str::to_ascii_uppercase)
}

fn count_u32(spec: &PurchaseSpec) -> Result<u32, PurchaseError> {
    count_of(spec)?;
    Ok(spec.count)
}

/// Returns the term of an offering of `duration_seconds` in months; a duration of no
/// whole month is a malformed reply (the look-up matched 1 or 3 years).
fn term_months(operation: &'static str, duration_seconds: i64) -> Result<u32, PurchaseError> {
    if duration_seconds <= 0 || duration_seconds % SECONDS_PER_MONTH != 0 {
        return Err(malformed(operation, "term of whole months"));
    }
    u32::try_from(duration_seconds / SECONDS_PER_MONTH)
        .map_err(|_| malformed(operation, "term of whole months"))
}

fn checked(operation: &'static str, what: &str, price: f64) -> Result<f64, PurchaseError> {
    if price.is_finite() && price >= 0.0 {
        Ok(price)
    } else {
        Err(malformed(operation, &format!("{what} of at least 0")))
    }
}

fn malformed(operation: &'static str, what: &str) -> PurchaseError {
    PurchaseError::LookupFailed(AwsFailure::malformed_reply(operation, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(fixed_price: f64, recurring_hourly: f64) -> Quote {
        Quote {
            offering_id: "offering-1".to_owned(),
            currency: "USD".to_owned(),
            fixed_price,
            recurring_hourly,
            count: 3,
            term_months: 12,
        }
    }

    #[test]
    fn upfront_monthly_and_total_follow_count_and_term() {
        let quoted = quote(100.0, 0.05);
        assert_eq!(quoted.upfront(), 300.0);
        assert!((quoted.monthly() - 109.5).abs() < 1e-9);
        assert!((quoted.total_commitment() - (300.0 + 109.5 * 12.0)).abs() < 1e-9);
        let three_years = Quote {
            term_months: 36,
            ..quote(0.0, 1.0)
        };
        assert_eq!(three_years.upfront(), 0.0);
        assert_eq!(three_years.total_commitment(), 3.0 * 730.0 * 36.0);
    }

    #[test]
    fn a_rise_of_exactly_the_tolerance_is_within_it() {
        let quoted = quote(100.0, 0.05);
        assert_eq!(quoted.price_rise(&quote(101.0, 0.0505), 0.01), None);
        assert_eq!(quoted.price_rise(&quote(100.0, 0.05), 0.0), None);
    }

    #[test]
    fn a_rise_above_the_tolerance_names_the_price_that_moved() {
        let quoted = quote(100.0, 0.05);
        let problem = quoted.price_rise(&quote(101.02, 0.05), 0.01).unwrap();
        assert_eq!(
            problem,
            "price moved since approval: quoted fixed_price 100.00 USD, now 101.02 USD"
        );
        let problem = quoted.price_rise(&quote(100.0, 0.0512), 0.01).unwrap();
        assert_eq!(
            problem,
            "price moved since approval: quoted recurring_hourly 0.05 USD, now 0.0512 USD"
        );
        let both = quoted.price_rise(&quote(120.0, 0.06), 0.01).unwrap();
        assert!(
            both.contains("fixed_price") && both.contains("recurring_hourly"),
            "{both}"
        );
    }

    #[test]
    fn a_price_from_zero_moves_and_a_lower_price_never_does() {
        let no_upfront = quote(0.0, 0.05);
        assert!(no_upfront.price_rise(&quote(0.01, 0.05), 0.5).is_some());
        let quoted = quote(100.0, 0.05);
        assert_eq!(quoted.price_rise(&quote(10.0, 0.0), 0.0), None);
        assert_eq!(quoted.price_rise(&quote(0.0, 0.01), 0.01), None);
    }

    #[test]
    fn a_change_of_currency_is_a_move_and_a_bad_tolerance_is_none() {
        let quoted = quote(100.0, 0.05);
        let other = Quote {
            currency: "CNY".to_owned(),
            ..quote(100.0, 0.05)
        };
        assert!(quoted.price_rise(&other, 0.01).unwrap().contains("CNY"));
        assert!(quoted.price_rise(&quote(100.5, 0.05), -1.0).is_some());
        assert!(quoted.price_rise(&quote(100.5, 0.05), f64::NAN).is_some());
    }

    #[test]
    fn amounts_show_cents_and_up_to_four_decimals() {
        assert_eq!(amount(1234.5), "1234.50");
        assert_eq!(amount(0.0123), "0.0123");
        assert_eq!(amount(0.01234), "0.0123");
        assert_eq!(amount(7.0), "7.00");
        assert_eq!(amount(0.125), "0.125");
    }

    #[test]
    fn an_ec2_price_keeps_the_decimal_aws_sent() {
        assert_eq!(widen(1234.56_f32), 1234.56);
        assert_eq!(widen(0.1_f32), 0.1);
        assert_eq!(widen(0.0_f32), 0.0);
    }
}
