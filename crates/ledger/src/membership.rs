//! Membership: none → trial → active ⇄ lapsed, and the monthly distribution schedule.
//!
//! This module holds the state and its transitions; `account` decides when they happen
//! and writes the ledger entries they cause (freezing, distributions).

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::limits::MAX_PAST_MEMBER_PERIODS;
use crate::time;

/// Where an account's membership stands. A member is an account in `Trial` or `Active`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, strum::IntoStaticStr, strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum MembershipStatus {
    /// Never a member.
    #[default]
    None,
    /// In a trial until `trial_end`.
    Trial,
    /// Paid until `period_end`.
    Active,
    /// Was a member; subscription and purchased credits are frozen.
    Lapsed,
}

/// A paid membership's monthly distributions: distribution n happens at anchor + n
/// months in the zone the schedule was anchored in (a later change of the account's
/// zone does not move a running schedule).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    /// Which paid membership of the account this is: 1 for the first, counting every
    /// reactivation. With `next_index` it names each distribution uniquely, even when
    /// a cancel and a reactivation fall on one instant.
    pub number: u32,
    /// When the paid membership started (or restarted).
    #[serde(with = "crate::instant")]
    pub anchor: Timestamp,
    /// The index of the next distribution: every index below it has happened.
    pub next_index: u32,
    /// anchor + next_index months; `None` past the supported range of dates. Derivable,
    /// but kept: every command asks when the next effect is due, and calendar arithmetic
    /// in a zone would cost more than the rest of a hold and capture together.
    #[serde(with = "crate::instant::option")]
    pub next_at: Option<Timestamp>,
    /// The zone the months are counted in.
    #[serde(with = "jiff::fmt::serde::tz::required")]
    pub zone: TimeZone,
}

impl Schedule {
    fn anchored(number: u32, anchor: Timestamp, zone: TimeZone) -> Self {
        Schedule {
            number,
            anchor,
            next_index: 0,
            next_at: Some(anchor),
            zone,
        }
    }

    /// The end of the month that distribution `index` covers: anchor + (index + 1)
    /// months, when its agent credits end.
    pub(crate) fn month_end(&self, index: u32) -> Option<Timestamp> {
        time::nth_month(self.anchor, index.checked_add(1)?, &self.zone)
    }

    /// Marks the next distribution done and computes the one after.
    pub(crate) fn advance(&mut self) {
        let done_at = self.next_at;
        self.next_index = self.next_index.saturating_add(1);
        self.next_at = time::nth_month(self.anchor, self.next_index, &self.zone)
            .filter(|next| Some(*next) > done_at);
    }
}

/// A closed stretch of membership, remembered to judge late-confirmed payments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberPeriod {
    /// When it began.
    #[serde(with = "crate::instant")]
    pub start: Timestamp,
    /// When it lapsed.
    #[serde(with = "crate::instant")]
    pub end: Timestamp,
}

/// An account's membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Membership {
    pub(crate) status: MembershipStatus,
    pub(crate) plan: Option<Arc<str>>,
    #[serde(with = "crate::instant::option")]
    pub(crate) period_start: Option<Timestamp>,
    #[serde(with = "crate::instant::option")]
    pub(crate) period_end: Option<Timestamp>,
    #[serde(with = "crate::instant::option")]
    pub(crate) trial_end: Option<Timestamp>,
    pub(crate) schedule: Option<Schedule>,
    /// Paid memberships started so far (the last schedule's number).
    pub(crate) schedules_started: u32,
    /// Start of the current unbroken membership (a trial that converts continues it).
    #[serde(with = "crate::instant::option")]
    pub(crate) member_since: Option<Timestamp>,
    /// Earlier memberships, oldest first, at most [`MAX_PAST_MEMBER_PERIODS`].
    pub(crate) past_periods: Vec<MemberPeriod>,
}

