//! One test per rule of SPEC §1–4, named after the rule. Each runs a small history on a
//! test world (an account, the default catalog, a clock that only the test moves) and
//! ends by checking the ledger invariant of SPEC §5.

#![allow(clippy::arithmetic_side_effects)]

use jiff::{Span, Timestamp, ToSpan};

use super::*;
use crate::{Balance, OrderId, Refund, Tier, parse_time_zone};

fn t(text: &str) -> Timestamp {
    text.parse().expect("test timestamp")
}

struct World {
    catalog: Catalog,
    account: Account,
    history: History,
    now: Timestamp,
}

impl World {
    fn new(zone: &str, now: &str) -> World {
        World::with_catalog(Catalog::default(), zone, now)
    }

    fn with_catalog(catalog: Catalog, zone: &str, now: &str) -> World {
        let id = AccountId::parse("acct-1").expect("id");
        let now = t(now);
        World {
            catalog,
            account: Account::open(id, parse_time_zone(zone).expect("zone"), now),
            history: History::default(),
            now,
        }
    }

    /// Runs `command` at the world's current time.
    fn run<R>(&mut self, command: impl FnOnce(&mut Moment<'_>) -> R) -> R {
        let mut moment = self.account.at(&self.catalog, self.now, &mut self.history);
        command(&mut moment)
    }

    /// Moves the clock and brings the account to it.
    fn set_clock(&mut self, now: Timestamp) {
        assert!(now >= self.now, "the test clock only moves forward");
        self.now = now;
        self.run(|_| ());
    }

    fn balance(&mut self) -> Balance {
        self.run(|_| ());
        self.account.balance()
    }

    /// (general available, general held, general frozen, agent available, agent held)
    fn figures(&mut self) -> (u64, u64, u64, u64, u64) {
        let b = self.balance();
        (
            b.general.available,
            b.general.held,
            b.general.frozen,
            b.agent.available,
            b.agent.held,
        )
    }

    fn grant(&mut self, kind: CreditKind, amount: u64, expiry: Expiry) -> Bucket {
        self.run(|m| {
            m.grant(Grant {
                kind,
                amount: Amount::new(amount).expect("amount"),
                source: GrantSource::Promotion,
                expiry,
                campaign: None,
                note: None,
            })
        })
        .expect("grant")
    }

    fn expiring(&mut self, kind: CreditKind, amount: u64, expires_at: &str) -> Bucket {
        self.grant(kind, amount, Expiry::At(t(expires_at)))
    }

    fn activate(&mut self, period_end: &str) -> Result<(), Refusal> {
        self.run(|m| m.activate("pro", t(period_end)))
    }

    fn adjust(
        &mut self,
        amount: i64,
        kind: CreditKind,
        reason: &str,
    ) -> Result<Vec<LedgerEntry>, Refusal> {
        self.run(|m| {
            m.adjust(Adjustment {
                amount,
                kind,
                reason: reason.into(),
            })
        })
    }

    fn general(&mut self, amount: u64) -> Bucket {
        self.grant(CreditKind::General, amount, Expiry::Never)
    }

    fn hold(&mut self, feature: &str, quantity: Option<u32>) -> Result<Hold, Refusal> {
        self.run(|m| m.place_hold(&use_of(feature, quantity)))
    }

    fn charge(&mut self, feature: &str, quantity: Option<u32>) -> Result<Hold, Refusal> {
        self.run(|m| m.charge(&use_of(feature, quantity)))
    }

    fn purchase(
        &mut self,
        order: &str,
        credits: u64,
        paid_at: Option<Timestamp>,
    ) -> Result<PurchaseReceipt, Refusal> {
        self.run(|m| {
            m.purchase(Purchase {
                order_id: OrderId::parse(order).expect("order id"),
                credits: PurchaseCredits::Credits(Amount::new(credits).expect("amount")),
                paid_at,
                paid: None,
            })
        })
    }

    fn entries(&self, entry_type: EntryType) -> Vec<&LedgerEntry> {
        self.history
            .entries
            .iter()
            .filter(|e| e.entry_type == entry_type)
            .collect()
    }

    fn grants_of(&self, source: Source) -> Vec<&LedgerEntry> {
        self.entries(EntryType::Grant)
            .into_iter()
            .filter(|e| e.source == source)
            .collect()
    }

    /// SPEC §5: sum of ledger amounts = general available + general frozen + agent available.
    fn assert_ledger_invariant(&mut self) {
        let sum: i64 = self.history.entries.iter().map(|e| e.amount).sum();
        let b = self.balance();
        let expected = b.general.available + b.general.frozen + b.agent.available;
        assert_eq!(
            sum,
            i64::try_from(expected).expect("small"),
            "ledger sum vs balance"
        );
    }
}

fn use_of(feature: &str, quantity: Option<u32>) -> Use {
    Use {
        feature: feature.to_owned(),
        quantity,
        ..Use::default()
    }
}

fn allocations(hold: &Hold) -> Vec<(BucketId, u64)> {
    hold.allocations()
        .iter()
        .map(|a| (a.bucket_id, a.amount))
        .collect()
}

// ----- §1 Credits: sources, validity, expiry, freezing

#[test]
fn daily_login_credits_end_at_the_next_local_midnight_in_asia_shanghai() {
    // 23:30 in Shanghai on Mar 1.
    let mut w = World::new("Asia/Shanghai", "2026-03-01T15:30:00Z");
    let login = w.run(|m| m.daily_login()).expect("login");
    assert_eq!(login.granted, 10);
    assert_eq!(login.local_date, jiff::civil::date(2026, 3, 1));
    assert_eq!(login.expires_at, t("2026-03-01T16:00:00Z"));
    assert_eq!(w.figures(), (0, 0, 0, 10, 0));
    w.set_clock(t("2026-03-01T15:59:59Z"));
    assert_eq!(w.balance().agent.available, 10);
    w.set_clock(t("2026-03-01T16:00:00Z"));
    assert_eq!(w.balance().agent.available, 0);
    let expired = w.entries(EntryType::Expire);
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].amount, expired[0].at),
        (-10, t("2026-03-01T16:00:00Z"))
    );
    w.assert_ledger_invariant();
}

