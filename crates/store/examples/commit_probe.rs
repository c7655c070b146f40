#![allow(missing_docs, clippy::unwrap_used, clippy::arithmetic_side_effects)]
use creditd_ledger::*;
use creditd_store::*;
use jiff::{Timestamp, tz::TimeZone};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = creditd_store::open(&url).await.unwrap();
    let catalog = Catalog::default();
    let now: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
    let n_accounts = 10_000;
    let mut accounts: Vec<StoredAccount> = Vec::new();
    let mut changes = Changes::default();
    for i in 0..n_accounts {
        let mut a = Account::open(AccountId::parse(&format!("load-abcdef12-{i}")).unwrap(), TimeZone::UTC, now);
        let mut j = Journal::default();
        let mut m = a.at(&catalog, now, &mut j);
        m.grant(Grant { kind: CreditKind::General, amount: Amount::new(1_000_000_000).unwrap(), source: GrantSource::Promotion, expiry: Expiry::Never, campaign: None, note: None }).unwrap();
        drop(m);
        for (k, e) in j.entries.iter().enumerate() { changes.entries.push((a.id().clone(), StoredEntry { seq: k as u64 + 1, entry: e.clone() })); }
        accounts.push(StoredAccount { account: a.clone(), entry_seq: j.entries.len() as u64 });
        changes.accounts.push(StoredAccount { account: a, entry_seq: j.entries.len() as u64 });
    }
    store.begin().await.unwrap().commit(&changes).await.unwrap();
    let batch: usize = std::env::var("BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(40);
    let rounds = 8000 / batch;
    let mut t_lock = 0.0; let mut t_commit = 0.0; let mut t_idem = 0.0;
    let started = Instant::now();
    let mut later = now;
    for r in 0..rounds {
        later = later + jiff::SignedDuration::from_millis(1);
        let ids: Vec<AccountId> = (0..batch).map(|k| accounts[(r * 7919 + k * 104729) % n_accounts].account.id().clone()).collect();
        let t0 = Instant::now();
        let mut tx = store.begin().await.unwrap();
        let loaded = tx.lock_accounts(&ids).await.unwrap();
        t_lock += t0.elapsed().as_secs_f64();
        let keys: Vec<IdempotencyKey> = ids.iter().map(|i| IdempotencyKey { owner: "k".into(), key: format!("{i}-{r}") }).collect();
        let t1 = Instant::now();
        tx.idempotency_records(&keys).await.unwrap();
        t_idem += t1.elapsed().as_secs_f64();
        let mut changes = Changes::default();
        for (s, key) in loaded.into_iter().zip(&keys) {
            let mut a = s.account; let mut j = Journal::default();
            let mut m = a.at(&catalog, later, &mut j);
            m.charge(&Use { feature: "ai_extender".into(), ..Use::default() }).unwrap();
            drop(m);
            let id = a.id().clone();
            for (k, e) in j.entries.iter().enumerate() { changes.entries.push((id.clone(), StoredEntry { seq: s.entry_seq + k as u64 + 1, entry: e.clone() })); }
            for h in &j.settled_holds { changes.settled_holds.push((id.clone(), h.clone())); }
            changes.idempotency.push(IdempotencyRecord { key: key.clone(), fingerprint: "ab".repeat(32), status: 201, body: "{\"id\":\"h1\",\"amount\":1,\"allocations\":[{\"bucket_id\":\"b1\"}]}".repeat(6), created_at: later });
            changes.accounts.push(StoredAccount { account: a, entry_seq: s.entry_seq + j.entries.len() as u64 });
        }
        if std::env::var("NO_IDEM").is_ok() { changes.idempotency.clear(); }
        if std::env::var("NO_HOLDS").is_ok() { changes.settled_holds.clear(); }
        if std::env::var("NO_ENTRIES").is_ok() { changes.entries.clear(); }
        if std::env::var("NO_ACCOUNTS").is_ok() { changes.accounts.clear(); }
        let t2 = Instant::now();
        tx.commit(&changes).await.unwrap();
        t_commit += t2.elapsed().as_secs_f64();
    }
    let total = started.elapsed().as_secs_f64();
    let per = |t: f64| t / rounds as f64 * 1000.0;
    println!("batch {batch}: lock {:.2} ms, idem {:.2} ms, commit {:.2} ms per batch; {:.0} commands/s", per(t_lock), per(t_idem), per(t_commit), (batch * rounds) as f64 / total);
    let wal = std::fs::metadata(dir.path().join("p.db-wal")).map(|m| m.len()).unwrap_or(0);
    println!("wal now {} KB", wal / 1024);
}
