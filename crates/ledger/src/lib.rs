//! The domain core of creditd: every credit rule of SPEC §1–5, as pure functions.
//!
//! An [`Account`] holds live [`Bucket`]s, pending [`Hold`]s and a [`Membership`].
//! Commands run on a [`Moment`] — the account brought to an instant `now` that the caller
//! passes in — and append [`LedgerEntry`]s to a [`History`] for the store to persist.
//! Prices, plans and policies come from the [`Catalog`].
//!
//! ```
//! use creditd_ledger::{
//!     Account, AccountId, Amount, Catalog, CreditKind, Expiry, Grant, GrantSource, History,
//!     Refusal, Use,
//! };
//! use jiff::{Timestamp, tz::TimeZone};
//!
//! let catalog = Catalog::default();
//! let now: Timestamp = "2026-11-21T09:00:00Z".parse()?;
//! let mut account = Account::open(AccountId::parse("user-42")?, TimeZone::UTC, now);
//! let mut history = History::default(); // the store appends what lands here
//!
//! let mut moment = account.at(&catalog, now, &mut history);
//! moment.grant(Grant {
//!     kind: CreditKind::General,
//!     amount: Amount::new(10)?,
//!     source: GrantSource::Promotion,
//!     expiry: Expiry::Never,
//!     campaign: None,
//!     note: None,
//! })?;
//! // A 12-second video costs 3 blocks of 5 s × 20 credits: more than there is.
//! let video = Use { feature: "agent.video_generation".into(), quantity: Some(12), ..Use::default() };
//! assert_eq!(
//!     moment.place_hold(&video),
//!     Err(Refusal::InsufficientCredits { required: 60, available: 10 })
//! );
//! // Two images of AI Background cost 4; deliver one, and 2 come back.
//! let hold = moment.place_hold(&Use { feature: "ai_background".into(), ..Use::default() })?;
//! moment.capture(hold.id(), Some(1))?;
//! assert_eq!(moment.account().balance().total(), 8);
//! drop(moment); // done: the store saves `account` and `history` in one transaction
//! assert_eq!(history.entries.iter().map(|e| e.amount).sum::<i64>(), 8);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Architecture invariant: this crate knows nothing of storage, HTTP, async runtimes or
//! the wall clock. It does no I/O (even the time-zone database is bundled), spawns
//! nothing and reads no clock, so any history can be replayed, simulated and
//! property-tested.

/// The domain's enums are shown, parsed and stored by their name, one name per value:
/// the variant's own, in snake case (strum's `IntoStaticStr`). Every other spelling
/// derives from that one source: `as_str`, `Display`, `FromStr`, and serde in formats
/// people read (the API's JSON, format 1 of the store). `ALL` lists the values in
/// declaration order, the order the API lists them; binary formats (the store's format
/// 3) keep a value as its place in `ALL`, one byte, so that order is stored: a new value
/// goes last, and none moves (`stored_places_never_move`).
macro_rules! named_values {
    ($($name:ty),* $(,)?) => {
        $(impl $name {
            /// Every value, in the order the API lists them.
            pub const ALL: &'static [$name] = <$name as strum::VariantArray>::VARIANTS;

            /// The value's name in the API and in the stored format.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;

            fn from_str(text: &str) -> Result<Self, UnknownName> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| UnknownName(text.to_owned()))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(self.as_str())
                } else {
                    let place = Self::ALL.iter().position(|value| value == self);
                    let place = place.and_then(|place| u8::try_from(place).ok());
                    let place = place.ok_or_else(|| {
                        <S::Error as serde::ser::Error>::custom(format!("{self} has no place in ALL"))
                    })?;
                    serializer.serialize_u8(place)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Name;

                impl serde::de::Visitor<'_> for Name {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        let names: Vec<&str> = <$name>::ALL.iter().map(|v| v.as_str()).collect();
                        write!(f, "one of {}", names.join(", "))
                    }

                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$name, E> {
                        text.parse()
                            .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(text), &self))
                    }
                }

                if deserializer.is_human_readable() {
                    deserializer.deserialize_str(Name)
                } else {
                    let place = <u8 as serde::Deserialize>::deserialize(deserializer)?;
                    <$name>::ALL.get(usize::from(place)).copied().ok_or_else(|| {
                        serde::de::Error::invalid_value(
                            serde::de::Unexpected::Unsigned(u64::from(place)),
                            &Name,
                        )
                    })
                }
            }
        })*
    };
}

/// A name that is none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

mod account;
mod balance;
mod balance_history;
mod bucket;
mod catalog;
mod command;
mod event;
mod hold;
mod ids;
mod instant;
mod ledger;
mod limits;
mod membership;
mod reconciliation;
mod refusal;
mod time;

