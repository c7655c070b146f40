//! The account: its state, and every command as a pure function of (state, command, now).
//!
//! `Account::at(catalog, now, history)` first brings the account to `now` — every
//! time-based effect due at or before `now`, in order, each dated at its own instant —
//! and returns a [`Moment`] on which commands run. A command either applies completely,
//! appending its ledger entries to the history, or returns a [`Refusal`] and changes
//! nothing. The caller (the store) persists the new state and the history together.
//!
//! The state is bounded whatever the history: live buckets, pending holds, the
//! membership and a few counters. Spent and expired buckets, settled holds and ledger
//! entries leave the state through the history.

use std::cmp::Ordering;
use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::limits::{Amount, MAX_CATCH_UP_INSTANTS, MAX_LIVE_BUCKETS, check_text};
use crate::{
    AccountId, Bucket, BucketId, Catalog, CreditKind, EntryType, EventKind, History, Hold, HoldId,
    HoldStatus, LedgerEntry, Membership, MembershipStatus, Refusal, Source, time,
};

mod bookkeeping;
mod catch_up;
mod inputs;
mod paying;

use bookkeeping::{negative, signed};
pub use inputs::{
    Adjustment, DailyLogin, Expiry, Grant, GrantSource, Purchase, PurchaseCredits, PurchaseReceipt,
    Use,
};

/// One account's credits, membership and pending holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    id: AccountId,
    #[serde(with = "jiff::fmt::serde::tz::required")]
    time_zone: TimeZone,
    #[serde(with = "crate::instant")]
    created_at: Timestamp,
    /// Every time-based effect at or before this instant has been applied.
    #[serde(with = "crate::instant")]
    as_of: Timestamp,
    membership: Membership,
    /// Live buckets (unexpired; non-empty or lent to a pending hold), kept in
    /// consumption order for agent tasks.
    buckets: Vec<Bucket>,
    /// Pending holds, by id.
    holds: Vec<Hold>,
    last_daily_login: Option<Date>,
    next_bucket: u64,
    next_hold: u64,
    /// The account's own low-balance threshold; `None`: the policy's.
    #[serde(default)]
    low_balance_threshold: Option<Threshold>,
    /// The sequence number of the account's next event. States stored before events
    /// existed have none and start at 1.
    #[serde(default = "first_event")]
    next_event: u64,
}

/// An account's own setting of its low-balance threshold (SPEC §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// No `balance.low` events for this account, whatever the policy.
    Off,
    /// `balance.low` when the total falls below this.
    Below(u64),
}

fn first_event() -> u64 {
    1
}

impl Account {
    /// A new account with no credits and no membership.
    pub fn open(id: AccountId, time_zone: TimeZone, now: Timestamp) -> Account {
        Account {
            id,
            time_zone,
            created_at: now,
            as_of: now,
            membership: Membership::default(),
            buckets: Vec::new(),
            holds: Vec::new(),
            last_daily_login: None,
            next_bucket: 1,
            next_hold: 1,
            low_balance_threshold: None,
            next_event: first_event(),
        }
    }

