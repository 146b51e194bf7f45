//! How an amount of money is shown to a person (the approval page, the CLI): one rule,
//! so the page, the CLI and their tests agree to the cent.

/// Returns `amount` as `$1,234.50` for USD (or no currency), `1,234.50 EUR` otherwise;
/// `n/a` for an amount that is not a number.
pub fn format_money(amount: f64, currency: &str) -> String {
    if !amount.is_finite() {
        return "n/a".to_owned();
    }
    let cents = (amount.abs() * 100.0).round();
    let whole = (cents / 100.0).trunc();
    let fraction = cents - whole * 100.0;
    let digits = format!("{whole:.0}");
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if amount < 0.0 && cents > 0.0 { "-" } else { "" };
    if currency.is_empty() || currency.eq_ignore_ascii_case("USD") {
        format!("{sign}${grouped}.{fraction:02.0}")
    } else {
        format!("{sign}{grouped}.{fraction:02.0} {currency}")
    }
}

/// Returns a USD amount as `$1,234.50`.
pub fn format_usd(amount: f64) -> String {
    format_money(amount, "USD")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_with_two_decimals() {
        assert_eq!(format_usd(1234.5), "$1,234.50");
        assert_eq!(format_usd(0.0), "$0.00");
        assert_eq!(format_usd(1_000_000.0), "$1,000,000.00");
        assert_eq!(format_usd(999.995), "$1,000.00");
        assert_eq!(format_usd(-12.3), "-$12.30");
        assert_eq!(format_money(1234.5, "EUR"), "1,234.50 EUR");
        assert_eq!(format_money(f64::NAN, "USD"), "n/a");
    }
}
