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

/// Longest free text (campaign, note, reason, reference) kept with a grant or hold.
pub const MAX_TEXT_LEN: usize = 500;

/// Membership periods remembered to decide whether a late-confirmed payment was made
/// during a membership. Older periods are forgotten first.
pub const MAX_PAST_MEMBER_PERIODS: usize = 64;

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
    }
}
