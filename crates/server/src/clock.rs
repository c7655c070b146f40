//! The service's clock: the system's, or a test clock that only an admin moves.
//!
//! Every rule runs on `Clock::now`, never on the system clock directly, so months of
//! membership can be tested in a second (`creditd serve --test-clock`). Instants are
//! whole microseconds: what the database stores, and what clients can parse.

use std::sync::Mutex;

use creditd_ledger::whole_micros;
use jiff::{SignedDuration, Timestamp};

/// Where the service's time comes from.
#[derive(Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// A clock that stands still until moved, never backwards.
    Test(Mutex<Timestamp>),
}

/// A test clock move that would go back in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the test clock is at {now} and cannot move back to {target}")]
pub struct ClockBackwards {
    /// Where the clock is.
    pub now: Timestamp,
    /// Where it was asked to go.
    pub target: Timestamp,
}

/// Why the clock could not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The target is earlier than now.
    #[error(transparent)]
    Backwards(#[from] ClockBackwards),
    /// The service runs on the system clock.
    #[error("the service runs on the system clock")]
    NotATestClock,
    /// The target is outside the supported range of instants.
    #[error("the target time is outside the supported range")]
    OutOfRange,
}

impl Clock {
    /// A test clock starting at the system's time.
    pub fn test() -> Clock {
        Clock::Test(Mutex::new(whole_micros(Timestamp::now())))
    }

    /// Whether this is a test clock.
    pub fn is_test(&self) -> bool {
        matches!(self, Clock::Test(_))
    }

    /// The current instant, in whole microseconds.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => whole_micros(Timestamp::now()),
            Clock::Test(now) => *now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// Moves a test clock to `target`, which must not be earlier than now.
    pub fn set(&self, target: Timestamp) -> Result<Timestamp, ClockError> {
        let Clock::Test(now) = self else {
            return Err(ClockError::NotATestClock);
        };
        let target = whole_micros(target);
        let mut now = now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if target < *now {
            return Err(ClockBackwards { now: *now, target }.into());
        }
        *now = target;
        Ok(target)
    }

    /// Moves a test clock forward by `seconds` (not negative).
    pub fn advance(&self, seconds: i64) -> Result<Timestamp, ClockError> {
        let now = self.now();
        let target = now
            .checked_add(SignedDuration::from_secs(seconds))
            .map_err(|_| ClockError::OutOfRange)?;
        self.set(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_moves_forward_only() {
        let clock = Clock::test();
        let start = clock.now();
        let later = clock.advance(60).unwrap();
        assert_eq!(later.duration_since(start), SignedDuration::from_secs(60));
        assert_eq!(
            clock.set(later).unwrap(),
            later,
            "standing still is allowed"
        );
        assert!(matches!(clock.advance(-1), Err(ClockError::Backwards(_))));
        assert_eq!(clock.now(), later);
    }

    #[test]
    fn the_system_clock_cannot_be_moved_and_ticks_in_microseconds() {
        let clock = Clock::System;
        assert_eq!(clock.set(clock.now()), Err(ClockError::NotATestClock));
        assert_eq!(clock.now().subsec_nanosecond() % 1000, 0);
    }
}