#[test]
fn daily_login_on_a_new_york_dst_change_day_ends_at_local_midnight() {
    // 2026-03-08 00:30 EST; the clocks jump at 02:00, midnight of Mar 9 is 00:00 EDT.
    let mut w = World::new("America/New_York", "2026-03-08T05:30:00Z");
    let login = w.run(|m| m.daily_login()).expect("login");
    assert_eq!(login.local_date, jiff::civil::date(2026, 3, 8));
    assert_eq!(login.expires_at, t("2026-03-09T04:00:00Z"));
    // Late on the same local day (23:30 EDT = 03:30Z next UTC day): no second grant.
    w.set_clock(t("2026-03-09T03:30:00Z"));
    assert_eq!(w.run(|m| m.daily_login()).map(|l| l.granted), Ok(0));
    // The first minute of Mar 9 local is a new day.
    w.set_clock(t("2026-03-09T04:00:00Z"));
    let next = w.run(|m| m.daily_login()).expect("login");
    assert_eq!(
        (next.granted, next.local_date),
        (10, jiff::civil::date(2026, 3, 9))
    );
    assert_eq!(w.figures(), (0, 0, 0, 10, 0));
    w.assert_ledger_invariant();
}

#[test]
fn daily_login_grants_once_per_local_day() {
    let mut w = World::new("UTC", "2026-05-05T08:00:00Z");
    let first = w.run(|m| m.daily_login()).expect("login");
    let second = w.run(|m| m.daily_login()).expect("login");
    assert_eq!((first.granted, second.granted), (10, 0));
    assert!(first.bucket_id.is_some() && second.bucket_id.is_none());
    assert_eq!(second.local_date, first.local_date);
    assert_eq!(w.grants_of(Source::DailyLogin).len(), 1);
}

#[test]
fn promotion_valid_for_expires_after_the_duration_and_leaves_at_exactly_expires_at() {
    let mut w = World::new("UTC", "2026-01-10T12:00:00Z");
    let bucket = w.grant(CreditKind::General, 30, Expiry::ValidFor(2.hours()));
    assert_eq!(bucket.expires_at(), Some(t("2026-01-10T14:00:00Z")));
    w.set_clock(t("2026-01-10T13:59:59Z"));
    assert_eq!(w.balance().general.available, 30);
    w.set_clock(t("2026-01-10T14:00:00Z"));
    assert_eq!(w.balance().general.available, 0);
    let expire = w.entries(EntryType::Expire);
    assert_eq!(
        expire
            .iter()
            .map(|e| (e.amount, e.at, e.bucket_id))
            .collect::<Vec<_>>(),
        [(-30, t("2026-01-10T14:00:00Z"), bucket.id())]
    );
    w.assert_ledger_invariant();
}

#[test]
fn promotion_valid_for_days_counts_calendar_days_in_the_accounts_zone() {
    // Noon in New York the day before the DST jump: one day later is 23 hours later.
    let mut w = World::new("America/New_York", "2026-03-07T17:00:00Z");
    let bucket = w.grant(CreditKind::Agent, 5, Expiry::ValidFor(1.day()));
    assert_eq!(bucket.expires_at(), Some(t("2026-03-08T16:00:00Z")));
}

#[test]
fn promotion_and_compensation_without_expiry_never_expire() {
    let mut w = World::new("UTC", "2026-01-01T00:00:00Z");
    w.general(12);
    let compensation = w
        .run(|m| {
            m.grant(Grant {
                kind: CreditKind::Agent,
                amount: Amount::new(3).expect("amount"),
                source: GrantSource::Compensation,
                expiry: Expiry::Never,
                campaign: None,
                note: Some("payment delayed".into()),
            })
        })
        .expect("grant");
    assert_eq!(
        (compensation.source(), compensation.expires_at()),
        (Source::Compensation, None)
    );
    w.set_clock(t("2027-02-05T00:00:00Z"));
    assert_eq!(w.figures(), (12, 0, 0, 3, 0));
    assert!(w.entries(EntryType::Expire).is_empty());
}

#[test]
fn grants_refuse_an_expiry_in_the_past_and_non_positive_durations() {
    let mut w = World::new("UTC", "2026-01-01T00:00:00Z");
    let grant = |expiry| Grant {
        kind: CreditKind::General,
        amount: Amount::new(1).expect("amount"),
        source: GrantSource::Promotion,
        expiry,
        campaign: None,
        note: None,
    };
    let now = w.now;
    assert_eq!(
        w.run(|m| m.grant(grant(Expiry::At(now)))),
        Err(Refusal::ExpiryNotInFuture)
    );
    let refusal = w
        .run(|m| m.grant(grant(Expiry::ValidFor(Span::new().hours(-1)))))
        .map(|_| ());
    assert!(matches!(refusal, Err(Refusal::InvalidDuration(_))));
    assert!(
        w.history.entries.is_empty(),
        "a refused command changes nothing"
    );
}

#[test]
fn purchased_credits_are_valid_two_calendar_years_from_the_payment() {
    let mut w = World::new("UTC", "2024-02-29T09:00:00Z");
    w.activate("2024-06-01T00:00:00Z").expect("activate");
    let receipt = w.purchase("order-1", 100, None).expect("purchase");
    assert_eq!(receipt.paid_at, t("2024-02-29T09:00:00Z"));
    assert_eq!(
        receipt.expires_at,
        t("2026-02-28T09:00:00Z"),
        "Feb 29 + 2 years clamps"
    );
    let entry = w.grants_of(Source::Purchase)[0];
    assert_eq!(
        entry.order_id.as_ref().map(OrderId::as_str),
        Some("order-1")
    );
}

#[test]
fn a_frozen_bucket_keeps_its_credits_but_cannot_pay() {
    let mut w = World::new("UTC", "2026-01-01T00:00:00Z");
    w.activate("2026-03-01T00:00:00Z").expect("activate");
    w.purchase("o-1", 100, None).expect("purchase");
    w.run(|m| m.cancel()).expect("cancel");
    assert_eq!(w.figures(), (0, 0, 600, 100, 0));
    let refusal = w.charge("image_color_change", None);
    assert_eq!(
        refusal,
        Err(Refusal::InsufficientCredits {
            required: 1,
            available: 0
        })
    );
    let balance = w.balance();
    assert!(
        balance
            .buckets
            .iter()
            .filter(|b| b.bucket.source().freezes())
            .all(|b| b.frozen)
    );
    w.assert_ledger_invariant();
}

