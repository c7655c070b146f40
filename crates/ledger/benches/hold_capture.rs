//! Benchmarks of the ledger core's hot path: a hold placed and captured (the life of
//! one generation), and the balance view, on accounts with 1, 10 and 100 live buckets.
//!
//! Run: `cargo bench -p creditd-ledger --bench hold_capture`. Figures go to
//! docs/BENCHMARKS.md with the machine they ran on.

#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::hint::black_box;

use creditd_ledger::{
    Account, AccountId, Amount, Catalog, CreditKind, Expiry, Grant, GrantSource, History, Use,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const BUCKET_COUNTS: [usize; 3] = [1, 10, 100];

/// An account with `buckets` general buckets of a billion credits, each ending on a
/// different day, so consumption order has work to do and credits never run out.
fn account_with(catalog: &Catalog, buckets: usize, now: Timestamp) -> Account {
    let mut account = Account::open(AccountId::parse("bench").unwrap(), TimeZone::UTC, now);
    let mut history = History::default();
    let mut moment = account.at(catalog, now, &mut history);
    for day in 0..buckets {
        let hours = (i64::try_from(day).unwrap() + 30) * 24;
        moment
            .grant(Grant {
                kind: CreditKind::General,
                amount: Amount::new(1_000_000_000).unwrap(),
                source: GrantSource::Promotion,
                expiry: Expiry::At(now.checked_add(hours.hours()).unwrap()),
                campaign: None,
                note: None,
            })
            .unwrap();
    }
    drop(moment);
    account
}

/// Runs `op` once per iteration on an account with each of [`BUCKET_COUNTS`] buckets,
/// with a history cleared before each run (as the store would take it each time).
fn per_bucket_count(
    c: &mut Criterion,
    group: &str,
    op: impl Fn(&mut Account, &Catalog, Timestamp, &mut History),
) {
    let catalog = Catalog::default();
    let now: Timestamp = "2026-11-21T00:00:00Z".parse().unwrap();
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    for buckets in BUCKET_COUNTS {
        let mut account = account_with(&catalog, buckets, now);
        let mut history = History::default();
        group.bench_with_input(BenchmarkId::from_parameter(buckets), &buckets, |b, _| {
            b.iter(|| {
                history.clear();
                op(&mut account, &catalog, now, &mut history);
            });
        });
    }
    group.finish();
}

fn place_and_capture(c: &mut Criterion) {
    let intended = Use {
        feature: "agent.image_generation".into(),
        quantity: Some(4),
        ..Use::default()
    };
    per_bucket_count(c, "place_and_capture", |account, catalog, now, history| {
        let mut moment = account.at(catalog, now, history);
        let hold = moment.place_hold(black_box(&intended)).unwrap();
        black_box(moment.capture(hold.id(), Some(3)).unwrap());
    });
}

fn balance(c: &mut Criterion) {
    per_bucket_count(c, "balance", |account, catalog, now, history| {
        let moment = account.at(catalog, now, history);
        black_box(moment.account().balance());
    });
}

criterion_group!(benches, place_and_capture, balance);
criterion_main!(benches);
