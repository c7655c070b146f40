//! The embedded default: SQLite in WAL mode, `synchronous = FULL`, so a commit returns
//! only after its write-ahead log is fsync'd.
//!
//! The layout (see `migrations/sqlite/`) is shaped by what a commit costs: the pages it
//! changes. A batch's changes to the busy tables are committed as one row appended to
//! the backlog and folded into the tables many batches at a time ([`backlog`]); in the
//! tables an account's state row is updated in place and history and idempotency
//! records are appended, where many requests share a page.
//!
//! One connection writes (SQLite allows one writer at a time anyway), through rusqlite
//! on a thread of its own ([`writer_thread`]); a batch is one hand-off to it:
//! `BEGIN IMMEDIATE`, every write and `COMMIT`, handed over while the next batch is
//! built ([`memory`]). A batch reads through a read connection of the writer's own, on
//! a thread of its own, and a small sqlx pool reads for the API, beside the writer,
//! which WAL allows without blocking; one more connection copies the write-ahead log
//! into the database ([`checkpoint`]).

mod backlog;
mod checkpoint;
mod events;
mod memory;
mod writer_thread;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use creditd_ledger::{AccountId, AccountIdPrefix, Hold, HoldId, HoldStatus, LedgerQuery, OrderId};
use jiff::Timestamp;
use serde::Serialize;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{Mutex, OwnedMutexGuard};

use self::backlog::{BacklogRow, Cut, CutRows, FOLD_AT, FOLD_SLICE, Unfolded};
use self::checkpoint::{Checkpointer, RestartWanted, WRITER_CHECKPOINT_PAGES, restart_on_thread};
use self::memory::{InFlight, Shared, SweepRestore, commit_on_thread, kept};
use self::writer_thread::{
    Access, ConnectionOptions, ConnectionThread, Script, bytes, rows_of_first_step,
};
use crate::answers;
use crate::audit::{
    AUDIT_COLUMNS, CONSOLE_SESSION, TOKENS_REVOKED_AT, console_session, stored_audit,
};
use crate::columns::{
    NEWEST, api_key, checked_account, corrupt, decode, due_account, due_changes, encode, entry_row,
    hold_number, hold_row, idempotency_from_columns, key_label, ledger_page_sql, purchase_record,
    purchases_before, rare_entries, settled_hold, sql, stored_account, stored_entry, to_json,
    unsigned,
};
use crate::instant::to_db;
use crate::window::window_numbers;
use crate::{
    ACCOUNT_ID_END, ApiKeyRecord, BatchReads, Changes, ConsoleSession, Durable, IdempotencyKey,
    PurchasePosition, PurchaseRecord, Store, StoreError, StoredAccount, StoredAudit, StoredEntry,
    WriteTransaction,
};

/// Readers beside the writer: enough for two cores' worth of concurrent reads.
const READ_CONNECTIONS: u32 = 4;
/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The writer's page cache, in KiB (SQLite takes a negative number as KiB): 2,048
/// pages, enough for the B-trees' upper levels; leaves come from the OS's cache. Not
/// larger: a B-tree balance gives pages a temporary number past 1 GiB, and the commit
/// that follows then walks every slot of the cache's hash table to drop pages past the
/// end of the file. With 64 MiB that walk was 5% of the server's CPU. Readers keep
/// SQLite's small default: in WAL mode a reader drops its whole cache whenever the
/// database changed.
const WRITER_CACHE_KIB: i64 = -8192;
/// The writer's read connection's page cache, in KiB: SQLite's default. In WAL mode a
/// reader drops its whole cache whenever the database changed, which is at every batch.
const READER_CACHE_KIB: i64 = -2000;

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Arc<Mutex<WriterConnection>>,
    readers: SqlitePool,
    /// A read connection of the writer's own, on a thread of its own, for its batches'
    /// reads: they never wait behind the API's readers, and take one hand-off.
    batch_reader: Arc<ConnectionThread>,
    kept: Shared,
    /// Held while the store is open: no other store, in this process or another, writes
    /// the file meanwhile (what is kept unfolded in memory is only this store's).
    lock: Arc<FileLock>,
    /// Copies the write-ahead log into the database beside the writer.
    checkpointer: Arc<Checkpointer>,
}

/// An exclusive lock on `PATH.lock` beside the database `PATH`, held from opening to
/// closing (and by the OS only while the process lives: a crash leaves no stale lock).
/// A lock file of its own, not the database file: SQLite's own locks on the database
/// are POSIX locks, which any other descriptor of that file would release on closing.
#[derive(Debug)]
struct FileLock {
    file: std::fs::File,
}

