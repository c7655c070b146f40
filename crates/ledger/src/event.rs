//! Events: what the platform, its e-mail or its finance team may need to react to
//! (SPEC §9), as the commands and time's effects produce them.
//!
//! An event is one more output of a command, beside its ledger entries: the [`Moment`]
//! records it into the [`History`] at the instant of its effect (an expiry's
//! `expires_at`, not the moment anyone noticed), numbered by the account's own
//! sequence. So the store keeps events in the same transaction as their effect, a
//! refused command produces none, and catching up the same account twice produces the
//! same events with the same numbers: a read that catches up in memory and the writer
//! that records it agree.
//!
//! [`Moment`]: crate::Moment
//! [`History`]: crate::History

use jiff::Timestamp;

use crate::{Bucket, BucketId, CreditKind, Hold, Membership, PurchaseReceipt, Source};

/// The type of an event, by its name in the API (`credits.granted`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
pub enum EventType {
    /// A bucket was created (every source).
    #[strum(serialize = "credits.granted")]
    CreditsGranted,
    /// A bucket with credits left expires within the notice (policy `expiry_notice`).
    #[strum(serialize = "credits.expiring_soon")]
    CreditsExpiringSoon,
    /// A bucket expired with credits left.
    #[strum(serialize = "credits.expired")]
    CreditsExpired,
    /// The total fell below the account's low-balance threshold.
    #[strum(serialize = "balance.low")]
    BalanceLow,
    /// The total fell to 0.
    #[strum(serialize = "balance.depleted")]
    BalanceDepleted,
    /// A pending hold reached its `expires_at`: the generation never reported back.
    #[strum(serialize = "hold.expired")]
    HoldExpired,
    /// A purchase was recorded (never on its replays).
    #[strum(serialize = "purchase.recorded")]
    PurchaseRecorded,
    /// The membership's status changed, or a renewal moved its `period_end`.
    #[strum(serialize = "membership.changed")]
    MembershipChanged,
    /// A monthly distribution.
    #[strum(serialize = "membership.credits_distributed")]
    CreditsDistributed,
}

/// What happened, with what the event's `data` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A new bucket, and whether it is frozen as it arrives.
    CreditsGranted {
        /// The bucket as granted.
        bucket: Bucket,
        /// Frozen (a purchase recorded while not a member).
        frozen: bool,
    },
    /// A bucket's notice instant came while it had credits left.
    CreditsExpiringSoon {
        /// The bucket as it stands (its `remaining` and `expires_at`).
        bucket: Bucket,
        /// Frozen now.
        frozen: bool,
    },
    /// Credits left a bucket at its `expires_at`.
    CreditsExpired {
        /// The bucket.
        bucket_id: BucketId,
        /// Its kind.
        kind: CreditKind,
        /// Its source.
        source: Source,
        /// The credits that expired.
        amount: u64,
    },
    /// The total fell from at least `threshold` to below it.
    BalanceLow {
        /// The total after the fall.
        total: u64,
        /// The threshold in force.
        threshold: u64,
    },
    /// The total fell from above 0 to 0.
    BalanceDepleted,
    /// A hold expired, as settled.
    HoldExpired(Hold),
    /// A purchase recorded.
    PurchaseRecorded(PurchaseReceipt),
    /// The membership now and before.
    MembershipChanged {
        /// As it is now.
        membership: Box<Membership>,
        /// As it was.
        previous: Box<Membership>,
    },
    /// Distribution `index` of the running schedule.
    CreditsDistributed {
        /// n: anchor + n months.
        index: u32,
        /// The subscription credits' bucket (none when the plan gives none).
        subscription_bucket: Option<Bucket>,
        /// The agent credits' bucket (none when the plan gives none).
        agent_bucket: Option<Bucket>,
    },
}

impl EventKind {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            EventKind::CreditsGranted { .. } => EventType::CreditsGranted,
            EventKind::CreditsExpiringSoon { .. } => EventType::CreditsExpiringSoon,
            EventKind::CreditsExpired { .. } => EventType::CreditsExpired,
            EventKind::BalanceLow { .. } => EventType::BalanceLow,
            EventKind::BalanceDepleted => EventType::BalanceDepleted,
            EventKind::HoldExpired(_) => EventType::HoldExpired,
            EventKind::PurchaseRecorded(_) => EventType::PurchaseRecorded,
            EventKind::MembershipChanged { .. } => EventType::MembershipChanged,
            EventKind::CreditsDistributed { .. } => EventType::CreditsDistributed,
        }
    }
}

