//! The bookkeeping every command shares: adding buckets, writing ledger entries for
//! them, freezing and unfreezing, and signed amounts.

use std::cmp::Ordering;
use std::sync::Arc;

use jiff::{Span, Timestamp};

use super::Moment;
use crate::{
    Bucket, BucketId, CreditKind, EntryType, Event, EventKind, Hold, HoldId, HoldStatus,
    LedgerEntry, Membership, Refusal, Source, time,
};

impl Moment<'_> {
    pub(super) fn add_in_zone(&self, at: Timestamp, span: Span) -> Result<Timestamp, Refusal> {
        time::add_in_zone(at, span, &self.account.time_zone)
    }

    pub(super) fn add_bucket(
        &mut self,
        kind: CreditKind,
        source: Source,
        credits: u64,
        expires_at: Option<Timestamp>,
        campaign: Option<Arc<str>>,
    ) -> BucketId {
        let id = BucketId::new(self.account.next_bucket);
        self.account.next_bucket = self.account.next_bucket.saturating_add(1);
        let bucket = Bucket {
            id,
            kind,
            source,
            granted: credits,
            remaining: credits,
            granted_at: self.now,
            expires_at,
            campaign,
            notice_at: expires_at.and_then(|end| self.notice_at(end)),
        };
        let frozen = self.account.is_frozen(&bucket);
        self.record_event(EventKind::CreditsGranted {
            bucket: bucket.clone(),
            frozen,
        });
        let buckets = &mut self.account.buckets;
        let index = buckets.partition_point(|b| b.consumption_order(&bucket) == Ordering::Less);
        buckets.insert(index, bucket);
        id
    }

    /// When a bucket granted now that ends at `expires_at` gets its
    /// `credits.expiring_soon` notice: the policy's `expiry_notice` before its end (in
    /// the account's zone), and only if its whole validity is longer than the notice.
    fn notice_at(&self, expires_at: Timestamp) -> Option<Timestamp> {
        let notice = self.catalog.policies().expiry_notice.negate();
        self.add_in_zone(expires_at, notice)
            .ok()
            .filter(|at| *at > self.now)
    }

    /// Records an event at now, numbered on from the account's last.
    pub(super) fn record_event(&mut self, kind: EventKind) {
        let sequence = self.account.next_event;
        self.account.next_event = sequence.saturating_add(1);
        self.history.events.push(Event {
            sequence,
            at: self.now,
            kind,
        });
    }

    /// Records a change of the membership from `previous` to what it is now.
    pub(super) fn record_membership_change(&mut self, previous: Membership) {
        let membership = Box::new(self.account.membership.clone());
        self.record_event(EventKind::MembershipChanged {
            membership,
            previous: Box::new(previous),
        });
    }

    /// Compares the total with the one last observed: `balance.low` when it fell from
    /// at least the threshold in force to below it, `balance.depleted` when it fell to
    /// 0. Called once every instant's time effects and every command are through, so a
    /// fall is told once, at the instant it happened.
    pub(crate) fn observe_balance(&mut self) {
        let total = self.account.total();
        let before = std::mem::replace(&mut self.total_seen, total);
        if total >= before {
            return;
        }
        if let Some(threshold) = self.account.low_balance_threshold(self.catalog)
            && before >= threshold
            && total < threshold
        {
            self.record_event(EventKind::BalanceLow { total, threshold });
        }
        if total == 0 {
            self.record_event(EventKind::BalanceDepleted);
        }
    }

    pub(super) fn bucket(&self, id: BucketId) -> &Bucket {
        self.account
            .buckets
            .iter()
            .find(|b| b.id == id)
            .expect("a live bucket")
    }

    pub(super) fn pending(&self, id: HoldId) -> &Hold {
        self.account.pending_hold(id).expect("a pending hold")
    }

    pub(super) fn entry_for(
        &self,
        id: BucketId,
        entry_type: EntryType,
        amount: i64,
    ) -> LedgerEntry {
        let bucket = self.bucket(id);
        LedgerEntry::new(self.now, entry_type, amount, bucket.kind, bucket.source, id)
    }

    pub(super) fn record_grant(&mut self, id: BucketId, finish: impl FnOnce(&mut LedgerEntry)) {
        let granted = self.bucket(id).granted;
        let mut entry = self.entry_for(id, EntryType::Grant, signed(granted));
        finish(&mut entry);
        self.history.entries.push(entry);
    }

    /// One freeze or unfreeze entry per bucket of a freezing source with credits in it.
    pub(super) fn record_freezing(&mut self, entry_type: EntryType) {
        let ids: Vec<BucketId> = self
            .account
            .buckets
            .iter()
            .filter(|b| b.source.freezes() && b.remaining > 0)
            .map(|b| b.id)
            .collect();
        for id in ids {
            self.push_freezing(entry_type, id);
        }
    }

    pub(super) fn push_freezing(&mut self, entry_type: EntryType, id: BucketId) {
        let bucket = self.bucket(id);
        let mut entry = LedgerEntry::new(self.now, entry_type, 0, bucket.kind, bucket.source, id);
        entry.frozen = Some(bucket.remaining);
        self.history.entries.push(entry);
    }
}

pub(super) fn describe_return(
    entry: &mut LedgerEntry,
    hold: &Hold,
    quantity: u32,
    status: HoldStatus,
) {
    entry.hold_id = Some(hold.id);
    entry.feature = Some(Arc::clone(&hold.feature));
    entry.quantity = (status == HoldStatus::Captured).then_some(quantity);
}

/// Credits as a signed ledger amount. Every amount is bounded far below `i64::MAX` (see
/// `MAX_AMOUNT`), so the conversion cannot fail.
pub(super) fn signed(credits: u64) -> i64 {
    i64::try_from(credits).expect("credit amounts are bounded far below i64::MAX")
}

/// Credits leaving a bucket, as a ledger amount.
pub(super) fn negative(credits: u64) -> i64 {
    signed(credits).saturating_neg()
}