impl FileLock {
    fn take(database: &std::path::Path) -> Result<FileLock, StoreError> {
        // One lock per file, however the path names it (a symbolic link, `..`).
        let real = database.canonicalize().or_else(|_| {
            let folder = database.parent().filter(|p| !p.as_os_str().is_empty());
            let name = database.file_name().unwrap_or_default();
            folder
                .map_or_else(std::env::current_dir, |folder| folder.canonicalize())
                .map(|folder| folder.join(name))
        });
        let mut path = real
            .unwrap_or_else(|_| database.to_owned())
            .into_os_string();
        path.push(".lock");
        let path = std::path::PathBuf::from(path);
        let open = |write: bool| {
            std::fs::OpenOptions::new()
                .create(write)
                .truncate(false)
                .write(write)
                .read(true)
                .open(&path)
        };
        // A lock file made by another user (an operator's `migrate` as root) may be
        // read-only to this one: an exclusive lock needs no write access.
        let file = open(true)
            .or_else(|_| open(false))
            .map_err(|error| StoreError::Lock(format!("opening {}: {error}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(FileLock { file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StoreError::InUse(database.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(error)) => Err(StoreError::Lock(format!(
                "locking {}: {error}",
                path.display()
            ))),
        }
    }

    /// Releases the lock at closing. Should that fail, the lock goes when the store
    /// is dropped, with the file.
    fn release(&self) {
        let _ = self.file.unlock();
    }
}

/// The one connection that writes.
#[derive(Debug)]
struct WriterConnection {
    connection: ConnectionThread,
    /// A transaction of the store's own was begun and not committed (it failed): roll it
    /// back before the next.
    in_transaction: bool,
    /// The store was closed: it writes nothing more (its lock is released).
    closed: bool,
    /// The id of the newest backlog row handed over: the next is numbered on from it.
    last_backlog_row: i64,
    /// Batches handed over so far.
    tickets: u64,
    /// Unfolded rows from which each commit also folds a cut ([`FOLD_AT`]).
    fold_at: usize,
    kept: Shared,
    /// The checkpointer's wish for a checkpoint between two batches.
    restart: Arc<RestartWanted>,
}

impl WriterConnection {
    /// Ends a transaction a failed batch left open. SQLite may have rolled it back
    /// already; then the ROLLBACK fails, with nothing left to undo.
    async fn roll_back(&mut self) {
        if self.in_transaction {
            let _ = self.execute("ROLLBACK").await;
            self.in_transaction = false;
        }
    }

    /// Begins a write transaction of the store's own (`BEGIN IMMEDIATE`: the write lock
    /// at once), once every batch handed over before it is through, and, if the memory
    /// is stale, reads the unfolded changes anew.
    async fn begin(&mut self) -> Result<(), StoreError> {
        if self.closed {
            return Err(StoreError::Closed);
        }
        self.roll_back().await;
        self.in_transaction = true;
        self.execute("BEGIN IMMEDIATE").await?;
        if kept(&self.kept).stale {
            self.read_backlog().await?;
        }
        Ok(())
    }

    /// Reads what is kept unfolded from the backlog, which holds every change the
    /// tables lack (and perhaps some they have: a sweep deletes the rows it folded only
    /// once it is through), and forgets the batches that were on their way (refused, as
    /// the memory was stale). On opening, and after a commit that failed or whose
    /// outcome is unknown. Every batch handed over before it is through by then.
    async fn read_backlog(&mut self) -> Result<(), StoreError> {
        let shared = Arc::clone(&self.kept);
        let fold_at = self.fold_at;
        let last = self
            .connection
            .call(move |connection| {
                let mut statement =
                    connection.prepare("SELECT id, data, format FROM backlog ORDER BY id")?;
                let mut rows = statement.query([])?;
                let mut fresh = Unfolded::with_room(fold_at);
                let mut last: i64 = 0;
                while let Some(row) = rows.next()? {
                    last = row.get(0)?;
                    fresh.add(last, decode(row.get(2)?, bytes(row, 1)?)?)?;
                }
                let mut kept = kept(&shared);
                kept.unfolded = fresh;
                kept.in_flight.clear();
                kept.stale = false;
                Ok(last)
            })
            .await?;
        self.last_backlog_row = self.last_backlog_row.max(last);
        Ok(())
    }

    /// Folds every unfolded change into the tables and empties the backlog, in one
    /// transaction: on opening (what a crash left), before a purge and on closing.
    async fn fold_all(&mut self) -> Result<(), StoreError> {
        // Every batch handed over before is through once the transaction has begun.
        self.begin().await?;
        let mut script = Script::default();
        push_fold(
            &mut script,
            &kept(&self.kept).unfolded.cut(&Cut::All),
            &Cut::All,
        )?;
        script.push("COMMIT", []);
        // Whether the fold committed is unknown until it answers: should it fail, or this
        // future be dropped meanwhile, the next transaction reads the backlog anew.
        kept(&self.kept).stale = true;
        self.run(script).await?;
        self.in_transaction = false;
        let mut kept = kept(&self.kept);
        kept.unfolded.forget_all();
        kept.stale = false;
        Ok(())
    }

    /// Runs one statement without parameters.
    async fn execute(&self, sql: &'static str) -> Result<(), StoreError> {
        self.connection
            .call(move |connection| Ok(connection.execute_batch(sql)?))
            .await
    }

