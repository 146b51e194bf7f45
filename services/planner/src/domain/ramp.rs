//! Ramp arithmetic (docs/design/DOMAIN.md "Plans"): presets, the effective coverage of a step, how
//! many units a step buys, and the next execution date.
//!
//! Percentages are turned into integers (four decimals) before any rounding decision, so
//! that `floor(count × coverage)` never loses a unit to binary floating point
//! (3 × 0.7 is 2.0999999999999996 in f64).

use chrono::{DateTime, Duration, Utc};

use super::plan::{RampSchedule, RampType};

/// Fixed-point scale of percentages: four decimals.
const PERCENT_SCALE: u128 = 10_000;
/// 100% in fixed point.
const FULL: u128 = 100 * PERCENT_SCALE;

/// How long a fired step waits before it may fire again when its schedule has no
/// interval (immediate, or a custom one-step ramp): a re-fire of an unfinished step is a
/// retry of its lineage, so it should not come round every sweep.
pub const REFIRE_AFTER_WITHOUT_INTERVAL: Duration = Duration::days(1);

/// The fields a preset fixes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub percent_per_step: f64,
    pub step_interval_days: u32,
    pub total_steps: u32,
}

/// Returns the preset of a ramp type; `None` for `custom`.
pub fn preset(ramp_type: RampType) -> Option<Preset> {
    match ramp_type {
        RampType::Immediate => Some(Preset {
            percent_per_step: 100.0,
            step_interval_days: 0,
            total_steps: 1,
        }),
        RampType::Weekly25Pct => Some(Preset {
            percent_per_step: 25.0,
            step_interval_days: 7,
            total_steps: 4,
        }),
        RampType::Monthly10Pct => Some(Preset {
            percent_per_step: 10.0,
            step_interval_days: 30,
            total_steps: 10,
        }),
        RampType::Custom => None,
    }
}

/// Returns a percentage in fixed point (four decimals, rounded); negative and
/// non-finite values count as 0 (validation refuses them before this is used).
fn fixed_percent(percent: f64) -> u128 {
    if !percent.is_finite() || percent <= 0.0 {
        return 0;
    }
    (percent * PERCENT_SCALE as f64).round() as u128
}

/// Returns the share of the service coverage reached after `step` steps, in fixed point
/// (`FULL` = 100%): `min(step × percent_per_step, 100)`, and 100% from step 1 on for an
/// immediate ramp.
fn ramp_share(ramp_type: RampType, percent_per_step: f64, step: u32) -> u128 {
    if step == 0 {
        return 0;
    }
    if ramp_type == RampType::Immediate {
        return FULL;
    }
    (u128::from(step) * fixed_percent(percent_per_step)).min(FULL)
}

/// Returns the effective coverage (percent) of the run for `step`:
/// `coverage × min(step × percent_per_step, 100) / 100`, and `coverage` for an
/// immediate ramp. Step 0 (nothing run yet) has coverage 0.
pub fn effective_coverage(
    ramp_type: RampType,
    percent_per_step: f64,
    coverage: f64,
    step: u32,
) -> f64 {
    let share = ramp_share(ramp_type, percent_per_step, step);
    let scaled = fixed_percent(coverage) * share / FULL;
    scaled as f64 / PERCENT_SCALE as f64
}

/// Returns `floor(count × coverage(step))`: the units held after `step` steps.
fn cumulative_units(
    count: u32,
    coverage: f64,
    ramp_type: RampType,
    percent_per_step: f64,
    step: u32,
) -> u128 {
    let share = ramp_share(ramp_type, percent_per_step, step);
    u128::from(count) * fixed_percent(coverage).min(FULL) * share / (FULL * FULL)
}

/// Returns how many of `count` units the run for `step` buys:
/// `floor(count × coverage(step)) − floor(count × coverage(step − 1))`, coverage being
/// cumulative.
pub fn step_units(
    count: u32,
    coverage: f64,
    ramp_type: RampType,
    percent_per_step: f64,
    step: u32,
) -> u32 {
    if step == 0 {
        return 0;
    }
    let now = cumulative_units(count, coverage, ramp_type, percent_per_step, step);
    let before = cumulative_units(count, coverage, ramp_type, percent_per_step, step - 1);
    // Both are at most `count`, so the difference fits.
    u32::try_from(now.saturating_sub(before)).unwrap_or(count)
}