    /// Brings the account to `now` (applying every time-based effect due by then into
    /// `history`) and returns the moment on which commands run. A `now` earlier than
    /// the account's own time (a clock behind another node's) counts as the account's
    /// time: an account's history never runs backwards.
    pub fn at<'a>(
        &'a mut self,
        catalog: &'a Catalog,
        now: Timestamp,
        history: &'a mut History,
    ) -> Moment<'a> {
        let now = now.max(self.as_of);
        let total_seen = self.total();
        let mut moment = Moment {
            account: self,
            catalog,
            now,
            history,
            total_seen,
            behind: false,
        };
        moment.catch_up();
        moment
    }

    /// The account's id.
    pub fn id(&self) -> &AccountId {
        &self.id
    }
    /// Its IANA time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }
    /// When it was created.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// The instant the state describes.
    pub fn as_of(&self) -> Timestamp {
        self.as_of
    }
    /// Its membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    /// Live buckets in consumption order for agent tasks (some may be empty while a
    /// pending hold holds their credits).
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }
    /// Pending holds, oldest first.
    pub fn pending_holds(&self) -> &[Hold] {
        &self.holds
    }
    /// A pending hold.
    pub fn pending_hold(&self, id: HoldId) -> Option<&Hold> {
        self.holds.iter().find(|h| h.id == id)
    }
    /// The local date of the last daily login that counted.
    pub fn last_daily_login(&self) -> Option<Date> {
        self.last_daily_login
    }
    /// The low-balance threshold in force: the account's own, else the policy's.
    pub fn low_balance_threshold(&self, catalog: &Catalog) -> Option<u64> {
        match self.low_balance_threshold {
            Some(Threshold::Off) => None,
            Some(Threshold::Below(threshold)) => Some(threshold),
            None => catalog.policies().low_balance_threshold,
        }
    }
    /// Events recorded so far: the next is number `events_recorded() + 1`.
    pub fn events_recorded(&self) -> u64 {
        self.next_event.saturating_sub(1)
    }
    /// general available + agent available (SPEC §6's `total`), without building the
    /// whole balance: credits left in buckets that are not frozen.
    pub fn total(&self) -> u64 {
        self.buckets
            .iter()
            .filter(|b| !self.is_frozen(b))
            .fold(0, |sum, b| sum.saturating_add(b.remaining))
    }
    /// Whether `bucket` is frozen now: a freezing source while not a member.
    pub fn is_frozen(&self, bucket: &Bucket) -> bool {
        bucket.source.freezes() && !self.membership.is_member()
    }

    fn bucket_mut(&mut self, id: BucketId) -> Option<&mut Bucket> {
        self.buckets.iter_mut().find(|b| b.id == id)
    }

    /// Eligible to pay (SPEC §4): credits left and not frozen. Expired buckets are
    /// no longer live.
    fn can_pay(&self, bucket: &Bucket) -> bool {
        bucket.remaining > 0 && !self.is_frozen(bucket)
    }

    fn is_lent(&self, id: BucketId) -> bool {
        self.holds
            .iter()
            .any(|h| h.allocations.iter().any(|a| a.bucket_id == id))
    }

    /// Drops a bucket that is empty and lent to no pending hold: nothing can reach it again.
    fn drop_if_spent(&mut self, id: BucketId) {
        let spent = self
            .buckets
            .iter()
            .position(|b| b.id == id && b.remaining == 0);
        if let Some(index) = spent
            && !self.is_lent(id)
        {
            self.buckets.remove(index);
        }
    }

    fn check_room_for_bucket(&self) -> Result<(), Refusal> {
        if self.buckets.len() < MAX_LIVE_BUCKETS {
            Ok(())
        } else {
            Err(Refusal::TooManyBuckets {
                max: MAX_LIVE_BUCKETS,
            })
        }
    }

    /// Checks what must hold between any two commands; the store calls it on every
    /// account it reads back, and debug builds after every [`Moment`].
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let broken = |what: String| Err(InvariantViolation(format!("account {}: {what}", self.id)));
        for pair in self.buckets.windows(2) {
            if pair[0].consumption_order(&pair[1]) != Ordering::Less {
                return broken(format!(
                    "buckets {} and {} out of consumption order",
                    pair[0].id, pair[1].id
                ));
            }
        }
        for b in &self.buckets {
            if b.remaining > b.granted || b.id.get() >= self.next_bucket {
                return broken(format!(
                    "bucket {} holds {} of {} granted",
                    b.id, b.remaining, b.granted
                ));
            }
            if b.expires_at.is_some_and(|at| at <= self.as_of) {
                return broken(format!("bucket {} expired but is live", b.id));
            }
            if b.remaining == 0 && !self.is_lent(b.id) {
                return broken(format!("bucket {} is spent but kept", b.id));
            }
        }
        for pair in self.holds.windows(2) {
            if pair[0].id >= pair[1].id {
                return broken(format!(
                    "holds {} and {} out of order",
                    pair[0].id, pair[1].id
                ));
            }
        }
        for h in &self.holds {
            let allocated = h
                .allocations
                .iter()
                .try_fold(0_u64, |sum, a| sum.checked_add(a.amount));
            let pending = h.status == HoldStatus::Pending && h.settlement.is_none();
            if !pending || h.id.get() >= self.next_hold || h.expires_at <= self.as_of {
                return broken(format!("hold {} is not a live pending hold", h.id));
            }
            if allocated != Some(h.amount) || h.price.cost(h.quantity) != h.amount {
                return broken(format!(
                    "hold {} reserves {allocated:?} for {}",
                    h.id, h.amount
                ));
            }
        }
        if self
            .membership
            .lapse_at()
            .is_some_and(|at| at <= self.as_of)
        {
            return broken("a member past the period end".into());
        }
        Ok(())
    }

    /// When the next time-based effect is due (a lapse, a distribution, a hold or bucket
    /// expiry); `None` if nothing will happen by itself. A background sweeper catches up
    /// accounts whose instant has come, so the stored ledger follows time.
    pub fn next_effect_at(&self) -> Option<Timestamp> {
        let membership = &self.membership;
        let lapse = membership.lapse_at();
        let distribution = membership.next_distribution().map(|(at, _)| at);
        let hold = self.holds.iter().map(|h| h.expires_at).min();
        let bucket = self.buckets.iter().filter_map(|b| b.expires_at).min();
        // A notice instant at or before `as_of` was given (or passed while the bucket was
        // empty): only later ones are still to come.
        let notice = self
            .buckets
            .iter()
            .filter_map(|b| b.notice_at)
            .filter(|at| *at > self.as_of)
            .min();
        [lapse, distribution, hold, bucket, notice]
            .into_iter()
            .flatten()
            .min()
    }

    /// The refusal for a hold id that is not pending.
    fn not_pending(&self, id: HoldId) -> Refusal {
        if (1..self.next_hold).contains(&id.get()) {
            Refusal::HoldNotPending(id)
        } else {
            Refusal::UnknownHold(id)
        }
    }
}

