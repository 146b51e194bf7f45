//! Money and times as the approval page shows them.

use chrono::{DateTime, TimeDelta, Utc};

/// Returns `amount` as the CLI shows it ([`cudly_vocabulary::format_money`]).
pub fn money(amount: f64, currency: &str) -> String {
    cudly_vocabulary::format_money(amount, currency)
}

/// Returns a time as `2026-11-23 10:00 UTC`.
pub(super) fn when(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Returns how far ahead `delta` is, e.g. `in 6 days, 23 hours`.
pub(super) fn relative(delta: TimeDelta) -> String {
    let minutes = delta.num_minutes();
    if minutes <= 0 {
        return "any moment now".to_owned();
    }
    let (days, hours) = (delta.num_days(), delta.num_hours() % 24);
    let plural = |count: i64, unit: &str| {
        if count == 1 {
            format!("1 {unit}")
        } else {
            format!("{count} {unit}s")
        }
    };
    if days > 0 && hours > 0 {
        format!("in {}, {}", plural(days, "day"), plural(hours, "hour"))
    } else if days > 0 {
        format!("in {}", plural(days, "day"))
    } else if delta.num_hours() > 0 {
        format!("in {}", plural(delta.num_hours(), "hour"))
    } else {
        format!("in {}", plural(minutes, "minute"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_as_the_cli_shows_it() {
        assert_eq!(money(1234.5, "USD"), "$1,234.50");
        assert_eq!(money(0.0, "USD"), "$0.00");
        assert_eq!(money(2469.0, ""), "$2,469.00");
        assert_eq!(money(1_000_000.004, "USD"), "$1,000,000.00");
        assert_eq!(money(999.999, "USD"), "$1,000.00");
        assert_eq!(money(-12.3, "USD"), "-$12.30");
        assert_eq!(money(12.3, "EUR"), "12.30 EUR");
        assert_eq!(money(f64::NAN, "USD"), "n/a");
    }

    #[test]
    fn expiry_is_said_in_days_and_hours() {
        assert_eq!(relative(TimeDelta::days(7)), "in 7 days");
        assert_eq!(relative(TimeDelta::hours(30)), "in 1 day, 6 hours");
        assert_eq!(relative(TimeDelta::minutes(90)), "in 1 hour");
        assert_eq!(relative(TimeDelta::minutes(5)), "in 5 minutes");
        assert_eq!(relative(TimeDelta::seconds(-5)), "any moment now");
    }
}
