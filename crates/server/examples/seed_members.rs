//! Seeds a database with paying members whose monthly distribution falls due at one
//! instant, for the distribution benchmark (`scripts/bench-distribution.sh`).
//!
//!     cargo run --release -p creditd-server --example seed_members -- URL COUNT ANCHOR
//!
//! Opens the store at URL and activates COUNT accounts (`m0`, `m1`, …) at the instant
//! ANCHOR (RFC 3339) on a test clock, each until ANCHOR + 40 days, through the same
//! writer and commands as the API (group commits of 1,024). Distribution 1 of every one
//! of them then falls due at ANCHOR + 1 month.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::sync::Arc;
use std::time::Instant;

use creditd_ledger::{AccountCommand, AccountId, Catalog};
use creditd_server::clock::Clock;
use creditd_server::command::{Command, Submission};
use creditd_server::idempotency::Reply;
use creditd_server::{CommitMode, Core, Service};
use jiff::{SignedDuration, Timestamp};

/// Activations in flight at once: a few group commits' worth.
const IN_FLIGHT: usize = 4_096;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, count, anchor] = &args[..] else {
        eprintln!("usage: seed_members URL COUNT ANCHOR");
        std::process::exit(2);
    };
    let count: usize = count.parse().unwrap();
    let anchor: Timestamp = anchor.parse().unwrap();
    let store = creditd_store::open(url).await.unwrap();
    let clock = Clock::Test(std::sync::Mutex::new(anchor));
    let (core, _) = Core::open(
        store.into(),
        Catalog::default(),
        clock,
        Some("seed-admin-key"),
    )
    .await
    .unwrap();
    let service = Service::start(core, CommitMode::Group);
    let writer = service.writer.clone();
    let period_end = anchor + SignedDuration::from_hours(24 * 40);
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let permit = Arc::clone(&semaphore).acquire_owned().await.unwrap();
        let writer = writer.clone();
        tasks.spawn(async move {
            let command = AccountCommand::Activate {
                plan: None,
                period_end,
            };
            let id = AccountId::parse(&format!("m{n}")).unwrap();
            let reply = writer
                .submit(Submission {
                    command: Command::Account(id, command),
                    idempotency: None,
                    background: false,
                    actor: None,
                })
                .await;
            assert!(matches!(reply, Reply::Done(Ok(_))), "activation refused");
            drop(permit);
        });
        if n % 100_000 == 99_999 {
            eprintln!(
                "{} members, {:.0} s",
                n + 1,
                started.elapsed().as_secs_f64()
            );
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    drop(writer);
    eprintln!(
        "{count} members activated at {anchor} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    service.stop().await;
}
