//! Ledger entries: the account's history, one line per change to one bucket.
//!
//! Entries are the output of commands, not part of the account's state: the store appends
//! them. Amounts are signed changes to the balance, so the sum of an account's entries is
//! always general available + general frozen + agent available (SPEC §5). Held credits
//! have already left through their `debit` entries.

use std::sync::Arc;

use jiff::Timestamp;

use crate::limits::page_limit;
use crate::{BucketId, CreditKind, Event, Hold, HoldId, OrderId, Refusal, Source};

/// What happened to a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
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

/// One change to one bucket.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    /// When it took effect: for time-based effects their own instant, not when noticed.
    #[serde(with = "crate::instant")]
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

/// What left the account's state while commands ran, in the order it happened: its
/// history (new ledger entries, settled holds, distributions), for the store to append
/// with the account's new state in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// New ledger entries, oldest first.
    pub entries: Vec<LedgerEntry>,
    /// Holds that left the pending state (captured, released, expired).
    pub settled_holds: Vec<Hold>,
    /// Distributions made.
    pub distributions: Vec<Distribution>,
    /// Events, in the order of their effects (their sequence numbers).
    pub events: Vec<Event>,
}

impl History {
    /// Forgets everything, keeping the allocations (for reuse across commands).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.settled_holds.clear();
        self.distributions.clear();
        self.events.clear();
    }
}

/// Which entries of an account's ledger to show: SPEC §8's `limit`, `type`, `since`
/// (inclusive) and `until` (exclusive). Pages run newest first; the store pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerQuery {
    limit: u32,
    entry_type: Option<EntryType>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl LedgerQuery {
    /// Checks the page size (1 … [`MAX_PAGE`], default [`DEFAULT_PAGE`]).
    /// A window with `until` not after `since` is valid and empty.
    pub fn new(
        limit: Option<u32>,
        entry_type: Option<EntryType>,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<LedgerQuery, Refusal> {
        let limit = page_limit(limit)?;
        Ok(LedgerQuery {
            limit,
            entry_type,
            since,
            until,
        })
    }

    /// Entries per page.
    pub fn limit(&self) -> u32 {
        self.limit
    }
    /// Only entries of this type, if set.
    pub fn entry_type(&self) -> Option<EntryType> {
        self.entry_type
    }
    /// Only entries at or after this instant, if set.
    pub fn since(&self) -> Option<Timestamp> {
        self.since
    }
    /// Only entries before this instant, if set.
    pub fn until(&self) -> Option<Timestamp> {
        self.until
    }

    /// Whether `entry` is in the query's window and of its type.
    pub fn matches(&self, entry: &LedgerEntry) -> bool {
        self.entry_type.is_none_or(|t| t == entry.entry_type)
            && self.since.is_none_or(|since| entry.at >= since)
            && self.until.is_none_or(|until| entry.at < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: &str, entry_type: EntryType) -> LedgerEntry {
        let at = at.parse().expect("time");
        LedgerEntry::new(
            at,
            entry_type,
            1,
            CreditKind::General,
            Source::Promotion,
            BucketId::new(1),
        )
    }

    #[test]
    fn ledger_pages_default_to_50_and_hold_at_most_500() {
        assert_eq!(
            LedgerQuery::new(None, None, None, None).map(|q| q.limit()),
            Ok(50)
        );
        assert!(LedgerQuery::new(Some(500), None, None, None).is_ok());
        assert!(LedgerQuery::new(Some(501), None, None, None).is_err());
        assert!(LedgerQuery::new(Some(0), None, None, None).is_err());
    }

    #[test]
    fn ledger_since_is_inclusive_and_until_exclusive() {
        let since = "2026-01-01T00:00:00Z".parse().ok();
        let until = "2026-01-02T00:00:00Z".parse().ok();
        let query = LedgerQuery::new(None, Some(EntryType::Grant), since, until).expect("query");
        assert!(query.matches(&entry("2026-01-01T00:00:00Z", EntryType::Grant)));
        assert!(!query.matches(&entry("2026-01-02T00:00:00Z", EntryType::Grant)));
        assert!(!query.matches(&entry("2026-01-01T12:00:00Z", EntryType::Debit)));
    }

    #[test]
    fn descriptions_say_what_happened_in_words() {
        let mut freeze = entry("2026-01-01T00:00:00Z", EntryType::Freeze);
        freeze.frozen = Some(600);
        assert_eq!(
            freeze.description(),
            "Frozen while the membership is inactive: 600 credits"
        );
        let mut debit = entry("2026-01-01T00:00:00Z", EntryType::Debit);
        (debit.amount, debit.kind) = (-10, CreditKind::Agent);
        (debit.feature, debit.quantity) = (Some("agent.poster".into()), Some(1));
        assert_eq!(debit.description(), "agent.poster × 1");
    }
}
