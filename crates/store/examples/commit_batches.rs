//! The store alone, without HTTP: how fast it commits group-commit batches of charges.
//!
//!     cargo run --release -p creditd-store --example commit_batches -- [BATCH] [ACCOUNTS]
//!
//! Opens ACCOUNTS accounts (default 10,000) with one large grant each, then commits 8,000
//! charges in batches of BATCH (default 40), each on a different random account, with
//! an idempotency record per charge — what the server writes for the load generator's
//! charges. Prints the time per batch of each phase, the charges per second, and the
//! bytes written to the database files per charge.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::time::Instant;

use creditd_ledger::{
    Account, AccountId, Amount, Catalog, CreditKind, Expiry, Grant, GrantSource, History, Use,
};
use creditd_store::{Changes, IdempotencyKey, IdempotencyRecord, StoredAccount};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};

/// Charges committed in all.
const CHARGES: usize = 8_000;

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let batch = args.next().unwrap_or(40).max(1);
    let accounts = args.next().unwrap_or(10_000).max(1);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = creditd_store::open(&url).await.unwrap();
    let catalog = Catalog::default();
    let mut now: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();

    let mut ids = Vec::with_capacity(accounts);
    let mut setup = Changes::default();
    for n in 0..accounts {
        let id = AccountId::parse(&format!("load-0123abcd-{n}")).unwrap();
        let mut account = Account::open(id.clone(), TimeZone::UTC, now);
        let mut history = History::default();
        let mut moment = account.at(&catalog, now, &mut history);
        let grant = Grant {
            kind: CreditKind::General,
            amount: Amount::new(1_000_000_000).unwrap(),
            source: GrantSource::Promotion,
            expiry: Expiry::Never,
            campaign: None,
            note: None,
        };
        moment.grant(grant).unwrap();
        drop(moment);
        setup.record(account, 0, history);
        ids.push(id);
    }
    store.begin().await.unwrap().commit(&setup).await.unwrap();

    let written_before = bytes_written();
    let (mut reading, mut running, mut committing) = (0.0, 0.0, 0.0);
    let started = Instant::now();
    for round in 0..CHARGES / batch {
        now += SignedDuration::from_millis(1);
        let picked: Vec<AccountId> = (0..batch)
            .map(|k| ids[(round * 7_919 + k * 104_729) % accounts].clone())
            .collect();
        let keys: Vec<IdempotencyKey> = picked
            .iter()
            .enumerate()
            .map(|(k, id)| IdempotencyKey {
                owner: "bench".into(),
                key: format!("{id}-{round}-{k}"),
            })
            .collect();
        let t = Instant::now();
        let mut tx = store.begin().await.unwrap();
        let loaded = tx.read(&picked, &keys, &[]).await.unwrap().accounts;
        reading += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut changes = Changes::default();
        // An account picked twice in a batch takes both charges, in order (as the writer).
        let mut slots: HashMap<AccountId, (StoredAccount, History)> = loaded
            .into_iter()
            .map(|stored| (stored.account.id().clone(), (stored, History::default())))
            .collect();
        for (id, key) in picked.iter().zip(keys) {
            let (stored, history) = slots.get_mut(id).unwrap();
            let mut moment = stored.account.at(&catalog, now, history);
            let hold = moment
                .charge(&Use {
                    feature: "ai_extender".into(),
                    ..Use::default()
                })
                .unwrap();
            drop(moment);
            let body = format!(
                r#"{{"id":"{}","status":"captured","amount":{}}}"#,
                hold.id(),
                hold.amount()
            );
            changes.idempotency.push(IdempotencyRecord {
                key,
                account: Some(id.clone()),
                fingerprint: "0".repeat(64),
                status: 201,
                body: body.repeat(8),
                created_at: now,
            });
        }
        for (stored, history) in slots.into_values() {
            changes.record(stored.account, stored.entry_seq, history);
        }
        running += t.elapsed().as_secs_f64();

        let t = Instant::now();
        tx.commit(&changes).await.unwrap();
        committing += t.elapsed().as_secs_f64();
    }
    let written = bytes_written()
        .zip(written_before)
        .map(|(after, before)| after - before);
    let rounds = (CHARGES / batch) as f64;
    let ms = |seconds: f64| seconds / rounds * 1_000.0;
    println!(
        "{accounts} accounts, batches of {batch}: read {:.2} ms, run {:.2} ms, commit {:.2} ms per batch; {:.0} charges/s",
        ms(reading),
        ms(running),
        ms(committing),
        (CHARGES / batch * batch) as f64 / started.elapsed().as_secs_f64()
    );
    if let Some(bytes) = written {
        println!(
            "  written to files: {} bytes per charge (WAL and checkpoints)",
            bytes / CHARGES as u64
        );
    }
}

/// Bytes this process has written so far (Linux: `wchar` of /proc/self/io).
fn bytes_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let line = io.lines().find(|line| line.starts_with("wchar:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