    /// Runs `script` and answers the rows each of its steps changed.
    async fn run(&self, script: Script) -> Result<Vec<usize>, StoreError> {
        self.connection
            .call(move |connection| script.run(connection))
            .await
    }
}

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://PATH`), creating it if `create`, runs
    /// its migrations and folds what a previous run left in the backlog. Refused while
    /// another store has the file open ([`StoreError::InUse`]).
    pub async fn open(url: &str, create: bool) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_folding_at(url, create, FOLD_AT).await
    }

    /// As [`SqliteStore::open`], but folding once `rows` are unfolded instead of [`FOLD_AT`]:
    /// for tests that want sweeps without tens of thousands of rows.
    pub async fn open_folding_at(
        url: &str,
        create: bool,
        rows: usize,
    ) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let options = crate::quiet(options);
        let path = options.get_filename().to_owned();
        if !create && !path.exists() {
            return Err(StoreError::NoDatabase(path.display().to_string()));
        }
        let lock = FileLock::take(&path)?;
        let mut migrator = options.clone().create_if_missing(true).connect().await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut migrator)
            .await?;
        // One process has the file open, so every lease on a delivery is a previous
        // run's (one killed mid-delivery): its deliveries go out again now, not when the
        // leases would have run out.
        sqlx::query(events::RELEASE_LEASES)
            .execute(&mut migrator)
            .await?;
        migrator.close().await?;
        let connection = ConnectionThread::open(ConnectionOptions {
            path: path.clone(),
            access: Access::Write {
                autocheckpoint: WRITER_CHECKPOINT_PAGES,
            },
            busy_timeout: BUSY_TIMEOUT,
            cache_size: WRITER_CACHE_KIB,
        })
        .await?;
        let restart = Arc::new(RestartWanted::default());
        let checkpointer = Checkpointer::start(&options, Arc::clone(&restart)).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        let batch_reader = ConnectionThread::open(ConnectionOptions {
            path: path.clone(),
            access: Access::Read,
            busy_timeout: BUSY_TIMEOUT,
            cache_size: READER_CACHE_KIB,
        })
        .await?;
        let shared = Shared::default();
        // What a previous run left in the backlog is read by the first transaction.
        kept(&shared).stale = true;
        let mut writer = WriterConnection {
            connection,
            in_transaction: false,
            closed: false,
            last_backlog_row: 0,
            tickets: 0,
            fold_at: rows,
            kept: Arc::clone(&shared),
            restart,
        };
        writer.fold_all().await?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers,
            batch_reader: Arc::new(batch_reader),
            kept: shared,
            lock: Arc::new(lock),
            checkpointer: Arc::new(checkpointer),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn WriteTransaction>, StoreError> {
        let mut writer = Arc::clone(&self.writer).lock_owned().await;
        if writer.closed {
            return Err(StoreError::Closed);
        }
        writer.roll_back().await;
        if kept(&writer.kept).stale {
            // After every batch handed over before: those built on the one that failed
            // are refused by then.
            writer.read_backlog().await?;
        }
        Ok(Box::new(SqliteWrite {
            writer,
            reader: Arc::clone(&self.batch_reader),
            readers: self.readers.clone(),
            loaded: HashMap::new(),
        }))
    }

    async fn account(&self, id: &AccountId) -> Result<Option<StoredAccount>, StoreError> {
        // The backlog is the truth for the states it holds.
        if let Some(kept) = kept(&self.kept).unfolded.account(id) {
            return Ok(Some(kept));
        }
        let row = sqlx::query(sql::ACCOUNT)
            .bind(id.as_str())
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| stored_account::<_, &[u8]>(&row)).transpose()
    }

    async fn ledger_page(
        &self,
        id: &AccountId,
        query: &LedgerQuery,
        before: Option<u64>,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        // The backlog is the truth for the account's entries from its first unfolded
        // one on; the table for those before it (`UnfoldedEntries`).
        let newest = kept(&self.kept).unfolded.ledger_rows(id, query, before);
        let table_before = match (before, newest.first_unfolded) {
            (Some(before), Some(first)) => Some(before.min(first)),
            (before, first) => before.or(first),
        };
        // A number past every stored one (a crafted cursor) pages from the newest.
        let before_db = table_before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut page = newest.rows;
        let wanted = usize::try_from(query.limit()).unwrap_or(usize::MAX);
        if page.len() >= wanted {
            return Ok(page);
        }
        let mut connection = self.readers.acquire().await?;
        let (from, below) = window_numbers::<Sqlite>(&mut connection, id, query, before_db).await?;
        let sql = ledger_page_sql(query, LEDGER_PAGE, LEDGER_PAGE_OF_RARE_TYPE);
        let rows = sqlx::query(sql)
            .bind(id.as_str())
            .bind(below)
            .bind(query.entry_type().map(|t| t.as_str()))
            .bind(from)
            .bind(u32::try_from(wanted.saturating_sub(page.len())).unwrap_or(u32::MAX))
            .fetch_all(&mut *connection)
            .await?;
        for row in &rows {
            page.push(stored_entry::<_, &[u8]>(row)?);
        }
        Ok(page)
    }

    async fn settled_holds_page(
        &self,
        id: &AccountId,
        status: Option<HoldStatus>,
        before: Option<HoldId>,
        limit: u32,
    ) -> Result<Vec<Hold>, StoreError> {
        // Taken before the rows: a fold that ends meanwhile has written them there first,
        // and a hold found in both places is one hold.
        let kept = kept(&self.kept)
            .unfolded
            .holds_rows(id, status, before, limit);
        let rows = sqlx::query(
            "SELECT data, format FROM history
             WHERE account_id = ?1 AND kind = 'hold' AND number < ?2 AND (?3 IS NULL OR label = ?3)
             ORDER BY number DESC LIMIT ?4",
        )
        .bind(id.as_str())
        .bind(hold_number(before))
        .bind(status.map(<&str>::from))
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        let mut page = std::collections::BTreeMap::new();
        for row in &rows {
            let hold = settled_hold::<_, &[u8]>(row)?;
            page.insert(hold.id(), hold);
        }
        page.extend(kept.into_iter().map(|hold| (hold.id(), hold)));
        Ok(page
            .into_values()
            .rev()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn purchases_page(
        &self,
        id: &AccountId,
        before: Option<&PurchasePosition>,
        limit: u32,
    ) -> Result<Vec<PurchaseRecord>, StoreError> {
        let (recorded_at, order_id) = purchases_before(before);
        let rows = sqlx::query(sql::PURCHASES_PAGE)
            .bind(id.as_str())
            .bind(recorded_at)
            .bind(order_id)
            .bind(limit)
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(purchase_record).collect()
    }

    async fn accounts_page(
        &self,
        prefix: &AccountIdPrefix,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<StoredAccount>, StoreError> {
        let prefix = prefix.as_str();
        let end = format!("{prefix}{ACCOUNT_ID_END}");
        let after = after.map_or("", AccountId::as_str);
        // Taken before the rows: a fold that ends meanwhile has written them there first.
        let kept = kept(&self.kept)
            .unfolded
            .accounts_in(prefix, &end, after, limit);
        let rows = sqlx::query(
            "SELECT state, entry_seq, format FROM accounts
             WHERE id >= $1 AND id < $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(prefix)
        .bind(&end)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        let mut page: std::collections::BTreeMap<AccountId, StoredAccount> = rows
            .iter()
            .map(|row| stored_account::<_, &[u8]>(row).map(|s| (s.account.id().clone(), s)))
            .collect::<Result<_, _>>()?;
        page.extend(kept.into_iter().map(|s| (s.account.id().clone(), s)));
        Ok(page
            .into_values()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn audit_page(
        &self,
        account: Option<&AccountId>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit
             WHERE (?1 IS NULL OR account_id = ?1) AND id < ?2 ORDER BY id DESC LIMIT ?3"
        ))
        .bind(account.map(AccountId::as_str))
        .bind(before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(stored_audit).collect()
    }

    async fn tokens_revoked_at(
        &self,
        account: &AccountId,
    ) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(TOKENS_REVOKED_AT)
            .bind(account.as_str())
            .fetch_optional(&self.readers)
            .await?;
        at.map(crate::instant::from_db).transpose()
    }

    async fn console_session(&self, id: &str) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(CONSOLE_SESSION)
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| console_session(&row)).transpose()
    }

    async fn purchases(&self, orders: &[OrderId]) -> Result<Vec<PurchaseRecord>, StoreError> {
        let ids: Vec<&str> = orders.iter().map(OrderId::as_str).collect();
        let rows = sqlx::query(
            "SELECT order_id, account_id, credits, bucket_id, paid_at, paid_at_requested,
                    expires_at, amount_minor, currency, recorded_at
             FROM purchases WHERE order_id IN (SELECT value FROM json_each(?))",
        )
        .bind(to_json(&ids)?)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(purchase_record).collect()
    }

    async fn purchase(&self, order: &OrderId) -> Result<Option<PurchaseRecord>, StoreError> {
        let row = sqlx::query(sql::PURCHASE)
            .bind(order.as_str())
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| purchase_record(&row)).transpose()
    }

    async fn settled_hold(&self, id: &AccountId, hold: HoldId) -> Result<Option<Hold>, StoreError> {
        if let Some(settled) = kept(&self.kept).unfolded.hold(id, hold) {
            return Ok(Some(settled));
        }
        let row = sqlx::query(sql::SETTLED_HOLD)
            .bind(id.as_str())
            .bind(i64::try_from(hold.get()).map_err(corrupt)?)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| settled_hold::<_, &[u8]>(&row)).transpose()
    }

    async fn due_accounts(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(AccountId, Timestamp)>, StoreError> {
        let rows = sqlx::query(sql::DUE_ACCOUNTS)
            .bind(to_db(now))
            .bind(limit)
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(due_account).collect()
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(sql::API_KEY)
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| api_key(&row)).transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(sql::API_KEYS).fetch_all(&self.readers).await?;
        rows.iter().map(api_key).collect()
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(sql::SETTING)
            .bind(name)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn purge_idempotency(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut writer = self.writer.lock().await;
        // The records to forget may still be unfolded.
        writer.fold_all().await?;
        let mut script = Script::default();
        script.push(sql::PURGE_IDEMPOTENCY, [to_db(before).into()]);
        Ok(rows_of_first_step(&writer.run(script).await?))
    }

    async fn close(&self) {
        self.readers.close().await;
        self.checkpointer.stop();
        let mut writer = self.writer.lock().await;
        // Should the fold or the checkpoint fail, nothing is lost: the next opening
        // folds the backlog, and the WAL is the database's own.
        let _ = writer.fold_all().await;
        let _ = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
        writer.closed = true;
        self.lock.release();
    }
}

