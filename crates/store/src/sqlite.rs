//! The embedded default: SQLite in WAL mode, `synchronous = FULL`, so a commit returns
//! only after its write-ahead log is fsync'd.
//!
//! The layout (see `migrations/sqlite/0001_initial.sql`) is shaped by what a commit
//! costs: the pages it changes. A request updates its account's state row in place and
//! appends its history and idempotency records at the end of their tables, where a
//! batch shares a few pages.
//!
//! One connection writes (SQLite allows one writer at a time anyway); a small pool reads
//! beside it, which WAL allows without blocking. sqlx runs each SQLite connection on its
//! own thread, so every statement is a round trip between threads; a batch therefore
//! takes two: `BEGIN IMMEDIATE` with all its reads, and every write with `COMMIT`.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use creditd_ledger::{AccountId, Hold, HoldId, LedgerEntry, LedgerQuery, OrderId};
use jiff::Timestamp;
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::columns::{
    api_key, corrupt, count, from_json, idempotency_record, key_label, purchase_record,
    record_account, sql, stored_account, to_json,
};
use crate::instant::to_db;
use crate::{
    ApiKeyRecord, BatchReads, Changes, IdempotencyKey, LedgerRow, PurchaseRecord, Store,
    StoreError, StoredAccount, WriteTransaction,
};

/// Readers beside the writer: enough for two cores' worth of concurrent reads.
const READ_CONNECTIONS: u32 = 4;
/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The writer's page cache, in KiB (SQLite takes a negative number as KiB): the index
/// pages of a few million accounts stay in memory. Readers keep SQLite's small default:
/// in WAL mode a reader drops its whole cache whenever the database changed, and
/// dropping a large one costs more than it saves.
const WRITER_CACHE_KIB: &str = "-65536";

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Arc<Mutex<WriterConnection>>,
    readers: SqlitePool,
}

/// The one connection that writes.
#[derive(Debug)]
struct WriterConnection {
    connection: SqliteConnection,
    /// A transaction was begun and not committed (its batch failed): roll it back
    /// before the next.
    in_transaction: bool,
}

impl WriterConnection {
    /// Ends a transaction a failed batch left open. SQLite may have rolled it back
    /// already; then the ROLLBACK fails, with nothing left to undo.
    async fn settle(&mut self) {
        if self.in_transaction {
            let _ = sqlx::query("ROLLBACK").execute(&mut self.connection).await;
            self.in_transaction = false;
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and runs its
    /// migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let mut connection = options
            .clone()
            .create_if_missing(true)
            .pragma("cache_size", WRITER_CACHE_KIB)
            .connect()
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut connection)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        let writer = WriterConnection {
            connection,
            in_transaction: false,
        };
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn WriteTransaction>, StoreError> {
        let mut writer = Arc::clone(&self.writer).lock_owned().await;
        writer.settle().await;
        Ok(Box::new(SqliteWrite {
            writer,
            loaded: HashMap::new(),
        }))
    }

    async fn account(&self, id: &AccountId) -> Result<Option<StoredAccount>, StoreError> {
        let row = sqlx::query(sql::ACCOUNT)
            .bind(id.as_str())
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| stored_account(&row)).transpose()
    }

    async fn ledger_page(
        &self,
        id: &AccountId,
        query: &LedgerQuery,
        before: Option<u64>,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let before = before
            .map_or(Ok(i64::MAX), i64::try_from)
            .map_err(corrupt)?;
        let rows = sqlx::query(
            "SELECT number, number, data FROM history
             WHERE account_id = ?1 AND kind = 'entry' AND number < ?2
               AND (?3 IS NULL OR label = ?3) AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5)
             ORDER BY number DESC LIMIT ?6",
        )
        .bind(id.as_str())
        .bind(before)
        .bind(query.entry_type().map(|t| t.as_str()))
        .bind(query.since().map(to_db))
        .bind(query.until().map(to_db))
        .bind(query.limit())
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LedgerRow {
                    seq: count(row.try_get(0)?)?,
                    position: count(row.try_get(1)?)?,
                    entry: from_json::<LedgerEntry>(row.try_get(2)?)?,
                })
            })
            .collect()
    }

    async fn settled_hold(&self, id: &AccountId, hold: HoldId) -> Result<Option<Hold>, StoreError> {
        let row = sqlx::query(sql::SETTLED_HOLD)
            .bind(id.as_str())
            .bind(i64::try_from(hold.get()).map_err(corrupt)?)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| from_json::<Hold>(row.try_get(0)?))
            .transpose()
    }

    async fn due_accounts(&self, now: Timestamp, limit: u32) -> Result<Vec<AccountId>, StoreError> {
        let rows = sqlx::query(sql::DUE_ACCOUNTS)
            .bind(to_db(now))
            .bind(limit)
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|row| AccountId::parse(row.get::<&str, _>(0)).map_err(corrupt))
            .collect()
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
        writer.settle().await;
        let done = sqlx::query(sql::PURGE_IDEMPOTENCY)
            .bind(to_db(before))
            .execute(&mut writer.connection)
            .await?;
        Ok(done.rows_affected())
    }

    async fn close(&self) {
        self.readers.close().await;
        let mut writer = self.writer.lock().await;
        // Folds the WAL into the database file; should it fail, nothing is lost.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut writer.connection)
            .await;
    }
}

