//! Savings Plans: plan types and the hourly commitment, kept as exact decimal text.

use std::fmt;

/// Savings Plans types; a Savings Plans recommendation names one as its resource type.
pub const SAVINGS_PLAN_TYPES: [&str; 3] = ["Compute", "EC2Instance", "SageMaker"];

/// Most decimals AWS accepts in a commitment (CreateSavingsPlan: "no more than five
/// digits after the decimal point").
const MAX_DECIMALS: u32 = 5;
/// Most digits before the point: far above the largest commitment, small enough that
/// the arithmetic below never overflows.
const MAX_WHOLE_DIGITS: usize = 12;

/// An hourly commitment in USD: decimal text such as `"1.00"` parsed exactly (never
/// through a float), keeping its scale so `"1.50" × 2` reads `"3.00"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyCommitment {
    /// The value times 10^scale.
    mantissa: u128,
    /// Digits after the point, at most [`MAX_DECIMALS`].
    scale: u32,
}

impl HourlyCommitment {
    /// The smallest commitment AWS accepts for one plan.
    pub const MIN_TEXT: &'static str = "0.001";
    /// The largest commitment AWS accepts for one plan, in USD per hour.
    pub const MAX_USD: u128 = 1_000_000;

    /// Parses decimal text: digits, optionally a point and at most five decimals (zeros
    /// beyond the fifth are dropped). No sign, exponent or spaces.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if whole.is_empty()
            || !digits_only(whole)
            || !digits_only(fraction)
            || (text.contains('.') && fraction.is_empty())
        {
            return Err("must be a decimal number such as \"1.00\"");
        }
        let fraction = if fraction.len() > MAX_DECIMALS as usize {
            fraction.trim_end_matches('0')
        } else {
            fraction
        };
        if fraction.len() > MAX_DECIMALS as usize {
            return Err("must have at most 5 decimals");
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > MAX_WHOLE_DIGITS {
            return Err("is too large");
        }
        let mantissa = format!("{whole}{fraction}").parse::<u128>().unwrap_or(0);
        Ok(Self {
            mantissa,
            scale: u32::try_from(fraction.len()).unwrap_or(MAX_DECIMALS),
        })
    }

    /// Returns the commitment of `count` units: this commitment times `count`, or an
    /// error when the product is outside what one plan may commit (0.001 to 1 000 000
    /// USD per hour).
    pub fn times(self, count: u32) -> Result<Self, &'static str> {
        let product = Self {
            mantissa: self.mantissa.saturating_mul(u128::from(count)),
            scale: self.scale,
        };
        product.check_plan_range()?;
        Ok(product)
    }

    /// Fails when the commitment is outside 0.001 to 1 000 000 USD per hour.
    pub fn check_plan_range(self) -> Result<(), &'static str> {
        let unit = 10u128.pow(self.scale);
        // value = mantissa / unit, so value >= 0.001 <=> mantissa × 1000 >= unit.
        if self.mantissa.saturating_mul(1000) < unit {
            return Err("must be at least 0.001");
        }
        if self.mantissa > Self::MAX_USD * unit {
            return Err("must be at most 1000000 per hour (count included)");
        }
        Ok(())
    }
}

impl fmt::Display for HourlyCommitment {
    /// Writes the value with its own scale: `3.00`, `0.375`, `21`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = 10u128.pow(self.scale);
        let whole = self.mantissa / unit;
        if self.scale == 0 {
            return write!(formatter, "{whole}");
        }
        let fraction = self.mantissa % unit;
        let width = self.scale as usize;
        write!(formatter, "{whole}.{fraction:0width$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(text: &str, count: u32) -> Result<String, &'static str> {
        HourlyCommitment::parse(text)?
            .times(count)
            .map(|value| value.to_string())
    }

    #[test]
    fn products_keep_the_scale_of_the_input() {
        assert_eq!(total("1.00", 2).unwrap(), "2.00");
        assert_eq!(total("0.125", 3).unwrap(), "0.375");
        assert_eq!(total("7", 3).unwrap(), "21");
        assert_eq!(total("0.10000000", 1).unwrap(), "0.1");
        assert_eq!(total("0.00100", 1).unwrap(), "0.00100");
        assert_eq!(total("007.5", 2).unwrap(), "15.0");
    }

    #[test]
    fn malformed_or_out_of_range_commitments_are_refused() {
        for bad in [
            "", ".5", "1.", "-1", "+1", "1e3", "1,5", " 1", "1 ", "abc", "0", "0.0009", "0.000001",
            "1.000001", "0.00000",
        ] {
            assert!(total(bad, 1).is_err(), "{bad:?}");
        }
        assert!(total("600000", 2).is_err());
        assert!(total("1000000", 1).is_ok());
        assert!(total("1000000.00001", 1).is_err());
        assert!(total("9999999999999", 1).is_err());
    }
}
