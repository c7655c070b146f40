//! Balance history (SPEC §13): the credits of each kind at the end of each local day,
//! for the chart of the credits page.
//!
//! The figure is the ledger's running sum (frozen credits count, held ones have left
//! through their debit), so it is told backwards from today's sums: the end of day D is
//! today's figure less every entry dated after D in the account's zone. That needs only
//! the entries of the window and after it, never the account's older history, so a
//! 90-day chart costs the same for a new account and for one with years of entries.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::{Balance, CreditKind, LedgerEntry, Refusal};

/// Most days one balance history covers: a year and a month of margin, so a chart of
/// "the last 12 months" fits while one request stays small.
pub const MAX_BALANCE_HISTORY_DAYS: i64 = 400;

/// Credits of each kind at the end of one local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayBalance {
    /// The local day.
    pub date: Date,
    /// General credits (available and frozen).
    pub general: i64,
    /// Agent credits (available).
    pub agent: i64,
}

/// The running sums of the ledger per kind: what the sum of an account's entries comes to
/// (SPEC §5: general available + general frozen, and agent available).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunningSums {
    /// General credits.
    pub general: i64,
    /// Agent credits.
    pub agent: i64,
}

impl RunningSums {
    /// The sums a balance stands for.
    pub fn of(balance: &Balance) -> RunningSums {
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        RunningSums {
            general: signed(
                balance
                    .general
                    .available
                    .saturating_add(balance.general.frozen),
            ),
            agent: signed(balance.agent.available),
        }
    }

    fn take_off(&mut self, day: &RunningSums) {
        self.general = self.general.saturating_sub(day.general);
        self.agent = self.agent.saturating_sub(day.agent);
    }

    fn less(&mut self, kind: CreditKind, amount: i64) {
        let sum = match kind {
            CreditKind::General => &mut self.general,
            CreditKind::Agent => &mut self.agent,
        };
        *sum = sum.saturating_sub(amount);
    }
}

/// The local days of a balance history: `since` to `until`, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayWindow {
    since: Date,
    until: Date,
}

impl DayWindow {
    /// Checks the window: `since` not after `until`, at most [`MAX_BALANCE_HISTORY_DAYS`] days.
    pub fn new(since: Date, until: Date) -> Result<DayWindow, Refusal> {
        // Both days count: 2026-01-01 to 2026-01-01 is one day.
        let days = since
            .until(until)
            .map(|span| i64::from(span.get_days()).saturating_add(1))
            .unwrap_or(i64::MAX);
        if !(1..=MAX_BALANCE_HISTORY_DAYS).contains(&days) {
            return Err(Refusal::BalanceHistoryTooLong {
                max_days: MAX_BALANCE_HISTORY_DAYS,
            });
        }
        Ok(DayWindow { since, until })
    }

    /// The `days` local days that end with `today`.
    pub fn last_days(today: Date, days: i64) -> Result<DayWindow, Refusal> {
        let since = today
            .checked_sub(days.saturating_sub(1).days())
            .map_err(|_| Refusal::TimeOutOfRange)?;
        DayWindow::new(since, today)
    }

    /// The first day.
    pub fn since(&self) -> Date {
        self.since
    }

    /// The instant the first day ends in `zone`: the history needs every entry from it on.
    pub fn entries_from(&self, zone: &TimeZone) -> Result<Timestamp, Refusal> {
        end_of(self.since, zone)
    }

    /// An empty tally of the window's entries in `zone`: feed it every entry from
    /// [`DayWindow::entries_from`] on (more do no harm), in any order, then read the days.
    pub fn tally(&self, zone: &TimeZone) -> DayTally {
        DayTally {
            window: *self,
            zone: zone.clone(),
            by_day: BTreeMap::new(),
        }
    }
}

/// The entries of a balance history's window, summed per local day and kind as they are
/// read (page by page), so telling the history back takes memory for its days only.
#[derive(Clone, Debug)]
pub struct DayTally {
    window: DayWindow,
    zone: TimeZone,
    by_day: BTreeMap<Date, RunningSums>,
}

impl DayTally {
    /// Counts one entry.
    pub fn add(&mut self, entry: &LedgerEntry) {
        let day = entry.at.to_zoned(self.zone.clone()).date();
        if day > self.window.since {
            let sums = self.by_day.entry(day).or_default();
            // Subtracting a negated amount adds it; `less` keeps one checked path.
            sums.less(entry.kind, entry.amount.saturating_neg());
        }
    }