/// A write transaction on the writer connection. `BEGIN IMMEDIATE` goes with its first
/// statement (IMMEDIATE takes the write lock at once, so another process writing the
/// same file makes it wait for `busy_timeout` instead of failing at its first write).
struct SqliteWrite {
    writer: OwnedMutexGuard<WriterConnection>,
    /// The accounts read, with when their next effect was due (as `account_due` has it).
    loaded: HashMap<AccountId, Option<i64>>,
}

/// A statement, and the same preceded by `BEGIN IMMEDIATE` for a transaction's first.
struct Statement {
    alone: &'static str,
    first: &'static str,
}

macro_rules! statement {
    ($sql:expr) => {
        Statement {
            alone: $sql,
            first: concat!("BEGIN IMMEDIATE;\n", $sql),
        }
    };
}

impl SqliteWrite {
    fn text(&mut self, statement: &Statement) -> &'static str {
        if self.writer.in_transaction {
            statement.alone
        } else {
            self.writer.in_transaction = true;
            statement.first
        }
    }
}

/// A batch's reads in one round trip: three statements, their rows told apart by their
/// number of columns (2, 6, 10).
const READ_ALL: Statement = statement!(
    "SELECT state, entry_seq FROM accounts WHERE id IN (SELECT value FROM json_each(?));
     SELECT account_id, label, digest, status, body, at FROM idempotency_keys
     WHERE label IN (SELECT value FROM json_each(?));
     SELECT order_id, account_id, credits, bucket_id, paid_at, paid_at_requested,
            expires_at, amount_minor, currency, recorded_at
     FROM purchases WHERE order_id IN (SELECT value FROM json_each(?))"
);

/// Rows per INSERT statement: far below SQLite's limit on bound parameters.
const ROWS_PER_INSERT: usize = 1_000;

#[async_trait]
impl WriteTransaction for SqliteWrite {
    async fn read(
        &mut self,
        ids: &[AccountId],
        keys: &[IdempotencyKey],
        orders: &[OrderId],
    ) -> Result<BatchReads, StoreError> {
        let ids: Vec<&str> = ids.iter().map(AccountId::as_str).collect();
        let labels: Vec<String> = keys.iter().map(key_label).collect();
        let orders: Vec<&str> = orders.iter().map(OrderId::as_str).collect();
        let sql = self.text(&READ_ALL);
        let rows = sqlx::query(sql)
            .bind(to_json(&ids)?)
            .bind(to_json(&labels)?)
            .bind(to_json(&orders)?)
            .fetch_all(&mut self.writer.connection)
            .await?;
        let mut reads = BatchReads::default();
        for row in &rows {
            match row.columns().len() {
                2 => {
                    let stored = stored_account(row)?;
                    let due = stored.account.next_effect_at().map(to_db);
                    self.loaded.insert(stored.account.id().clone(), due);
                    reads.accounts.push(stored);
                }
                6 => reads.idempotency.push(idempotency_record(row)?),
                _ => reads.purchases.push(purchase_record(row)?),
            }
        }
        Ok(reads)
    }