#[test]
fn purchased_credits_expiring_while_frozen_stay_gone_after_reactivation() {
    let mut w = World::new("UTC", "2026-01-15T00:00:00Z");
    w.activate("2026-02-01T00:00:00Z").expect("activate");
    let receipt = w.purchase("o-1", 100, None).expect("purchase");
    assert_eq!(receipt.expires_at, t("2028-01-15T00:00:00Z"));
    // Lapses Feb 1; the purchase expires while frozen.
    w.set_clock(t("2028-01-15T00:00:00Z"));
    let b = w.balance();
    assert_eq!(
        (b.general.available, b.general.frozen),
        (0, 500),
        "only the subscription credits stay frozen"
    );
    let expired: Vec<_> = w
        .entries(EntryType::Expire)
        .into_iter()
        .filter(|e| e.bucket_id == receipt.bucket_id)
        .map(|e| (e.amount, e.at))
        .collect();
    assert_eq!(expired, [(-100, t("2028-01-15T00:00:00Z"))]);
    w.set_clock(t("2028-02-01T00:00:00Z"));
    w.activate("2028-05-01T00:00:00Z").expect("reactivate");
    let b = w.balance();
    assert_eq!(
        (b.general.available, b.general.frozen),
        (1000, 0),
        "500 unfrozen + 500 distributed, no purchase"
    );
    assert!(b.buckets.iter().all(|b| b.bucket.id() != receipt.bucket_id));
    w.assert_ledger_invariant();
}

// ----- §2 Membership

#[test]
fn start_trial_grants_trial_credits_until_the_trial_end() {
    let mut w = World::new("UTC", "2026-04-01T10:00:00Z");
    w.run(|m| m.start_trial("pro")).expect("trial");
    let membership = w.account.membership();
    assert_eq!(membership.status(), MembershipStatus::Trial);
    assert_eq!(membership.trial_end(), Some(t("2026-04-08T10:00:00Z")));
    let b = w.balance();
    assert_eq!(b.general.available, 50);
    assert_eq!(
        b.buckets[0].bucket.expires_at(),
        Some(t("2026-04-08T10:00:00Z"))
    );
    assert_eq!(b.buckets[0].bucket.source(), Source::Trial);
}

#[test]
fn trial_days_are_calendar_days_in_the_accounts_zone() {
    // 7 local days from Mar 2 in New York cross the DST jump: 7 × 24 − 1 hours.
    let mut w = World::new("America/New_York", "2026-03-02T17:00:00Z");
    w.run(|m| m.start_trial("pro")).expect("trial");
    assert_eq!(
        w.account.membership().trial_end(),
        Some(t("2026-03-09T16:00:00Z"))
    );
}

#[test]
fn start_trial_is_refused_unless_the_membership_is_none() {
    let mut w = World::new("UTC", "2026-04-01T10:00:00Z");
    w.run(|m| m.start_trial("pro")).expect("trial");
    assert_eq!(
        w.run(|m| m.start_trial("pro")),
        Err(Refusal::TrialNotAvailable)
    );
    w.set_clock(t("2026-04-20T00:00:00Z"));
    assert_eq!(w.account.membership().status(), MembershipStatus::Lapsed);
    assert_eq!(
        w.run(|m| m.start_trial("pro")),
        Err(Refusal::TrialNotAvailable)
    );
    let mut active = World::new("UTC", "2026-04-01T10:00:00Z");
    active.activate("2026-05-01T00:00:00Z").expect("activate");
    assert_eq!(
        active.run(|m| m.start_trial("pro")),
        Err(Refusal::TrialNotAvailable)
    );
}

#[test]
fn a_trial_that_ends_without_activate_lapses_at_its_end() {
    let mut w = World::new("UTC", "2026-04-01T10:00:00Z");
    w.run(|m| m.start_trial("pro")).expect("trial");
    w.purchase("o-1", 40, None).expect("a trial member may buy");
    w.set_clock(t("2026-04-08T09:59:59Z"));
    assert_eq!(w.account.membership().status(), MembershipStatus::Trial);
    w.set_clock(t("2026-04-08T10:00:00Z"));
    assert_eq!(w.account.membership().status(), MembershipStatus::Lapsed);
    assert_eq!(
        w.figures(),
        (0, 0, 40, 0, 0),
        "trial credits ended, the purchase froze"
    );
    let freeze = w.entries(EntryType::Freeze);
    assert_eq!(freeze.len(), 1);
    assert_eq!(
        (freeze[0].amount, freeze[0].frozen, freeze[0].at),
        (0, Some(40), t("2026-04-08T10:00:00Z"))
    );
    w.assert_ledger_invariant();
}

#[test]
fn activate_distributes_at_once_and_at_anchor_plus_n_months() {
    let mut w = World::new("UTC", "2026-01-10T08:00:00Z");
    w.activate("2026-12-31T00:00:00Z").expect("activate");
    assert_eq!(w.figures(), (500, 0, 0, 100, 0));
    w.set_clock(t("2026-02-10T07:59:59Z"));
    assert_eq!(w.figures(), (500, 0, 0, 100, 0));
    w.set_clock(t("2026-02-10T08:00:00Z"));
    assert_eq!(w.figures(), (1000, 0, 0, 100, 0));
    w.set_clock(t("2026-05-10T08:00:00Z"));
    assert_eq!(w.figures(), (2500, 0, 0, 100, 0));
    let at: Vec<Timestamp> = w.history.distributions.iter().map(|d| d.at).collect();
    assert_eq!(
        at,
        [
            t("2026-01-10T08:00:00Z"),
            t("2026-02-10T08:00:00Z"),
            t("2026-03-10T08:00:00Z"),
            t("2026-04-10T08:00:00Z"),
            t("2026-05-10T08:00:00Z")
        ]
    );
    w.assert_ledger_invariant();
}