pub use account::{
    Account, Adjustment, DailyLogin, Expiry, Grant, GrantSource, InvariantViolation, Moment,
    Purchase, PurchaseCredits, PurchaseReceipt, Threshold, Use,
};
pub use balance::{AgentBalance, Balance, BalanceBucket, GeneralBalance, NextExpiry};
pub use balance_history::{DayBalance, DayTally, DayWindow, MAX_BALANCE_HISTORY_DAYS, RunningSums};
pub use bucket::{Bucket, CreditKind, Source};
pub use catalog::{
    Catalog, CatalogError, Category, DEFAULT_CATALOG_TOML, Feature, MAX_TRIAL_DAYS, Package, Plan,
    Policies, Price, Tier,
};
pub use command::{AccountCommand, Effect, OrderTerms};
pub use event::{Event, EventKind, EventType};
pub use hold::{Allocation, Hold, HoldStatus, Refund, Settlement};
pub use ids::{
    AccountId, AccountIdPrefix, BucketId, HoldId, MAX_ACCOUNT_ID_LEN, MAX_ORDER_ID_LEN, OrderId,
};
pub use ledger::{Distribution, EntryType, History, LedgerEntry, LedgerQuery};
pub use limits::{
    Amount, Currency, DEFAULT_PAGE, MAX_AMOUNT, MAX_LIVE_BUCKETS, MAX_PAGE,
    MAX_PAST_MEMBER_PERIODS, MAX_PENDING_HOLDS, MAX_QUANTITY, MAX_TEXT_LEN, Payment,
    count_from_json, page_limit,
};
pub use membership::{MemberPeriod, Membership, MembershipStatus, Schedule};
pub use reconciliation::{PaidOrder, RECONCILIATION_COLUMNS, RowStatus};
pub use refusal::Refusal;
pub use time::{parse_duration, parse_time_zone, whole_micros};

named_values!(
    CreditKind,
    Source,
    Tier,
    HoldStatus,
    EntryType,
    MembershipStatus,
    EventType
);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T], name: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut seen = std::collections::HashSet::new();
        for &value in all {
            assert!(seen.insert(name(value)), "{} names two values", name(value));
            assert_eq!(name(value).parse::<T>().ok(), Some(value));
            // The API and the store's text format spell it the same.
            let json = serde_json::to_string(&value).expect("serializes");
            assert_eq!(json, format!("\"{}\"", name(value)));
            assert_eq!(serde_json::from_str::<T>(&json).ok(), Some(value));
        }
        assert!("no-such-name".parse::<T>().is_err());
        assert!(serde_json::from_str::<T>("\"no-such-name\"").is_err());
    }

    #[test]
    fn every_enum_value_has_one_name_that_parses_and_serializes_back() {
        round_trips(CreditKind::ALL, CreditKind::as_str);
        round_trips(Source::ALL, Source::as_str);
        round_trips(Tier::ALL, Tier::as_str);
        round_trips(HoldStatus::ALL, HoldStatus::as_str);
        round_trips(EntryType::ALL, EntryType::as_str);
        round_trips(MembershipStatus::ALL, MembershipStatus::as_str);
        round_trips(EventType::ALL, EventType::as_str);
    }

    /// Checks that `all` is stored in format 3 as its place, in the order of `names`,
    /// and reads back.
    fn keeps_places<T>(all: &[T], name: fn(T) -> &'static str, names: &[&str])
    where
        T: Copy + PartialEq + std::fmt::Debug,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let stored: Vec<&str> = all.iter().map(|&value| name(value)).collect();
        assert_eq!(stored, names, "a stored place moved: new values go last");
        for (place, &value) in all.iter().enumerate() {
            let bytes = postcard::to_stdvec(&value).expect("postcard");
            assert_eq!(bytes, [u8::try_from(place).expect("one byte")]);
            assert_eq!(postcard::from_bytes::<T>(&bytes).ok(), Some(value));
        }
        let past = u8::try_from(all.len()).expect("one byte");
        assert!(postcard::from_bytes::<T>(&[past]).is_err());
    }

    /// Binary stored states keep an enum value as its place in `ALL`; these lists are
    /// what rows already written say, so they only ever grow at the end.
    #[test]
    fn stored_places_never_move() {
        keeps_places(CreditKind::ALL, CreditKind::as_str, &["agent", "general"]);
        keeps_places(
            Source::ALL,
            Source::as_str,
            &[
                "daily_login",
                "membership_agent",
                "subscription",
                "trial",
                "purchase",
                "promotion",
                "compensation",
                "refund_grace",
            ],
        );
        keeps_places(Tier::ALL, Tier::as_str, &["general", "premium"]);
        keeps_places(
            HoldStatus::ALL,
            HoldStatus::as_str,
            &["pending", "captured", "released", "expired"],
        );
        keeps_places(
            EntryType::ALL,
            EntryType::as_str,
            &[
                "grant", "debit", "refund", "expire", "adjust", "freeze", "unfreeze",
            ],
        );
        keeps_places(
            MembershipStatus::ALL,
            MembershipStatus::as_str,
            &["none", "trial", "active", "lapsed"],
        );
        keeps_places(
            EventType::ALL,
            EventType::as_str,
            &[
                "credits.granted",
                "credits.expiring_soon",
                "credits.expired",
                "balance.low",
                "balance.depleted",
                "hold.expired",
                "purchase.recorded",
                "membership.changed",
                "membership.credits_distributed",
            ],
        );
    }
}
