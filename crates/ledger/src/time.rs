//! Calendar rules: where wall-clock time in the account's zone matters.
//!
//! Instants are `jiff::Timestamp` everywhere; they are converted to the account's time
//! zone only where SPEC §1 and §8 say so: local midnight for daily logins, calendar
//! months and years clamped to the month's end, `P<n>D` as calendar days. Exact units
//! (`PT<n>H`, minutes, seconds) stay exact. The zone database is bundled into the
//! binary, so these functions read no files.

use jiff::civil::Date;
use jiff::fmt::temporal::SpanParser;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan};

use crate::Refusal;

/// An instant in whole microseconds (finer digits dropped). The service's clock ticks in
/// microseconds and the store keeps them, so every instant a client sends is read at the
/// same precision: a retry that names the same instant compares equal to the first
/// request once that is stored, and a window bound means the same in memory as in SQL.
pub fn whole_micros(at: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(at.as_microsecond()).unwrap_or(at)
}

/// Looks up an IANA time zone by name (e.g. `Asia/Shanghai`).
pub fn parse_time_zone(name: &str) -> Result<TimeZone, Refusal> {
    TimeZone::get(name).map_err(|_| Refusal::InvalidTimeZone(name.to_owned()))
}

/// Parses a validity such as `P7D`, `PT2H` or `P1M` (ISO 8601); zero and negative
/// durations are refused.
pub fn parse_duration(text: &str) -> Result<Span, Refusal> {
    static ISO_8601: SpanParser = SpanParser::new();
    let span = ISO_8601
        .parse_span(text)
        .map_err(|_| Refusal::InvalidDuration(text.to_owned()))?;
    check_positive(span).map_err(|_| Refusal::InvalidDuration(text.to_owned()))
}

/// Refuses zero and negative durations.
pub(crate) fn check_positive(span: Span) -> Result<Span, Refusal> {
    if span.is_positive() {
        Ok(span)
    } else {
        Err(Refusal::InvalidDuration(span.to_string()))
    }
}

/// `at + span` in the zone: years, months, weeks and days are calendar units (a month
/// after Jan 31 is the last day of February), hours and smaller are exact.
pub(crate) fn add_in_zone(
    at: Timestamp,
    span: Span,
    zone: &TimeZone,
) -> Result<Timestamp, Refusal> {
    at.to_zoned(zone.clone())
        .checked_add(span)
        .map(|zoned| zoned.timestamp())
        .map_err(|_| Refusal::TimeOutOfRange)
}

/// The `n`-th monthly date after `anchor`: anchor + n months, computed from the anchor,
/// never by repeated addition, so Jan 31 gives Feb 28, then Mar 31. `None` past the
/// supported range of dates.
pub(crate) fn nth_month(anchor: Timestamp, n: u32, zone: &TimeZone) -> Option<Timestamp> {
    let months = i64::from(n).months();
    anchor
        .to_zoned(zone.clone())
        .checked_add(months)
        .ok()
        .map(|zoned| zoned.timestamp())
}

/// The calendar date of `at` in the zone.
pub(crate) fn local_date(at: Timestamp, zone: &TimeZone) -> Date {
    at.to_zoned(zone.clone()).date()
}