    async fn commit(mut self: Box<Self>, changes: &Changes) -> Result<(), StoreError> {
        let written: HashSet<&str> = changes
            .accounts
            .iter()
            .map(|stored| stored.account.id().as_str())
            .collect();
        let mut history: Vec<HistoryRow<'_>> = Vec::with_capacity(
            changes
                .entries
                .len()
                .saturating_add(changes.settled_holds.len()),
        );
        for (account, stored) in &changes.entries {
            let e = &stored.entry;
            history.push(HistoryRow {
                account: account.as_str(),
                kind: "entry",
                number: i64::try_from(stored.seq).map_err(corrupt)?,
                at: to_db(e.at),
                label: e.entry_type.as_str(),
                data: serde_json::to_string(e).map_err(corrupt)?,
            });
        }
        for (account, hold) in &changes.settled_holds {
            let settled = hold
                .settlement()
                .ok_or_else(|| corrupt(format!("hold {} stored unsettled", hold.id())))?;
            history.push(HistoryRow {
                account: account.as_str(),
                kind: "hold",
                number: i64::try_from(hold.id().get()).map_err(corrupt)?,
                at: to_db(settled.at),
                label: hold.status().as_str(),
                data: serde_json::to_string(hold).map_err(corrupt)?,
            });
        }
        let keys: Vec<KeyRow<'_>> = changes
            .idempotency
            .iter()
            .map(|record| KeyRow {
                account: record_account(record, &written),
                status: i64::from(record.status),
                at: to_db(record.created_at),
                label: key_label(&record.key),
                digest: &record.fingerprint,
                body: &record.body,
            })
            .collect();
        let mut states: Vec<StateRow<'_>> = Vec::with_capacity(changes.accounts.len());
        let mut due_gone: Vec<(i64, &str)> = Vec::new();
        let mut due_new: Vec<(i64, &str)> = Vec::new();
        for stored in &changes.accounts {
            let account = &stored.account;
            debug_assert!(
                account.check_invariants().is_ok(),
                "storing a broken account"
            );
            let id = account.id().as_str();
            states.push(StateRow {
                id,
                entry_seq: i64::try_from(stored.entry_seq).map_err(corrupt)?,
                state: serde_json::to_string(account).map_err(corrupt)?,
            });
            let before = self.loaded.get(account.id()).copied().flatten();
            let after = account.next_effect_at().map(to_db);
            if before != after {
                due_gone.extend(before.map(|at| (at, id)));
                due_new.extend(after.map(|at| (at, id)));
            }
        }

        let distributions: Vec<(&str, u32, u32, i64)> = changes
            .distributions
            .iter()
            .map(|(account, d)| (account.as_str(), d.schedule, d.index, to_db(d.at)))
            .collect();
        let purchases: Vec<PurchaseRow> = changes.purchases.iter().map(PurchaseRow::new).collect();
        let revoked: Vec<(&str, i64)> = changes
            .revoked_api_keys
            .iter()
            .map(|(id, at)| (id.as_str(), to_db(*at)))
            .collect();
        // One text, one round trip: the batch's rows as bound values (no JSON for SQLite
        // to parse), the rare changes only when there are any, then COMMIT. Its
        // parameters are anonymous and bound in order across its statements; its
        // shape follows the batch, so it is prepared each time, not cached.
        let begin = if self.writer.in_transaction {
            ""
        } else {
            "BEGIN IMMEDIATE;\n"
        };
        self.writer.in_transaction = true;
        let mut sql = QueryBuilder::<Sqlite>::new(begin);
        for chunk in states.chunks(ROWS_PER_INSERT) {
            sql.push("INSERT INTO accounts (id, entry_seq, state) ");
            sql.push_values(chunk, |mut row, s| {
                row.push_bind(s.id)
                    .push_bind(s.entry_seq)
                    .push_bind(s.state.as_str());
            });
            sql.push(
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state, entry_seq = excluded.entry_seq;\n",
            );
        }
        for chunk in history.chunks(ROWS_PER_INSERT) {
            sql.push("INSERT INTO history (account_id, kind, number, at, label, data) ");
            sql.push_values(chunk, |mut row, h| {
                row.push_bind(h.account)
                    .push_bind(h.kind)
                    .push_bind(h.number)
                    .push_bind(h.at)
                    .push_bind(h.label)
                    .push_bind(h.data.as_str());
            });
            sql.push(";\n");
        }
        for chunk in keys.chunks(ROWS_PER_INSERT) {
            sql.push("INSERT INTO idempotency_keys (account_id, status, at, label, digest, body) ");
            sql.push_values(chunk, |mut row, k| {
                row.push_bind(k.account)
                    .push_bind(k.status)
                    .push_bind(k.at)
                    .push_bind(k.label.as_str())
                    .push_bind(k.digest)
                    .push_bind(k.body);
            });
            sql.push(";\n");
        }
        for chunk in changes.new_api_keys.chunks(ROWS_PER_INSERT) {
            sql.push("INSERT INTO api_keys (id, name, role, secret_hash, created_at) ");
            sql.push_values(chunk, |mut row, k| {
                row.push_bind(k.id.as_str())
                    .push_bind(k.name.as_str())
                    .push_bind(k.role.as_str())
                    .push_bind(&k.secret_hash[..])
                    .push_bind(to_db(k.created_at));
            });
            sql.push(";\n");
        }
        let rare = [
            (!due_gone.is_empty(), DELETE_DUE, to_json(&due_gone)?),
            (!due_new.is_empty(), INSERT_DUE, to_json(&due_new)?),
            (
                !distributions.is_empty(),
                INSERT_DISTRIBUTIONS,
                to_json(&distributions)?,
            ),
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
                let (head, tail) = statement.split_once('?').unwrap_or((statement, ""));
                sql.push(head).push_bind(rows).push(tail).push(";\n");
            }
        }
        sql.push("COMMIT;");
        sql.build()
            .persistent(false)
            .execute(&mut self.writer.connection)
            .await?;
        self.writer.in_transaction = false;
        Ok(())
    }
}