#[test]
fn distributions_anchored_on_the_31st_clamp_to_the_month_end_from_the_anchor() {
    let mut w = World::new("UTC", "2025-01-31T12:00:00Z");
    w.activate("2025-07-01T00:00:00Z").expect("activate");
    w.set_clock(t("2025-05-01T00:00:00Z"));
    let at: Vec<Timestamp> = w.history.distributions.iter().map(|d| d.at).collect();
    assert_eq!(
        at,
        [
            t("2025-01-31T12:00:00Z"),
            t("2025-02-28T12:00:00Z"),
            t("2025-03-31T12:00:00Z"),
            t("2025-04-30T12:00:00Z")
        ]
    );
    let indexes: Vec<u32> = w.history.distributions.iter().map(|d| d.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
}

#[test]
fn membership_agent_credits_end_exactly_at_the_next_distribution() {
    let mut w = World::new("UTC", "2025-01-31T12:00:00Z");
    w.activate("2025-12-01T00:00:00Z").expect("activate");
    let first = w
        .balance()
        .buckets
        .iter()
        .find(|b| b.bucket.source() == Source::MembershipAgent)
        .map(|b| b.bucket.clone())
        .expect("agent bucket");
    assert_eq!(first.expires_at(), Some(t("2025-02-28T12:00:00Z")));
    w.charge("agent.image_editing", Some(30)).expect("charge");
    w.set_clock(t("2025-02-28T12:00:00Z"));
    let expire = w.entries(EntryType::Expire);
    assert_eq!(
        expire
            .iter()
            .map(|e| (e.bucket_id, e.amount, e.at))
            .collect::<Vec<_>>(),
        [(first.id(), -70, t("2025-02-28T12:00:00Z"))]
    );
    // The new distribution's agent credits: 100, no carry-over, until Mar 31.
    let b = w.balance();
    assert_eq!(b.agent.available, 100);
    let next = b
        .buckets
        .iter()
        .find(|b| b.bucket.source() == Source::MembershipAgent)
        .expect("agent bucket");
    assert_eq!(next.bucket.expires_at(), Some(t("2025-03-31T12:00:00Z")));
    w.assert_ledger_invariant();
}

#[test]
fn subscription_credits_carry_over_while_the_membership_lasts() {
    let mut w = World::new("UTC", "2026-01-01T00:00:00Z");
    w.activate("2027-01-01T00:00:00Z").expect("activate");
    w.set_clock(t("2026-06-15T00:00:00Z"));
    let subscription: Vec<_> = w
        .balance()
        .buckets
        .into_iter()
        .filter(|b| b.bucket.source() == Source::Subscription)
        .collect();
    assert_eq!(subscription.len(), 6);
    assert!(
        subscription
            .iter()
            .all(|b| b.bucket.expires_at().is_none() && !b.frozen)
    );
}

#[test]
fn each_distribution_happens_exactly_once_however_often_time_is_caught_up() {
    let mut w = World::new("UTC", "2026-01-01T00:00:00Z");
    w.activate("2026-12-01T00:00:00Z").expect("activate");
    for _ in 0..3 {
        w.set_clock(t("2026-03-01T00:00:00Z"));
    }
    // A retried activate with the same period changes nothing.
    w.activate("2026-12-01T00:00:00Z").expect("same period");
    let indexes: Vec<u32> = w.history.distributions.iter().map(|d| d.index).collect();
    assert_eq!(indexes, [0, 1, 2]);
    assert_eq!(w.grants_of(Source::Subscription).len(), 3);
}

#[test]
fn renewal_while_active_continues_the_schedule() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.activate("2026-02-05T00:00:00Z").expect("activate");
    w.set_clock(t("2026-02-01T00:00:00Z"));
    w.activate("2026-03-05T00:00:00Z").expect("renew");
    assert_eq!(
        w.history.distributions.len(),
        1,
        "a renewal distributes nothing itself"
    );
    w.set_clock(t("2026-02-05T00:00:00Z"));
    let d: Vec<(u32, Timestamp)> = w
        .history
        .distributions
        .iter()
        .map(|d| (d.index, d.at))
        .collect();
    assert_eq!(
        d,
        [
            (0, t("2026-01-05T00:00:00Z")),
            (1, t("2026-02-05T00:00:00Z"))
        ]
    );
    assert_eq!(
        w.account.membership().period_start(),
        Some(t("2026-01-05T00:00:00Z"))
    );
}

#[test]
fn the_membership_lapses_at_period_end_with_no_distribution_at_that_instant() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.activate("2026-02-05T00:00:00Z").expect("activate");
    w.set_clock(t("2026-02-05T00:00:00Z"));
    assert_eq!(w.account.membership().status(), MembershipStatus::Lapsed);
    assert_eq!(w.history.distributions.len(), 1);
    // The membership agent credits end at the same instant; subscription credits freeze.
    assert_eq!(w.figures(), (0, 0, 500, 0, 0));
    let freeze = w.entries(EntryType::Freeze);
    assert_eq!(
        freeze.iter().map(|e| (e.frozen, e.at)).collect::<Vec<_>>(),
        [(Some(500), t("2026-02-05T00:00:00Z"))]
    );
    w.set_clock(t("2026-08-05T00:00:00Z"));
    assert_eq!(
        w.history.distributions.len(),
        1,
        "no distributions while lapsed"
    );
    w.assert_ledger_invariant();
}

#[test]
fn cancel_lapses_now_and_freezes_subscription_and_purchase_credits() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.activate("2026-04-05T00:00:00Z").expect("activate");
    w.purchase("o-1", 100, None).expect("purchase");
    w.set_clock(t("2026-01-05T01:00:00Z"));
    w.run(|m| m.cancel()).expect("cancel");
    let membership = w.account.membership();
    assert_eq!(
        (membership.status(), membership.period_end()),
        (MembershipStatus::Lapsed, Some(t("2026-01-05T01:00:00Z")))
    );
    assert_eq!(w.figures(), (0, 0, 600, 100, 0));
    let frozen: Vec<(Source, Option<u64>)> = w
        .entries(EntryType::Freeze)
        .iter()
        .map(|e| (e.source, e.frozen))
        .collect();
    // One entry per bucket, in consumption order: the purchase expires, the subscription never.
    assert_eq!(
        frozen,
        [
            (Source::Purchase, Some(100)),
            (Source::Subscription, Some(500))
        ]
    );
    w.assert_ledger_invariant();
}

#[test]
fn cancel_by_a_non_member_is_refused() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    assert_eq!(w.run(|m| m.cancel()), Err(Refusal::NotAMember));
}

#[test]
fn cancel_during_a_trial_lapses_it_and_trial_credits_keep_their_end() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.run(|m| m.start_trial("pro")).expect("trial");
    w.run(|m| m.cancel()).expect("cancel");
    assert_eq!(w.account.membership().status(), MembershipStatus::Lapsed);
    assert_eq!(w.balance().general.available, 50);
    w.set_clock(t("2026-01-12T00:00:00Z"));
    assert_eq!(w.balance().general.available, 0);
}

#[test]
fn reactivation_unfreezes_unexpired_buckets_and_anchors_a_new_schedule() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.activate("2026-04-05T00:00:00Z").expect("activate");
    w.purchase("o-1", 100, None).expect("purchase");
    w.set_clock(t("2026-01-05T01:00:00Z"));
    w.run(|m| m.cancel()).expect("cancel");
    w.set_clock(t("2026-01-20T00:00:00Z"));
    w.activate("2026-06-01T00:00:00Z").expect("reactivate");
    assert_eq!(w.figures(), (1100, 0, 0, 200, 0));
    let unfrozen: Vec<Option<u64>> = w
        .entries(EntryType::Unfreeze)
        .iter()
        .map(|e| e.frozen)
        .collect();
    assert_eq!(unfrozen, [Some(100), Some(500)]);
    let schedule = w.account.membership().schedule().expect("schedule");
    assert_eq!(
        (schedule.anchor, schedule.next_index),
        (t("2026-01-20T00:00:00Z"), 1)
    );
    w.set_clock(t("2026-02-20T00:00:00Z"));
    assert_eq!(
        w.history.distributions.last().map(|d| d.at),
        Some(t("2026-02-20T00:00:00Z"))
    );
    w.assert_ledger_invariant();
}