/// A write transaction on the writer connection.
struct SqliteWrite {
    writer: OwnedMutexGuard<WriterConnection>,
    /// The writer's read connection, for the accounts and records memory does not hold.
    reader: Arc<ConnectionThread>,
    /// The readers' pool, for a batch's purchases.
    readers: SqlitePool,
    /// Every account asked for, as read.
    loaded: HashMap<AccountId, Loaded>,
}

/// An account as a transaction read it (all zero if it did not exist).
#[derive(Clone, Copy, Default)]
struct Loaded {
    /// When its next effect was due, as `account_due` has it.
    due: Option<i64>,
    entry_seq: u64,
}

/// The accounts of a batch, by id (a JSON array at `?1`).
const READ_ACCOUNTS: &str = "SELECT state, entry_seq, format FROM accounts
     WHERE id IN (SELECT value FROM json_each(?1))";
/// The idempotency records of a batch, by label (a JSON array at `?1`).
const READ_KEYS: &str = "SELECT account_id, label, digest, status, body, at FROM idempotency_keys
     WHERE label IN (SELECT value FROM json_each(?1))";
/// The purchases of a batch, by order id (a JSON array at `?`).
const READ_PURCHASES: &str = "SELECT order_id, account_id, credits, bucket_id, paid_at,
         paid_at_requested, expires_at, amount_minor, currency, recorded_at
     FROM purchases WHERE order_id IN (SELECT value FROM json_each(?))";

