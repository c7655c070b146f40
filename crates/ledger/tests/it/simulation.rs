//! The simulator: random command sequences with random clock moves, checked after every
//! step against SPEC §5's invariants and the ledger's own conservation laws, then
//! replayed to check that the core is deterministic.
//!
//! A failure prints the shrunk sequence of steps (and proptest records its seed in
//! `proptest-regressions/`), which replays it exactly: every input is in the steps.

use std::collections::{BTreeMap, HashSet};

use creditd_ledger::{
    Account, AccountId, Adjustment, Amount, Bucket, BucketId, Catalog, CreditKind, EntryType,
    Expiry, Grant, GrantSource, History, HoldId, HoldStatus, OrderId, Purchase, PurchaseCredits,
    Refusal, Source, Tier, Use, parse_time_zone,
};
use jiff::{Timestamp, ToSpan};
use proptest::prelude::*;

const ZONES: [&str; 5] = [
    "UTC",
    "Asia/Shanghai",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
];
const FEATURES: [&str; 5] = [
    "ai_background",
    "private_model",
    "agent.image_generation",
    "agent.video_generation",
    "agent.poster",
];

/// One command of a random history; every input it needs is in it.
#[derive(Clone, Debug)]
enum Step {
    /// Moves the clock; the peeking replay also catches up `peek_percent` of the way.
    Advance {
        seconds: i64,
        peek_percent: i64,
    },
    SetTimeZone {
        zone: usize,
    },
    StartTrial,
    Activate {
        days: i64,
    },
    Cancel,
    DailyLogin,
    Grant {
        kind: CreditKind,
        amount: u64,
        valid_hours: Option<i64>,
        compensation: bool,
    },
    Purchase {
        credits: u64,
        paid_hours_ago: i64,
    },
    Hold {
        feature: usize,
        quantity: u32,
        premium: bool,
        ttl_seconds: u32,
    },
    Capture {
        pick: usize,
        quantity: u32,
    },
    Release {
        pick: usize,
    },
    Charge {
        feature: usize,
        quantity: u32,
        premium: bool,
    },
    Adjust {
        amount: i64,
        kind: CreditKind,
    },
}

fn kind() -> impl Strategy<Value = CreditKind> {
    prop_oneof![Just(CreditKind::General), Just(CreditKind::Agent)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (
            prop_oneof![
                0_i64..=120,
                121_i64..=3_600,
                3_601_i64..=3 * 86_400,
                3 * 86_400..=45 * 86_400_i64,
            ],
            0_i64..=100,
        )
            .prop_map(|(seconds, peek_percent)| Step::Advance { seconds, peek_percent }),
        1 => (0..ZONES.len()).prop_map(|zone| Step::SetTimeZone { zone }),
        1 => Just(Step::StartTrial),
        2 => (1_i64..=120).prop_map(|days| Step::Activate { days }),
        1 => Just(Step::Cancel),
        2 => Just(Step::DailyLogin),
        3 => (kind(), 1_u64..=300, proptest::option::of(1_i64..=24 * 40), any::<bool>())
            .prop_map(|(kind, amount, valid_hours, compensation)| Step::Grant {
                kind,
                amount,
                valid_hours,
                compensation,
            }),
        2 => (1_u64..=500, 0_i64..=24 * 30)
            .prop_map(|(credits, paid_hours_ago)| Step::Purchase { credits, paid_hours_ago }),
        4 => (0..FEATURES.len(), 0_u32..=13, any::<bool>(), 1_u32..=7_200)
            .prop_map(|(feature, quantity, premium, ttl_seconds)| Step::Hold {
                feature,
                quantity,
                premium,
                ttl_seconds,
            }),
        3 => (any::<usize>(), 0_u32..=14).prop_map(|(pick, quantity)| Step::Capture { pick, quantity }),
        2 => any::<usize>().prop_map(|pick| Step::Release { pick }),
        3 => (0..FEATURES.len(), 0_u32..=13, any::<bool>())
            .prop_map(|(feature, quantity, premium)| Step::Charge { feature, quantity, premium }),
        1 => (-300_i64..=300, kind()).prop_map(|(amount, kind)| Step::Adjust { amount, kind }),
    ]
}

/// An account, the catalog, the whole history and a clock that only moves forward.
struct World {
    catalog: Catalog,
    account: Account,
    history: History,
    now: Timestamp,
    orders: u64,
}