#[test]
fn trial_credits_keep_the_trials_original_end_after_converting_to_paid() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.run(|m| m.start_trial("pro")).expect("trial");
    w.set_clock(t("2026-01-07T00:00:00Z"));
    w.activate("2026-03-07T00:00:00Z").expect("convert");
    let membership = w.account.membership();
    assert_eq!(membership.status(), MembershipStatus::Active);
    assert_eq!(membership.trial_end(), Some(t("2026-01-12T00:00:00Z")));
    assert_eq!(w.figures(), (550, 0, 0, 100, 0));
    w.set_clock(t("2026-01-12T00:00:00Z"));
    assert_eq!(
        w.figures(),
        (500, 0, 0, 100, 0),
        "the trial's 50 end at the original trial end"
    );
    assert_eq!(w.account.membership().status(), MembershipStatus::Active);
}

#[test]
fn activate_refuses_a_past_period_end_an_earlier_one_and_an_unknown_plan() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let now = w.now;
    assert_eq!(
        w.run(|m| m.activate("pro", now)),
        Err(Refusal::PeriodEndNotInFuture)
    );
    assert_eq!(
        w.run(|m| m.activate("gold", t("2026-02-01T00:00:00Z"))),
        Err(Refusal::UnknownPlan("gold".into()))
    );
    w.activate("2026-03-01T00:00:00Z").expect("activate");
    let before = w.account.clone();
    assert_eq!(
        w.activate("2026-02-01T00:00:00Z"),
        Err(Refusal::PeriodEndBeforeCurrent)
    );
    assert_eq!(w.activate("2026-03-01T00:00:00Z"), Ok(()));
    assert_eq!(w.account, before, "an equal period_end changes nothing");
}

// ----- §3 Prices

#[test]
fn cost_is_price_times_started_blocks_with_default_quantities() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(1000);
    assert_eq!(
        w.charge("agent.video_generation", Some(7))
            .map(|h| h.amount()),
        Ok(40),
        "7 s = 2 blocks"
    );
    assert_eq!(
        w.charge("agent.video_generation", Some(12))
            .map(|h| h.amount()),
        Ok(60)
    );
    assert_eq!(
        w.charge("ai_background", None)
            .map(|h| (h.quantity(), h.amount())),
        Ok((2, 4))
    );
    let premium = w.run(|m| {
        m.charge(&Use {
            feature: "agent.poster".into(),
            tier: Some(Tier::Premium),
            ..Use::default()
        })
    });
    assert_eq!(premium.map(|h| h.amount()), Ok(15));
}

#[test]
fn a_tier_without_a_price_and_an_unknown_feature_are_refused() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(100);
    let refusal = w.run(|m| {
        m.place_hold(&Use {
            feature: "ai_background".into(),
            tier: Some(Tier::Premium),
            ..Use::default()
        })
    });
    assert_eq!(refusal.map_err(|r| r.code()), Err("tier_not_available"));
    assert_eq!(
        w.hold("nope", None).map_err(|r| r.code()),
        Err("unknown_feature")
    );
    assert_eq!(w.balance().general.held, 0);
}

#[test]
fn quantities_and_ttls_outside_their_bounds_are_refused() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(100);
    assert!(matches!(
        w.hold("ai_extender", Some(0)),
        Err(Refusal::QuantityOutOfRange { .. })
    ));
    assert!(matches!(
        w.hold("ai_extender", Some(100_001)),
        Err(Refusal::QuantityOutOfRange { .. })
    ));
    for ttl_seconds in [0, 86_401] {
        let refusal = w.run(|m| {
            m.place_hold(&Use {
                feature: "ai_extender".into(),
                ttl_seconds: Some(ttl_seconds),
                ..Use::default()
            })
        });
        assert_eq!(
            refusal,
            Err(Refusal::TtlOutOfRange {
                min: 1,
                max: 86_400
            })
        );
    }
}

#[test]
fn the_price_is_fixed_when_the_hold_is_placed() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(100);
    let hold = w.hold("agent.poster", None).expect("hold");
    let dearer = Catalog::from_toml(
        "[features.\"agent.poster\"]\ncategory='agent'\nunit='item'\nblock=1\ndefault_quantity=1\nprices={general=50}",
    )
    .expect("catalog");
    w.catalog = dearer;
    let captured = w.run(|m| m.capture(hold.id(), None)).expect("capture");
    assert_eq!(captured.settlement().map(|s| s.captured_amount), Some(10));
    assert_eq!(w.balance().general.available, 90);
}

#[test]
fn purchases_are_for_members_only() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    assert_eq!(w.purchase("o-1", 100, None), Err(Refusal::MembersOnly));
    assert!(w.history.entries.is_empty());
}

#[test]
fn a_payment_confirmed_late_counts_if_the_account_was_a_member_when_it_paid() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.activate("2026-02-05T00:00:00Z").expect("activate");
    w.set_clock(t("2026-02-10T00:00:00Z"));
    let late = w
        .purchase("o-1", 100, Some(t("2026-02-04T23:00:00Z")))
        .expect("paid while a member");
    assert_eq!(late.expires_at, t("2028-02-04T23:00:00Z"));
    assert_eq!(
        w.figures(),
        (0, 0, 600, 0, 0),
        "recorded while lapsed: frozen at once"
    );
    let freeze = w.entries(EntryType::Freeze);
    assert_eq!(
        freeze.last().map(|e| (e.bucket_id, e.frozen)),
        Some((late.bucket_id, Some(100)))
    );
    assert_eq!(
        w.purchase("o-2", 100, Some(t("2026-02-05T00:00:00Z"))),
        Err(Refusal::MembersOnly),
        "paid at the lapse"
    );
    assert_eq!(
        w.purchase("o-3", 100, Some(t("2026-01-04T00:00:00Z"))),
        Err(Refusal::MembersOnly),
        "paid before joining"
    );
    w.assert_ledger_invariant();
}

#[test]
fn a_purchase_paid_in_the_future_is_refused() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.activate("2026-02-05T00:00:00Z").expect("activate");
    assert_eq!(
        w.purchase("o-1", 100, Some(t("2026-01-05T00:00:01Z"))),
        Err(Refusal::PaidAtInFuture)
    );
}