/// A page of an account's ledger, newest first, numbered from `?4` and below `?2` (the
/// cursor and the time window, [`window_numbers`]), filtered by `?3` (type, as `$label`
/// says) where not null; `$rows` says which rows the page is read from.
macro_rules! ledger_page {
    ($rows:expr, $label:expr) => {
        concat!(
            "SELECT number, data, format FROM history
             WHERE account_id = ?1 AND ",
            $rows,
            " AND number >= ?4 AND number < ?2 AND ",
            $label,
            " ORDER BY number DESC LIMIT ?5"
        )
    };
}

/// Any page of the ledger, through `history_numbers`.
const LEDGER_PAGE: &str = ledger_page!("kind = 'entry'", "(?3 IS NULL OR label = ?3)");
/// A page of one rarer type, through `history_rare_entries` ([`ledger_page_sql`]).
const LEDGER_PAGE_OF_RARE_TYPE: &str = ledger_page!(rare_entries!(), "label = ?3");

#[async_trait]
impl WriteTransaction for SqliteWrite {
    async fn read(
        &mut self,
        ids: &[AccountId],
        keys: &[IdempotencyKey],
        orders: &[OrderId],
    ) -> Result<BatchReads, StoreError> {
        let labels: Vec<String> = keys.iter().map(key_label).collect();
        // Memory first, then the tables for the rest: a row that memory does not hold
        // now is in the tables from now on (the batches on their way have not got it).
        let newest = kept(&self.writer.kept).newest(ids, &labels, orders)?;
        let mut accounts = newest.accounts;
        let mut records = newest.records;
        let mut purchases = newest.purchases;
        // Read beside the writer's thread, which may be committing the batch before,
        // through a connection of the writer's own, in one hand-off.
        let names: Vec<&str> = ids
            .iter()
            .filter(|id| !accounts.contains_key(*id))
            .map(AccountId::as_str)
            .collect();
        let unread: Vec<&str> = labels
            .iter()
            .filter(|label| !records.contains_key(*label))
            .map(String::as_str)
            .collect();
        if !names.is_empty() || !unread.is_empty() {
            let (names, unread) = (to_json(&names)?, to_json(&unread)?);
            let (stored, found) = self
                .reader
                .call(move |connection| {
                    let mut stored = Vec::new();
                    let mut statement = connection.prepare_cached(READ_ACCOUNTS)?;
                    let mut rows = statement.query([names])?;
                    while let Some(row) = rows.next()? {
                        stored.push(checked_account(
                            decode(row.get(2)?, bytes(row, 0)?)?,
                            unsigned(row.get(1)?)?,
                        )?);
                    }
                    drop(rows);
                    let mut found = Vec::new();
                    let mut statement = connection.prepare_cached(READ_KEYS)?;
                    let mut rows = statement.query([unread])?;
                    while let Some(row) = rows.next()? {
                        found.push(idempotency_from_columns(
                            row.get_ref(0)?.as_str().map_err(corrupt)?,
                            row.get_ref(1)?.as_str().map_err(corrupt)?,
                            row.get(2)?,
                            row.get(3)?,
                            answers::text(bytes(row, 4)?)?,
                            row.get(5)?,
                        )?);
                    }
                    Ok((stored, found))
                })
                .await?;
            for stored in stored {
                accounts.insert(stored.account.id().clone(), stored);
            }
            for record in found {
                records.insert(key_label(&record.key), record);
            }
        }
        let order_ids: Vec<&str> = orders
            .iter()
            .filter(|order| !purchases.contains_key(*order))
            .map(OrderId::as_str)
            .collect();
        if !order_ids.is_empty() {
            let rows = sqlx::query(READ_PURCHASES)
                .bind(to_json(&order_ids)?)
                .fetch_all(&self.readers)
                .await?;
            for row in &rows {
                let purchase = purchase_record(row)?;
                purchases.insert(purchase.order_id.clone(), purchase);
            }
        }
        let mut reads = BatchReads::default();
        for id in ids {
            self.loaded.insert(id.clone(), Loaded::default());
        }
        for (id, stored) in accounts {
            let loaded = Loaded {
                due: stored.account.next_effect_at().map(to_db),
                entry_seq: stored.entry_seq,
            };
            self.loaded.insert(id, loaded);
            reads.accounts.push(stored);
        }
        reads.idempotency.extend(records.into_values());
        reads.purchases.extend(purchases.into_values());
        Ok(reads)
    }

