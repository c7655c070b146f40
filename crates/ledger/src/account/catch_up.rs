//! Time's effects on an account: catching up to `now`, each effect dated at its own
//! instant, in SPEC §8's order (membership lapse, hold expiry, bucket expiry,
//! distribution).

use jiff::Timestamp;

use super::Moment;
use super::bookkeeping::negative;
use crate::limits::MAX_CATCH_UP_INSTANTS;
use crate::{
    Bucket, BucketId, CreditKind, Distribution, EntryType, EventKind, HoldStatus, LedgerEntry,
    Source,
};

impl Moment<'_> {
    /// Applies every time-based effect due at or before now, earliest first; effects of
    /// one instant in SPEC §8's order: lapse, hold expiry, bucket expiry, distribution.
    /// The moment's clock walks through the effects, so each is dated at its instant.
    /// After [`MAX_CATCH_UP_INSTANTS`] instants with more still due, it stops there,
    /// behind (see [`Moment::caught_up`]).
    pub(super) fn catch_up(&mut self) {
        let target = self.now;
        let mut instants = 0_usize;
        while let Some(at) = self.next_effect_at().filter(|at| *at <= target) {
            if instants == MAX_CATCH_UP_INSTANTS {
                self.behind = true;
                return;
            }
            instants = instants.saturating_add(1);
            self.now = at;
            if self.account.membership.lapse_at() == Some(at) {
                self.lapse();
            }
            while let Some(id) = self
                .account
                .holds
                .iter()
                .find(|h| h.expires_at == at)
                .map(|h| h.id)
            {
                let expired = self.settle(id, HoldStatus::Expired, 0, 0).clone();
                self.record_event(EventKind::HoldExpired(expired));
            }
            let mut expiring: Vec<BucketId> = self
                .account
                .buckets
                .iter()
                .filter(|b| b.expires_at == Some(at))
                .map(|b| b.id)
                .collect();
            expiring.sort_unstable();
            for id in expiring {
                self.expire(id);
            }
            if let Some((due, index)) = self.account.membership.next_distribution()
                && due == at
            {
                self.distribute(index);
            }
            self.give_notices(at);
            self.observe_balance();
            // Every effect at or before `at` is applied (notices are told by this).
            self.account.as_of = at;
        }
        self.now = target;
        self.account.as_of = target;
    }

    /// `credits.expiring_soon` for the buckets whose notice instant is `at` and that
    /// still have credits then.
    fn give_notices(&mut self, at: Timestamp) {
        let noticed: Vec<(Bucket, bool)> = self
            .account
            .buckets
            .iter()
            .filter(|b| b.notice_at == Some(at) && b.remaining > 0)
            .map(|b| (b.clone(), self.account.is_frozen(b)))
            .collect();
        for (bucket, frozen) in noticed {
            self.record_event(EventKind::CreditsExpiringSoon { bucket, frozen });
        }
    }

    pub(super) fn next_effect_at(&self) -> Option<Timestamp> {
        self.account.next_effect_at()
    }

    pub(super) fn lapse(&mut self) {
        let previous = self.account.membership.clone();
        self.account.membership.lapse(self.now);
        self.record_membership_change(previous);
        self.record_freezing(EntryType::Freeze);
    }

    pub(super) fn expire(&mut self, id: BucketId) {
        let index = self
            .account
            .buckets
            .iter()
            .position(|b| b.id == id)
            .expect("expiring a live bucket");
        let bucket = self.account.buckets.remove(index);
        if bucket.remaining > 0 {
            self.record_event(EventKind::CreditsExpired {
                bucket_id: id,
                kind: bucket.kind,
                source: bucket.source,
                amount: bucket.remaining,
            });
            let mut entry = LedgerEntry::new(
                self.now,
                EntryType::Expire,
                negative(bucket.remaining),
                bucket.kind,
                bucket.source,
                id,
            );
            entry.note = bucket.campaign;
            self.history.entries.push(entry);
        }
    }

    pub(super) fn distribute(&mut self, index: u32) {
        let membership = &mut self.account.membership;
        let schedule = membership
            .schedule_mut()
            .expect("distributing on a schedule");
        let (number, anchor) = (schedule.number, schedule.anchor);
        let agent_end = schedule.month_end(index);
        schedule.advance();
        let plan = membership
            .plan
            .as_deref()
            .and_then(|name| self.catalog.plan(name).ok());
        // A plan removed from the configuration distributes nothing; the schedule runs on.
        let (general, agent) =
            plan.map_or((0, 0), |p| (p.monthly_credits, p.monthly_agent_credits));
        let mut subscription_bucket = None;
        if general > 0 {
            let id = self.add_bucket(
                CreditKind::General,
                Source::Subscription,
                general,
                None,
                None,
            );
            self.record_grant(id, |_| {});
            subscription_bucket = Some(self.bucket(id).clone());
        }
        let mut agent_bucket = None;
        if agent > 0 {
            let id = self.add_bucket(
                CreditKind::Agent,
                Source::MembershipAgent,
                agent,
                agent_end,
                None,
            );
            self.record_grant(id, |_| {});
            agent_bucket = Some(self.bucket(id).clone());
        }
        self.record_event(EventKind::CreditsDistributed {
            index,
            subscription_bucket,
            agent_bucket,
        });
        let at = self.now;
        self.history.distributions.push(Distribution {
            schedule: number,
            anchor,
            index,
            at,
        });
    }
}