/// Returns the next execution date of a new plan: its start date.
pub fn next_date_on_creation(start_date: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(start_date)
}

/// Returns the next execution date once the step `ramp.current_step` (already advanced)
/// completed at `completed_at`: none after the last step (an immediate plan has one
/// step), else `completed_at + step_interval_days`. A date that is already past by then
/// fires once at the next sweep.
pub fn next_date_after_completion(
    ramp: &RampSchedule,
    completed_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if ramp.current_step >= ramp.total_steps {
        return None;
    }
    Some(completed_at + Duration::days(i64::from(ramp.step_interval_days)))
}

/// Returns the date a fired step moves to while it is not reported complete: one
/// interval after the firing (a day when the ramp has no interval). The new date counts
/// from `fired_at`, not from the missed date, so a date missed by several intervals
/// fires once, not once per missed interval. Firing the same step again is a retry of
/// its lineage (`plan:<id>:step:<n>`), never a new purchase.
pub fn next_date_after_fire(ramp: &RampSchedule, fired_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if ramp.current_step >= ramp.total_steps {
        return None;
    }
    let wait = if ramp.step_interval_days == 0 {
        REFIRE_AFTER_WITHOUT_INTERVAL
    } else {
        Duration::days(i64::from(ramp.step_interval_days))
    };
    Some(fired_at + wait)
}