#[test]
fn a_package_purchase_grants_the_packages_credits() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.activate("2026-02-05T00:00:00Z").expect("activate");
    let receipt = w.run(|m| {
        m.purchase(Purchase {
            order_id: OrderId::parse("o-1").expect("id"),
            credits: PurchaseCredits::Package("credits_500".into()),
            paid_at: None,
            paid: None,
        })
    });
    assert_eq!(receipt.map(|r| r.credits), Ok(500));
    let unknown = w.run(|m| {
        m.purchase(Purchase {
            order_id: OrderId::parse("o-2").expect("id"),
            credits: PurchaseCredits::Package("credits_7".into()),
            paid_at: None,
            paid: None,
        })
    });
    assert_eq!(unknown.map_err(|r| r.code()), Err("invalid_request"));
}

// ----- §4 Paying for a use

#[test]
fn tools_are_paid_with_general_credits_only() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.grant(CreditKind::Agent, 10, Expiry::Never);
    let general = w.general(3);
    let charge = w.charge("ai_extender", Some(3)).expect("charge");
    assert_eq!(allocations(&charge), [(general.id(), 3)]);
    assert_eq!(
        w.charge("ai_extender", Some(1)),
        Err(Refusal::InsufficientCredits {
            required: 1,
            available: 0
        })
    );
    assert_eq!(w.figures(), (0, 0, 0, 10, 0));
}

#[test]
fn agent_tasks_use_agent_credits_before_general_ones() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let general = w.expiring(CreditKind::General, 20, "2026-01-05T01:00:00Z");
    let agent = w.grant(CreditKind::Agent, 10, Expiry::Never);
    let charge = w
        .run(|m| {
            m.charge(&Use {
                feature: "agent.poster".into(),
                tier: Some(Tier::Premium),
                ..Use::default()
            })
        })
        .expect("charge");
    assert_eq!(allocations(&charge), [(agent.id(), 10), (general.id(), 5)]);
    assert_eq!(w.figures(), (15, 0, 0, 0, 0));
}

#[test]
fn earliest_expiry_is_consumed_first_and_never_expiring_last() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let later = w.expiring(CreditKind::General, 5, "2026-01-15T00:00:00Z");
    let never = w.general(5);
    let sooner = w.expiring(CreditKind::General, 5, "2026-01-10T00:00:00Z");
    let latest = w.expiring(CreditKind::General, 5, "2026-01-25T00:00:00Z");
    let charge = w.charge("ai_extender", Some(7)).expect("charge");
    assert_eq!(allocations(&charge), [(sooner.id(), 5), (later.id(), 2)]);
    let left: Vec<(BucketId, u64)> = w
        .balance()
        .buckets
        .iter()
        .map(|b| (b.bucket.id(), b.bucket.remaining()))
        .collect();
    assert_eq!(left, [(later.id(), 3), (latest.id(), 5), (never.id(), 5)]);
}

#[test]
fn equal_expiries_are_consumed_oldest_grant_first() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let end = Expiry::At(t("2026-02-01T00:00:00Z"));
    w.set_clock(t("2026-01-05T00:00:10Z"));
    let newer_id_older_grant = w.grant(CreditKind::General, 4, end);
    w.set_clock(t("2026-01-05T00:00:20Z"));
    let newer = w.grant(CreditKind::General, 4, end);
    let charge = w.charge("ai_extender", Some(5)).expect("charge");
    assert_eq!(
        allocations(&charge),
        [(newer_id_older_grant.id(), 4), (newer.id(), 1)]
    );
}

#[test]
fn insufficient_credits_change_nothing_and_tell_required_and_available() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(5);
    let before = (w.account.clone(), w.history.clone());
    assert_eq!(
        w.charge("private_model", None),
        Err(Refusal::InsufficientCredits {
            required: 20,
            available: 5
        })
    );
    assert_eq!(
        w.hold("agent.video_editing", Some(2)),
        Err(Refusal::InsufficientCredits {
            required: 8,
            available: 5
        })
    );
    assert_eq!((w.account.clone(), w.history.clone()), before);
}

#[test]
fn a_hold_reserves_its_cost_at_once() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(20);
    w.grant(CreditKind::Agent, 1, Expiry::Never);
    let hold = w.hold("agent.image_generation", Some(4)).expect("hold");
    assert_eq!(
        (hold.amount(), hold.status(), hold.expires_at()),
        (8, HoldStatus::Pending, t("2026-01-05T00:15:00Z"))
    );
    assert_eq!(w.figures(), (13, 7, 0, 0, 1));
    let debits: Vec<i64> = w
        .entries(EntryType::Debit)
        .iter()
        .map(|e| e.amount)
        .collect();
    assert_eq!(debits, [-1, -7], "one debit entry per bucket touched");
    w.assert_ledger_invariant();
}

#[test]
fn capture_charges_what_was_delivered_and_returns_the_rest() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(100);
    let hold = w.hold("agent.video_generation", Some(12)).expect("hold");
    assert_eq!(hold.amount(), 60);
    let captured = w.run(|m| m.capture(hold.id(), Some(7))).expect("capture");
    let settlement = captured.settlement().cloned().expect("settled");
    assert_eq!(
        (
            captured.status(),
            settlement.captured_amount,
            settlement.refunded_amount
        ),
        (HoldStatus::Captured, 40, 20)
    );
    assert_eq!(w.figures(), (60, 0, 0, 0, 0));
    let by_hold: Vec<i64> = w
        .history
        .entries
        .iter()
        .filter(|e| e.hold_id == Some(hold.id()))
        .map(|e| e.amount)
        .collect();
    assert_eq!(by_hold, [-60, 20]);
    assert_eq!(
        captured.refunds().iter().map(|r| r.amount).sum::<u64>(),
        20,
        "the settled hold tells what came back"
    );
    w.assert_ledger_invariant();
}

#[test]
fn charged_credits_come_from_the_holds_allocations_in_consumption_order() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let soon = w.expiring(CreditKind::General, 3, "2026-01-06T00:00:00Z");
    let never = w.general(10);
    let hold = w.hold("ai_extender", Some(6)).expect("hold");
    assert_eq!(allocations(&hold), [(soon.id(), 3), (never.id(), 3)]);
    w.run(|m| m.capture(hold.id(), Some(4))).expect("capture");
    let left: Vec<(BucketId, u64)> = w
        .balance()
        .buckets
        .iter()
        .map(|b| (b.bucket.id(), b.bucket.remaining()))
        .collect();
    assert_eq!(
        left,
        [(never.id(), 9)],
        "`soon` paid 3, `never` paid 1 and got 2 back"
    );
}