impl World {
    fn new(start: Timestamp) -> World {
        World {
            catalog: Catalog::default(),
            account: Account::open(
                AccountId::parse("sim").unwrap(),
                jiff::tz::TimeZone::UTC,
                start,
            ),
            history: History::default(),
            now: start,
            orders: 0,
        }
    }

    /// Runs one step; returns the refusal, if any.
    fn apply(&mut self, step: &Step) -> Option<Refusal> {
        if let Step::Advance { seconds, .. } = step {
            self.now = self.now.checked_add(seconds.seconds()).unwrap();
        }
        let pending: Vec<HoldId> = self
            .account
            .pending_holds()
            .iter()
            .map(|h| h.id())
            .collect();
        // A pick past the pending holds names a hold that is settled or never existed.
        let pick = |i: usize| {
            pending
                .get(i % (pending.len() + 1))
                .copied()
                .unwrap_or(HoldId::new(u64::try_from(i % 5).unwrap() + 1))
        };
        self.orders += 1;
        let order = OrderId::parse(&format!("order-{}", self.orders)).unwrap();
        let now = self.now;
        let mut moment = self.account.at(&self.catalog, now, &mut self.history);
        let use_of = |feature: usize, quantity: u32, premium: bool, ttl_seconds| Use {
            feature: FEATURES[feature].to_owned(),
            quantity: (quantity > 0).then_some(quantity),
            tier: premium.then_some(Tier::Premium),
            ttl_seconds,
            reference: None,
        };
        let outcome = match step {
            Step::Advance { .. } => Ok(()),
            Step::SetTimeZone { zone } => {
                moment.set_time_zone(parse_time_zone(ZONES[*zone]).unwrap());
                Ok(())
            }
            Step::StartTrial => moment.start_trial("pro"),
            Step::Activate { days } => {
                moment.activate("pro", now.checked_add((days * 24).hours()).unwrap())
            }
            Step::Cancel => moment.cancel(),
            Step::DailyLogin => moment.daily_login().map(drop),
            Step::Grant {
                kind,
                amount,
                valid_hours,
                compensation,
            } => moment
                .grant(Grant {
                    kind: *kind,
                    amount: Amount::new(*amount).unwrap(),
                    source: if *compensation {
                        GrantSource::Compensation
                    } else {
                        GrantSource::Promotion
                    },
                    expiry: valid_hours.map_or(Expiry::Never, |h| Expiry::ValidFor(h.hours())),
                    campaign: None,
                    note: None,
                })
                .map(drop),
            Step::Purchase {
                credits,
                paid_hours_ago,
            } => moment
                .purchase(Purchase {
                    order_id: order,
                    credits: PurchaseCredits::Credits(Amount::new(*credits).unwrap()),
                    paid_at: Some(now.checked_sub(paid_hours_ago.hours()).unwrap()),
                    paid: None,
                })
                .map(drop),
            Step::Hold {
                feature,
                quantity,
                premium,
                ttl_seconds,
            } => moment
                .place_hold(&use_of(*feature, *quantity, *premium, Some(*ttl_seconds)))
                .map(drop),
            Step::Capture { pick: i, quantity } => {
                moment.capture(pick(*i), Some(*quantity)).map(drop)
            }
            Step::Release { pick: i } => moment.release(pick(*i)).map(drop),
            Step::Charge {
                feature,
                quantity,
                premium,
            } => moment
                .charge(&use_of(*feature, *quantity, *premium, None))
                .map(drop),
            Step::Adjust { amount, kind } => moment
                .adjust(Adjustment {
                    amount: *amount,
                    kind: *kind,
                    reason: "simulated".into(),
                })
                .map(drop),
        };
        outcome.err()
    }

    /// Catches up part of the way to the next step, as a background job might have.
    fn peek(&mut self, step: &Step) {
        if let Step::Advance {
            seconds,
            peek_percent,
        } = step
        {
            let at = self
                .now
                .checked_add((seconds * peek_percent / 100).seconds())
                .unwrap();
            self.account.at(&self.catalog, at, &mut self.history);
        }
    }

