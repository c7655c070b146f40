//! What commands take and answer: the inputs a caller builds (a grant, a purchase, a
//! use to pay for, an adjustment) and the receipts commands give back.

use jiff::civil::Date;
use jiff::{Span, Timestamp};

use crate::limits::{Amount, Payment};
use crate::{BucketId, CreditKind, OrderId, Source, Tier};

/// How long a promotion or compensation grant lasts.
#[derive(Clone, Copy, Debug)]
pub enum Expiry {
    /// It never expires.
    Never,
    /// It expires at this instant, which must be in the future.
    At(Timestamp),
    /// It expires this long after the grant (calendar days, exact hours).
    ValidFor(Span),
}

/// Sources a caller may grant directly; the others come from rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantSource {
    /// Promotional credits.
    Promotion,
    /// Compensation (e.g. credits not arriving after a payment).
    Compensation,
}

impl GrantSource {
    /// Both, in the order the API lists them.
    pub const ALL: [GrantSource; 2] = [GrantSource::Promotion, GrantSource::Compensation];

    /// The source of the bucket it grants.
    pub fn source(self) -> Source {
        match self {
            GrantSource::Promotion => Source::Promotion,
            GrantSource::Compensation => Source::Compensation,
        }
    }

    /// Its name in the API: its bucket source's.
    pub fn as_str(self) -> &'static str {
        self.source().as_str()
    }
}

/// A promotion or compensation grant.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Kind of credits.
    pub kind: CreditKind,
    /// How many.
    pub amount: Amount,
    /// Promotion or compensation.
    pub source: GrantSource,
    /// When they end.
    pub expiry: Expiry,
    /// The campaign it belongs to.
    pub campaign: Option<String>,
    /// A note for the ledger.
    pub note: Option<String>,
}

/// What a purchase buys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurchaseCredits {
    /// A package of the catalog, by name.
    Package(String),
    /// A number of credits.
    Credits(Amount),
}

/// A confirmed payment for credits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    /// The platform's order id (unique; the store enforces it).
    pub order_id: OrderId,
    /// What was bought.
    pub credits: PurchaseCredits,
    /// When it was paid; now if not given. Never in the future.
    pub paid_at: Option<Timestamp>,
    /// What the platform was paid, if it said: kept with the purchase for support and
    /// reconciliation; no rule depends on it.
    pub paid: Option<Payment>,
}

/// The recorded purchase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseReceipt {
    /// The order id.
    pub order_id: OrderId,
    /// Credits granted.
    pub credits: u64,
    /// The bucket they went into.
    pub bucket_id: BucketId,
    /// When it was paid.
    pub paid_at: Timestamp,
    /// When the credits expire.
    pub expires_at: Timestamp,
}

/// The answer to a daily login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyLogin {
    /// Credits granted: the policy's amount on the first login of a local day, else 0.
    pub granted: u64,
    /// The local date in the account's zone.
    pub local_date: Date,
    /// The start of the next local day, when daily-login credits end.
    pub expires_at: Timestamp,
    /// The new bucket, if credits were granted.
    pub bucket_id: Option<BucketId>,
}

/// One use of a feature to pay for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Use {
    /// The feature's name.
    pub feature: String,
    /// Units; the feature's default if `None`.
    pub quantity: Option<u32>,
    /// Tier; general if `None`.
    pub tier: Option<Tier>,
    /// Hold TTL; the policy's default if `None`.
    pub ttl_seconds: Option<u32>,
    /// The caller's reference (a job id).
    pub reference: Option<String>,
}

/// An admin's change to a balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    /// Signed credits: +n adds a never-expiring compensation bucket, −n takes from the
    /// kind's available buckets in consumption order.
    pub amount: i64,
    /// Kind of credits.
    pub kind: CreditKind,
    /// Why; required, kept in the ledger.
    pub reason: String,
}