    /// The end-of-day sums of the window's days up to `today` (a later day has no end
    /// yet), oldest first, told back from `now_sums`: the sums after every entry added.
    pub fn days(&self, today: Date, now_sums: RunningSums) -> Vec<DayBalance> {
        let last = self.window.until.min(today);
        let mut sums = now_sums;
        let mut later = self.by_day.iter().rev().peekable();
        // Entries of days after the last one shown come off first.
        while let Some((_, day_sums)) = later.next_if(|(d, _)| **d > last) {
            sums.take_off(day_sums);
        }
        let mut days = Vec::new();
        let mut day = last;
        while day >= self.window.since {
            days.push(DayBalance {
                date: day,
                general: sums.general,
                agent: sums.agent,
            });
            if let Some((_, day_sums)) = later.next_if(|(d, _)| **d == day) {
                sums.take_off(day_sums);
            }
            match day.yesterday() {
                Ok(previous) => day = previous,
                Err(_) => break,
            }
        }
        days.reverse();
        days
    }
}

/// When local day `date` ends in `zone` (the next day's first instant).
fn end_of(date: Date, zone: &TimeZone) -> Result<Timestamp, Refusal> {
    date.tomorrow()
        .and_then(|next| next.to_zoned(zone.clone()))
        .map(|zoned| zoned.timestamp())
        .map_err(|_| Refusal::TimeOutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BucketId, EntryType, Source, parse_time_zone};

    fn entry(at: &str, kind: CreditKind, amount: i64) -> LedgerEntry {
        LedgerEntry::new(
            at.parse().expect("instant"),
            EntryType::Grant,
            amount,
            kind,
            Source::Promotion,
            BucketId::new(1),
        )
    }

    fn date(text: &str) -> Date {
        text.parse().expect("date")
    }

    #[test]
    fn balance_history_gives_each_local_days_closing_credits_from_the_running_sums() {
        let zone = parse_time_zone("Asia/Shanghai").expect("zone");
        // 2026-03-01T17:00Z is already March 2 in Shanghai (UTC+8).
        let entries = [
            entry("2026-02-28T02:00:00Z", CreditKind::General, 100),
            entry("2026-03-01T10:00:00Z", CreditKind::Agent, 10),
            entry("2026-03-01T17:00:00Z", CreditKind::General, -30),
            entry("2026-03-03T01:00:00Z", CreditKind::Agent, -10),
        ];
        let now = RunningSums {
            general: 70,
            agent: 0,
        };
        let window = DayWindow::new(date("2026-02-27"), date("2026-03-05")).expect("window");
        let mut tally = window.tally(&zone);
        entries.iter().for_each(|e| tally.add(e));
        let days = tally.days(date("2026-03-04"), now);
        let figures: Vec<(String, i64, i64)> = days
            .iter()
            .map(|d| (d.date.to_string(), d.general, d.agent))
            .collect();
        assert_eq!(
            figures,
            [
                ("2026-02-27".to_owned(), 0, 0),
                ("2026-02-28".to_owned(), 100, 0),
                ("2026-03-01".to_owned(), 100, 10),
                ("2026-03-02".to_owned(), 70, 10),
                ("2026-03-03".to_owned(), 70, 0),
                ("2026-03-04".to_owned(), 70, 0),
            ],
            "days after today have no end yet and are left out"
        );
    }

    #[test]
    fn balance_history_needs_no_entry_from_before_its_window() {
        let zone = TimeZone::UTC;
        let window = DayWindow::new(date("2026-03-02"), date("2026-03-03")).expect("window");
        assert_eq!(
            window.entries_from(&zone).map(|t| t.to_string()).as_deref(),
            Ok("2026-03-03T00:00:00Z")
        );
        // An older entry given anyway changes nothing.
        let old = [entry("2026-01-01T00:00:00Z", CreditKind::General, 5)];
        let sums = RunningSums {
            general: 5,
            agent: 0,
        };
        let mut tally = window.tally(&zone);
        old.iter().for_each(|e| tally.add(e));
        let days = tally.days(date("2026-03-03"), sums);
        assert!(days.iter().all(|d| d.general == 5), "{days:?}");
    }

    #[test]
    fn balance_history_windows_hold_at_most_400_days() {
        assert!(DayWindow::new(date("2025-01-01"), date("2026-02-04")).is_ok());
        assert!(DayWindow::new(date("2025-01-01"), date("2026-02-05")).is_err());
        assert!(DayWindow::new(date("2026-01-01"), date("2026-01-01")).is_ok());
        assert!(DayWindow::new(date("2026-01-02"), date("2026-01-01")).is_err());
        let window = DayWindow::last_days(date("2026-03-31"), 90).expect("window");
        assert_eq!(window.since(), date("2026-01-01"));
    }
}