    async fn hand_off(mut self: Box<Self>, changes: &Changes) -> Result<Durable, StoreError> {
        // Built or not, the batch before this one commits as it is.
        let restore = SweepRestore::arm(&self.writer.kept);
        let (script, on_its_way) = self.script(changes)?;
        restore.disarm();
        let ticket = on_its_way.ticket;
        kept(&self.writer.kept).in_flight.push_back(on_its_way);
        let shared = Arc::clone(&self.writer.kept);
        let committed = self
            .writer
            .connection
            .send(move |connection| commit_on_thread(connection, &script, &shared, ticket))?;
        // Behind this batch, before the next: its outcome is not awaited, as a failure
        // leaves only the writer's own checkpoint to start the log again.
        if self.writer.restart.take()
            && let Ok(restarted) = self.writer.connection.send(restart_on_thread)
        {
            drop(restarted);
        }
        Ok(Box::pin(committed))
    }
}

impl SqliteWrite {
    /// One hand-off to the writer's thread: `BEGIN IMMEDIATE`, the batch's backlog row,
    /// the rare changes only when there are any, then `COMMIT`; and the batch as it is
    /// kept in memory on its way.
    fn script(&mut self, changes: &Changes) -> Result<(Script, InFlight), StoreError> {
        self.check_entry_numbers(changes)?;
        let batch = BacklogRow::of(changes);
        let mut script = Script::default();
        script.push("BEGIN IMMEDIATE", []);
        // Once enough is unfolded, every batch folds a cut of it too (written as it was
        // before this batch, which the backlog row below has).
        let folded = {
            let mut kept = kept(&self.writer.kept);
            if kept.unfolded.rows() >= self.writer.fold_at {
                let rows = FOLD_SLICE.max(batch.rows().saturating_mul(2));
                let cut = kept.unfolded.next_cut(rows);
                let cut_rows = kept.unfolded.cut(&cut);
                push_fold(&mut script, &cut_rows, &cut)?;
                Some(cut_rows.folded())
            } else {
                None
            }
        };
        let row = if batch.rows() > 0 {
            let row = self.writer.last_backlog_row.saturating_add(1);
            script.push(
                "INSERT INTO backlog (id, data, format) VALUES (?1, ?2, ?3)",
                [row.into(), encode(NEWEST, &batch)?.into(), NEWEST.into()],
            );
            self.writer.last_backlog_row = row;
            Some(row)
        } else {
            None
        };
        self.push_rare(&mut script, changes)?;
        events::push_events(&mut script, changes)?;
        push_audit(&mut script, changes);
        script.push("COMMIT", []);
        self.writer.tickets = self.writer.tickets.saturating_add(1);
        let on_its_way = InFlight {
            ticket: self.writer.tickets,
            row,
            batch,
            purchases: changes.purchases.clone(),
            folded,
        };
        Ok((script, on_its_way))
    }

    /// The due times and distributions of a batch, a statement a row; then its rare
    /// changes, each statement only when it has rows: purchases, API keys, revocations,
    /// settings.
    fn push_rare(&self, script: &mut Script, changes: &Changes) -> Result<(), StoreError> {
        // Bound parameters, not one JSON array: a sweep moves every member's due time
        // and records its distribution, and reading fields out of JSON text cost more
        // than the rows themselves (as for events, `push_events`).
        // Every delete, then every insert: rows of one text in a row share a step of
        // the script, its statement looked up and its places mapped once.
        let due_before = |id: &AccountId| self.loaded.get(id).and_then(|loaded| loaded.due);
        let due = due_changes(changes, due_before);
        for change in &due {
            if let Some(at) = change.before {
                script.push(DELETE_DUE, [at.into(), change.account.to_owned().into()]);
            }
        }
        for change in &due {
            if let Some(at) = change.after {
                script.push(INSERT_DUE, [at.into(), change.account.to_owned().into()]);
            }
        }
        for (account, d) in &changes.distributions {
            script.push(
                INSERT_DISTRIBUTION,
                [
                    account.to_string().into(),
                    d.schedule.into(),
                    d.index.into(),
                    to_db(d.at).into(),
                ],
            );
        }
        let purchases: Vec<PurchaseRow> = changes.purchases.iter().map(PurchaseRow::new).collect();
        let revoked: Vec<(&str, i64)> = changes
            .revoked_api_keys
            .iter()
            .map(|(id, at)| (id.as_str(), to_db(*at)))
            .collect();
        for k in &changes.new_api_keys {
            script.push(
                "INSERT INTO api_keys (id, name, role, secret_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                [
                    k.id.clone().into(),
                    k.name.clone().into(),
                    k.role.clone().into(),
                    k.secret_hash.to_vec().into(),
                    to_db(k.created_at).into(),
                ],
            );
        }
        let rare = [
            (
                !purchases.is_empty(),
                INSERT_PURCHASES,
                to_json(&purchases)?,
            ),
            (!revoked.is_empty(), REVOKE_API_KEYS, to_json(&revoked)?),
            (
                !changes.settings.is_empty(),
                INSERT_SETTINGS,
                to_json(&changes.settings)?,
            ),
        ];
        for (wanted, statement, rows) in rare {
            if wanted {
                // Each of these statements takes its rows as one JSON array at `?`.
                script.push(statement, [rows.into()]);
            }
        }
        Ok(())
    }

    /// Refuses a ledger entry numbered at or below one its account has already stored,
    /// or of an account this transaction did not read. The writer numbers entries on
    /// from the count it read, so this catches a bug before it is stored; the backlog,
    /// unlike `history`, has no key to catch it.
    fn check_entry_numbers(&self, changes: &Changes) -> Result<(), StoreError> {
        let mut last: HashMap<&AccountId, u64> = HashMap::new();
        for (id, entry) in &changes.entries {
            let last = match last.entry(id) {
                Entry::Occupied(seen) => seen.into_mut(),
                Entry::Vacant(new) => {
                    let loaded = self.loaded.get(id).ok_or_else(|| {
                        corrupt(format!(
                            "account {id} is written by a transaction that did not read it"
                        ))
                    })?;
                    new.insert(loaded.entry_seq)
                }
            };
            if entry.seq <= *last {
                return Err(corrupt(format!(
                    "ledger entry e{} of account {id} is stored already",
                    entry.seq
                )));
            }
            *last = entry.seq;
        }
        Ok(())
    }
}