/// One event of one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its number within the account: 1, 2, … in the order of their effects, no gaps.
    pub sequence: u64,
    /// The instant of its effect.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

#[cfg(test)]
mod tests {
    use jiff::{Timestamp, ToSpan};

    use super::*;
    use crate::{
        Account, AccountCommand, AccountId, Amount, Catalog, Expiry, Grant, GrantSource, History,
        HoldStatus, MembershipStatus, OrderId, Purchase, PurchaseCredits, Refusal, Use,
    };

    fn t(text: &str) -> Timestamp {
        text.parse().expect("instant")
    }

    /// An account driven through `AccountCommand`s, the one path every change takes.
    struct World {
        catalog: Catalog,
        account: Account,
        now: Timestamp,
        events: Vec<Event>,
    }

    impl World {
        fn new(now: &str) -> World {
            let now = t(now);
            let id = AccountId::parse("acct-1").expect("id");
            World {
                catalog: Catalog::default(),
                account: Account::open(id, jiff::tz::TimeZone::UTC, now),
                now,
                events: Vec::new(),
            }
        }

        fn run(&mut self, command: AccountCommand) -> Result<Vec<Event>, Refusal> {
            let mut history = History::default();
            let outcome = self
                .account
                .at(&self.catalog, self.now, &mut history)
                .apply(&command);
            self.events.extend(history.events.iter().cloned());
            outcome.map(|_| history.events)
        }

        fn at(&mut self, now: &str) -> Vec<Event> {
            self.now = t(now);
            self.run(AccountCommand::CatchUp).expect("catching up")
        }

        fn grant(&mut self, amount: u64, expiry: Expiry) -> Vec<Event> {
            self.run(AccountCommand::Grant(Grant {
                kind: CreditKind::General,
                amount: Amount::new(amount).expect("amount"),
                source: GrantSource::Promotion,
                expiry,
                campaign: None,
                note: None,
            }))
            .expect("grant")
        }

        fn charge(&mut self, feature: &str) -> Result<Vec<Event>, Refusal> {
            self.run(AccountCommand::Charge(Use {
                feature: feature.into(),
                ..Use::default()
            }))
        }

        fn threshold(&mut self, threshold: Option<u64>) {
            let threshold = threshold.map(|n| Amount::new(n).expect("threshold"));
            self.run(AccountCommand::Open {
                time_zone: None,
                low_balance_threshold: Some(threshold),
            })
            .expect("setting the threshold");
        }
    }

    fn types(events: &[Event]) -> Vec<EventType> {
        events.iter().map(|e| e.kind.event_type()).collect()
    }

