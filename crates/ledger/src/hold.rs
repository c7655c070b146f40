//! Holds: credits reserved before a generation runs, charged or returned when it ends.
//!
//! A hold records the price it was placed at, so a later catalog change does not alter
//! it, and the buckets it took from in consumption order (its allocations), so that a
//! capture charges from the front and returns the rest to where it came from.

use std::sync::Arc;

use jiff::Timestamp;

use crate::{BucketId, CreditKind, HoldId, Price, Source, Tier};

/// Where a hold stands. Only `Pending` can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum HoldStatus {
    /// Credits reserved; waiting for capture, release or expiry.
    Pending,
    /// Charged for what was delivered; the rest returned.
    Captured,
    /// Everything returned on request.
    Released,
    /// Everything returned at `expires_at`.
    Expired,
}

/// Credits a hold took from one bucket.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Allocation {
    /// The bucket they came from.
    pub bucket_id: BucketId,
    /// Its kind.
    pub kind: CreditKind,
    /// Its source.
    pub source: Source,
    /// How many credits.
    pub amount: u64,
}

/// A reservation of credits for one use of a feature.
///
/// Invariant: `amount` = sum of allocation amounts = `price.cost(quantity)`; once
/// settled, `captured_amount + refunded_amount = amount`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hold {
    pub(crate) id: HoldId,
    pub(crate) feature: Arc<str>,
    pub(crate) tier: Tier,
    pub(crate) quantity: u32,
    pub(crate) price: Price,
    pub(crate) amount: u64,
    pub(crate) status: HoldStatus,
    #[serde(with = "crate::instant")]
    pub(crate) created_at: Timestamp,
    #[serde(with = "crate::instant")]
    pub(crate) expires_at: Timestamp,
    pub(crate) allocations: Vec<Allocation>,
    pub(crate) reference: Option<Arc<str>>,
    pub(crate) settlement: Option<Settlement>,
}

/// Credits a settled hold gave back to one bucket: the bucket they came from, or a new
/// `refund_grace` bucket where that one had expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refund {
    /// The bucket they went to.
    pub bucket_id: BucketId,
    /// Its kind.
    pub kind: CreditKind,
    /// How many credits.
    pub amount: u64,
}

/// How a hold ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settlement {
    /// When it was captured, released or expired.
    #[serde(with = "crate::instant")]
    pub at: Timestamp,
    /// The quantity charged for (0 unless captured).
    pub captured_quantity: u32,
    /// Credits charged.
    pub captured_amount: u64,
    /// Credits returned.
    pub refunded_amount: u64,
    /// Where they went, one line per bucket, as the ledger's `refund` entries say.
    /// Holds settled before this was recorded have none: see [`Hold::refunds`].
    #[serde(default)]
    pub refunds: Vec<Refund>,
}

impl Hold {
    /// The hold's id.
    pub fn id(&self) -> HoldId {
        self.id
    }
    /// The feature it pays for.
    pub fn feature(&self) -> &str {
        &self.feature
    }
    /// The tier it was priced in.
    pub fn tier(&self) -> Tier {
        self.tier
    }
    /// The quantity reserved for.
    pub fn quantity(&self) -> u32 {
        self.quantity
    }
    /// The price fixed when it was placed.
    pub fn price(&self) -> Price {
        self.price
    }
    /// Credits reserved.
    pub fn amount(&self) -> u64 {
        self.amount
    }
    /// Where it stands.
    pub fn status(&self) -> HoldStatus {
        self.status
    }
    /// When it was placed.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// When a pending hold returns everything by itself.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
    /// The buckets it took from, in consumption order.
    pub fn allocations(&self) -> &[Allocation] {
        &self.allocations
    }
    /// The caller's reference (a job id), if any.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }
    /// How it ended; `None` while pending.
    pub fn settlement(&self) -> Option<&Settlement> {
        self.settlement.as_ref()
    }
    /// Where a settled hold's returned credits went. A hold settled by a version that did
    /// not record it (stored format 1) tells it from its allocations: the charge is
    /// taken from the front, the rest went back to each allocation's bucket (or to a
    /// `refund_grace` bucket of the same kind, which that version's hold does not name).
    pub fn refunds(&self) -> Vec<Refund> {
        let Some(settlement) = &self.settlement else {
            return Vec::new();
        };
        if !settlement.refunds.is_empty() || settlement.refunded_amount == 0 {
            return settlement.refunds.clone();
        }
        let mut to_charge = settlement.captured_amount;
        self.allocations
            .iter()
            .filter_map(|allocation| {
                let kept = to_charge.min(allocation.amount);
                to_charge = to_charge.saturating_sub(kept);
                let amount = allocation.amount.saturating_sub(kept);
                (amount > 0).then_some(Refund {
                    bucket_id: allocation.bucket_id,
                    kind: allocation.kind,
                    amount,
                })
            })
            .collect()
    }

    /// Credits reserved in buckets of `kind`.
    pub fn held(&self, kind: CreditKind) -> u64 {
        self.allocations
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.amount)
            .sum()
    }
}