/// The statements that write a cut of the unfolded changes into the tables and delete
/// the backlog rows folded entirely. A row may be in the tables already (the backlog
/// read anew whole, on opening or after a commit of unknown outcome, holds the rows a
/// sweep folded before it was through): entries, holds and records are then left as
/// they are, and an account's state is the newest either way.
fn push_fold(script: &mut Script, rows: &CutRows<'_>, cut: &Cut) -> Result<(), StoreError> {
    for (id, kept) in &rows.accounts {
        let stored = &kept.stored;
        let seq = i64::try_from(stored.entry_seq).map_err(corrupt)?;
        script.push(
            "INSERT INTO accounts (id, entry_seq, state, format) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET
             state = excluded.state, entry_seq = excluded.entry_seq, format = excluded.format",
            [
                id.to_string().into(),
                seq.into(),
                encode(NEWEST, &stored.account)?.into(),
                NEWEST.into(),
            ],
        );
    }
    let entries = rows
        .entries
        .iter()
        .map(|(account, seq, entry)| entry_row(account, *seq, entry, NEWEST));
    let holds = rows
        .holds
        .iter()
        .map(|(account, _, hold)| hold_row(account, hold, NEWEST));
    for row in entries.chain(holds) {
        let h = row?;
        script.push(
            "INSERT OR IGNORE INTO history (account_id, kind, number, at, label, data, format)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            [
                h.account.to_owned().into(),
                h.kind.to_owned().into(),
                h.number.into(),
                h.at.into(),
                h.label.to_owned().into(),
                h.data.into(),
                NEWEST.into(),
            ],
        );
    }
    // Answers are folded in format 2, compressed; the backlog keeps them as answered.
    for k in &rows.keys {
        script.push(
            "INSERT OR IGNORE INTO idempotency_keys (account_id, status, at, label, digest, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            [
                k.account.clone().into(),
                i64::from(k.status).into(),
                k.at.into(),
                k.label.clone().into(),
                k.digest.clone().into(),
                answers::compress(&k.body)?.into(),
            ],
        );
    }
    match cut {
        Cut::All => script.push("DELETE FROM backlog", []),
        Cut::Keys(span, emptied_through) if span.ends_sweep() => script.push(
            "DELETE FROM backlog WHERE id <= ?1",
            [(*emptied_through).into()],
        ),
        Cut::Accounts(_) | Cut::Entries(_) | Cut::Holds(_) | Cut::Keys(..) => {}
    }
    Ok(())
}

/// The audit records and console sessions of a batch.
fn push_audit(script: &mut Script, changes: &Changes) {
    for (account, at) in &changes.token_revocations {
        script.push(
            "INSERT INTO token_revocations (account_id, revoked_at) VALUES (?1, ?2)
             ON CONFLICT (account_id) DO UPDATE SET revoked_at = excluded.revoked_at",
            [account.to_string().into(), to_db(*at).into()],
        );
    }
    for s in &changes.console_sessions {
        script.push(
            "INSERT INTO console_sessions (id, key_id, csrf, created_at, expires_at, ended_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET ended_at = excluded.ended_at",
            [
                s.id.clone().into(),
                s.key_id.clone().into(),
                s.csrf.clone().into(),
                to_db(s.created_at).into(),
                to_db(s.expires_at).into(),
                s.ended_at.map(to_db).into(),
            ],
        );
    }
    for a in &changes.audit {
        script.push(
            "INSERT INTO audit (at, key_id, key_name, via, action, account_id, reason, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            [
                to_db(a.at).into(),
                a.key_id.clone().into(),
                a.key_name.clone().into(),
                a.via.as_str().to_owned().into(),
                a.action.as_str().to_owned().into(),
                a.account_id.as_ref().map(AccountId::to_string).into(),
                a.reason.clone().into(),
                a.detail.clone().into(),
            ],
        );
    }
}

