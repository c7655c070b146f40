//! Named limits and the checked input types that enforce them.
//!
//! Each bound is a `const` with the reason for its number, and each bounded input has a
//! type whose constructor checks it, so that a value inside the core is always valid.

use crate::Refusal;

/// Largest amount of one grant, purchase or adjustment (SPEC §8). Keeps every balance
/// far from `u64`/`i64` overflow: even 10⁶ buckets of this size sum below 2⁶³.
pub const MAX_AMOUNT: u64 = 1_000_000_000;

/// Largest quantity of one use (SPEC §8).
pub const MAX_QUANTITY: u32 = 100_000;

/// Most live buckets an account may hold before grants are refused. Bounds the account's
/// state, and so the cost of every command, whatever its history. Credits the service
/// makes itself (distributions, refunds) are never refused by it.
pub const MAX_LIVE_BUCKETS: usize = 10_000;

/// Most pending holds an account may have at once: a platform runs a handful of
/// generations per user in parallel; thousands mean a leak in the caller.
pub const MAX_PENDING_HOLDS: usize = 1_000;

/// Most instants of time effects (lapses, expiries, distributions, notices) one command
/// or read catches up. An account touched within the last forty years has fewer (a month
/// brings two or three), so this binds only after a long jump of a test clock or a
/// restore of a very old backup: then each command catches up this many and is refused
/// `catching_up` (nothing else changes), and the sweeper catches up the rest in steps,
/// so no request holds the writer for long and no answer grows without bound.
pub const MAX_CATCH_UP_INSTANTS: usize = 1_000;

/// Longest free text (campaign, note, reason, reference) kept with a grant or hold.
pub const MAX_TEXT_LEN: usize = 500;

/// Membership periods remembered to decide whether a late-confirmed payment was made
/// during a membership. Older periods are forgotten first.
pub const MAX_PAST_MEMBER_PERIODS: usize = 64;

/// Rows of a page when a request names no limit: every list the service pages
/// through (the ledger, accounts; SPEC §8, §13).
pub const DEFAULT_PAGE: u32 = 50;

/// Most rows of one page: a page stays a few hundred kilobytes of JSON at most.
pub const MAX_PAGE: u32 = 500;

/// A page size checked against 1 … [`MAX_PAGE`]; [`DEFAULT_PAGE`] if none is asked.
pub fn page_limit(limit: Option<u32>) -> Result<u32, Refusal> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(Refusal::PageLimitOutOfRange { max: MAX_PAGE })
    }
}

/// An amount of credits in 1 … [`MAX_AMOUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(u64);

impl Amount {
    /// Checks the bound.
    pub fn new(credits: u64) -> Result<Self, Refusal> {
        if (1..=MAX_AMOUNT).contains(&credits) {
            Ok(Amount(credits))
        } else {
            Err(Refusal::AmountOutOfRange { max: MAX_AMOUNT })
        }
    }

    /// The number of credits.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// An amount as a client sends it (a JSON integer): negative numbers are out of range
/// like every other number outside 1 … [`MAX_AMOUNT`].
impl TryFrom<i64> for Amount {
    type Error = Refusal;

    fn try_from(credits: i64) -> Result<Self, Refusal> {
        let credits =
            u64::try_from(credits).map_err(|_| Refusal::AmountOutOfRange { max: MAX_AMOUNT })?;
        Amount::new(credits)
    }
}

/// A count as a client sends it (quantity, TTL): a JSON integer outside `u32` becomes
/// `u32::MAX`, which every range refuses with its own message, so the rule that checks
/// the range is the one that names it.
pub fn count_from_json(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// An ISO 4217 currency code: three capital letters (`USD`, `CNY`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// Checks the form of an ISO 4217 code.
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(text.to_owned()))
        } else {
            Err(Refusal::InvalidCurrency(text.to_owned()))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the platform was paid for a purchase, as it reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// In the currency's minor unit (cents, fen).
    pub amount_minor: u64,
    /// Its currency.
    pub currency: Currency,
}

impl Payment {
    /// A payment as a client sends it: the minor amount must not be negative.
    pub fn new(amount_minor: i64, currency: &str) -> Result<Self, Refusal> {
        let amount_minor = u64::try_from(amount_minor).map_err(|_| Refusal::NegativePayment)?;
        Ok(Payment {
            amount_minor,
            currency: Currency::parse(currency)?,
        })
    }
}

/// Checks free text against [`MAX_TEXT_LEN`].
pub(crate) fn check_text(field: &'static str, text: &str) -> Result<(), Refusal> {
    if text.chars().count() <= MAX_TEXT_LEN {
        Ok(())
    } else {
        Err(Refusal::TextTooLong {
            field,
            max: MAX_TEXT_LEN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_between_one_and_one_billion() {
        assert!(Amount::new(1).is_ok());
        assert!(Amount::new(MAX_AMOUNT).is_ok());
        assert!(Amount::new(0).is_err());
        assert!(Amount::new(MAX_AMOUNT + 1).is_err());
        assert_eq!(
            Amount::try_from(-1),
            Err(Refusal::AmountOutOfRange { max: MAX_AMOUNT })
        );
        assert_eq!(Amount::try_from(7).map(Amount::get), Ok(7));
    }

    #[test]
    fn pages_hold_one_to_five_hundred_rows_fifty_by_default() {
        assert_eq!(page_limit(None), Ok(50));
        assert_eq!(page_limit(Some(500)), Ok(500));
        for bad in [0, 501] {
            assert_eq!(
                page_limit(Some(bad)),
                Err(Refusal::PageLimitOutOfRange { max: 500 })
            );
        }
    }

    #[test]
    fn counts_outside_u32_are_out_of_every_range() {
        assert_eq!(count_from_json(12), 12);
        assert_eq!(count_from_json(-1), u32::MAX);
        assert_eq!(count_from_json(i64::MAX), u32::MAX);
    }

    #[test]
    fn currency_codes_are_three_capital_letters() {
        assert_eq!(Currency::parse("USD").unwrap().as_str(), "USD");
        for bad in ["usd", "US", "USDT", "U5D", ""] {
            assert_eq!(
                Currency::parse(bad),
                Err(Refusal::InvalidCurrency(bad.into()))
            );
        }
        assert_eq!(Payment::new(-1, "USD"), Err(Refusal::NegativePayment));
        assert_eq!(Payment::new(999, "CNY").unwrap().amount_minor, 999);
    }
}
