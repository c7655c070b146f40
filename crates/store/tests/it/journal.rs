//! The SQLite store's journal (`src/sqlite/journal.rs`): batches committed as journal
//! rows and folded into the tables later must read back the same at every moment, after
//! a crash, and when another process writes the same file.

use creditd_ledger::{
    Account, Amount, Catalog, CreditKind, Expiry, Grant, GrantSource, HoldId, Journal, LedgerQuery,
};
use creditd_store::{Changes, IdempotencyKey, IdempotencyRecord};
use jiff::ToSpan;
use sqlx::{Connection, SqliteConnection};

use crate::conformance::{Db, account_with_history, changes_for, commit, id, t};

struct File {
    _dir: tempfile::TempDir,
    url: String,
}

fn file() -> File {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    File { _dir: dir, url }
}

async fn open(file: &File) -> Db {
    creditd_store::open(&file.url).await.unwrap()
}

/// A store that folds once 4,096 rows are unfolded, not tens of thousands.
async fn open_folding_early(file: &File) -> Db {
    Box::new(
        creditd_store::SqliteStore::open_folding_at(&file.url, 4_096)
            .await
            .unwrap(),
    )
}

/// Rows in a table, read on a connection of its own.
async fn rows(file: &File, table: &str) -> i64 {
    let mut connection = SqliteConnection::connect(&file.url).await.unwrap();
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut connection)
        .await
        .unwrap()
}

/// Rows in the tables the journal is folded into.
async fn tables(file: &File) -> i64 {
    rows(file, "accounts").await
        + rows(file, "history").await
        + rows(file, "idempotency_keys").await
}

fn key(n: usize) -> IdempotencyKey {
    IdempotencyKey {
        owner: "k1".into(),
        key: format!("key-{n}"),
    }
}

