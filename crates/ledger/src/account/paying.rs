//! Paying for a use (SPEC §4): reserving credits from the eligible buckets in
//! consumption order, all or nothing, and settling a hold: charging what was delivered
//! and returning the rest, into its own bucket or, if that expired meanwhile, a
//! refund-grace bucket.

use std::sync::Arc;

use jiff::ToSpan;

use super::bookkeeping::{describe_return, negative, signed};
use super::{Moment, Use};
use crate::hold::{Refund, Settlement};
use crate::limits::{MAX_PENDING_HOLDS, MAX_QUANTITY, check_text};
use crate::{
    Allocation, Bucket, BucketId, CreditKind, EntryType, Hold, HoldId, HoldStatus, Refusal, Source,
};

impl Moment<'_> {
    pub(super) fn place(&mut self, intended: &Use) -> Result<HoldId, Refusal> {
        let catalog = self.catalog;
        let feature = catalog.feature(&intended.feature)?;
        let tier = intended.tier.unwrap_or_default();
        let price = feature.price(tier)?;
        let quantity = intended.quantity.unwrap_or(feature.default_quantity);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(Refusal::QuantityOutOfRange {
                min: 1,
                max: MAX_QUANTITY,
            });
        }
        let policies = catalog.policies();
        let (min, max) = (policies.hold_ttl_min_seconds, policies.hold_ttl_max_seconds);
        let ttl_seconds = intended
            .ttl_seconds
            .unwrap_or(policies.hold_ttl_default_seconds);
        if !(min..=max).contains(&ttl_seconds) {
            return Err(Refusal::TtlOutOfRange { min, max });
        }
        if let Some(reference) = &intended.reference {
            check_text("reference", reference)?;
        }
        if self.account.holds.len() >= MAX_PENDING_HOLDS {
            return Err(Refusal::TooManyPendingHolds {
                max: MAX_PENDING_HOLDS,
            });
        }
        let expires_at = self
            .now
            .checked_add(i64::from(ttl_seconds).seconds())
            .map_err(|_| Refusal::TimeOutOfRange)?;
        let amount = price.cost(quantity);
        let category = feature.category;
        let takes = self.take(amount, |b| category.accepts(b.kind))?;

        let id = HoldId::new(self.account.next_hold);
        self.account.next_hold = self.account.next_hold.saturating_add(1);
        let feature_name = Arc::clone(&feature.name);
        let mut allocations = Vec::with_capacity(takes.len());
        for (bucket_id, taken) in takes {
            let bucket = self.bucket(bucket_id);
            allocations.push(Allocation {
                bucket_id,
                kind: bucket.kind,
                source: bucket.source,
                amount: taken,
            });
            let mut entry = self.entry_for(bucket_id, EntryType::Debit, negative(taken));
            entry.hold_id = Some(id);
            entry.feature = Some(Arc::clone(&feature_name));
            entry.quantity = Some(quantity);
            self.history.entries.push(entry);
        }
        self.account.holds.push(Hold {
            id,
            feature: feature_name,
            tier,
            quantity,
            price,
            amount,
            status: HoldStatus::Pending,
            created_at: self.now,
            expires_at,
            allocations,
            reference: intended.reference.as_deref().map(Into::into),
            settlement: None,
        });
        Ok(id)
    }

    /// Takes `amount` from the eligible buckets that `accepts`, in consumption order;
    /// all or nothing. Returns (bucket, credits taken) pairs.
    pub(super) fn take(
        &mut self,
        amount: u64,
        accepts: impl Fn(&Bucket) -> bool,
    ) -> Result<Vec<(BucketId, u64)>, Refusal> {
        let account = &*self.account;
        let payers = || {
            account
                .buckets
                .iter()
                .filter(|b| account.can_pay(b) && accepts(b))
        };
        let available: u64 = payers().map(|b| b.remaining).sum();
        if available < amount {
            return Err(Refusal::InsufficientCredits {
                required: amount,
                available,
            });
        }
        let mut plan = Vec::new();
        let mut left = amount;
        for bucket in payers() {
            if left == 0 {
                break;
            }
            let taken = left.min(bucket.remaining);
            plan.push((bucket.id, taken));
            left = left.saturating_sub(taken);
        }
        for &(id, taken) in &plan {
            let bucket = self
                .account
                .bucket_mut(id)
                .expect("planned from live buckets");
            bucket.remaining = bucket
                .remaining
                .checked_sub(taken)
                .expect("planned within remaining");
        }
        Ok(plan)
    }

    /// Ends a pending hold: `charged` credits are taken from its allocations in order,
    /// the rest go back to their buckets, or into a `refund_grace` bucket of the same
    /// kind where the bucket has expired. Returns the settled hold (kept in the history).
    pub(super) fn settle(
        &mut self,
        id: HoldId,
        status: HoldStatus,
        quantity: u32,
        charged: u64,
    ) -> &Hold {
        let index = self
            .account
            .holds
            .iter()
            .position(|h| h.id == id)
            .expect("settle is called on pending holds");
        let mut hold = self.account.holds.remove(index);
        debug_assert!(charged <= hold.amount);
        let mut to_charge = charged;
        let mut to_grace = [0_u64; 2]; // by kind: agent, general
        let mut refunds = Vec::new();
        for allocation in &hold.allocations {
            let kept = to_charge.min(allocation.amount);
            to_charge = to_charge.saturating_sub(kept);
            let back = allocation.amount.saturating_sub(kept);
            if back == 0 {
                continue;
            }
            match self.account.bucket_mut(allocation.bucket_id) {
                Some(bucket) => {
                    bucket.remaining = bucket.remaining.saturating_add(back);
                    debug_assert!(
                        bucket.remaining <= bucket.granted,
                        "a return exceeds the grant"
                    );
                    let mut entry =
                        self.entry_for(allocation.bucket_id, EntryType::Refund, signed(back));
                    describe_return(&mut entry, &hold, quantity, status);
                    self.history.entries.push(entry);
                    refunds.push(Refund {
                        bucket_id: allocation.bucket_id,
                        kind: allocation.kind,
                        amount: back,
                    });
                }
                None => {
                    let slot = &mut to_grace[usize::from(allocation.kind == CreditKind::General)];
                    *slot = slot.saturating_add(back);
                }
            }
        }
        for (kind, back) in [CreditKind::Agent, CreditKind::General]
            .into_iter()
            .zip(to_grace)
        {
            if back > 0 {
                let expires_at = self
                    .add_in_zone(self.now, self.catalog.policies().refund_grace)
                    .ok();
                let bucket_id = self.add_bucket(kind, Source::RefundGrace, back, expires_at, None);
                let mut entry = self.entry_for(bucket_id, EntryType::Refund, signed(back));
                describe_return(&mut entry, &hold, quantity, status);
                self.history.entries.push(entry);
                refunds.push(Refund {
                    bucket_id,
                    kind,
                    amount: back,
                });
            }
        }
        let refunded = hold.amount.saturating_sub(charged);
        hold.status = status;
        hold.settlement = Some(Settlement {
            at: self.now,
            captured_quantity: quantity,
            captured_amount: charged,
            refunded_amount: refunded,
            refunds,
        });
        for allocation in &hold.allocations {
            self.account.drop_if_spent(allocation.bucket_id);
        }
        self.history.settled_holds.push(hold);
        self.history.settled_holds.last().expect("just pushed")
    }
}
