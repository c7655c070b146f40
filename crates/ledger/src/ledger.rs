//! Ledger entries: the account's history, one line per change to one bucket.
//!
//! Entries are the output of commands, not part of the account's state: the store appends
//! them. Amounts are signed changes to the balance, so the sum of an account's entries is
//! always general available + general frozen + agent available (SPEC §5). Held credits
//! have already left through their `debit` entries.

use std::sync::Arc;

use jiff::Timestamp;

use crate::{BucketId, CreditKind, Hold, HoldId, OrderId, Source};

/// What happened to a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// Credits arrived (+).
    Grant,
    /// Credits left for a hold or charge (−).
    Debit,
    /// Credits came back from a hold (+).
    Refund,
    /// Unused credits ended with their bucket (−).
    Expire,
    /// An admin changed the balance, with a reason (±).
    Adjust,
    /// The bucket froze when the membership lapsed (0; `frozen` tells how much).
    Freeze,
    /// The bucket thawed when the membership was reactivated (0; `frozen` tells how much).
    Unfreeze,
}

impl EntryType {
    /// The type's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Grant => "grant",
            EntryType::Debit => "debit",
            EntryType::Refund => "refund",
            EntryType::Expire => "expire",
            EntryType::Adjust => "adjust",
            EntryType::Freeze => "freeze",
            EntryType::Unfreeze => "unfreeze",
        }
    }
}

/// One change to one bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// When it took effect: for time-based effects their own instant, not when noticed.
    pub at: Timestamp,
    /// What happened.
    pub entry_type: EntryType,
    /// Signed change to the balance; 0 for freeze and unfreeze.
    pub amount: i64,
    /// Kind of the bucket's credits.
    pub kind: CreditKind,
    /// Source of the bucket.
    pub source: Source,
    /// The bucket changed.
    pub bucket_id: BucketId,
    /// The hold, for debits and refunds.
    pub hold_id: Option<HoldId>,
    /// The feature paid for, for debits and refunds.
    pub feature: Option<Arc<str>>,
    /// The quantity: reserved for a debit, delivered for a capture's refund.
    pub quantity: Option<u32>,
    /// The purchase, for its grant.
    pub order_id: Option<OrderId>,
    /// Credits frozen or thawed, for freeze and unfreeze entries.
    pub frozen: Option<u64>,
    /// The grant's note or campaign, or the adjustment's reason.
    pub note: Option<Arc<str>>,
}

impl LedgerEntry {
    /// An entry for `bucket_id` with no hold, feature or order.
    pub(crate) fn new(
        at: Timestamp,
        entry_type: EntryType,
        amount: i64,
        kind: CreditKind,
        source: Source,
        bucket_id: BucketId,
    ) -> Self {
        LedgerEntry {
            at,
            entry_type,
            amount,
            kind,
            source,
            bucket_id,
            hold_id: None,
            feature: None,
            quantity: None,
            order_id: None,
            frozen: None,
            note: None,
        }
    }

    /// A line a user can read in "Usage details".
    pub fn description(&self) -> String {
        let credits = |n: u64| match self.kind {
            CreditKind::Agent => format!("{n} agent credits"),
            CreditKind::General => format!("{n} credits"),
        };
        let magnitude = self.amount.unsigned_abs();
        let feature = self.feature.as_deref().unwrap_or("a use");
        let with_note = |text: String| match &self.note {
            Some(note) => format!("{text}: {note}"),
            None => text,
        };
        match self.entry_type {
            EntryType::Grant => match self.source {
                Source::DailyLogin => format!("Daily login: {}", credits(magnitude)),
                Source::MembershipAgent | Source::Subscription => {
                    format!("Membership: {}", credits(magnitude))
                }
                Source::Trial => format!("Trial membership: {}", credits(magnitude)),
                Source::Purchase => match &self.order_id {
                    Some(order) => format!("Purchase {order}: {}", credits(magnitude)),
                    None => format!("Purchase: {}", credits(magnitude)),
                },
                Source::Promotion => with_note(format!("Promotion: {}", credits(magnitude))),
                Source::Compensation | Source::RefundGrace => {
                    with_note(format!("Compensation: {}", credits(magnitude)))
                }
            },
            EntryType::Debit => match self.quantity {
                Some(q) => format!("{feature} × {q}"),
                None => feature.to_owned(),
            },
            EntryType::Refund => format!("Returned from {feature}: {}", credits(magnitude)),
            EntryType::Expire => format!("Expired: {}", credits(magnitude)),
            EntryType::Adjust => with_note(format!("Adjustment: {}", credits(magnitude))),
            EntryType::Freeze => format!(
                "Frozen while the membership is inactive: {}",
                credits(self.frozen.unwrap_or(0))
            ),
            EntryType::Unfreeze => format!(
                "Unfrozen on reactivation: {}",
                credits(self.frozen.unwrap_or(0))
            ),
        }
    }
}

/// One monthly distribution of a membership schedule. (schedule, index) is unique per
/// account: the store's exactly-once key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Distribution {
    /// The schedule's number within the account.
    pub schedule: u32,
    /// The schedule's anchor (its activation instant).
    pub anchor: Timestamp,
    /// n: the distribution happened at anchor + n months.
    pub index: u32,
    /// anchor + n months.
    pub at: Timestamp,
}

/// What commands produced, in the order it happened, for the store to persist with the
/// account's new state in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// New ledger entries, oldest first.
    pub entries: Vec<LedgerEntry>,
    /// Holds that left the pending state (captured, released, expired).
    pub settled_holds: Vec<Hold>,
    /// Distributions made.
    pub distributions: Vec<Distribution>,
}

impl Journal {
    /// Forgets everything, keeping the allocations (for reuse across commands).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.settled_holds.clear();
        self.distributions.clear();
    }

    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.settled_holds.is_empty() && self.distributions.is_empty()
    }
}