#[test]
fn capture_of_more_than_was_held_is_refused() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(10);
    let hold = w.hold("ai_extender", Some(2)).expect("hold");
    assert_eq!(
        w.run(|m| m.capture(hold.id(), Some(3))).map(|_| ()),
        Err(Refusal::QuantityOutOfRange { min: 0, max: 2 })
    );
    let zero = w.run(|m| m.capture(hold.id(), Some(0))).expect("capture 0");
    assert_eq!(
        zero.settlement()
            .map(|s| (s.captured_amount, s.refunded_amount)),
        Some((0, 2))
    );
}

#[test]
fn release_returns_everything() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(10);
    let hold = w.hold("ai_model", None).expect("hold");
    assert_eq!(w.figures(), (6, 4, 0, 0, 0));
    let released = w.run(|m| m.release(hold.id())).expect("release");
    assert_eq!(
        released
            .settlement()
            .map(|s| (s.captured_amount, s.refunded_amount)),
        Some((0, 4))
    );
    assert_eq!(w.figures(), (10, 0, 0, 0, 0));
    w.assert_ledger_invariant();
}

#[test]
fn a_pending_hold_returns_everything_at_its_expiry() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(10);
    let hold = w
        .run(|m| {
            m.place_hold(&Use {
                feature: "agent.image_editing".into(),
                quantity: Some(3),
                ttl_seconds: Some(60),
                ..Use::default()
            })
        })
        .expect("hold");
    w.set_clock(t("2026-01-05T00:00:59Z"));
    assert!(w.account.pending_hold(hold.id()).is_some());
    w.set_clock(t("2026-01-05T00:01:00Z"));
    assert_eq!(w.figures(), (10, 0, 0, 0, 0));
    let expired = &w.history.settled_holds[0];
    assert_eq!(
        (expired.status(), expired.settlement().map(|s| s.at)),
        (HoldStatus::Expired, Some(t("2026-01-05T00:01:00Z")))
    );
    assert_eq!(
        w.run(|m| m.capture(hold.id(), Some(3))).map(|_| ()),
        Err(Refusal::HoldNotPending(hold.id()))
    );
    w.assert_ledger_invariant();
}

#[test]
fn a_settled_hold_cannot_change_and_an_unknown_one_is_not_found() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(10);
    let hold = w.charge("ai_extender", None).expect("charge");
    assert_eq!(
        w.run(|m| m.release(hold.id())).map(|_| ()),
        Err(Refusal::HoldNotPending(hold.id()))
    );
    assert_eq!(
        w.run(|m| m.capture(hold.id(), None)).map(|_| ()),
        Err(Refusal::HoldNotPending(hold.id()))
    );
    let unknown = HoldId::new(99);
    assert_eq!(
        w.run(|m| m.release(unknown)).map_err(|r| r.code()),
        Err("not_found")
    );
}

#[test]
fn credits_returned_into_an_expired_bucket_go_to_a_refund_grace_bucket_of_the_same_kind() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let short = w.expiring(CreditKind::Agent, 10, "2026-01-05T00:10:00Z");
    let hold = w.hold("agent.video_editing", Some(2)).expect("hold");
    w.set_clock(t("2026-01-05T00:12:00Z"));
    assert!(
        w.entries(EntryType::Expire).iter().all(|e| e.amount == -2),
        "only the unheld 2 expired"
    );
    let released = w.run(|m| m.release(hold.id())).expect("release");
    let b = w.balance();
    assert_eq!(b.agent.available, 8);
    let grace = &b.buckets[0].bucket;
    assert_eq!(
        released.refunds(),
        [Refund {
            bucket_id: grace.id(),
            kind: CreditKind::Agent,
            amount: 8
        }],
        "the settled hold names where its credits went"
    );
    assert_eq!(
        (grace.source(), grace.kind(), grace.remaining()),
        (Source::RefundGrace, CreditKind::Agent, 8)
    );
    assert_eq!(
        grace.expires_at(),
        Some(t("2026-01-06T00:12:00Z")),
        "24 h after the return"
    );
    let refund = w.entries(EntryType::Refund);
    assert_eq!(
        refund
            .iter()
            .map(|e| (e.bucket_id, e.amount))
            .collect::<Vec<_>>(),
        [(grace.id(), 8)]
    );
    assert_ne!(grace.id(), short.id());
    w.assert_ledger_invariant();
}

#[test]
fn effects_at_one_instant_apply_hold_expiry_before_bucket_expiry() {
    // The hold and its bucket end at the same instant: the credits return to the bucket
    // first (hold expiry), then expire with it (bucket expiry) — SPEC §8's order.
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.expiring(CreditKind::General, 5, "2026-01-05T00:15:00Z");
    w.hold("ai_extender", Some(2)).expect("hold");
    w.set_clock(t("2026-01-05T00:15:00Z"));
    let kinds: Vec<(EntryType, i64)> = w
        .history
        .entries
        .iter()
        .map(|e| (e.entry_type, e.amount))
        .collect();
    assert_eq!(
        kinds,
        [
            (EntryType::Grant, 5),
            (EntryType::Debit, -2),
            (EntryType::Refund, 2),
            (EntryType::Expire, -5)
        ]
    );
    w.assert_ledger_invariant();
}

#[test]
fn positive_adjustments_add_a_never_expiring_compensation_bucket() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let entries = w
        .adjust(25, CreditKind::Agent, "support ticket 12")
        .expect("adjust");
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.entry_type, e.amount, e.source))
            .collect::<Vec<_>>(),
        [(EntryType::Adjust, 25, Source::Compensation)]
    );
    assert_eq!(entries[0].note.as_deref(), Some("support ticket 12"));
    assert_eq!(w.balance().buckets[0].bucket.expires_at(), None);
    w.assert_ledger_invariant();
}

#[test]
fn negative_adjustments_take_from_the_kinds_buckets_in_consumption_order() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let soon = w.expiring(CreditKind::General, 5, "2026-01-09T00:00:00Z");
    let never = w.general(10);
    w.grant(CreditKind::Agent, 50, Expiry::Never);
    let entries = w
        .adjust(-7, CreditKind::General, "duplicate grant")
        .expect("adjust");
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.bucket_id, e.amount))
            .collect::<Vec<_>>(),
        [(soon.id(), -5), (never.id(), -2)]
    );
    let refusal = w.adjust(-9, CreditKind::General, "x");
    assert_eq!(
        refusal,
        Err(Refusal::InsufficientCredits {
            required: 9,
            available: 8
        })
    );
    let no_reason = w.adjust(1, CreditKind::General, " ");
    assert_eq!(no_reason, Err(Refusal::ReasonRequired));
    assert_eq!(w.figures(), (8, 0, 0, 50, 0));
    w.assert_ledger_invariant();
}