/// An account brought to one instant, on which commands run. See the module docs.
pub struct Moment<'a> {
    account: &'a mut Account,
    catalog: &'a Catalog,
    now: Timestamp,
    history: &'a mut History,
    /// The total as last observed, to tell when it falls (`balance.low`, `balance.depleted`).
    total_seen: u64,
    /// Whether more time effects were due than one moment catches up
    /// ([`MAX_CATCH_UP_INSTANTS`]): the moment stands at the last one applied, and
    /// refuses commands.
    behind: bool,
}

/// A state the rules can never produce: a bug, or a store that returned another state
/// than it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger invariant broken: {0}")]
pub struct InvariantViolation(String);

impl Drop for Moment<'_> {
    /// Debug builds check the account after every moment, whatever its commands did.
    fn drop(&mut self) {
        if cfg!(debug_assertions)
            && !std::thread::panicking()
            && let Err(violation) = self.account.check_invariants()
        {
            panic!("{violation}");
        }
    }
}

impl<'a> Moment<'a> {
    /// The catalog the commands are priced by.
    pub(crate) fn catalog(&self) -> &'a Catalog {
        self.catalog
    }

    /// The instant commands happen at.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Whether the account is caught up to the instant asked for; if not, it stands at
    /// the last of the [`MAX_CATCH_UP_INSTANTS`] it caught up, and commands are refused
    /// [`Refusal::CatchingUp`] (what it caught up is kept).
    pub fn caught_up(&self) -> Result<(), Refusal> {
        if self.behind {
            return Err(Refusal::CatchingUp {
                as_of: self.now,
                max: MAX_CATCH_UP_INSTANTS,
            });
        }
        Ok(())
    }

    /// The account as of now.
    pub fn account(&self) -> &Account {
        self.account
    }

    /// Sets the account's time zone. Instants already fixed (expiries, a running
    /// schedule) keep their value; later rules use the new zone.
    pub fn set_time_zone(&mut self, zone: TimeZone) {
        self.account.time_zone = zone;
    }

    /// Sets the account's own low-balance threshold: `Some(n)` (n ≥ 1), or `None` for
    /// no `balance.low` events whatever the policy.
    pub fn set_low_balance_threshold(&mut self, threshold: Option<Amount>) {
        self.account.low_balance_threshold = Some(match threshold {
            Some(threshold) => Threshold::Below(threshold.get()),
            None => Threshold::Off,
        });
    }

    /// Starts a trial of `plan`: trial credits at once, until now + trial_days.
    pub fn start_trial(&mut self, plan: &str) -> Result<(), Refusal> {
        let plan = self.catalog.plan(plan)?;
        if self.account.membership.status != MembershipStatus::None || plan.trial_days == 0 {
            return Err(Refusal::TrialNotAvailable);
        }
        let trial_end = self.add_in_zone(self.now, i64::from(plan.trial_days).days())?;
        let previous = self.account.membership.clone();
        self.account
            .membership
            .start_trial(Arc::clone(&plan.name), self.now, trial_end);
        self.record_membership_change(previous);
        if plan.trial_credits > 0 {
            let bucket = self.add_bucket(
                CreditKind::General,
                Source::Trial,
                plan.trial_credits,
                Some(trial_end),
                None,
            );
            self.record_grant(bucket, |_| {});
        }
        Ok(())
    }

    /// Starts, renews or reactivates a paid membership of `plan` until `period_end`.
    pub fn activate(&mut self, plan: &str, period_end: Timestamp) -> Result<(), Refusal> {
        let plan = Arc::clone(&self.catalog.plan(plan)?.name);
        if period_end <= self.now {
            return Err(Refusal::PeriodEndNotInFuture);
        }
        let previous = self.account.membership.clone();
        let membership = &mut self.account.membership;
        match membership.status {
            MembershipStatus::Active => match Some(period_end).cmp(&membership.period_end) {
                Ordering::Less => Err(Refusal::PeriodEndBeforeCurrent),
                Ordering::Equal => Ok(()),
                Ordering::Greater => {
                    membership.renew(plan, period_end);
                    self.record_membership_change(previous);
                    Ok(())
                }
            },
            status => {
                let zone = self.account.time_zone.clone();
                membership.start_paid(plan, self.now, period_end, zone);
                self.record_membership_change(previous);
                if status == MembershipStatus::Lapsed {
                    self.record_freezing(EntryType::Unfreeze);
                }
                self.catch_up(); // distribution 0 happens now
                Ok(())
            }
        }
    }

    /// Lapses the membership now.
    pub fn cancel(&mut self) -> Result<(), Refusal> {
        if !self.account.membership.is_member() {
            return Err(Refusal::NotAMember);
        }
        self.lapse();
        Ok(())
    }

    /// The daily login: agent credits until the next local midnight, once per local day.
    pub fn daily_login(&mut self) -> Result<DailyLogin, Refusal> {
        let zone = &self.account.time_zone;
        let local_date = time::local_date(self.now, zone);
        let expires_at = time::next_local_midnight(self.now, zone)?;
        let credits = self.catalog.policies().daily_login_credits;
        let first_today = self.account.last_daily_login < Some(local_date);
        let mut answer = DailyLogin {
            granted: 0,
            local_date,
            expires_at,
            bucket_id: None,
        };
        if first_today && credits > 0 {
            self.account.check_room_for_bucket()?;
            let bucket = self.add_bucket(
                CreditKind::Agent,
                Source::DailyLogin,
                credits,
                Some(expires_at),
                None,
            );
            self.record_grant(bucket, |_| {});
            answer.granted = credits;
            answer.bucket_id = Some(bucket);
        }
        if first_today {
            self.account.last_daily_login = Some(local_date);
        }
        Ok(answer)
    }

    /// A promotion or compensation grant.
    pub fn grant(&mut self, grant: Grant) -> Result<Bucket, Refusal> {
        for (field, text) in [("campaign", &grant.campaign), ("note", &grant.note)] {
            if let Some(text) = text {
                check_text(field, text)?;
            }
        }
        let expires_at = match grant.expiry {
            Expiry::Never => None,
            Expiry::At(at) if at <= self.now => return Err(Refusal::ExpiryNotInFuture),
            Expiry::At(at) => Some(at),
            Expiry::ValidFor(span) => {
                Some(self.add_in_zone(self.now, time::check_positive(span)?)?)
            }
        };
        self.account.check_room_for_bucket()?;
        let source = grant.source.source();
        let campaign: Option<Arc<str>> = grant.campaign.map(Into::into);
        let note: Option<Arc<str>> = grant.note.map(Into::into).or_else(|| campaign.clone());
        let id = self.add_bucket(grant.kind, source, grant.amount.get(), expires_at, campaign);
        self.record_grant(id, |entry| entry.note = note);
        Ok(self.bucket(id).clone())
    }

    /// Records a purchase paid at `paid_at` (default now) by a member.
    pub fn purchase(&mut self, purchase: Purchase) -> Result<PurchaseReceipt, Refusal> {
        let credits = self.catalog.credits_of(&purchase.credits)?;
        let paid_at = purchase.paid_at.unwrap_or(self.now);
        if paid_at > self.now {
            return Err(Refusal::PaidAtInFuture);
        }
        if !self.account.membership.was_member_at(paid_at) {
            return Err(Refusal::MembersOnly);
        }
        let expires_at = self.add_in_zone(paid_at, self.catalog.policies().purchase_validity)?;
        if expires_at <= self.now {
            return Err(Refusal::PurchaseAlreadyExpired);
        }
        self.account.check_room_for_bucket()?;
        let bucket_id = self.add_bucket(
            CreditKind::General,
            Source::Purchase,
            credits,
            Some(expires_at),
            None,
        );
        let order_id = purchase.order_id;
        self.record_grant(bucket_id, |entry| entry.order_id = Some(order_id.clone()));
        if !self.account.membership.is_member() {
            self.push_freezing(EntryType::Freeze, bucket_id);
        }
        let receipt = PurchaseReceipt {
            order_id,
            credits,
            bucket_id,
            paid_at,
            expires_at,
        };
        self.record_event(EventKind::PurchaseRecorded(receipt.clone()));
        Ok(receipt)
    }

    /// Reserves the cost of a use: from eligible buckets in consumption order, all or
    /// nothing.
    pub fn place_hold(&mut self, intended: &Use) -> Result<Hold, Refusal> {
        let id = self.place(intended)?;
        Ok(self.pending(id).clone())
    }

    /// Charges a pending hold for the delivered `quantity` (all of it if `None`) and
    /// returns the rest.
    pub fn capture(&mut self, id: HoldId, quantity: Option<u32>) -> Result<Hold, Refusal> {
        let held = self
            .account
            .pending_hold(id)
            .ok_or_else(|| self.account.not_pending(id))?;
        let delivered = quantity.unwrap_or(held.quantity);
        if delivered > held.quantity {
            return Err(Refusal::QuantityOutOfRange {
                min: 0,
                max: held.quantity,
            });
        }
        let charged = held.price.cost(delivered);
        Ok(self
            .settle(id, HoldStatus::Captured, delivered, charged)
            .clone())
    }

    /// Returns everything a pending hold reserved.
    pub fn release(&mut self, id: HoldId) -> Result<Hold, Refusal> {
        if self.account.pending_hold(id).is_none() {
            return Err(self.account.not_pending(id));
        }
        Ok(self.settle(id, HoldStatus::Released, 0, 0).clone())
    }

    /// A hold and its full capture in one step.
    pub fn charge(&mut self, intended: &Use) -> Result<Hold, Refusal> {
        let id = self.place(intended)?;
        let quantity = self.pending(id).quantity;
        let amount = self.pending(id).amount;
        Ok(self
            .settle(id, HoldStatus::Captured, quantity, amount)
            .clone())
    }

    /// An admin's adjustment; returns the entries it wrote.
    pub fn adjust(&mut self, adjustment: Adjustment) -> Result<Vec<LedgerEntry>, Refusal> {
        if adjustment.reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired);
        }
        check_text("reason", &adjustment.reason)?;
        let magnitude = Amount::new(adjustment.amount.unsigned_abs())?.get();
        let reason: Arc<str> = adjustment.reason.into();
        let first = self.history.entries.len();
        if adjustment.amount > 0 {
            self.account.check_room_for_bucket()?;
            let id = self.add_bucket(adjustment.kind, Source::Compensation, magnitude, None, None);
            let mut entry = self.entry_for(id, EntryType::Adjust, signed(magnitude));
            entry.note = Some(reason);
            self.history.entries.push(entry);
        } else {
            let takes = self.take(magnitude, |b| b.kind == adjustment.kind)?;
            for (bucket_id, amount) in takes {
                let mut entry = self.entry_for(bucket_id, EntryType::Adjust, negative(amount));
                entry.note = Some(Arc::clone(&reason));
                self.history.entries.push(entry);
                self.account.drop_if_spent(bucket_id);
            }
        }
        Ok(self.history.entries[first..].to_vec())
    }
}

#[cfg(test)]
mod tests;
