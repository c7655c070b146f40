//! PostgreSQL, for several creditd nodes on one database.
//!
//! Each node keeps its own writer and group commit (a few batches in their transactions
//! at once); the database serializes the batches, of one node or several. A write transaction first takes a transaction-scoped advisory lock for each
//! account, idempotency key and order id its batch touches, in one sorted order (so two
//! nodes never wait on each other in a cycle), and only then reads them. A lock works
//! for an account that does not exist yet, which a row lock could not; whatever another
//! node committed before the lock was granted is what the batch reads, so each account
//! changes in one order and each key or order id is recorded once across the nodes.
//!
//! A commit returns once PostgreSQL has flushed it (`synchronous_commit` on, its
//! default). Rows go in as arrays (`unnest`): a batch's usual rows in one statement.

mod events;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use creditd_ledger::{AccountId, AccountIdPrefix, Hold, HoldId, HoldStatus, LedgerQuery, OrderId};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Row, Transaction};

use crate::audit::{
    AUDIT_COLUMNS, CONSOLE_SESSION, REVOKE_TOKENS, TOKENS_REVOKED_AT, UPSERT_CONSOLE_SESSION,
    console_session, stored_audit,
};
use crate::columns::{
    HistoryRow, NEWEST, api_key, corrupt, due_account, due_changes, encode, history_rows,
    hold_number, idempotency_record, key_label, ledger_page_sql, purchase_record, purchases_before,
    rare_entries, record_account, settled_hold, sql, stored_account, stored_entry, written,
};
use crate::instant::to_db;
use crate::window::window_numbers;
use crate::{
    ACCOUNT_ID_END, ApiKeyRecord, BatchReads, Changes, ConsoleSession, Durable, IdempotencyKey,
    PurchasePosition, PurchaseRecord, Store, StoreError, StoredAccount, StoredAudit, StoredEntry,
    WriteTransaction,
};

/// Write transactions a node may have open at once (the locks keep each account in
/// order); the rest of its connections serve reads.
const WRITE_TRANSACTIONS: usize = 10;
/// Connections per node.
const CONNECTIONS: u32 = 12;
/// How long a node waits for a connection before the request fails (503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The session lock held by the node that runs the background jobs: the two-key form
/// of advisory locks, whose keys never meet the one-key locks of write transactions.
const JOBS_LOCK: (i32, i32) = (0x6372_6564, 1);

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// A session of its own that holds, or keeps trying for, [`JOBS_LOCK`].
    jobs: Arc<tokio::sync::Mutex<Option<JobsSession>>>,
}

#[derive(Debug)]
struct JobsSession {
    connection: PgConnection,
    holds_lock: bool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://…`) and runs its migrations
    /// (nodes starting together wait for each other: sqlx holds a lock while migrating).
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(crate::quiet(PgConnectOptions::from_str(url)?))
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStore {
            pool,
            jobs: Arc::default(),
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn concurrent_transactions(&self) -> usize {
        WRITE_TRANSACTIONS
    }

    async fn begin(&self) -> Result<Box<dyn WriteTransaction>, StoreError> {
        Ok(Box::new(PostgresWrite {
            pool: self.pool.clone(),
            tx: None,
            loaded: HashMap::new(),
        }))
    }

    async fn account(&self, id: &AccountId) -> Result<Option<StoredAccount>, StoreError> {
        let row = sqlx::query(sql::ACCOUNT)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| stored_account::<_, &[u8]>(&row)).transpose()
    }

    async fn ledger_page(
        &self,
        id: &AccountId,
        query: &LedgerQuery,
        before: Option<u64>,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        // A number past every stored one (a crafted cursor) pages from the newest.
        let before = before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut connection = self.pool.acquire().await?;
        let (from, below) = window_numbers::<Postgres>(&mut connection, id, query, before).await?;
        let sql = ledger_page_sql(query, LEDGER_PAGE, LEDGER_PAGE_OF_RARE_TYPE);
        let rows = sqlx::query(sql)
            .bind(id.as_str())
            .bind(below)
            .bind(query.entry_type().map(|t| t.as_str()))
            .bind(from)
            .bind(i64::from(query.limit()))
            .fetch_all(&mut *connection)
            .await?;
        rows.iter().map(stored_entry::<_, &[u8]>).collect()
    }

