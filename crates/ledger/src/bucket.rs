//! Buckets: every grant of credits is one bucket, and the consumption order between them.
//!
//! A bucket's `source` fixes whether it freezes while the account is not a member
//! (SPEC §1). Frozen is not stored: it is derived from the source and the membership, so
//! it can never disagree with them.

use std::cmp::Ordering;
use std::sync::Arc;

use jiff::Timestamp;

use crate::BucketId;

/// The two kinds of credit, worth the same.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum CreditKind {
    /// "Agent Credits": AI Agent tasks only. Ordered first: agent tasks spend them first.
    Agent,
    /// "Credits": every paid feature.
    General,
}

/// Where a bucket's credits came from (SPEC §1's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Source {
    /// Agent credits of a daily login; end at the next local midnight.
    DailyLogin,
    /// Agent credits of a monthly distribution; end at the next distribution.
    MembershipAgent,
    /// General credits of a monthly distribution; carried over, frozen while lapsed.
    Subscription,
    /// General credits of a trial; end with the trial.
    Trial,
    /// Purchased general credits; valid two years, frozen while lapsed.
    Purchase,
    /// Promotional credits, as granted.
    Promotion,
    /// Compensation and positive adjustments, as granted (default never ending).
    Compensation,
    /// Credits returned by a hold after their own bucket had expired.
    RefundGrace,
}

impl Source {
    /// Whether buckets of this source freeze while the account is not a member.
    pub fn freezes(self) -> bool {
        matches!(self, Source::Subscription | Source::Purchase)
    }
}

/// One grant of credits.
///
/// Invariant: `remaining <= granted`. Credits leave through holds, expiry and negative
/// adjustments, and only credits that left it can come back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    pub(crate) id: BucketId,
    pub(crate) kind: CreditKind,
    pub(crate) source: Source,
    pub(crate) granted: u64,
    pub(crate) remaining: u64,
    #[serde(with = "crate::instant")]
    pub(crate) granted_at: Timestamp,
    #[serde(with = "crate::instant::option")]
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) campaign: Option<Arc<str>>,
    /// When `credits.expiring_soon` is due (SPEC §9), fixed at the grant; `None` for a
    /// bucket that never ends, or whose validity is no longer than the notice (and for
    /// buckets stored before events existed).
    #[serde(default, with = "crate::instant::option")]
    pub(crate) notice_at: Option<Timestamp>,
}

impl Bucket {
    /// The bucket's id.
    pub fn id(&self) -> BucketId {
        self.id
    }
    /// Its kind of credit.
    pub fn kind(&self) -> CreditKind {
        self.kind
    }
    /// Where its credits came from.
    pub fn source(&self) -> Source {
        self.source
    }
    /// Credits granted into it.
    pub fn granted(&self) -> u64 {
        self.granted
    }
    /// Credits still in it (held credits are not).
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
    /// When it was recorded.
    pub fn granted_at(&self) -> Timestamp {
        self.granted_at
    }
    /// When its credits expire; `None` never.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }
    /// The promotion campaign it came with, if any.
    pub fn campaign(&self) -> Option<&str> {
        self.campaign.as_deref()
    }

    /// SPEC §4's order, for agent tasks: agent before general, then earliest expiry
    /// (never-expiring last), then oldest grant, then id. Tools use the same order over
    /// their general buckets only.
    pub fn consumption_order(&self, other: &Bucket) -> Ordering {
        let key = |b: &Bucket| {
            (
                b.kind,
                b.expires_at.is_none(),
                b.expires_at,
                b.granted_at,
                b.id,
            )
        };
        key(self).cmp(&key(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(id: u64, kind: CreditKind, expires_at: Option<&str>, granted_at: &str) -> Bucket {
        Bucket {
            id: BucketId::new(id),
            kind,
            source: Source::Promotion,
            granted: 1,
            remaining: 1,
            granted_at: granted_at.parse().expect("time"),
            expires_at: expires_at.map(|t| t.parse().expect("time")),
            campaign: None,
            notice_at: None,
        }
    }

    #[test]
    fn consumption_order_is_agent_first_then_earliest_expiry_never_last_then_oldest_then_id() {
        use CreditKind::{Agent, General};
        let t0 = "2026-01-01T00:00:00Z";
        let t1 = "2026-01-02T00:00:00Z";
        let mut buckets = [
            bucket(1, General, None, t0),
            bucket(2, General, Some("2026-03-01T00:00:00Z"), t0),
            bucket(3, Agent, None, t0),
            bucket(4, General, Some("2026-02-01T00:00:00Z"), t1),
            bucket(5, General, Some("2026-02-01T00:00:00Z"), t0),
            bucket(6, Agent, Some("2026-06-01T00:00:00Z"), t0),
            bucket(7, General, Some("2026-02-01T00:00:00Z"), t0),
        ];
        buckets.sort_by(Bucket::consumption_order);
        let ids: Vec<u64> = buckets.iter().map(|b| b.id.get()).collect();
        assert_eq!(ids, [6, 3, 5, 7, 4, 2, 1]);
    }

    #[test]
    fn only_subscription_and_purchase_credits_freeze() {
        let freezing: Vec<Source> = Source::ALL
            .iter()
            .copied()
            .filter(|s| s.freezes())
            .collect();
        assert_eq!(freezing, [Source::Subscription, Source::Purchase]);
    }
}