    #[test]
    fn events_are_numbered_per_account_from_one_without_gaps_in_the_order_of_their_effects() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.grant(10, Expiry::At(t("2026-03-02T00:00:00Z")));
        world.charge("ai_model").expect("charge");
        world.at("2026-03-05T00:00:00Z");
        let numbers: Vec<u64> = world.events.iter().map(|e| e.sequence).collect();
        let expected: Vec<u64> = (1..=world.events.len() as u64).collect();
        assert_eq!(numbers, expected);
        assert!(world.events.windows(2).all(|pair| pair[0].at <= pair[1].at));
        assert_eq!(world.account.events_recorded(), world.events.len() as u64);
    }

    #[test]
    fn credits_granted_is_told_for_every_new_bucket_with_whether_it_is_frozen() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        let events = world.grant(5, Expiry::Never);
        match &events[..] {
            [
                Event {
                    kind: EventKind::CreditsGranted { bucket, frozen },
                    ..
                },
            ] => assert_eq!((bucket.remaining(), *frozen), (5, false)),
            other => panic!("{other:?}"),
        }
        // A refund into an expired bucket makes a refund_grace bucket: granted too.
        world.grant(4, Expiry::At(t("2026-03-01T00:10:00Z")));
        world
            .run(AccountCommand::PlaceHold(Use {
                feature: "ai_background".into(),
                ..Use::default()
            }))
            .expect("hold");
        world.now = t("2026-03-01T00:11:00Z");
        let events = world
            .run(AccountCommand::Release(crate::HoldId::new(1)))
            .expect("release");
        let granted: Vec<Source> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::CreditsGranted { bucket, .. } => Some(bucket.source()),
                _ => None,
            })
            .collect();
        assert_eq!(granted, [Source::RefundGrace]);
    }

    #[test]
    fn expiring_soon_is_told_once_at_expires_at_minus_the_notice_while_credits_are_left() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.grant(10, Expiry::At(t("2026-04-01T00:00:00Z")));
        assert!(world.at("2026-03-24T23:59:59Z").is_empty());
        let events = world.at("2026-03-28T00:00:00Z");
        assert_eq!(types(&events), [EventType::CreditsExpiringSoon]);
        assert_eq!(events[0].at, t("2026-03-25T00:00:00Z"));
        match &events[0].kind {
            EventKind::CreditsExpiringSoon { bucket, frozen } => {
                assert_eq!(bucket.remaining(), 10);
                assert_eq!(bucket.expires_at(), Some(t("2026-04-01T00:00:00Z")));
                assert!(!frozen);
            }
            other => panic!("{other:?}"),
        }
        // Once: catching up again tells nothing more before the expiry.
        assert!(world.at("2026-03-31T00:00:00Z").is_empty());
    }

    #[test]
    fn expiring_soon_is_not_told_for_a_bucket_whose_validity_is_no_longer_than_the_notice() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.grant(10, Expiry::At(t("2026-03-08T00:00:00Z")));
        let events = world.at("2026-03-07T00:00:00Z");
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn expiring_soon_is_not_told_for_a_bucket_spent_before_its_notice() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.grant(4, Expiry::At(t("2026-04-01T00:00:00Z")));
        world.charge("ai_model").expect("charge");
        let events = world.at("2026-03-30T00:00:00Z");
        assert!(
            !types(&events).contains(&EventType::CreditsExpiringSoon),
            "{events:?}"
        );
    }

    #[test]
    fn credits_expired_is_dated_at_expires_at_with_the_credits_left() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.grant(7, Expiry::At(t("2026-03-02T00:00:00Z")));
        let events = world.at("2026-03-03T00:00:00Z");
        let expired = events
            .iter()
            .find(|e| e.kind.event_type() == EventType::CreditsExpired)
            .expect("expired");
        assert_eq!(expired.at, t("2026-03-02T00:00:00Z"));
        assert!(matches!(
            expired.kind,
            EventKind::CreditsExpired {
                amount: 7,
                kind: CreditKind::General,
                source: Source::Promotion,
                ..
            }
        ));
    }

    #[test]
    fn balance_low_is_told_when_the_total_falls_from_the_threshold_to_below_it() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.threshold(Some(5));
        world.grant(8, Expiry::Never);
        // 8 → 4: below 5. (Two AI Model images cost 4.)
        let events = world.charge("ai_model").expect("charge");
        assert_eq!(types(&events), [EventType::BalanceLow]);
        assert_eq!(
            events[0].kind,
            EventKind::BalanceLow {
                total: 4,
                threshold: 5
            }
        );
        // 4 → 0: already below, so only depleted.
        assert_eq!(
            types(&world.charge("ai_model").expect("charge")),
            [EventType::BalanceDepleted]
        );
    }

    #[test]
    fn balance_low_follows_the_policy_unless_the_account_turned_it_off() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        let toml = "[policies]\nlow_balance_threshold = 5\n";
        world.catalog = Catalog::from_toml(toml).expect("catalog");
        world.grant(6, Expiry::Never);
        assert_eq!(
            types(&world.charge("ai_model").expect("charge")),
            [EventType::BalanceLow]
        );
        world.grant(4, Expiry::Never);
        world.threshold(None);
        assert!(world.charge("ai_model").expect("charge").is_empty());
    }

    #[test]
    fn balance_depleted_is_told_when_the_total_falls_to_zero() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.grant(4, Expiry::Never);
        let events = world.charge("ai_model").expect("charge");
        assert_eq!(types(&events), [EventType::BalanceDepleted]);
        // An expiry empties an account too, told at its instant.
        world.grant(3, Expiry::At(t("2026-03-02T00:00:00Z")));
        let events = world.at("2026-03-04T00:00:00Z");
        assert_eq!(
            types(&events),
            [EventType::CreditsExpired, EventType::BalanceDepleted]
        );
        assert_eq!(events[1].at, t("2026-03-02T00:00:00Z"));
    }

    #[test]
    fn hold_expired_is_told_at_the_holds_expires_at() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.grant(10, Expiry::Never);
        world
            .run(AccountCommand::PlaceHold(Use {
                feature: "ai_model".into(),
                ttl_seconds: Some(60),
                ..Use::default()
            }))
            .expect("hold");
        let events = world.at("2026-03-01T01:00:00Z");
        match &events[..] {
            [
                Event {
                    at,
                    kind: EventKind::HoldExpired(hold),
                    ..
                },
            ] => {
                assert_eq!(*at, t("2026-03-01T00:01:00Z"));
                assert_eq!(hold.status(), HoldStatus::Expired);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn purchase_recorded_is_told_with_the_purchase() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world
            .run(AccountCommand::StartTrial { plan: None })
            .expect("trial");
        let events = world
            .run(AccountCommand::Purchase(Purchase {
                order_id: OrderId::parse("o-1").expect("order"),
                credits: PurchaseCredits::Credits(Amount::new(100).expect("amount")),
                paid_at: None,
                paid: None,
            }))
            .expect("purchase");
        assert_eq!(
            types(&events),
            [EventType::CreditsGranted, EventType::PurchaseRecorded]
        );
    }

    #[test]
    fn membership_changed_is_told_on_trial_activation_renewal_lapse_and_reactivation() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        let status = |events: &[Event]| -> Vec<(MembershipStatus, MembershipStatus)> {
            events
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::MembershipChanged {
                        membership,
                        previous,
                    } => Some((previous.status, membership.status)),
                    _ => None,
                })
                .collect()
        };
        let trial = world
            .run(AccountCommand::StartTrial { plan: None })
            .expect("trial");
        assert_eq!(
            status(&trial),
            [(MembershipStatus::None, MembershipStatus::Trial)]
        );
        let activate = |end: &str| AccountCommand::Activate {
            plan: None,
            period_end: t(end),
        };
        let paid = world.run(activate("2026-04-01T00:00:00Z")).expect("paid");
        assert_eq!(
            status(&paid),
            [(MembershipStatus::Trial, MembershipStatus::Active)]
        );
        let renewed = world.run(activate("2026-05-01T00:00:00Z")).expect("renew");
        assert_eq!(
            status(&renewed),
            [(MembershipStatus::Active, MembershipStatus::Active)]
        );
        // The same period_end changes nothing, and tells nothing.
        assert!(
            world
                .run(activate("2026-05-01T00:00:00Z"))
                .expect("same")
                .is_empty()
        );
        let lapsed = world.at("2026-05-02T00:00:00Z");
        assert_eq!(
            status(&lapsed),
            [(MembershipStatus::Active, MembershipStatus::Lapsed)]
        );
        let changed_at = lapsed
            .iter()
            .find(|e| e.kind.event_type() == EventType::MembershipChanged)
            .map(|e| e.at);
        assert_eq!(changed_at, Some(t("2026-05-01T00:00:00Z")));
        let back = world.run(activate("2026-06-01T00:00:00Z")).expect("back");
        assert_eq!(
            status(&back),
            [(MembershipStatus::Lapsed, MembershipStatus::Active)]
        );
    }

    #[test]
    fn credits_distributed_is_told_monthly_with_its_two_buckets() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        let events = world
            .run(AccountCommand::Activate {
                plan: None,
                period_end: t("2026-06-01T00:00:00Z"),
            })
            .expect("activate");
        assert_eq!(
            types(&events),
            [
                EventType::MembershipChanged,
                EventType::CreditsGranted,
                EventType::CreditsGranted,
                EventType::CreditsDistributed,
            ]
        );
        let events = world.at("2026-04-01T00:00:00Z");
        let distributed = events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::CreditsDistributed {
                    index,
                    subscription_bucket: Some(general),
                    agent_bucket: Some(agent),
                } => Some((*index, general.granted(), agent.granted(), e.at)),
                _ => None,
            })
            .expect("a distribution");
        assert_eq!(distributed, (1, 500, 100, t("2026-04-01T00:00:00Z")));
    }

    #[test]
    fn a_refused_command_records_no_event() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world.grant(1, Expiry::Never);
        let before = world.account.clone();
        assert!(world.charge("private_model").is_err());
        assert_eq!(world.account, before);
        assert_eq!(world.events.len(), 1);
    }

    #[test]
    fn catching_up_in_memory_and_recording_give_the_same_events() {
        let mut world = World::new("2026-03-01T00:00:00Z");
        world
            .run(AccountCommand::Activate {
                plan: None,
                period_end: t("2026-09-01T00:00:00Z"),
            })
            .expect("activate");
        let stored = world.account.clone();
        let later = t("2026-10-15T00:00:00Z");
        let (mut once, mut twice) = (History::default(), History::default());
        let mut first = stored.clone();
        drop(first.at(&world.catalog, later, &mut once));
        let mut second = stored.clone();
        drop(second.at(
            &world.catalog,
            later.checked_sub(720.hours()).expect("t"),
            &mut twice,
        ));
        drop(second.at(&world.catalog, later, &mut twice));
        assert_eq!(once.events, twice.events);
        assert_eq!(first, second);
    }
}