    async fn settled_holds_page(
        &self,
        id: &AccountId,
        status: Option<HoldStatus>,
        before: Option<HoldId>,
        limit: u32,
    ) -> Result<Vec<Hold>, StoreError> {
        let rows = sqlx::query(
            "SELECT data, format FROM history
             WHERE account_id = $1 AND kind = 'hold' AND number < $2
               AND ($3::text IS NULL OR label = $3)
             ORDER BY number DESC LIMIT $4",
        )
        .bind(id.as_str())
        .bind(hold_number(before))
        .bind(status.map(<&str>::from))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(settled_hold::<_, &[u8]>).collect()
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
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(purchase_record).collect()
    }

    async fn accounts_page(
        &self,
        prefix: &AccountIdPrefix,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<StoredAccount>, StoreError> {
        // Bytewise order: the key's collation is "C" (migration 0014).
        let rows = sqlx::query(
            "SELECT state, entry_seq, format FROM accounts
             WHERE id >= $1 AND id < $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(prefix.as_str())
        .bind(format!("{}{ACCOUNT_ID_END}", prefix.as_str()))
        .bind(after.map_or("", AccountId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_account::<_, &[u8]>).collect()
    }

    async fn audit_page(
        &self,
        account: Option<&AccountId>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredAudit>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit
             WHERE ($1::text IS NULL OR account_id = $1) AND id < $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(account.map(AccountId::as_str))
        .bind(before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_audit).collect()
    }

    async fn tokens_revoked_at(
        &self,
        account: &AccountId,
    ) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(TOKENS_REVOKED_AT)
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await?;
        at.map(crate::instant::from_db).transpose()
    }

    async fn console_session(&self, id: &str) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(CONSOLE_SESSION)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| console_session(&row)).transpose()
    }

    async fn purchases(&self, orders: &[OrderId]) -> Result<Vec<PurchaseRecord>, StoreError> {
        let ids: Vec<&str> = orders.iter().map(OrderId::as_str).collect();
        let rows = sqlx::query(
            "SELECT order_id, account_id, credits, bucket_id, paid_at, paid_at_requested,
                    expires_at, amount_minor, currency, recorded_at
             FROM purchases WHERE order_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(purchase_record).collect()
    }

    async fn purchase(&self, order: &OrderId) -> Result<Option<PurchaseRecord>, StoreError> {
        let row = sqlx::query(sql::PURCHASE)
            .bind(order.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| purchase_record(&row)).transpose()
    }

    async fn settled_hold(&self, id: &AccountId, hold: HoldId) -> Result<Option<Hold>, StoreError> {
        let row = sqlx::query(sql::SETTLED_HOLD)
            .bind(id.as_str())
            .bind(i64::try_from(hold.get()).map_err(corrupt)?)
            .fetch_optional(&self.pool)
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
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(due_account).collect()
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(sql::API_KEY)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| api_key(&row)).transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(sql::API_KEYS).fetch_all(&self.pool).await?;
        rows.iter().map(api_key).collect()
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(sql::SETTING)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(Into::into)
    }

