//! The balance view: what a user sees next to their profile picture, and the figures
//! the platform checks before it offers a feature.

use jiff::Timestamp;

use crate::{Account, Bucket, CreditKind};

/// General credits: available, reserved by pending holds, frozen while not a member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeneralBalance {
    /// Credits that can pay now.
    pub available: u64,
    /// Credits reserved by pending holds.
    pub held: u64,
    /// Credits kept but unusable until the membership is reactivated.
    pub frozen: u64,
}

/// Agent credits: available and reserved (they never freeze).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentBalance {
    /// Credits that can pay now.
    pub available: u64,
    /// Credits reserved by pending holds.
    pub held: u64,
}

/// The earliest instant at which credits will expire, and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextExpiry {
    /// When.
    pub at: Timestamp,
    /// Credits left in the buckets that expire then, frozen ones included.
    pub amount: u64,
}

/// A bucket as the balance lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceBucket {
    /// The bucket.
    pub bucket: Bucket,
    /// Whether it is frozen now.
    pub frozen: bool,
}

/// An account's balance at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    /// The instant it describes.
    pub as_of: Timestamp,
    /// General credits.
    pub general: GeneralBalance,
    /// Agent credits.
    pub agent: AgentBalance,
    /// The next expiry among unexpired buckets with credits left (frozen included).
    pub next_expiry: Option<NextExpiry>,
    /// Unexpired non-empty buckets in consumption order for agent tasks.
    pub buckets: Vec<BalanceBucket>,
}

impl Balance {
    /// general available + agent available.
    pub fn total(&self) -> u64 {
        self.general.available.saturating_add(self.agent.available)
    }
}

impl Account {
    /// The balance as of [`Account::as_of`]; bring the account to now first with
    /// [`Account::at`].
    ///
    /// Sums saturate rather than wrap; with every amount at most `MAX_AMOUNT` and the
    /// buckets bounded they never reach `u64::MAX`.
    pub fn balance(&self) -> Balance {
        let mut general = GeneralBalance::default();
        let mut agent = AgentBalance::default();
        let mut next_expiry: Option<NextExpiry> = None;
        let mut buckets = Vec::new();
        for bucket in self.buckets().iter().filter(|b| b.remaining() > 0) {
            let frozen = self.is_frozen(bucket);
            let remaining = bucket.remaining();
            match (bucket.kind(), frozen) {
                (CreditKind::General, false) => {
                    general.available = general.available.saturating_add(remaining)
                }
                (CreditKind::General, true) => {
                    general.frozen = general.frozen.saturating_add(remaining)
                }
                (CreditKind::Agent, _) => {
                    debug_assert!(!frozen, "no source of agent credits freezes");
                    agent.available = agent.available.saturating_add(remaining);
                }
            }
            if let Some(at) = bucket.expires_at() {
                match &mut next_expiry {
                    Some(next) if next.at == at => {
                        next.amount = next.amount.saturating_add(remaining)
                    }
                    Some(next) if next.at < at => {}
                    _ => {
                        next_expiry = Some(NextExpiry {
                            at,
                            amount: remaining,
                        })
                    }
                }
            }
            buckets.push(BalanceBucket {
                bucket: bucket.clone(),
                frozen,
            });
        }
        for hold in self.pending_holds() {
            general.held = general.held.saturating_add(hold.held(CreditKind::General));
            agent.held = agent.held.saturating_add(hold.held(CreditKind::Agent));
        }
        Balance {
            as_of: self.as_of(),
            general,
            agent,
            next_expiry,
            buckets,
        }
    }
}