    /// Every invariant that must hold between any two steps.
    fn check(&self) -> Result<(), TestCaseError> {
        let balance = self.account.balance();
        let entries = &self.history.entries;

        // The store saves the state as JSON and reads it back: nothing may be lost.
        let saved = serde_json::to_string(&self.account).unwrap();
        let restored: Account = serde_json::from_str(&saved).unwrap();
        prop_assert_eq!(&restored, &self.account, "state changed through JSON");

        // Entries are dated in the order they are recorded: the store reads a ledger
        // window as a range of entry numbers.
        prop_assert!(
            entries.windows(2).all(|pair| pair[0].at <= pair[1].at),
            "entries dated out of order"
        );

        // SPEC §5: ledger sum = general available + general frozen + agent available.
        let sum: i64 = entries.iter().map(|e| e.amount).sum();
        let expected = balance.general.available + balance.general.frozen + balance.agent.available;
        prop_assert_eq!(
            sum,
            i64::try_from(expected).unwrap(),
            "ledger sum vs balance"
        );

        // 0 ≤ remaining ≤ granted for every live bucket, and each bucket's entries sum to
        // what is left in it (0 for buckets no longer live).
        let mut per_bucket: BTreeMap<_, i64> = BTreeMap::new();
        for e in entries {
            *per_bucket.entry(e.bucket_id).or_default() += e.amount;
        }
        for bucket in self.account.buckets() {
            prop_assert!(
                bucket.remaining() <= bucket.granted(),
                "remaining > granted: {:?}",
                bucket
            );
            let sum = per_bucket.remove(&bucket.id()).unwrap_or(0);
            prop_assert_eq!(
                sum,
                i64::try_from(bucket.remaining()).unwrap(),
                "entries of {}",
                bucket.id()
            );
        }
        for (id, sum) in per_bucket {
            prop_assert_eq!(sum, 0, "entries of gone bucket {}", id);
        }

        // held = sum of pending holds, counted from their debit entries.
        let mut held = [0_i64; 2];
        for hold in self.account.pending_holds() {
            prop_assert_eq!(hold.status(), HoldStatus::Pending);
            for e in entries.iter().filter(|e| e.hold_id == Some(hold.id())) {
                prop_assert_eq!(
                    e.entry_type,
                    EntryType::Debit,
                    "a pending hold has only debits"
                );
                held[usize::from(e.kind == CreditKind::General)] -= e.amount;
            }
        }
        prop_assert_eq!(
            held[1],
            i64::try_from(balance.general.held).unwrap(),
            "general held"
        );
        prop_assert_eq!(
            held[0],
            i64::try_from(balance.agent.held).unwrap(),
            "agent held"
        );

        // A settled hold charged plus returned exactly what it reserved.
        for hold in &self.history.settled_holds {
            let s = hold.settlement().unwrap();
            prop_assert_eq!(s.captured_amount + s.refunded_amount, hold.amount());
            let refunded: i64 = entries
                .iter()
                .filter(|e| e.hold_id == Some(hold.id()) && e.entry_type == EntryType::Refund)
                .map(|e| e.amount)
                .sum();
            prop_assert_eq!(
                refunded,
                i64::try_from(s.refunded_amount).unwrap(),
                "refunds of {}",
                hold.id()
            );
        }

        // Each distribution of a schedule at most once.
        let mut seen = HashSet::new();
        for d in &self.history.distributions {
            prop_assert!(
                seen.insert((d.schedule, d.index)),
                "distribution {:?} twice",
                d
            );
        }

        // Membership status and frozen credits agree.
        if self.account.membership().is_member() {
            prop_assert_eq!(balance.general.frozen, 0);
        }
        Ok(())
    }
}

/// SPEC §4's order written out naively: the eligible buckets of `before`, sorted by
/// (agent first for agent tasks, earliest expiry with never last, oldest grant, id),
/// filled greedily. `Err(available)` when they hold less than `amount`.
fn naive_allocation(
    before: &Account,
    agent_task: bool,
    amount: u64,
) -> Result<Vec<(BucketId, u64)>, u64> {
    let member = before.membership().is_member();
    let mut eligible: Vec<&Bucket> = before
        .buckets()
        .iter()
        .filter(|b| b.remaining() > 0)
        .filter(|b| member || !matches!(b.source(), Source::Subscription | Source::Purchase))
        .filter(|b| agent_task || b.kind() == CreditKind::General)
        .collect();
    eligible.sort_by_key(|b| {
        let kind_rank = u8::from(!(agent_task && b.kind() == CreditKind::Agent));
        let expiry = b.expires_at().map_or((1, Timestamp::MAX), |at| (0, at));
        (kind_rank, expiry, b.granted_at(), b.id())
    });
    let available: u64 = eligible.iter().map(|b| b.remaining()).sum();
    if available < amount {
        return Err(available);
    }
    let mut left = amount;
    let mut taken = Vec::new();
    for b in eligible {
        if left == 0 {
            break;
        }
        let take = left.min(b.remaining());
        taken.push((b.id(), take));
        left -= take;
    }
    Ok(taken)
}