    async fn purge_idempotency(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PURGE_IDEMPOTENCY)
            .bind(to_db(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The node whose session holds [`JOBS_LOCK`] leads; when that session ends (the
    /// node stops or its connection fails), PostgreSQL releases the lock and the next
    /// node to try takes it.
    async fn leads_jobs(&self) -> Result<bool, StoreError> {
        let mut jobs = self.jobs.lock().await;
        let mut session = match jobs.take() {
            Some(session) => session,
            None => JobsSession {
                connection: PgConnection::connect_with(&self.pool.connect_options()).await?,
                holds_lock: false,
            },
        };
        let leads = if session.holds_lock {
            // Still held while its session lives.
            sqlx::query("SELECT 1")
                .execute(&mut session.connection)
                .await
                .map(|_| true)
        } else {
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                .bind(JOBS_LOCK.0)
                .bind(JOBS_LOCK.1)
                .fetch_one(&mut session.connection)
                .await
        }?;
        session.holds_lock = leads;
        *jobs = Some(session);
        Ok(leads)
    }

    async fn close(&self) {
        if let Some(session) = self.jobs.lock().await.take() {
            // Ending the session hands the jobs to another node at once.
            let _ = session.connection.close().await;
        }
        self.pool.close().await;
    }
}

/// A write transaction: advisory locks, reads, then every write and `COMMIT`.
struct PostgresWrite {
    pool: PgPool,
    /// Begun by the reads, together with their locks (one round trip), or by the commit.
    tx: Option<Transaction<'static, Postgres>>,
    /// The accounts read, with when their next effect was due (as `account_due` has it).
    loaded: HashMap<AccountId, Option<i64>>,
}

/// A page of an account's ledger, newest first, numbered from `$4` and below `$2` (the
/// cursor and the time window, [`window_numbers`]), filtered by `$3` (type, as `$label`
/// says) where not null; `$rows` says which rows the page is read from.
macro_rules! ledger_page {
    ($rows:expr, $label:expr) => {
        concat!(
            "SELECT number, data, format FROM history
             WHERE account_id = $1 AND ",
            $rows,
            " AND number >= $4 AND number < $2 AND ",
            $label,
            " ORDER BY number DESC LIMIT $5"
        )
    };
}

/// Any page of the ledger, through `history_numbers`.
const LEDGER_PAGE: &str = ledger_page!("kind = 'entry'", "($3::text IS NULL OR label = $3)");
/// A page of one rarer type, through `history_rare_entries` ([`ledger_page_sql`]).
const LEDGER_PAGE_OF_RARE_TYPE: &str = ledger_page!(rare_entries!(), "label = $3");

/// Every usual row of a batch: account states (updated where the transaction read the
/// account, inserted where it is new), due times (deleted where none is due any more,
/// set where one is), ledger entries and settled holds, idempotency records,
/// distributions.
///
/// An account read under its lock exists, so it is updated in place: an
/// `INSERT … ON CONFLICT DO UPDATE` would first probe the key, find it taken, and lock
/// the row (a WAL record of its own) before updating it.
const WRITE_BATCH: &str = "WITH
    changed AS (
        UPDATE accounts SET state = s.state, entry_seq = s.entry_seq, format = $23::int8
        FROM unnest($24::text[], $25::int8[], $26::bytea[]) AS s (id, entry_seq, state)
        WHERE accounts.id = s.id),
    states AS (
        INSERT INTO accounts (id, entry_seq, state, format)
        SELECT *, $23::int8 FROM unnest($1::text[], $2::int8[], $3::bytea[])
        ON CONFLICT (id) DO UPDATE SET
            state = excluded.state, entry_seq = excluded.entry_seq, format = excluded.format),
    due_gone AS (
        DELETE FROM account_due WHERE account_id = ANY($4::text[])),
    due_set AS (
        INSERT INTO account_due (account_id, next_effect_at)
        SELECT * FROM unnest($5::text[], $6::int8[])
        ON CONFLICT (account_id) DO UPDATE SET next_effect_at = excluded.next_effect_at),
    entries AS (
        INSERT INTO history (account_id, kind, number, at, label, data, format)
        SELECT *, $23::int8 FROM unnest($7::text[], $8::text[], $9::int8[], $10::int8[],
                                        $11::text[], $12::bytea[])),
    keys AS (
        INSERT INTO idempotency_keys (label, account_id, digest, status, body, at)
        SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::int8[], $17::text[],
                             $18::int8[])),
    made AS (
        INSERT INTO distributions (account_id, schedule, idx, at)
        SELECT * FROM unnest($19::text[], $20::int8[], $21::int8[], $22::int8[]))
    SELECT 1";

/// Ledger entries and settled holds, a column each, for `unnest`.
struct HistoryColumns<'a> {
    accounts: Vec<&'a str>,
    kinds: Vec<&'static str>,
    numbers: Vec<i64>,
    ats: Vec<i64>,
    labels: Vec<&'static str>,
    data: Vec<Vec<u8>>,
}

impl<'a> HistoryColumns<'a> {
    fn with_capacity(rows: usize) -> HistoryColumns<'a> {
        HistoryColumns {
            accounts: Vec::with_capacity(rows),
            kinds: Vec::with_capacity(rows),
            numbers: Vec::with_capacity(rows),
            ats: Vec::with_capacity(rows),
            labels: Vec::with_capacity(rows),
            data: Vec::with_capacity(rows),
        }
    }