/// An account's due time moved: the old one gone, the new one kept.
const DELETE_DUE: &str = "DELETE FROM account_due WHERE next_effect_at = ?1 AND account_id = ?2";
const INSERT_DUE: &str = "INSERT INTO account_due (next_effect_at, account_id) VALUES (?1, ?2)";
/// A monthly distribution made.
const INSERT_DISTRIBUTION: &str = "INSERT INTO distributions (account_id, schedule, idx, at)
     VALUES (?1, ?2, ?3, ?4)";
/// The rare writes of a batch, each taking its rows as a JSON array at its one `?`.
const INSERT_PURCHASES: &str = "INSERT INTO purchases (order_id, account_id, credits, bucket_id,
         paid_at, paid_at_requested, expires_at, amount_minor, currency, recorded_at)
     SELECT value ->> '$.order_id', value ->> '$.account_id', value ->> '$.credits',
            value ->> '$.bucket_id', value ->> '$.paid_at', value ->> '$.paid_at_requested',
            value ->> '$.expires_at', value ->> '$.amount_minor', value ->> '$.currency',
            value ->> '$.recorded_at'
     FROM json_each(?)";
const REVOKE_API_KEYS: &str = "UPDATE api_keys SET revoked_at = r.value ->> 1
     FROM json_each(?) AS r
     WHERE api_keys.id = r.value ->> 0 AND api_keys.revoked_at IS NULL";
const INSERT_SETTINGS: &str = "INSERT INTO settings (name, value)
     SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true
     ON CONFLICT (name) DO NOTHING";

/// A purchase as `INSERT_PURCHASES` reads it from JSON: named as its columns.
#[derive(Serialize)]
struct PurchaseRow<'a> {
    order_id: &'a str,
    account_id: &'a str,
    credits: u64,
    bucket_id: u64,
    paid_at: i64,
    paid_at_requested: Option<i64>,
    expires_at: i64,
    amount_minor: Option<u64>,
    currency: Option<&'a str>,
    recorded_at: i64,
}

impl<'a> PurchaseRow<'a> {
    fn new(purchase: &'a PurchaseRecord) -> Self {
        PurchaseRow {
            order_id: purchase.order_id.as_str(),
            account_id: purchase.account_id.as_str(),
            credits: purchase.credits,
            bucket_id: purchase.bucket_id.get(),
            paid_at: to_db(purchase.paid_at),
            paid_at_requested: purchase.paid_at_requested.map(to_db),
            expires_at: to_db(purchase.expires_at),
            amount_minor: purchase.paid.as_ref().map(|paid| paid.amount_minor),
            currency: purchase.paid.as_ref().map(|paid| paid.currency.as_str()),
            recorded_at: to_db(purchase.recorded_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, SqliteConnection};

    use super::*;

    /// What SQLite's planner says it reads for `sql`, bound with an account and a type.
    async fn plan(connection: &mut SqliteConnection, sql: &str) -> String {
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .bind("user-1")
            .bind(i64::MAX)
            .bind("grant")
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(50)
            .fetch_all(connection)
            .await
            .unwrap();
        rows.iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A connection to a new database in `folder`, every migration run.
    async fn migrated(folder: &tempfile::TempDir) -> SqliteConnection {
        let url = format!("sqlite://{}/plan.db?mode=rwc", folder.path().display());
        let mut connection = SqliteConnection::connect(&url).await.unwrap();
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut connection)
            .await
            .unwrap();
        connection
    }

    /// The steps of SQLite's plan for `sql`, bound with `argument` if it takes one.
    async fn steps(connection: &mut SqliteConnection, sql: &str, argument: &str) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        if sql.contains('?') {
            query = query.bind(argument);
        }
        let rows = query.fetch_all(connection).await.unwrap();
        rows.iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A month turning for a million members moves a million due times from one
    /// instant: each is found by instant and account, not among all of that instant's.
    #[tokio::test]
    async fn the_due_times_a_batch_moves_are_found_by_their_whole_key() {
        let folder = tempfile::tempdir().unwrap();
        let mut connection = migrated(&folder).await;
        let plan = steps(&mut connection, DELETE_DUE, "1").await;
        assert!(plan.contains("next_effect_at=? AND account_id=?"), "{plan}");
    }

    /// `/metrics` asks on every scrape: with millions of events kept, reading them all
    /// took 75 ms a scrape at a million.
    #[tokio::test]
    async fn the_oldest_undelivered_event_is_found_by_its_position_not_among_every_event() {
        let folder = tempfile::tempdir().unwrap();
        let mut connection = migrated(&folder).await;
        let plan = steps(&mut connection, events::statements::OLDEST_UNDELIVERED, "").await;
        assert!(plan.contains("INTEGER PRIMARY KEY (rowid>?)"), "{plan}");
        assert!(
            plan.contains("webhook_deliveries_pending_in_order"),
            "{plan}"
        );
        assert!(!plan.contains("events_by_age"), "{plan}");
    }

    #[tokio::test]
    async fn a_ledger_page_of_a_rare_type_reads_the_index_of_rare_entries() {
        let folder = tempfile::tempdir().unwrap();
        let mut connection = migrated(&folder).await;
        let rare = plan(&mut connection, LEDGER_PAGE_OF_RARE_TYPE).await;
        assert!(rare.contains("history_rare_entries"), "{rare}");
        let any = plan(&mut connection, LEDGER_PAGE).await;
        assert!(any.contains("history_numbers"), "{any}");
    }
}