impl Membership {
    /// Where it stands.
    pub fn status(&self) -> MembershipStatus {
        self.status
    }
    /// The plan of the current or last membership.
    pub fn plan(&self) -> Option<&str> {
        self.plan.as_deref()
    }
    /// Start of the current or last period (trial or paid).
    pub fn period_start(&self) -> Option<Timestamp> {
        self.period_start
    }
    /// End of the current or last period: the membership lapses then unless renewed.
    pub fn period_end(&self) -> Option<Timestamp> {
        self.period_end
    }
    /// The periods the account was a member before the current one, oldest first (the
    /// last `MAX_PAST_MEMBER_PERIODS`).
    pub fn past_periods(&self) -> &[MemberPeriod] {
        &self.past_periods
    }
    /// End of the trial, if the account had one.
    pub fn trial_end(&self) -> Option<Timestamp> {
        self.trial_end
    }
    /// The running distribution schedule, while active.
    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    /// Whether the account is a member (trial or active).
    pub fn is_member(&self) -> bool {
        matches!(
            self.status,
            MembershipStatus::Trial | MembershipStatus::Active
        )
    }

    /// Whether the account was a member at `at` (not after the current instant).
    pub fn was_member_at(&self, at: Timestamp) -> bool {
        let current = self.is_member() && self.member_since.is_some_and(|since| since <= at);
        current
            || self
                .past_periods
                .iter()
                .any(|p| p.start <= at && at < p.end)
    }

    /// When a member lapses if nothing changes.
    pub(crate) fn lapse_at(&self) -> Option<Timestamp> {
        self.period_end.filter(|_| self.is_member())
    }

    /// The next distribution (instant, index), if one will happen before the period ends.
    pub(crate) fn next_distribution(&self) -> Option<(Timestamp, u32)> {
        if self.status != MembershipStatus::Active {
            return None;
        }
        let schedule = self.schedule.as_ref()?;
        let at = schedule.next_at?;
        (Some(at) < self.period_end).then_some((at, schedule.next_index))
    }

    pub(crate) fn start_trial(&mut self, plan: Arc<str>, now: Timestamp, trial_end: Timestamp) {
        debug_assert_eq!(self.status, MembershipStatus::None);
        self.status = MembershipStatus::Trial;
        self.plan = Some(plan);
        self.period_start = Some(now);
        self.period_end = Some(trial_end);
        self.trial_end = Some(trial_end);
        self.member_since = Some(now);
    }

    /// Starts a paid membership from none, trial or lapsed, with a schedule anchored now.
    pub(crate) fn start_paid(
        &mut self,
        plan: Arc<str>,
        now: Timestamp,
        period_end: Timestamp,
        zone: TimeZone,
    ) {
        debug_assert_ne!(self.status, MembershipStatus::Active);
        if self.status != MembershipStatus::Trial {
            self.member_since = Some(now);
        }
        self.status = MembershipStatus::Active;
        self.plan = Some(plan);
        self.period_start = Some(now);
        self.period_end = Some(period_end);
        self.schedules_started = self.schedules_started.saturating_add(1);
        self.schedule = Some(Schedule::anchored(self.schedules_started, now, zone));
    }

    /// Extends an active membership; the schedule continues.
    pub(crate) fn renew(&mut self, plan: Arc<str>, period_end: Timestamp) {
        debug_assert!(
            self.status == MembershipStatus::Active && Some(period_end) > self.period_end
        );
        self.plan = Some(plan);
        self.period_end = Some(period_end);
    }

    /// Ends the membership at `at` (its period end, or now for a cancel).
    pub(crate) fn lapse(&mut self, at: Timestamp) {
        debug_assert!(self.is_member());
        if let Some(start) = self.member_since.take() {
            if self.past_periods.len() >= MAX_PAST_MEMBER_PERIODS {
                self.past_periods.remove(0);
            }
            self.past_periods.push(MemberPeriod { start, end: at });
        }
        self.status = MembershipStatus::Lapsed;
        self.period_end = Some(at);
        self.schedule = None;
    }

    pub(crate) fn schedule_mut(&mut self) -> Option<&mut Schedule> {
        self.schedule.as_mut()
    }
}