    fn push(&mut self, row: HistoryRow<'a>) {
        self.accounts.push(row.account);
        self.kinds.push(row.kind);
        self.numbers.push(row.number);
        self.ats.push(row.at);
        self.labels.push(row.label);
        self.data.push(row.data);
    }
}

/// The rare changes of a batch, a statement per row: purchases, API keys, revocations,
/// settings.
async fn write_rare(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    changes: &Changes,
) -> Result<(), StoreError> {
    for p in &changes.purchases {
        sqlx::query(
            "INSERT INTO purchases (order_id, account_id, credits, bucket_id, paid_at,
                     paid_at_requested, expires_at, amount_minor, currency, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(p.order_id.as_str())
        .bind(p.account_id.as_str())
        .bind(i64::try_from(p.credits).map_err(corrupt)?)
        .bind(i64::try_from(p.bucket_id.get()).map_err(corrupt)?)
        .bind(to_db(p.paid_at))
        .bind(p.paid_at_requested.map(to_db))
        .bind(to_db(p.expires_at))
        .bind(
            p.paid
                .as_ref()
                .map(|paid| i64::try_from(paid.amount_minor))
                .transpose()
                .map_err(corrupt)?,
        )
        .bind(p.paid.as_ref().map(|paid| paid.currency.as_str()))
        .bind(to_db(p.recorded_at))
        .execute(&mut **tx)
        .await?;
    }

    for k in &changes.new_api_keys {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, secret_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(k.id.as_str())
        .bind(k.name.as_str())
        .bind(k.role.as_str())
        .bind(&k.secret_hash[..])
        .bind(to_db(k.created_at))
        .execute(&mut **tx)
        .await?;
    }

    for (id, at) in &changes.revoked_api_keys {
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id.as_str())
            .bind(to_db(*at))
            .execute(&mut **tx)
            .await?;
    }

    for (name, value) in &changes.settings {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.as_str())
        .bind(value.as_str())
        .execute(&mut **tx)
        .await?;
    }

    Ok(())
}

/// Account states, a column each, for `unnest`.
#[derive(Default)]
struct StateColumns<'a> {
    ids: Vec<&'a str>,
    seqs: Vec<i64>,
    states: Vec<Vec<u8>>,
}

/// A batch's usual rows as the columns `WRITE_BATCH` takes, one array each.
struct BatchColumns<'a> {
    /// Accounts the transaction did not find: inserted.
    new: StateColumns<'a>,
    /// Accounts it read: updated.
    read: StateColumns<'a>,
    due_gone: Vec<&'a str>,
    due_ids: Vec<&'a str>,
    due_ats: Vec<i64>,
    history: HistoryColumns<'a>,
    labels: Vec<String>,
    key_accounts: Vec<&'a str>,
    digests: Vec<&'a str>,
    statuses: Vec<i64>,
    bodies: Vec<&'a str>,
    key_ats: Vec<i64>,
    d_accounts: Vec<&'a str>,
    d_schedules: Vec<i64>,
    d_indexes: Vec<i64>,
    d_ats: Vec<i64>,
}