/// The start of the calendar day after `at` in the zone: where a daily login ends.
pub(crate) fn next_local_midnight(at: Timestamp, zone: &TimeZone) -> Result<Timestamp, Refusal> {
    let tomorrow = local_date(at, zone)
        .tomorrow()
        .map_err(|_| Refusal::TimeOutOfRange)?;
    tomorrow
        .to_zoned(zone.clone())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| Refusal::TimeOutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    #[test]
    fn one_month_after_jan_31_is_the_last_day_of_february() {
        let utc = TimeZone::UTC;
        assert_eq!(
            nth_month(ts("2025-01-31T10:00:00Z"), 1, &utc),
            Some(ts("2025-02-28T10:00:00Z"))
        );
        assert_eq!(
            nth_month(ts("2024-01-31T10:00:00Z"), 1, &utc),
            Some(ts("2024-02-29T10:00:00Z"))
        );
    }

    #[test]
    fn nth_month_is_computed_from_the_anchor_not_by_repeated_addition() {
        let utc = TimeZone::UTC;
        let anchor = ts("2025-01-31T00:00:00Z");
        assert_eq!(nth_month(anchor, 2, &utc), Some(ts("2025-03-31T00:00:00Z")));
        assert_eq!(nth_month(anchor, 3, &utc), Some(ts("2025-04-30T00:00:00Z")));
        assert_eq!(nth_month(anchor, 0, &utc), Some(anchor));
    }

    #[test]
    fn months_are_counted_on_the_local_calendar() {
        // 2025-01-31 02:00 in Shanghai is still Jan 30 in UTC: the local month decides.
        let shanghai = parse_time_zone("Asia/Shanghai").expect("zone");
        let anchor = ts("2025-01-30T18:00:00Z");
        assert_eq!(
            nth_month(anchor, 1, &shanghai),
            Some(ts("2025-02-27T18:00:00Z"))
        );
    }

    #[test]
    fn next_local_midnight_in_asia_shanghai() {
        let shanghai = parse_time_zone("Asia/Shanghai").expect("zone");
        // 23:30 local on Mar 1 → ends at local midnight of Mar 2 = 16:00Z on Mar 1.
        let at = ts("2026-03-01T15:30:00Z");
        assert_eq!(
            next_local_midnight(at, &shanghai),
            Ok(ts("2026-03-01T16:00:00Z"))
        );
        // 00:00 local exactly begins a new day that ends 24 h later.
        assert_eq!(
            next_local_midnight(ts("2026-03-01T16:00:00Z"), &shanghai),
            Ok(ts("2026-03-02T16:00:00Z"))
        );
    }

    #[test]
    fn next_local_midnight_in_new_york_on_dst_change_days() {
        let new_york = parse_time_zone("America/New_York").expect("zone");
        // 2026-03-08: clocks jump 02:00 → 03:00; the local day has 23 hours.
        let start = ts("2026-03-08T05:00:00Z"); // 00:00 EST
        let end = next_local_midnight(start, &new_york).expect("midnight");
        assert_eq!(end, ts("2026-03-09T04:00:00Z")); // 00:00 EDT
        assert_eq!(end.duration_since(start).as_hours(), 23);
        // 2026-11-01: clocks fall back 02:00 → 01:00; the local day has 25 hours.
        let start = ts("2026-11-01T04:00:00Z"); // 00:00 EDT
        let end = next_local_midnight(start, &new_york).expect("midnight");
        assert_eq!(end, ts("2026-11-02T05:00:00Z")); // 00:00 EST
        assert_eq!(end.duration_since(start).as_hours(), 25);
    }

    #[test]
    fn day_durations_are_calendar_days_and_hours_are_exact() {
        let new_york = parse_time_zone("America/New_York").expect("zone");
        let before_jump = ts("2026-03-07T17:00:00Z"); // 12:00 EST
        let one_day = add_in_zone(before_jump, parse_duration("P1D").expect("P1D"), &new_york);
        assert_eq!(one_day, Ok(ts("2026-03-08T16:00:00Z"))); // 12:00 EDT, 23 h later
        let hours = add_in_zone(
            before_jump,
            parse_duration("PT24H").expect("PT24H"),
            &new_york,
        );
        assert_eq!(hours, Ok(ts("2026-03-08T17:00:00Z")));
    }

    #[test]
    fn zero_negative_and_malformed_durations_are_refused() {
        for bad in ["PT0S", "P0D", "-P1D", "-PT5M", "1 day", "", "P"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("P2Y").is_ok());
    }

    #[test]
    fn unknown_time_zones_are_refused() {
        assert!(parse_time_zone("Mars/Olympus").is_err());
        assert!(parse_time_zone("Europe/Berlin").is_ok());
    }

    #[test]
    fn instants_are_kept_in_whole_microseconds() {
        let sent: Timestamp = "2026-03-01T00:00:00.1234567Z".parse().expect("instant");
        let kept: Timestamp = "2026-03-01T00:00:00.123456Z".parse().expect("instant");
        assert_eq!(whole_micros(sent), kept);
        assert_eq!(whole_micros(kept), kept);
    }
}
