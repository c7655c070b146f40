//! The SQLite store's backlog (`src/sqlite/backlog.rs`): batches committed as backlog
//! rows and folded into the tables later must read back the same at every moment and
//! after a crash; and one store at a time has the file open.

use creditd_store::StoreError;
use sqlx::{Connection, SqliteConnection};

use crate::conformance::{Db, assert_reads, batch, commit, granted, history_in, id, stored_in};
use crate::events::{event_data, events_of_a};
use creditd_store::Changes;

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
        creditd_store::SqliteStore::open_folding_at(&file.url, true, 4_096)
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

/// Rows in the tables the backlog is folded into.
async fn tables(file: &File) -> i64 {
    rows(file, "accounts").await
        + rows(file, "history").await
        + rows(file, "idempotency_keys").await
}

#[tokio::test]
async fn batches_committed_before_a_crash_are_folded_when_the_database_is_opened() {
    let file = file();
    let db = open(&file).await;
    let (accounts, changes) = batch(0, 50);
    commit(&db, &changes).await.unwrap();
    assert_eq!(rows(&file, "backlog").await, 1);
    assert_eq!(rows(&file, "accounts").await, 0, "not folded yet");
    assert_reads(&db, &accounts).await;
    // No close: as after a crash.
    drop(db);

    let db = open(&file).await;
    assert_eq!(rows(&file, "backlog").await, 0);
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
    // load, until a sweep through accounts and keys is done and the backlog rows it
    // began with are deleted.
    let mut accounts = Vec::new();
    for first in (0..1_000).step_by(250) {
        let (made, changes) = batch(first, 250);
        commit(&db, &changes).await.unwrap();
        accounts.extend(made);
    }
    let mut folded = vec![tables(&file).await];
    let mut backlog = rows(&file, "backlog").await;
    while rows(&file, "backlog").await >= backlog {
        assert!(folded.len() < 60, "the sweep never ended: {folded:?}");
        backlog = rows(&file, "backlog").await;
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
    assert_eq!(rows(&file, "backlog").await, 0);
    let made = i64::try_from(accounts.len()).unwrap();
    assert_eq!(rows(&file, "accounts").await, made);
    assert_eq!(rows(&file, "history").await, made * 4);
    assert_eq!(rows(&file, "idempotency_keys").await, made);
    let db = open_folding_early(&file).await;
    assert_reads(&db, &accounts).await;
}

/// Grants on accounts already stored, each batch handed over while the one before it
/// commits, as the server's writer does: every read sees the newest state (the batch on
/// its way, the unfolded changes, the tables), while cuts fold states that the batch on
/// its way changes again.
#[tokio::test]
async fn batches_built_on_batches_still_committing_read_and_fold_the_newest() {
    let file = file();
    let db: Db = Box::new(
        creditd_store::SqliteStore::open_folding_at(&file.url, true, 512)
            .await
            .unwrap(),
    );
    let (made, changes) = batch(0, 300);
    commit(&db, &changes).await.unwrap();
    let mut model: std::collections::HashMap<_, _> = made
        .into_iter()
        .map(|account| (account.id().clone(), (account, 3_u64)))
        .collect();
    let mut on_its_way = None;
    for round in 0..80_usize {
        let mut ids: Vec<_> = (0..40)
            .map(|i| id(&format!("user-{}", (round * 37 + i * 7) % 300)))
            .collect();
        ids.sort();
        ids.dedup();
        let mut tx = db.begin().await.unwrap();
        let read = tx.read(&ids, &[], &[]).await.unwrap();
        assert_eq!(read.accounts.len(), ids.len());
        let mut changes = Changes::default();
        for stored in read.accounts {
            let (account, seq) = model.get_mut(stored.account.id()).unwrap();
            assert_eq!((&stored.account, stored.entry_seq), (&*account, *seq));
            let grant = granted(account, *seq, 1);
            *seq += 1;
            changes.accounts.extend(grant.accounts);
            changes.entries.extend(grant.entries);
        }
        let durable = tx.hand_off(&changes).await.unwrap();
        if let Some(previous) = on_its_way.replace(durable) {
            previous.await.unwrap();
        }
    }
    on_its_way.unwrap().await.unwrap();
    assert!(rows(&file, "accounts").await > 0, "cuts were folded");
    for (id, (account, seq)) in &model {
        let stored = db.account(id).await.unwrap().unwrap();
        assert_eq!((&stored.account, stored.entry_seq), (account, *seq));
    }
    db.close().await;
    let db = open(&file).await;
    for (id, (account, seq)) in &model {
        let stored = db.account(id).await.unwrap().unwrap();
        assert_eq!((&stored.account, stored.entry_seq), (account, *seq));
    }
}

/// A commit that fails fails every batch handed over after it, built on what it would
/// have written; nothing of either stays, and the next transaction reads the database.
#[tokio::test]
async fn a_batch_built_on_a_commit_that_failed_fails_too_and_leaves_nothing() {
    let file = file();
    let db = open(&file).await;
    let (made, changes) = batch(0, 2);
    commit(&db, &changes).await.unwrap();

    // A failure on the writer's thread: a purchase whose order id is recorded already.
    let mut account = made[1].clone();
    let purchase = creditd_store::PurchaseRecord {
        order_id: creditd_ledger::OrderId::parse("order-1").unwrap(),
        account_id: account.id().clone(),
        credits: 1,
        bucket_id: creditd_ledger::BucketId::new(9),
        paid_at: crate::conformance::t("2026-11-21T10:00:00Z"),
        paid_at_requested: None,
        expires_at: crate::conformance::t("2026-11-22T10:00:00Z"),
        paid: None,
        recorded_at: crate::conformance::t("2026-11-21T10:00:00Z"),
    };
    let mut recorded = Changes::default();
    recorded.purchases.push(purchase.clone());
    commit(&db, &recorded).await.unwrap();
    let before = db.account(account.id()).await.unwrap().unwrap();

    // Another connection holds the write lock meanwhile, so that the second batch is
    // surely built before the first is written.
    let mut blocker = SqliteConnection::connect(&file.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let mut first = db.begin().await.unwrap();
    first.read(&[account.id().clone()], &[], &[]).await.unwrap();
    let mut twice = granted(&mut account, 3, 1);
    twice.purchases.push(purchase);
    let first = first.hand_off(&twice).await.unwrap();
    let mut second = db.begin().await.unwrap();
    let read = second
        .read(&[account.id().clone()], &[], &[])
        .await
        .unwrap();
    assert_eq!(read.accounts[0].entry_seq, 4, "built on the first");
    let on_top = granted(&mut account, 4, 1);
    let second = second.hand_off(&on_top).await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    assert!(first.await.is_err());
    assert!(matches!(second.await, Err(StoreError::Aborted)));

    let stored = db.account(account.id()).await.unwrap().unwrap();
    assert_eq!(stored, before);
    let mut third = db.begin().await.unwrap();
    let read = third.read(&[account.id().clone()], &[], &[]).await.unwrap();
    assert_eq!(read.accounts, std::slice::from_ref(&before));
    let mut again = before.account.clone();
    let grant = granted(&mut again, 3, 1);
    third.hand_off(&grant).await.unwrap().await.unwrap();
    let stored = db.account(account.id()).await.unwrap().unwrap();
    assert_eq!((stored.account, stored.entry_seq), (again, 4));
}

/// A batch refused before it is handed over (here: an entry of an account it did not
/// read) fails alone: the batch committing ahead of it commits, and the cut the refused
/// one took goes back to the sweep, so the backlog still reads back whole.
#[tokio::test]
async fn a_batch_refused_before_its_hand_off_leaves_the_one_before_it_committing() {
    let file = file();
    let db: Db = Box::new(
        creditd_store::SqliteStore::open_folding_at(&file.url, true, 64)
            .await
            .unwrap(),
    );
    let (made, changes) = batch(0, 40);
    commit(&db, &changes).await.unwrap();
    let mut blocker = SqliteConnection::connect(&file.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let mut account = made[0].clone();
    let mut first = db.begin().await.unwrap();
    first.read(&[account.id().clone()], &[], &[]).await.unwrap();
    let grant = granted(&mut account, 3, 1);
    let first = first.hand_off(&grant).await.unwrap();
    let mut second = db.begin().await.unwrap();
    second.read(&[], &[], &[]).await.unwrap();
    let mut unread = made[1].clone();
    let refused = second.hand_off(&granted(&mut unread, 3, 1)).await;
    assert!(refused.is_err(), "an account it did not read");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    first.await.unwrap();
    let stored = db.account(account.id()).await.unwrap().unwrap();
    assert_eq!((&stored.account, stored.entry_seq), (&account, 4));
    db.close().await;
    let db = open(&file).await;
    assert_reads(&db, &made[1..]).await;
    let stored = db.account(account.id()).await.unwrap().unwrap();
    assert_eq!((stored.account, stored.entry_seq), (account, 4));
}

#[tokio::test]
async fn one_store_at_a_time_opens_a_database_file() {
    let file = file();
    let server = open(&file).await;
    let second = creditd_store::open(&file.url).await;
    assert!(
        matches!(second, Err(StoreError::InUse(_))),
        "a second writer would not see what the first keeps unfolded"
    );
    // However the path names the file.
    let dir = std::path::Path::new(file.url.trim_start_matches("sqlite://"))
        .parent()
        .unwrap()
        .to_owned();
    let roundabout = format!(
        "sqlite://{}/../{}/test.db",
        dir.display(),
        dir.file_name().unwrap().to_string_lossy()
    );
    assert!(matches!(
        creditd_store::open(&roundabout).await,
        Err(StoreError::InUse(_))
    ));
    server.close().await;
    // Closed, it writes nothing more, so the lock it let go of stays true.
    assert!(matches!(server.begin().await, Err(StoreError::Closed)));
    // Closed, the file opens again, in this process or another.
    let again = open(&file).await;
    again.close().await;
    drop(again);
    // Dropped without closing (as by a crash, where the OS drops the lock), too.
    drop(server);
    let after_a_crash = open(&file).await;
    drop(after_a_crash);
    open(&file).await.close().await;
}

#[tokio::test]
async fn a_missing_database_file_is_created_only_when_asked() {
    let file = file();
    let missing = creditd_store::open_existing(&file.url).await;
    assert!(matches!(missing, Err(StoreError::NoDatabase(_))));
    open(&file).await.close().await;
    creditd_store::open_existing(&file.url)
        .await
        .unwrap()
        .close()
        .await;
}

/// Rewrites the states, entries and holds of `changes` as the versions that wrote
/// `format` left them: format 1 as JSON text, format 2 as postcard blobs.
async fn as_written_in(connection: &mut SqliteConnection, changes: &Changes, format: u8) {
    for stored in &changes.accounts {
        sqlx::query(
            "UPDATE accounts SET state = iif($2 = 1, CAST($1 AS TEXT), $1), format = $2
             WHERE id = $3",
        )
        .bind(stored_in(format, &stored.account))
        .bind(i64::from(format))
        .bind(stored.account.id().as_str())
        .execute(&mut *connection)
        .await
        .unwrap();
    }
    for (id, kind, number, bytes) in history_in(changes, format) {
        sqlx::query(
            "UPDATE history SET data = iif($2 = 1, CAST($1 AS TEXT), $1), format = $2
             WHERE account_id = $3 AND kind = $4 AND number = $5",
        )
        .bind(bytes)
        .bind(i64::from(format))
        .bind(id.as_str())
        .bind(kind)
        .bind(i64::try_from(number).unwrap())
        .execute(&mut *connection)
        .await
        .unwrap();
    }
}

/// The storage class and format of the rows of the core's types, and of answers
/// (format 1 text or their own compressed format 2, `packed.rs`).
async fn formats(connection: &mut SqliteConnection) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT typeof(state), format FROM accounts
         UNION SELECT typeof(data), format FROM history
         UNION SELECT typeof(body), CASE typeof(body) WHEN 'text' THEN 1 ELSE 2 END
         FROM idempotency_keys ORDER BY 2, 1",
    )
    .fetch_all(connection)
    .await
    .unwrap()
}

/// A database whose rows were all written in an earlier `format` (1: JSON text, as every
/// version before format 2 wrote them; 2: postcard with text instants and names, before
/// format 3): this version reads it, folds new rows of its own format beside the old
/// ones, and reads both. Returns the formats of the rows before and after.
async fn reads_back_beside_rows_of_this_version(
    format: u8,
) -> (Vec<(String, i64)>, Vec<(String, i64)>) {
    let file = file();
    let db = open(&file).await;
    let (old, changes) = batch(0, 5);
    commit(&db, &changes).await.unwrap();
    db.close().await;
    let mut connection = SqliteConnection::connect(&file.url).await.unwrap();
    as_written_in(&mut connection, &changes, format).await;
    if format == 1 {
        for record in &changes.idempotency {
            sqlx::query("UPDATE idempotency_keys SET body = ? WHERE label = ?")
                .bind(&record.body)
                .bind(format!("{}\n{}", record.key.owner, record.key.key))
                .execute(&mut connection)
                .await
                .unwrap();
        }
    }
    let before = formats(&mut connection).await;

    let db = open(&file).await;
    assert_reads(&db, &old).await;
    let (new, changes) = batch(5, 5);
    commit(&db, &changes).await.unwrap();
    db.close().await;
    let after = formats(&mut connection).await;
    let db = open(&file).await;
    assert_reads(&db, &[old, new].concat()).await;
    (before, after)
}

#[tokio::test]
async fn a_database_written_in_format_1_reads_back_beside_rows_of_this_version() {
    let (before, after) = reads_back_beside_rows_of_this_version(1).await;
    let text = |format| ("text".to_owned(), format);
    let blob = |format| ("blob".to_owned(), format);
    assert_eq!(before, [text(1)]);
    assert_eq!(after, [text(1), blob(2), blob(3)]);
}

#[tokio::test]
async fn a_database_written_in_format_2_reads_back_beside_format_3_rows() {
    let (before, after) = reads_back_beside_rows_of_this_version(2).await;
    let blob = |format| ("blob".to_owned(), format);
    assert_eq!(before, [blob(2)]);
    assert_eq!(after, [blob(2), blob(3)]);
}

/// Events' data an earlier version stored as JSON text reads back beside the
/// compressed data this version stores.
#[tokio::test]
async fn event_data_stored_as_text_reads_back_beside_compressed_data() {
    let file = file();
    let db = open(&file).await;
    let old = events_of_a(&[1]);
    commit(&db, &old).await.unwrap();
    db.close().await;
    let mut connection = SqliteConnection::connect(&file.url).await.unwrap();
    sqlx::query("UPDATE events SET data = ?")
        .bind(&old.events[0].data)
        .execute(&mut connection)
        .await
        .unwrap();

    let db = open(&file).await;
    let new = events_of_a(&[2]);
    commit(&db, &new).await.unwrap();
    let types: Vec<String> =
        sqlx::query_scalar("SELECT typeof(data) FROM events ORDER BY position")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(types, ["text", "blob"]);
    assert_eq!(
        event_data(&db).await,
        [old.events[0].data.clone(), new.events[0].data.clone()]
    );
}

/// The log is copied into the database by the store's own checkpointer
/// (`src/sqlite/checkpoint.rs`), not only once the writer's log passes its own threshold
/// (16,384 pages): a batch far below that reaches the database file.
#[tokio::test]
async fn the_log_is_copied_into_the_database_beside_the_writer() {
    let file = file();
    let db = open(&file).await;
    let path = file.url.trim_start_matches("sqlite://").to_owned();
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    let (_, changes) = batch(0, 4_000);
    commit(&db, &changes).await.unwrap();
    let mut connection = SqliteConnection::connect(&file.url).await.unwrap();
    let row: i64 = sqlx::query_scalar("SELECT length(data) FROM backlog")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    let row = u64::try_from(row).unwrap();
    // Far more than the pages of the empty tables, which may reach the file meanwhile.
    assert!(row > 1_000_000, "a backlog row of {row} bytes");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while size() < before + row {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {} bytes (from {before})",
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    db.close().await;
}