/// Returns the next execution date after an update replaced the schedule of a plan.
///
/// An unchanged schedule keeps the stored date. A changed one: none when every step has
/// completed; the (new) start date when no step has; else one new interval after the
/// last execution (or the stored date when nothing ran yet).
pub fn next_date_after_update(
    old: &RampSchedule,
    new: &RampSchedule,
    stored_next: Option<DateTime<Utc>>,
    last_execution_date: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if old.same_schedule(new) {
        return stored_next;
    }
    if new.current_step >= new.total_steps {
        return None;
    }
    if new.current_step == 0 {
        return Some(new.start_date);
    }
    match last_execution_date {
        Some(last) => Some(last + Duration::days(i64::from(new.step_interval_days))),
        None => stored_next.or(Some(now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(ramp_type: RampType, current_step: u32) -> RampSchedule {
        let (percent_per_step, step_interval_days, total_steps) = match preset(ramp_type) {
            Some(preset) => (
                preset.percent_per_step,
                preset.step_interval_days,
                preset.total_steps,
            ),
            None => (40.0, 3, 3),
        };
        RampSchedule {
            ramp_type,
            percent_per_step,
            step_interval_days,
            current_step,
            total_steps,
            start_date: date("2026-11-24T00:00:00Z"),
        }
    }

    fn date(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn presets_fix_percent_interval_and_steps() {
        let cases = [
            (RampType::Immediate, Some((100.0, 0, 1))),
            (RampType::Weekly25Pct, Some((25.0, 7, 4))),
            (RampType::Monthly10Pct, Some((10.0, 30, 10))),
            (RampType::Custom, None),
        ];
        for (ramp_type, expected) in cases {
            let got = preset(ramp_type)
                .map(|p| (p.percent_per_step, p.step_interval_days, p.total_steps));
            assert_eq!(got, expected, "{}", ramp_type.as_str());
        }
    }

    #[test]
    fn effective_coverage_follows_the_ramp() {
        // (type, percent per step, coverage, step, expected coverage)
        let cases = [
            (RampType::Immediate, 100.0, 80.0, 1, 80.0),
            (RampType::Immediate, 100.0, 80.0, 0, 0.0),
            (RampType::Weekly25Pct, 25.0, 80.0, 1, 20.0),
            (RampType::Weekly25Pct, 25.0, 80.0, 2, 40.0),
            (RampType::Weekly25Pct, 25.0, 80.0, 3, 60.0),
            (RampType::Weekly25Pct, 25.0, 80.0, 4, 80.0),
            (RampType::Weekly25Pct, 25.0, 80.0, 5, 80.0),
            (RampType::Monthly10Pct, 10.0, 100.0, 1, 10.0),
            (RampType::Monthly10Pct, 10.0, 100.0, 7, 70.0),
            (RampType::Monthly10Pct, 10.0, 50.0, 10, 50.0),
            (RampType::Monthly10Pct, 10.0, 50.0, 11, 50.0),
            (RampType::Custom, 40.0, 100.0, 1, 40.0),
            (RampType::Custom, 40.0, 100.0, 2, 80.0),
            (RampType::Custom, 40.0, 100.0, 3, 100.0),
            (RampType::Custom, 33.3, 90.0, 2, 59.94),
            (RampType::Custom, 50.0, 0.0, 1, 0.0),
        ];
        for (ramp_type, percent, coverage, step, expected) in cases {
            let got = effective_coverage(ramp_type, percent, coverage, step);
            assert!(
                (got - expected).abs() < 1e-9,
                "{} {percent}% per step, coverage {coverage}, step {step}: got {got}, expected {expected}",
                ramp_type.as_str()
            );
        }
    }

    #[test]
    fn each_step_buys_only_its_increment() {
        // (type, percent per step, count, coverage, units bought by steps 1..)
        let cases: &[(RampType, f64, u32, f64, &[u32])] = &[
            (RampType::Immediate, 100.0, 10, 80.0, &[8]),
            (RampType::Immediate, 100.0, 3, 100.0, &[3]),
            (RampType::Weekly25Pct, 25.0, 10, 80.0, &[2, 2, 2, 2]),
            (RampType::Weekly25Pct, 25.0, 10, 100.0, &[2, 3, 2, 3]),
            (RampType::Weekly25Pct, 25.0, 3, 100.0, &[0, 1, 1, 1]),
            (RampType::Weekly25Pct, 25.0, 1, 100.0, &[0, 0, 0, 1]),
            (
                RampType::Monthly10Pct,
                10.0,
                10,
                100.0,
                &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            ),
            (
                RampType::Monthly10Pct,
                10.0,
                25,
                100.0,
                &[2, 3, 2, 3, 2, 3, 2, 3, 2, 3],
            ),
            (
                RampType::Monthly10Pct,
                10.0,
                5,
                60.0,
                &[0, 0, 0, 1, 0, 0, 1, 0, 0, 1],
            ),
            (RampType::Custom, 40.0, 10, 100.0, &[4, 4, 2]),
            (RampType::Custom, 30.0, 10, 100.0, &[3, 3, 3]),
            // 3 × 70% is 2.1: f64 would say 2.0999999999999996, fixed point says 2.
            (RampType::Custom, 70.0, 3, 100.0, &[2, 1]),
            (RampType::Custom, 10.0, 7, 0.0, &[0, 0]),
        ];
        for (ramp_type, percent, count, coverage, expected) in cases {
            let got: Vec<u32> = (1..=expected.len() as u32)
                .map(|step| step_units(*count, *coverage, *ramp_type, *percent, step))
                .collect();
            assert_eq!(
                &got[..],
                *expected,
                "{} {percent}% per step, count {count}, coverage {coverage}",
                ramp_type.as_str()
            );
            let total: u32 = got.iter().sum();
            let final_share = (f64::from(expected.len() as u32) * percent).min(100.0);
            let full =
                (f64::from(*count) * coverage / 100.0 * final_share / 100.0 + 1e-9).floor() as u32;
            assert_eq!(total, full, "the steps add up to the final coverage");
        }
    }

    #[test]
    fn step_zero_buys_nothing() {
        assert_eq!(step_units(10, 100.0, RampType::Immediate, 100.0, 0), 0);
    }

    #[test]
    fn a_coverage_that_binary_floats_cannot_hold_exactly_still_rounds_right() {
        // 10 × 70% = 7 exactly, however 0.7 is stored.
        assert_eq!(step_units(10, 70.0, RampType::Immediate, 100.0, 1), 7);
        assert_eq!(step_units(100, 29.0, RampType::Immediate, 100.0, 1), 29);
    }

    #[test]
    fn next_dates_follow_the_schedule() {
        let completed = date("2026-12-01T10:00:00Z");
        // (ramp after the step advanced, expected next date)
        let cases = [
            (ramp(RampType::Immediate, 1), None),
            (
                ramp(RampType::Weekly25Pct, 1),
                Some(date("2026-12-08T10:00:00Z")),
            ),
            (
                ramp(RampType::Weekly25Pct, 3),
                Some(date("2026-12-08T10:00:00Z")),
            ),
            (ramp(RampType::Weekly25Pct, 4), None),
            (
                ramp(RampType::Monthly10Pct, 9),
                Some(date("2026-12-31T10:00:00Z")),
            ),
            (ramp(RampType::Monthly10Pct, 10), None),
            (
                ramp(RampType::Custom, 2),
                Some(date("2026-12-04T10:00:00Z")),
            ),
            (ramp(RampType::Custom, 3), None),
        ];
        for (ramp, expected) in cases {
            assert_eq!(
                next_date_after_completion(&ramp, completed),
                expected,
                "{} after step {}",
                ramp.ramp_type.as_str(),
                ramp.current_step
            );
        }
        assert_eq!(
            next_date_on_creation(date("2026-11-24T00:00:00Z")),
            Some(date("2026-11-24T00:00:00Z"))
        );
    }

    #[test]
    fn a_missed_date_fires_once_not_once_per_missed_interval() {
        // Due on Nov 24, weekly; the sweeper first looks on Dec 30, five intervals late.
        let weekly = ramp(RampType::Weekly25Pct, 0);
        let fired_at = date("2026-12-30T09:00:00Z");
        let next = next_date_after_fire(&weekly, fired_at).unwrap();
        assert_eq!(next, date("2027-01-06T09:00:00Z"));
        assert!(next > fired_at, "the new date is not due at the same sweep");
        // A completion reported late fires the next step once, at the next sweep.
        let mut advanced = weekly.clone();
        advanced.current_step = 1;
        let late = next_date_after_completion(&advanced, date("2026-11-25T00:00:00Z")).unwrap();
        assert!(late < fired_at);
        let fired_again = next_date_after_fire(&advanced, fired_at).unwrap();
        assert!(fired_again > fired_at);
    }

    #[test]
    fn a_fired_step_without_an_interval_waits_a_day() {
        let immediate = ramp(RampType::Immediate, 0);
        let fired_at = date("2026-12-30T09:00:00Z");
        assert_eq!(
            next_date_after_fire(&immediate, fired_at),
            Some(date("2026-12-31T09:00:00Z"))
        );
        assert_eq!(
            next_date_after_fire(&ramp(RampType::Immediate, 1), fired_at),
            None
        );
    }

    #[test]
    fn an_update_recomputes_the_date_only_when_the_schedule_changes() {
        let now = date("2026-12-10T00:00:00Z");
        let stored = Some(date("2026-12-15T00:00:00Z"));
        let last = Some(date("2026-12-08T00:00:00Z"));
        let old = ramp(RampType::Weekly25Pct, 1);
        assert_eq!(
            next_date_after_update(&old, &old.clone(), stored, last, now),
            stored
        );

        let mut monthly = ramp(RampType::Monthly10Pct, 1);
        monthly.start_date = old.start_date;
        assert_eq!(
            next_date_after_update(&old, &monthly, stored, last, now),
            Some(date("2027-01-07T00:00:00Z"))
        );

        let fresh_old = ramp(RampType::Weekly25Pct, 0);
        let mut moved = fresh_old.clone();
        moved.start_date = date("2027-02-01T00:00:00Z");
        assert_eq!(
            next_date_after_update(&fresh_old, &moved, stored, None, now),
            Some(date("2027-02-01T00:00:00Z"))
        );

        let mut shrunk = ramp(RampType::Custom, 2);
        shrunk.total_steps = 2;
        assert_eq!(
            next_date_after_update(&ramp(RampType::Custom, 2), &shrunk, stored, last, now),
            None
        );
    }
}
