//! Identifiers.
//!
//! Account and order ids come from the platform and are checked once, here, at the
//! boundary. Bucket and hold ids are numbered by the account itself, so that every
//! command stays a pure function of (state, command, now) and replays to the same ids.

use std::fmt;
use std::sync::Arc;

use crate::Refusal;

/// Longest account id (SPEC §8).
pub const MAX_ACCOUNT_ID_LEN: usize = 128;
/// Longest order id: payment providers' ids fit easily, and a key stays index-friendly.
pub const MAX_ORDER_ID_LEN: usize = 128;

/// An account id: 1–128 characters of `[A-Za-z0-9._:@-]`, starting with a letter or digit.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String")]
pub struct AccountId(Arc<str>);

/// Whether `c` may stand in an account id (SPEC §8's alphabet).
fn account_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._:@-".contains(c)
}

impl AccountId {
    /// Checks the id against SPEC §8.
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        let starts_well = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if text.len() <= MAX_ACCOUNT_ID_LEN && starts_well && text.chars().all(account_id_char) {
            Ok(AccountId(text.into()))
        } else {
            Err(Refusal::InvalidAccountId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = Refusal;

    fn try_from(text: String) -> Result<Self, Refusal> {
        AccountId::parse(&text)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The start of an account id, to find accounts by: at most 128 characters of the
/// account id alphabet. The empty prefix starts every id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountIdPrefix(String);

impl AccountIdPrefix {
    /// Checks the prefix: a text no account id could start with is refused rather than
    /// searched for.
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        if text.len() <= MAX_ACCOUNT_ID_LEN && text.chars().all(account_id_char) {
            Ok(AccountIdPrefix(text.to_owned()))
        } else {
            Err(Refusal::InvalidAccountIdPrefix)
        }
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A purchase's order id: 1–128 printable ASCII characters, no spaces. Unique per
/// purchase; that uniqueness is the store's (a unique key), not the account's.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String")]
pub struct OrderId(Arc<str>);

impl OrderId {
    /// Checks the id.
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        let printable = |c: char| c.is_ascii_graphic();
        if !text.is_empty() && text.len() <= MAX_ORDER_ID_LEN && text.chars().all(printable) {
            Ok(OrderId(text.into()))
        } else {
            Err(Refusal::InvalidOrderId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrderId {
    type Error = Refusal;

    fn try_from(text: String) -> Result<Self, Refusal> {
        OrderId::parse(&text)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! sequence_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// The id with this sequence number (as the store read it back).
            pub const fn new(sequence: u64) -> Self {
                $name(sequence)
            }

            /// The sequence number within the account.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

sequence_id!(
    /// A bucket's id, numbered from 1 within its account in the order buckets are made.
    BucketId,
    "b"
);
sequence_id!(
    /// A hold's id, numbered from 1 within its account in the order holds are placed.
    HoldId,
    "h"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_follow_spec_alphabet_and_length() {
        for good in ["a", "7", "user-1", "u.ser_2:x@y", &"a".repeat(128)] {
            assert!(AccountId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "ü", &"a".repeat(129)] {
            assert_eq!(
                AccountId::parse(bad),
                Err(Refusal::InvalidAccountId),
                "{bad}"
            );
        }
    }

    #[test]
    fn account_id_prefixes_are_of_the_account_id_alphabet() {
        for good in ["", "u", "user-", ".x", &"a".repeat(128)] {
            assert_eq!(
                AccountIdPrefix::parse(good).map(|p| p.as_str().len()),
                Ok(good.len())
            );
        }
        for bad in ["has space", "nul\0", "é", &"a".repeat(129)] {
            assert_eq!(
                AccountIdPrefix::parse(bad),
                Err(Refusal::InvalidAccountIdPrefix)
            );
        }
    }

    #[test]
    fn order_ids_are_printable_and_bounded() {
        assert!(OrderId::parse("pi_3N/x#1").is_ok());
        for bad in ["", "a b", "tab\t", &"o".repeat(129)] {
            assert_eq!(OrderId::parse(bad), Err(Refusal::InvalidOrderId), "{bad}");
        }
    }
}
