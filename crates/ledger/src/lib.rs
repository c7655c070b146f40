//! The domain core of creditd: every credit rule of SPEC §1–5, as pure functions.
//!
//! An [`Account`] holds live [`Bucket`]s, pending [`Hold`]s and a [`Membership`].
//! Commands run on a [`Moment`] — the account brought to an instant `now` that the caller
//! passes in — and append [`LedgerEntry`]s to a [`Journal`] for the store to persist.
//! Prices, plans and policies come from the [`Catalog`].
//!
//! Architecture invariant: this crate knows nothing of storage, HTTP, async runtimes or
//! the wall clock. It does no I/O (even the time-zone database is bundled), spawns
//! nothing and reads no clock, so any history can be replayed, simulated and
//! property-tested.

/// `Display` for the domain's enums is their name in the API (`as_str`).
macro_rules! display_as_str {
    ($($name:ty),* $(,)?) => {
        $(impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        })*
    };
}

mod account;
mod balance;
mod bucket;
mod catalog;
mod hold;
mod ids;
mod ledger;
mod limits;
mod membership;
mod refusal;
mod time;

pub use account::{
    Account, Adjustment, DailyLogin, Expiry, Grant, GrantSource, InvariantViolation, Moment,
    Purchase, PurchaseCredits, PurchaseReceipt, Use,
};
pub use balance::{AgentBalance, Balance, BalanceBucket, GeneralBalance, NextExpiry};
pub use bucket::{Bucket, CreditKind, Source};
pub use catalog::{
    Catalog, CatalogError, Category, DEFAULT_CATALOG_TOML, Feature, MAX_TRIAL_DAYS, Package, Plan,
    Policies, Price, Tier,
};
pub use hold::{Allocation, Hold, HoldStatus, Settlement};
pub use ids::{AccountId, BucketId, HoldId, MAX_ACCOUNT_ID_LEN, MAX_ORDER_ID_LEN, OrderId};
pub use ledger::{Distribution, EntryType, Journal, LedgerEntry};
pub use limits::{
    Amount, MAX_AMOUNT, MAX_LIVE_BUCKETS, MAX_PAST_MEMBER_PERIODS, MAX_PENDING_HOLDS, MAX_QUANTITY,
    MAX_TEXT_LEN,
};
pub use membership::{MemberPeriod, Membership, MembershipStatus, Schedule};
pub use refusal::Refusal;
pub use time::{parse_duration, parse_time_zone};

display_as_str!(
    CreditKind,
    Source,
    Tier,
    HoldStatus,
    EntryType,
    MembershipStatus
);