impl<'a> BatchColumns<'a> {
    /// The columns of `changes`; `loaded` has when each account's next effect was due as
    /// the transaction read it.
    fn of(
        changes: &'a Changes,
        loaded: &HashMap<AccountId, Option<i64>>,
    ) -> Result<BatchColumns<'a>, StoreError> {
        let written = written(changes);
        let mut new = StateColumns::default();
        let mut read = StateColumns::default();
        for stored in &changes.accounts {
            let columns = if loaded.contains_key(stored.account.id()) {
                &mut read
            } else {
                &mut new
            };
            columns.ids.push(stored.account.id().as_str());
            columns
                .seqs
                .push(i64::try_from(stored.entry_seq).map_err(corrupt)?);
            columns.states.push(encode(NEWEST, &stored.account)?);
        }
        let mut due_gone = Vec::new();
        let mut due_ids = Vec::new();
        let mut due_ats = Vec::new();
        for change in due_changes(changes, |id| loaded.get(id).copied().flatten()) {
            match change.after {
                Some(at) => {
                    due_ids.push(change.account);
                    due_ats.push(at);
                }
                None => due_gone.push(change.account),
            }
        }
        let mut history = HistoryColumns::with_capacity(
            changes
                .entries
                .len()
                .saturating_add(changes.settled_holds.len()),
        );
        for row in history_rows(changes, NEWEST)? {
            history.push(row);
        }
        let records = &changes.idempotency;
        let d = &changes.distributions;
        Ok(BatchColumns {
            new,
            read,
            due_gone,
            due_ids,
            due_ats,
            history,
            labels: records.iter().map(|r| key_label(&r.key)).collect(),
            key_accounts: records
                .iter()
                .map(|r| record_account(r, &written))
                .collect(),
            digests: records.iter().map(|r| r.fingerprint.as_str()).collect(),
            statuses: records.iter().map(|r| i64::from(r.status)).collect(),
            bodies: records.iter().map(|r| r.body.as_str()).collect(),
            key_ats: records.iter().map(|r| to_db(r.created_at)).collect(),
            d_accounts: d.iter().map(|(id, _)| id.as_str()).collect(),
            d_schedules: d.iter().map(|(_, x)| i64::from(x.schedule)).collect(),
            d_indexes: d.iter().map(|(_, x)| i64::from(x.index)).collect(),
            d_ats: d.iter().map(|(_, x)| to_db(x.at)).collect(),
        })
    }
}

