//! What an execution costs: the sums of its items' quotes (docs/design/DOMAIN.md
//! "Quotes, dry run and spend limits"), on children and roots.

use cudly_aws::purchase::{DEFAULT_CURRENCY, Quote};
use cudly_common::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// The sums of a set of item quotes, in their one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteTotal {
    pub currency: String,
    pub upfront: f64,
    pub monthly: f64,
    pub total_commitment: f64,
}

impl QuoteTotal {
    /// Returns the sums of `quotes`. Quotes in different currencies cannot be added up
    /// or held against a limit: 422.
    pub fn of<'a>(quotes: impl IntoIterator<Item = &'a Quote>) -> Result<Self, ApiError> {
        let mut total = QuoteTotal {
            currency: String::new(),
            upfront: 0.0,
            monthly: 0.0,
            total_commitment: 0.0,
        };
        for quote in quotes {
            if total.currency.is_empty() {
                total.currency = quote.currency.clone();
            } else if total.currency != quote.currency {
                return Err(ApiError::new(
                    ErrorCode::Unprocessable,
                    format!(
                        "the items are priced in {} and {}: one execution buys in one currency",
                        total.currency, quote.currency
                    ),
                ));
            }
            total.upfront += quote.upfront();
            total.monthly += quote.monthly();
            total.total_commitment += quote.total_commitment();
        }
        if total.currency.is_empty() {
            total.currency = DEFAULT_CURRENCY.to_owned();
        }
        Ok(total)
    }

    /// Returns the sums of several totals (a root's children).
    pub fn sum<'a>(totals: impl IntoIterator<Item = &'a QuoteTotal>) -> Result<Self, ApiError> {
        let mut sum: Option<QuoteTotal> = None;
        for total in totals {
            sum = Some(match sum {
                None => total.clone(),
                Some(so_far) if so_far.currency != total.currency => {
                    return Err(ApiError::new(
                        ErrorCode::Unprocessable,
                        format!(
                            "the items are priced in {} and {}: one execution buys in one currency",
                            so_far.currency, total.currency
                        ),
                    ));
                }
                Some(so_far) => QuoteTotal {
                    upfront: so_far.upfront + total.upfront,
                    monthly: so_far.monthly + total.monthly,
                    total_commitment: so_far.total_commitment + total.total_commitment,
                    currency: so_far.currency,
                },
            });
        }
        Ok(sum.unwrap_or_else(|| QuoteTotal::of([]).expect("no quotes, one currency")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(currency: &str, fixed_price: f64, count: u32) -> Quote {
        Quote {
            offering_id: "o".to_owned(),
            currency: currency.to_owned(),
            fixed_price,
            recurring_hourly: 0.01,
            count,
            term_months: 12,
        }
    }

    #[test]
    fn totals_add_every_item_and_children_add_up_to_the_root() {
        let a = QuoteTotal::of(&[quote("USD", 100.0, 2)]).unwrap();
        let b = QuoteTotal::of(&[quote("USD", 50.0, 1), quote("USD", 10.0, 3)]).unwrap();
        assert_eq!(a.upfront, 200.0);
        assert_eq!(b.upfront, 80.0);
        let root = QuoteTotal::sum([&a, &b]).unwrap();
        assert_eq!(root.upfront, 280.0);
        assert!((root.monthly - 0.01 * 6.0 * 730.0).abs() < 1e-9);
        assert!((root.total_commitment - (280.0 + root.monthly * 12.0)).abs() < 1e-6);
    }

    #[test]
    fn mixed_currencies_are_refused() {
        let error = QuoteTotal::of(&[quote("USD", 1.0, 1), quote("CNY", 1.0, 1)]).unwrap_err();
        assert_eq!(error.code, ErrorCode::Unprocessable);
    }
}