/// `accounts` accounts named `user-{first}`… with a history each (5 rows: state, three
/// entries, a hold) and an idempotency record each: one batch.
fn batch(first: usize, accounts: usize) -> (Vec<Account>, Changes) {
    let now = t("2026-11-21T10:00:00Z");
    let mut all = Changes::default();
    let mut made = Vec::new();
    for n in first..first + accounts {
        let (account, changes) = account_with_history(&format!("user-{n}"), now);
        all.accounts.extend(changes.accounts);
        all.entries.extend(changes.entries);
        all.settled_holds.extend(changes.settled_holds);
        all.idempotency.push(IdempotencyRecord {
            key: key(n),
            account: Some(account.id().clone()),
            fingerprint: format!("{n:064}"),
            status: 201,
            body: format!(r#"{{"n":{n}}}"#),
            created_at: now,
        });
        made.push(account);
    }
    (made, all)
}

/// Every account reads back as made, with its three entries and its settled hold, and
/// every idempotency record is found.
async fn assert_reads(db: &Db, accounts: &[Account]) {
    let page = LedgerQuery::new(None, None, None, None).unwrap();
    for account in accounts {
        let stored = db.account(account.id()).await.unwrap().unwrap();
        assert_eq!(&stored.account, account);
        let seqs: Vec<u64> = db
            .ledger_page(account.id(), &page, None)
            .await
            .unwrap()
            .iter()
            .map(|row| row.seq)
            .collect();
        assert_eq!(seqs, [3, 2, 1], "{}", account.id());
        assert!(
            db.settled_hold(account.id(), HoldId::new(1))
                .await
                .unwrap()
                .is_some()
        );
    }
    let keys: Vec<IdempotencyKey> = (0..accounts.len()).map(key).collect();
    let mut tx = db.begin().await.unwrap();
    let found = tx.read(&[], &keys, &[]).await.unwrap().idempotency;
    assert_eq!(found.len(), keys.len());
    tx.commit(&Changes::default()).await.unwrap();
}

#[tokio::test]
async fn batches_committed_before_a_crash_are_folded_when_the_database_is_opened() {
    let file = file();
    let db = open(&file).await;
    let (accounts, changes) = batch(0, 50);
    commit(&db, &changes).await.unwrap();
    assert_eq!(rows(&file, "journal").await, 1);
    assert_eq!(rows(&file, "accounts").await, 0, "not folded yet");
    assert_reads(&db, &accounts).await;
    // No close: as after a crash.
    drop(db);

    let db = open(&file).await;
    assert_eq!(rows(&file, "journal").await, 0);
    assert_eq!(rows(&file, "accounts").await, 50);
    assert_eq!(rows(&file, "history").await, 50 * 4);
    assert_reads(&db, &accounts).await;
}

#[tokio::test]
async fn reads_stay_right_while_a_sweep_folds_cut_after_cut() {
    let file = file();
    let db = open_folding_early(&file).await;
    // 6 rows an account, 1,000 accounts: over the 4,096 rows this store folds at, so
    // each write transaction first folds a cut. New batches keep arriving, as under
    // load, until a sweep through accounts and keys is done and the journal rows it
    // began with are deleted.
    let mut accounts = Vec::new();
    for first in (0..1_000).step_by(250) {
        let (made, changes) = batch(first, 250);
        commit(&db, &changes).await.unwrap();
        accounts.extend(made);
    }
    let mut folded = vec![tables(&file).await];
    let mut journal = rows(&file, "journal").await;
    while rows(&file, "journal").await >= journal {
        assert!(folded.len() < 60, "the sweep never ended: {folded:?}");
        journal = rows(&file, "journal").await;
        let (made, changes) = batch(accounts.len(), 125);
        commit(&db, &changes).await.unwrap();
        accounts.extend(made);
        folded.push(tables(&file).await);
        assert_reads(&db, &accounts[..50]).await;
    }
    // A transaction folds a cut while 4,096 rows or more are unfolded.
    assert!(
        folded.len() > 2
            && folded.windows(2).all(|pair| pair[0] <= pair[1])
            && folded[0] < folded[folded.len() - 1],
        "{folded:?}"
    );
    assert!(rows(&file, "idempotency_keys").await > 0);
    assert_reads(&db, &accounts).await;
    db.close().await;
    assert_eq!(rows(&file, "journal").await, 0);
    let made = i64::try_from(accounts.len()).unwrap();
    assert_eq!(rows(&file, "accounts").await, made);
    assert_eq!(rows(&file, "history").await, made * 4);
    assert_eq!(rows(&file, "idempotency_keys").await, made);
    let db = open_folding_early(&file).await;
    assert_reads(&db, &accounts).await;
}

#[tokio::test]
async fn a_write_by_another_process_is_what_the_next_transaction_reads() {
    let file = file();
    let now = t("2026-11-21T10:00:00Z");
    let server = open(&file).await;
    let (_, changes) = account_with_history("user-1", now);
    commit(&server, &changes).await.unwrap();

    // An admin command: opens the file (folding the journal), reads and grants.
    let admin = open(&file).await;
    let mut tx = admin.begin().await.unwrap();
    let stored = tx.read(&[id("user-1")], &[], &[]).await.unwrap().accounts;
    let mut account = stored[0].account.clone();
    assert_eq!(stored[0].entry_seq, 3);
    let mut journal = Journal::default();
    account
        .at(&Catalog::default(), now + 1.minute(), &mut journal)
        .grant(Grant {
            kind: CreditKind::General,
            amount: Amount::new(5).unwrap(),
            source: GrantSource::Compensation,
            expiry: Expiry::Never,
            campaign: None,
            note: None,
        })
        .unwrap();
    let granted = changes_for(&account, 3, &journal);
    tx.commit(&granted).await.unwrap();
    admin.close().await;

    // The server kept user-1 in memory as it wrote it. Its reads show the grant at once,
    // its next transaction reads it, and a change numbered from the state it kept is
    // refused.
    let read = server.account(&id("user-1")).await.unwrap().unwrap();
    assert_eq!((read.account, read.entry_seq), (account.clone(), 4));
    let mut tx = server.begin().await.unwrap();
    let stored = tx.read(&[id("user-1")], &[], &[]).await.unwrap().accounts;
    assert_eq!(stored[0].account, account);
    assert_eq!(stored[0].entry_seq, 4);
    assert!(tx.commit(&granted).await.is_err());
    assert_eq!(
        server
            .account(&id("user-1"))
            .await
            .unwrap()
            .unwrap()
            .account,
        account
    );
    // Once the server has written again, what it keeps is trusted again: a state only
    // in its memory reads back.
    let (fresh, changes) = account_with_history("user-2", now);
    commit(&server, &changes).await.unwrap();
    assert_eq!(rows(&file, "accounts").await, 1, "user-2 is unfolded");
    assert_eq!(
        server
            .account(&id("user-2"))
            .await
            .unwrap()
            .unwrap()
            .account,
        fresh
    );
}
