//! Refusals: the answers a rule gives when a command may not happen.
//!
//! A refusal is a value, not a bug: every command either applies completely or returns
//! one of these and changes nothing. Each variant carries the stable problem `code` of
//! SPEC §6, which the HTTP layer turns into an RFC 9457 problem.

use crate::{HoldId, Tier};

/// Why a command was refused. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The eligible credits do not cover the cost (SPEC §4: all or nothing).
    #[error("insufficient credits: {required} required, {available} available")]
    InsufficientCredits {
        /// What the use costs.
        required: u64,
        /// What the eligible buckets hold now.
        available: u64,
    },
    /// Purchases are for members only: the account was no member at `paid_at`.
    #[error("purchases are for members only: the account was not a member when it paid")]
    MembersOnly,
    /// The hold exists but is already captured, released or expired.
    #[error("hold {0} is settled and cannot change")]
    HoldNotPending(HoldId),
    /// No hold with this id was ever placed on the account.
    #[error("hold {0} does not exist")]
    UnknownHold(HoldId),
    /// The catalog has no feature of that name.
    #[error("unknown feature {0:?}")]
    UnknownFeature(String),
    /// The feature has no price in that tier ("–" in the catalog).
    #[error("feature {feature:?} has no {tier} tier")]
    TierNotAvailable {
        /// The feature asked for.
        feature: String,
        /// The tier it lacks.
        tier: Tier,
    },
    /// The catalog has no plan of that name.
    #[error("unknown plan {0:?}")]
    UnknownPlan(String),
    /// The catalog has no package of that name.
    #[error("unknown package {0:?}")]
    UnknownPackage(String),
    /// The account has more time effects to catch up than one command applies
    /// ([`crate::limits::MAX_CATCH_UP_INSTANTS`]); it is caught up to `as_of` so far.
    #[error(
        "the account has more than {max} instants of time effects to catch up (it is caught up to {as_of}); creditd is catching up in steps: retry in a moment"
    )]
    CatchingUp {
        /// How far the account is caught up.
        as_of: jiff::Timestamp,
        /// The instants one command catches up.
        max: usize,
    },
    /// An account id outside SPEC §8's alphabet or length.
    #[error(
        "account id must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit"
    )]
    InvalidAccountId,
    /// A search prefix no account id could start with.
    #[error("prefix must be at most 128 characters of A-Z a-z 0-9 . _ : @ -")]
    InvalidAccountIdPrefix,
    /// An order id that is empty, too long or not printable.
    #[error("order id must be 1 to 128 printable ASCII characters without spaces")]
    InvalidOrderId,
    /// A currency that is not an ISO 4217 code.
    #[error("currency {0:?} must be an ISO 4217 code such as USD")]
    InvalidCurrency(String),
    /// A payment of less than nothing.
    #[error("paid.amount_minor must not be negative")]
    NegativePayment,
    /// An order id already recorded with other terms (SPEC §8: not the same purchase).
    #[error("order {0} was recorded with another account, amount or paid_at")]
    OrderConflict(crate::OrderId),
    /// A command that needs an existing account named one that does not exist.
    #[error("account {0} does not exist")]
    UnknownAccount(crate::AccountId),
    /// A purchase naming both a package and a number of credits, or neither.
    #[error("give package or credits, not both")]
    PackageOrCredits,
    /// A grant with both an end and a validity.
    #[error("give expires_at or valid_for, not both")]
    ExpiryTwice,
    /// `activate` without the end of the paid period.
    #[error("activate needs period_end")]
    PeriodEndRequired,
    /// The catalog has no plan to default to.
    #[error("the catalog has no plan")]
    NoPlan,
    /// An amount outside 1 … 1,000,000,000.
    #[error("amount must be between 1 and {max}")]
    AmountOutOfRange {
        /// The largest amount allowed.
        max: u64,
    },
    /// A quantity outside its range.
    #[error("quantity must be between {min} and {max}")]
    QuantityOutOfRange {
        /// The smallest quantity allowed here.
        min: u32,
        /// The largest quantity allowed here.
        max: u32,
    },
    /// A ledger page size outside 1 … 500.
    #[error("limit must be between 1 and {max}")]
    PageLimitOutOfRange {
        /// The largest page allowed.
        max: u32,
    },
    /// A row of a reconciliation file that cannot be read as a paid order.
    #[error("{0}")]
    InvalidReconciliationRow(String),
    /// A balance history whose last day comes before its first, or longer than allowed.
    #[error(
        "a balance history runs from since to until (both local dates, since first), at most {max_days} days"
    )]
    BalanceHistoryTooLong {
        /// The most days one history covers.
        max_days: i64,
    },
    /// A hold TTL outside the policy's bounds.
    #[error("ttl_seconds must be between {min} and {max}")]
    TtlOutOfRange {
        /// The shortest TTL allowed.
        min: u32,
        /// The longest TTL allowed.
        max: u32,
    },
    /// A duration that is not a positive ISO 8601 duration.
    #[error("duration {0:?} must be a positive ISO 8601 duration such as P7D or PT2H")]
    InvalidDuration(String),
    /// A time zone that is not in the IANA database.
    #[error("unknown time zone {0:?}")]
    InvalidTimeZone(String),
    /// A calendar computation left the supported range of dates.
    #[error("the resulting time is outside the supported range")]
    TimeOutOfRange,
    /// A grant whose end is not after now.
    #[error("expires_at must be in the future")]
    ExpiryNotInFuture,
    /// A purchase dated after now.
    #[error("paid_at must not be in the future")]
    PaidAtInFuture,
    /// A purchase whose validity already ended when it was recorded.
    #[error("a purchase paid at that time would already have expired")]
    PurchaseAlreadyExpired,
    /// `activate` with a `period_end` not after now.
    #[error("period_end must be in the future")]
    PeriodEndNotInFuture,
    /// A renewal with a `period_end` before the current one.
    #[error("period_end must not be earlier than the current period end")]
    PeriodEndBeforeCurrent,
    /// `start_trial` on an account whose membership is not `none`.
    #[error("a trial can only start on an account that never had a membership")]
    TrialNotAvailable,
    /// `cancel` on an account that is not a member.
    #[error("the account is not a member")]
    NotAMember,
    /// An adjustment without a reason.
    #[error("an adjustment needs a reason")]
    ReasonRequired,
    /// A free-text field longer than allowed.
    #[error("{field} must be at most {max} characters")]
    TextTooLong {
        /// The field's name.
        field: &'static str,
        /// Its limit in characters.
        max: usize,
    },
    /// The account holds as many live buckets as it may.
    #[error("the account has {max} live buckets, the most it may hold")]
    TooManyBuckets {
        /// The limit.
        max: usize,
    },
    /// The account has as many pending holds as it may.
    #[error("the account has {max} pending holds, the most it may have")]
    TooManyPendingHolds {
        /// The limit.
        max: usize,
    },
}

impl Refusal {
    /// The stable problem code of SPEC §6.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InsufficientCredits { .. } => "insufficient_credits",
            Refusal::MembersOnly => "members_only",
            Refusal::HoldNotPending(_) => "hold_not_pending",
            Refusal::UnknownHold(_) | Refusal::UnknownAccount(_) => "not_found",
            Refusal::OrderConflict(_) => "idempotency_conflict",
            Refusal::UnknownFeature(_) => "unknown_feature",
            Refusal::TierNotAvailable { .. } => "tier_not_available",
            Refusal::CatchingUp { .. } => "catching_up",
            _ => "invalid_request",
        }
    }
}