/// An account's row.
struct StateRow<'a> {
    id: &'a str,
    entry_seq: i64,
    /// The core's state as JSON.
    state: String,
}

/// A ledger entry or settled hold.
struct HistoryRow<'a> {
    account: &'a str,
    kind: &'static str,
    number: i64,
    at: i64,
    label: &'static str,
    /// The core's entry or hold as JSON.
    data: String,
}

/// An idempotency record.
struct KeyRow<'a> {
    account: &'a str,
    status: i64,
    at: i64,
    label: String,
    digest: &'a str,
    body: &'a str,
}

/// The rare writes of a batch, each taking its rows as a JSON array at its one `?`.
const DELETE_DUE: &str = "DELETE FROM account_due
     WHERE (next_effect_at, account_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))";
const INSERT_DUE: &str = "INSERT INTO account_due (next_effect_at, account_id)
     SELECT value ->> 0, value ->> 1 FROM json_each(?)";
const INSERT_DISTRIBUTIONS: &str = "INSERT INTO distributions (account_id, schedule, idx, at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)";
const INSERT_PURCHASES: &str = "INSERT INTO purchases (order_id, account_id, credits, bucket_id,
         paid_at, paid_at_requested, expires_at, amount_minor, currency, recorded_at)
     SELECT value ->> '$.o', value ->> '$.a', value ->> '$.c', value ->> '$.b',
            value ->> '$.p', value ->> '$.pr', value ->> '$.e', value ->> '$.am',
            value ->> '$.cu', value ->> '$.r'
     FROM json_each(?)";
const REVOKE_API_KEYS: &str = "UPDATE api_keys SET revoked_at = r.value ->> 1
     FROM json_each(?) AS r
     WHERE api_keys.id = r.value ->> 0 AND api_keys.revoked_at IS NULL";
const INSERT_SETTINGS: &str = "INSERT INTO settings (name, value)
     SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true
     ON CONFLICT (name) DO NOTHING";

#[derive(Serialize)]
struct PurchaseRow<'a> {
    o: &'a str,
    a: &'a str,
    c: u64,
    b: u64,
    p: i64,
    pr: Option<i64>,
    e: i64,
    am: Option<u64>,
    cu: Option<&'a str>,
    r: i64,
}

impl<'a> PurchaseRow<'a> {
    fn new(p: &'a PurchaseRecord) -> Self {
        PurchaseRow {
            o: p.order_id.as_str(),
            a: p.account_id.as_str(),
            c: p.credits,
            b: p.bucket_id.get(),
            p: to_db(p.paid_at),
            pr: p.paid_at_requested.map(to_db),
            e: to_db(p.expires_at),
            am: p.paid.as_ref().map(|paid| paid.amount_minor),
            cu: p.paid.as_ref().map(|paid| paid.currency.as_str()),
            r: to_db(p.recorded_at),
        }
    }
}