/// The advisory lock of one thing a batch touches: 64 bits of the SHA-256 of what it is
/// and its id. Two different things that share a lock only wait for each other.
fn lock_key(what: &str, id: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(what)
        .chain_update([0])
        .chain_update(id)
        .finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

#[async_trait]
impl WriteTransaction for PostgresWrite {
    async fn read(
        &mut self,
        ids: &[AccountId],
        keys: &[IdempotencyKey],
        orders: &[OrderId],
    ) -> Result<BatchReads, StoreError> {
        let ids: Vec<&str> = ids.iter().map(AccountId::as_str).collect();
        let labels: Vec<String> = keys.iter().map(key_label).collect();
        let orders: Vec<&str> = orders.iter().map(OrderId::as_str).collect();
        let mut locks: Vec<i64> = ids
            .iter()
            .map(|id| lock_key("account", id))
            .chain(labels.iter().map(|label| lock_key("key", label)))
            .chain(orders.iter().map(|order| lock_key("order", order)))
            .collect();
        locks.sort_unstable();
        locks.dedup();
        // BEGIN and the locks in one round trip: a simple query, so the keys (integers
        // computed here) are written into it. unnest yields the sorted array in order,
        // so the locks are taken in order. The reads come in later statements, so they
        // see whatever was committed before the locks were granted.
        let keys: Vec<String> = locks.iter().map(i64::to_string).collect();
        let begin = format!(
            "BEGIN; SELECT pg_advisory_xact_lock(k) FROM unnest('{{{}}}'::int8[]) AS k",
            keys.join(",")
        );
        let tx = match self.tx.take() {
            Some(mut tx) => {
                // Read again in the same transaction: lock what is new (a lock already
                // held is granted again at once).
                sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k")
                    .bind(&locks)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
            None => self.pool.begin_with(begin).await?,
        };
        let tx = self.tx.insert(tx);
        let mut reads = BatchReads::default();
        if !ids.is_empty() {
            let rows =
                sqlx::query("SELECT state, entry_seq, format FROM accounts WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(&mut **tx)
                    .await?;
            for row in &rows {
                let stored = stored_account::<_, &[u8]>(row)?;
                let due = stored.account.next_effect_at().map(to_db);
                self.loaded.insert(stored.account.id().clone(), due);
                reads.accounts.push(stored);
            }
        }
        if !labels.is_empty() {
            let rows = sqlx::query(
                "SELECT account_id, label, digest, status, body, at FROM idempotency_keys
                 WHERE label = ANY($1)",
            )
            .bind(&labels)
            .fetch_all(&mut **tx)
            .await?;
            for row in &rows {
                reads.idempotency.push(idempotency_record::<_, &str>(row)?);
            }
        }
        if !orders.is_empty() {
            let rows = sqlx::query(
                "SELECT order_id, account_id, credits, bucket_id, paid_at, paid_at_requested,
                        expires_at, amount_minor, currency, recorded_at
                 FROM purchases WHERE order_id = ANY($1)",
            )
            .bind(&orders)
            .fetch_all(&mut **tx)
            .await?;
            for row in &rows {
                reads.purchases.push(purchase_record(row)?);
            }
        }
        Ok(reads)
    }

    /// Commits in place: the next batch reads what this one wrote from the database, so
    /// it is committed before the next begins.
    async fn hand_off(mut self: Box<Self>, changes: &Changes) -> Result<Durable, StoreError> {
        let mut tx = match self.tx.take() {
            Some(tx) => tx,
            None => self.pool.begin().await?,
        };
        let c = BatchColumns::of(changes, &self.loaded)?;
        // The batch's usual rows in one statement, one round trip: each data-modifying
        // WITH runs once, whether or not anything reads it; an empty array writes nothing.
        sqlx::query(WRITE_BATCH)
            .bind(&c.new.ids)
            .bind(&c.new.seqs)
            .bind(&c.new.states)
            .bind(&c.due_gone)
            .bind(&c.due_ids)
            .bind(&c.due_ats)
            .bind(&c.history.accounts)
            .bind(&c.history.kinds)
            .bind(&c.history.numbers)
            .bind(&c.history.ats)
            .bind(&c.history.labels)
            .bind(&c.history.data)
            .bind(&c.labels)
            .bind(&c.key_accounts)
            .bind(&c.digests)
            .bind(&c.statuses)
            .bind(&c.bodies)
            .bind(&c.key_ats)
            .bind(&c.d_accounts)
            .bind(&c.d_schedules)
            .bind(&c.d_indexes)
            .bind(&c.d_ats)
            .bind(NEWEST)
            .bind(&c.read.ids)
            .bind(&c.read.seqs)
            .bind(&c.read.states)
            .execute(&mut *tx)
            .await?;

        write_rare(&mut tx, changes).await?;
        events::write_events(&mut tx, changes).await?;
        write_audit(&mut tx, changes).await?;
        tx.commit().await?;
        Ok(Box::pin(std::future::ready(Ok(()))))
    }
}

/// The console sessions and audit records of a batch, in the batch's transaction.
async fn write_audit(
    tx: &mut Transaction<'static, Postgres>,
    changes: &Changes,
) -> Result<(), StoreError> {
    for (account, at) in &changes.token_revocations {
        sqlx::query(REVOKE_TOKENS)
            .bind(account.as_str())
            .bind(to_db(*at))
            .execute(&mut **tx)
            .await?;
    }
    for s in &changes.console_sessions {
        sqlx::query(UPSERT_CONSOLE_SESSION)
            .bind(&s.id)
            .bind(&s.key_id)
            .bind(&s.csrf)
            .bind(to_db(s.created_at))
            .bind(to_db(s.expires_at))
            .bind(s.ended_at.map(to_db))
            .execute(&mut **tx)
            .await?;
    }
    let a = &changes.audit;
    if a.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit (at, key_id, key_name, via, action, account_id, reason, detail)
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[])",
    )
    .bind(a.iter().map(|a| to_db(a.at)).collect::<Vec<_>>())
    .bind(a.iter().map(|a| a.key_id.as_str()).collect::<Vec<_>>())
    .bind(a.iter().map(|a| a.key_name.as_str()).collect::<Vec<_>>())
    .bind(a.iter().map(|a| a.via.as_str()).collect::<Vec<_>>())
    .bind(a.iter().map(|a| a.action.as_str()).collect::<Vec<_>>())
    .bind(
        a.iter()
            .map(|a| a.account_id.as_ref().map(AccountId::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(a.iter().map(|a| a.reason.as_deref()).collect::<Vec<_>>())
    .bind(a.iter().map(|a| a.detail.as_str()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