// ----- views

#[test]
fn next_expiry_covers_unexpired_buckets_with_credits_frozen_ones_included() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.activate("2026-01-06T00:00:00Z").expect("activate");
    w.purchase("o-1", 100, None).expect("purchase");
    w.charge("agent.video_editing", Some(25))
        .expect("spend the membership agent credits");
    w.set_clock(t("2026-01-07T00:00:00Z"));
    let b = w.balance();
    assert_eq!(b.general.frozen, 600);
    let next = b.next_expiry.expect("the frozen purchase expires");
    assert_eq!((next.at, next.amount), (t("2028-01-05T00:00:00Z"), 100));
}

#[test]
fn the_balance_lists_non_empty_buckets_in_agent_consumption_order() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    let general = w.expiring(CreditKind::General, 5, "2026-01-06T00:00:00Z");
    let agent = w.grant(CreditKind::Agent, 5, Expiry::Never);
    let spent = w.expiring(CreditKind::General, 1, "2026-01-05T12:00:00Z");
    w.charge("ai_extender", Some(1)).expect("charge");
    let b = w.balance();
    let ids: Vec<BucketId> = b.buckets.iter().map(|b| b.bucket.id()).collect();
    assert_eq!(ids, [agent.id(), general.id()]);
    assert!(!ids.contains(&spent.id()));
    assert_eq!(b.total(), 10);
}

#[test]
fn a_state_the_rules_cannot_produce_fails_the_invariant_check() {
    let mut w = World::new("UTC", "2026-01-05T00:00:00Z");
    w.general(10);
    assert_eq!(w.account.check_invariants(), Ok(()));
    let mut overfull = w.account.clone();
    overfull.buckets[0].remaining = 11;
    assert!(overfull.check_invariants().is_err());
    let mut spent = w.account.clone();
    spent.buckets[0].remaining = 0;
    assert!(
        spent.check_invariants().is_err(),
        "a spent bucket lent to no hold is dropped"
    );
}

#[test]
fn a_cancel_and_reactivation_at_one_instant_start_a_second_schedule() {
    let mut w = World::new("UTC", "2026-01-30T22:00:00Z");
    w.activate("2026-01-31T22:00:00Z").expect("activate");
    w.run(|m| m.cancel()).expect("cancel");
    w.activate("2026-01-31T22:00:00Z").expect("reactivate");
    let keys: Vec<(u32, u32)> = w
        .history
        .distributions
        .iter()
        .map(|d| (d.schedule, d.index))
        .collect();
    assert_eq!(
        keys,
        [(1, 0), (2, 0)],
        "each schedule distributes once, with its own key"
    );
    w.assert_ledger_invariant();
}

#[test]
fn a_free_feature_places_a_hold_with_no_allocations() {
    let free = Catalog::from_toml(
        "[features.preview]\ncategory='tool'\nunit='image'\nblock=1\ndefault_quantity=1\nprices={general=0}",
    )
    .expect("catalog");
    let mut w = World::with_catalog(free, "UTC", "2026-01-05T00:00:00Z");
    let hold = w
        .hold("preview", Some(3))
        .expect("a free hold needs no credits");
    assert_eq!((hold.amount(), hold.allocations().len()), (0, 0));
    let captured = w.run(|m| m.capture(hold.id(), None)).expect("capture");
    assert_eq!(captured.status(), HoldStatus::Captured);
    assert!(w.history.entries.is_empty());
}

#[test]
fn a_grant_source_is_named_and_stored_as_its_buckets_source() {
    let named: Vec<(&str, Source)> = GrantSource::ALL
        .into_iter()
        .map(|g| (g.as_str(), g.source()))
        .collect();
    assert_eq!(
        named,
        [
            ("promotion", Source::Promotion),
            ("compensation", Source::Compensation)
        ]
    );
}

#[test]
fn catching_up_applies_at_most_a_bounded_number_of_instants_per_command_then_completes_in_steps() {
    let mut w = World::new("UTC", "2026-01-01T00:00:00Z");
    w.activate("2226-01-01T00:00:00Z").expect("activate");
    // 200 years later: 2,400 monthly distributions (each with its agent credits'
    // expiry and notices) are due, far more than one command catches up.
    w.now = t("2226-06-01T00:00:00Z");
    let mut steps = 0;
    loop {
        let mut moment = w.account.at(&w.catalog, w.now, &mut w.history);
        let tried = moment.apply(&crate::AccountCommand::DailyLogin);
        match tried {
            Err(Refusal::CatchingUp { as_of, max }) => {
                assert_eq!(max, MAX_CATCH_UP_INSTANTS);
                assert!(as_of < w.now);
                assert_eq!(moment.now(), as_of, "the moment stands where it stopped");
                steps += 1;
            }
            Ok(_) => break,
            Err(other) => panic!("unexpected refusal {other}"),
        }
        drop(moment);
        assert!(steps < 100, "catching up must progress");
    }
    assert!(steps >= 2, "{steps} steps");
    // The steps together did what one unbounded catch-up would: every distribution.
    let distributions = w
        .history
        .entries
        .iter()
        .filter(|e| e.source == Source::Subscription && e.entry_type == EntryType::Grant)
        .count();
    assert_eq!(distributions, 2_400);
    w.account.check_invariants().expect("invariants");
}

#[test]
fn entries_are_dated_in_the_order_they_are_recorded_even_from_a_clock_behind() {
    // The store reads a ledger window as a range of entry numbers (its `window.rs`):
    // an account's entries must be dated in the order they are numbered, even when a
    // node whose clock is behind another's writes next, and when catching up records
    // effects that fell due earlier.
    let mut w = World::new("UTC", "2026-12-01T10:00:00Z");
    w.expiring(CreditKind::General, 5, "2026-12-01T11:00:00Z");
    w.general(100);
    w.now = t("2026-12-01T12:00:00Z");
    w.charge("ai_background", None).expect("charge");
    // A node 30 s behind: its `now` counts as the account's own time.
    w.now = t("2026-12-01T11:59:30Z");
    w.charge("ai_background", None).expect("charge");
    w.adjust(-3, CreditKind::General, "correction")
        .expect("adjust");
    let dates: Vec<Timestamp> = w.history.entries.iter().map(|e| e.at).collect();
    assert!(dates.len() >= 5, "{dates:?}");
    assert!(dates.is_sorted(), "{dates:?}");
    assert_eq!(dates.last(), Some(&t("2026-12-01T12:00:00Z")));
    w.assert_ledger_invariant();
}