/// Checks a hold or charge step against [`naive_allocation`].
fn check_allocation(
    before: &Account,
    world: &World,
    step: &Step,
    refusal: Option<&Refusal>,
) -> Result<(), TestCaseError> {
    let feature = match step {
        Step::Hold { feature, .. } | Step::Charge { feature, .. } => FEATURES[*feature],
        _ => return Ok(()),
    };
    let agent_task = feature.starts_with("agent.");
    let hold = match step {
        Step::Hold { .. } => world.account.pending_holds().last(),
        _ => world.history.settled_holds.last(),
    };
    match (refusal, hold) {
        (None, Some(hold)) => {
            let expected = naive_allocation(before, agent_task, hold.amount());
            let actual: Vec<(BucketId, u64)> = hold
                .allocations()
                .iter()
                .map(|a| (a.bucket_id, a.amount))
                .collect();
            prop_assert_eq!(Ok(actual), expected, "allocation of {:?}", step);
        }
        (
            Some(Refusal::InsufficientCredits {
                required,
                available,
            }),
            _,
        ) => {
            let expected = naive_allocation(before, agent_task, *required).map(|_| ());
            prop_assert_eq!(Err(*available), expected, "refusal of {:?}", step);
        }
        _ => {}
    }
    Ok(())
}

/// Histories per run: 400 by default (a few seconds in CI); `PROPTEST_CASES=20000` for a
/// deep run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(400)
}

fn start() -> impl Strategy<Value = Timestamp> {
    // Around month ends and a year's DST changes.
    (0_i64..=400 * 86_400).prop_map(|offset| {
        let base: Timestamp = "2026-01-30T22:00:00Z".parse().unwrap();
        base.checked_add(offset.seconds()).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_invariant_and_replay_identically(
        start in start(),
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        let mut world = World::new(start);
        for (i, step) in steps.iter().enumerate() {
            world.account.at(&world.catalog, world.now, &mut world.history);
            let before = (world.account.clone(), world.history.clone());
            let refusal = world.apply(step);
            check_allocation(&before.0, &world, step, refusal.as_ref())?;
            if let Some(refusal) = refusal {
                prop_assert_eq!(
                    (&world.account, &world.history),
                    (&before.0, &before.1),
                    "step {} ({:?}) was refused ({}) but changed something", i, step, refusal
                );
            }
            world.check().map_err(|e| TestCaseError::fail(format!("after step {i} {step:?}: {e}")))?;
        }
        let mut replay = World::new(start);
        for step in &steps {
            replay.apply(step);
        }
        prop_assert_eq!(&replay.account, &world.account, "replay state differs");
        prop_assert_eq!(&replay.history, &world.history, "replay history differs");

        // SPEC §2: every read and write sees the state as of now, whether or not a
        // background job ran in between: catching up part-way changes nothing.
        let mut peeking = World::new(start);
        for step in &steps {
            peeking.peek(step);
            peeking.apply(step);
        }
        prop_assert_eq!(&peeking.account, &world.account, "state differs with background catch-ups");
        prop_assert_eq!(&peeking.history, &world.history, "history differs with background catch-ups");

        // Whatever state and history the rules reach reads back equal from both
        // spellings the store keeps: binary (format 3) and JSON (format 1).
        reads_back_equal(&world.account)?;
        reads_back_equal(&world.history.entries)?;
        reads_back_equal(&world.history.settled_holds)?;
    }
}

/// `value` read back from postcard and from JSON is `value`.
fn reads_back_equal<T>(value: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let binary = postcard::to_stdvec(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let from_binary: T =
        postcard::from_bytes(&binary).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&from_binary, value, "differs read back from postcard");
    let json = serde_json::to_vec(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let from_json: T =
        serde_json::from_slice(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&from_json, value, "differs read back from JSON");
    Ok(())
}
