//! creditd's storage: what the ledger core decided, kept durably.
//!
//! One interface, [`Store`], with an implementation per database: [`SqliteStore`], the
//! embedded default, and [`PostgresStore`], for several nodes on one database. The store decides nothing: it saves account
//! states, ledger entries, settled holds and the records that make requests exactly-once
//! (idempotency keys, order ids, distributions), and reads them back.
//!
//! Writes happen in batches: the server's single writer opens one
//! [`WriteTransaction`], reads (and locks) the accounts its batch touches with the
//! idempotency and purchase records it must check, runs the commands through the ledger core and commits
//! all their [`Changes`] at once. The commit returns only once the batch is on disk.
//!
//! Every account state read back is checked with `Account::check_invariants`: a state
//! the rules could not have produced is reported as [`StoreError::Corrupt`], never used.

mod answers;
mod audit;
mod columns;
mod events;
mod instant;
mod packed;
mod postgres;
mod records;
mod sqlite;
mod window;

use async_trait::async_trait;
use creditd_ledger::{AccountId, AccountIdPrefix, HoldId, HoldStatus, LedgerQuery, OrderId};
use jiff::Timestamp;

pub use columns::ACCOUNT_ID_END;
pub use events::DELIVERY_LEASE_SECONDS;
pub use postgres::PostgresStore;
pub use records::{
    ApiKeyRecord, AttemptRecord, AuditRecord, BatchReads, Changes, ClaimedDelivery, ConsoleSession,
    DeliveryState, EventDelivery, EventFilter, EventRecord, IdempotencyKey, IdempotencyRecord,
    PurchasePosition, PurchaseRecord, Redelivery, StoredAccount, StoredAudit, StoredEntry,
    StoredEvent, WebhookEndpoint, entry_number,
};
pub use sqlite::SqliteStore;

/// Why the store could not do what was asked. None of these is the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The SQLite writer connection failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A row the store wrote reads back as something the rules cannot produce.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A SQLite database is open in another store, in this process or another (one
    /// creditd process writes a SQLite file; admin commands go through its API).
    #[error("{0} is open in another creditd process: stop it first, or go through its API")]
    InUse(String),
    /// The lock that keeps a SQLite database to one process could not be taken.
    #[error("the database lock: {0}")]
    Lock(String),
    /// The store was closed and writes nothing more.
    #[error("the store is closed")]
    Closed,
    /// A commit handed over before this one failed, and this one was built on what it
    /// would have written: nothing of it was written ([`WriteTransaction::hand_off`]).
    #[error("an earlier commit this one was built on failed; nothing of it was written")]
    Aborted,
    /// No database at a path that was to be opened, not created.
    #[error("there is no SQLite database at {0}")]
    NoDatabase(String),
    /// The database URL names no backend this build has.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

/// The storage interface: reads for the views, and batched write transactions; events
/// and their webhook deliveries are its [`EventStore`] part.
#[async_trait]
pub trait Store: EventStore + Send + Sync + 'static {
    /// Opens a write transaction. Writers are serialized: on one database at most one
    /// transaction writes a given account at a time.
    async fn begin(&self) -> Result<Box<dyn WriteTransaction>, StoreError>;

    /// How many write transactions may be open at once: one, unless the database itself
    /// serializes the accounts, idempotency keys and order ids that transactions share.
    fn concurrent_transactions(&self) -> usize {
        1
    }

    /// One account as last committed.
    async fn account(&self, id: &AccountId) -> Result<Option<StoredAccount>, StoreError>;

    /// A page of an account's ledger, newest first; when `before` is given, the entries
    /// kept before that position (the `position` of the last row of the previous page).
    async fn ledger_page(
        &self,
        id: &AccountId,
        query: &LedgerQuery,
        before: Option<u64>,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// A hold that is no longer pending.
    async fn settled_hold(
        &self,
        id: &AccountId,
        hold: HoldId,
    ) -> Result<Option<creditd_ledger::Hold>, StoreError>;

    /// An account's settled holds, newest (highest id) first: those with an id below
    /// `before` if given, only of `status` if given, at most `limit`.
    async fn settled_holds_page(
        &self,
        id: &AccountId,
        status: Option<HoldStatus>,
        before: Option<HoldId>,
        limit: u32,
    ) -> Result<Vec<creditd_ledger::Hold>, StoreError>;

    /// An account's purchases, newest recorded first (ties: order id, descending);
    /// those before `before` (the last row of the previous page) if given, at most
    /// `limit`.
    async fn purchases_page(
        &self,
        id: &AccountId,
        before: Option<&PurchasePosition>,
        limit: u32,
    ) -> Result<Vec<PurchaseRecord>, StoreError>;

    /// Accounts whose id starts with `prefix`, in id order (bytewise), those after
    /// `after` if given, at most `limit`.
    async fn accounts_page(
        &self,
        prefix: &AccountIdPrefix,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<StoredAccount>, StoreError>;

    /// The audit trail, newest first: of one account if given, numbered below `before` if
    /// given, at most `limit`.
    async fn audit_page(
        &self,
        account: Option<&AccountId>,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredAudit>, StoreError>;

    /// When the account's tokens were last revoked, if ever: tokens issued then or
    /// before do not work.
    async fn tokens_revoked_at(&self, account: &AccountId)
    -> Result<Option<Timestamp>, StoreError>;

    /// A console session by id (the SHA-256 of its secret), ended or not.
    async fn console_session(&self, id: &str) -> Result<Option<ConsoleSession>, StoreError>;

    /// The purchases recorded under any of `orders`, in no particular order: a
    /// reconciliation's batch of rows, looked up at once.
    async fn purchases(&self, orders: &[OrderId]) -> Result<Vec<PurchaseRecord>, StoreError>;

    /// The purchase recorded under an order id.
    async fn purchase(&self, order: &OrderId) -> Result<Option<PurchaseRecord>, StoreError>;

    /// Accounts with a time-based effect due at or before `now`, at most `limit`, the
    /// longest due first, each with when its effect was due.
    async fn due_accounts(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(AccountId, Timestamp)>, StoreError>;

    /// One API key by id, revoked or not.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Every API key, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// A service-wide setting.
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Whether this process should run the background jobs now: one node at a time of
    /// those sharing a database (the others would only repeat its work). A single
    /// process's own database: always.
    async fn leads_jobs(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Forgets idempotency records created before `before`; returns how many.
    async fn purge_idempotency(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Waits for readers and the writer to finish and closes the database.
    async fn close(&self);
}

/// Events and webhook deliveries (SPEC §9). Events are written by a batch's commit
/// ([`Changes::events`]), in the same transaction as their effect; these are their
/// reads, and the delivery tables, which the webhook worker writes in transactions of
/// their own.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Events after position `after` (from the first kept if `None`) in the order they
    /// were committed, at most `limit`, only those `filter` lets through. A consumer that
    /// pages on from the last position it saw misses none: no event is ever committed
    /// behind one already visible.
    async fn events_page(
        &self,
        after: Option<u64>,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// One event, by its account and number.
    async fn event(
        &self,
        account: &AccountId,
        sequence: u64,
    ) -> Result<Option<StoredEvent>, StoreError>;

    /// An account's events numbered below `before` (from the newest if `None`), newest
    /// first, at most `limit`.
    async fn account_events(
        &self,
        account: &AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// An event's deliveries, one per endpoint it was handed to.
    async fn event_deliveries(
        &self,
        account: &AccountId,
        sequence: u64,
    ) -> Result<Vec<EventDelivery>, StoreError>;

    /// Forgets events recorded before `before`, with their deliveries and attempts;
    /// returns how many events.
    async fn purge_events(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// The webhook endpoints not deleted, oldest first.
    async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// One webhook endpoint, deleted or not.
    async fn webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Hands up to `limit` events not yet handed out to the endpoints that receive them:
    /// a delivery each, due at `now`. Returns how many events it handed out; the jobs'
    /// node calls it until that is 0.
    async fn dispatch_events(&self, now: Timestamp, limit: u32) -> Result<u32, StoreError>;

    /// Claims up to `limit` deliveries to `endpoint_id` due by `now` (the service clock) that no node
    /// holds: each is held by `holder` until `lease_until` (the wall clock, in
    /// microseconds since the epoch), then may be claimed again, so a node that dies
    /// mid-delivery loses nothing. Deliveries of deleted endpoints are never claimed.
    async fn claim_deliveries(
        &self,
        endpoint_id: &str,
        now: Timestamp,
        holder: &str,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records attempts made by `holder` and what became of each delivery.
    async fn record_attempts(
        &self,
        holder: &str,
        attempts: &[AttemptRecord],
    ) -> Result<(), StoreError>;

    /// An endpoint's attempts, newest first; before `before` (an attempt's `number`)
    /// if given.
    async fn attempts_page(
        &self,
        endpoint_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AttemptRecord>, StoreError>;

    /// When the oldest event not yet delivered to every endpoint that receives it was
    /// recorded (handed out or not); `None` when there is none.
    async fn oldest_undelivered(&self) -> Result<Option<Timestamp>, StoreError>;
}

/// One write transaction: lock, read, then commit everything at once.
#[async_trait]
pub trait WriteTransaction: Send {
    /// Reads what a batch needs, in one go: the accounts of `ids` that exist (kept from
    /// changing under this transaction until it ends), the idempotency records stored
    /// under `keys` (whatever their account) and the purchases recorded under `orders`.
    async fn read(
        &mut self,
        ids: &[AccountId],
        keys: &[IdempotencyKey],
        orders: &[OrderId],
    ) -> Result<BatchReads, StoreError>;

    /// Writes every change and commits; returns once the transaction is durable. The
    /// accounts it writes are ones this transaction read (and so locked).
    async fn commit(self: Box<Self>, changes: &Changes) -> Result<(), StoreError> {
        self.hand_off(changes).await?.await
    }

    /// Hands every change over to be committed and returns as soon as the next
    /// transaction may begin; the [`Durable`] answers once the commit is durable. The
    /// next transaction reads what this one writes, so should this commit fail, every
    /// commit handed over after it fails too ([`StoreError::Aborted`]), until a
    /// transaction begins anew from what the database holds. A store that commits in
    /// place answers an outcome already known.
    async fn hand_off(self: Box<Self>, changes: &Changes) -> Result<Durable, StoreError>;
}

/// A commit on its way ([`WriteTransaction::hand_off`]).
pub type Durable =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

/// Opens the store a URL names (`sqlite://PATH`, creating the file if needed, or
/// `postgres://…`) and runs its migrations.
pub async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    open_with(url, true).await
}

/// As [`open`], but a SQLite file that does not exist is refused
/// ([`StoreError::NoDatabase`]) instead of created: for commands where a mistyped path
/// should not make a new, empty database.
pub async fn open_existing(url: &str) -> Result<Box<dyn Store>, StoreError> {
    open_with(url, false).await
}

async fn open_with(url: &str, create: bool) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(url, create).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redacted(url)))
    }
}

/// `options` without sqlx's statement logs: a batch is one SQL text that grows with
/// the batch (megabytes after a long catch-up), and sqlx would log it whole when it is
/// slow. The server's writer logs slow commits itself, in one short line.
fn quiet<O: sqlx::ConnectOptions>(options: O) -> O {
    options
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Off, std::time::Duration::from_secs(1))
}

/// `url` with its password, if it has one, shown as `***`: for logs and messages. A
/// text that is no URL is not shown at all (it might hold a password nobody could find).
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only a URL that cannot have a password refuses one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(a database URL that does not parse)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        assert_eq!(
            redacted("postgres://creditd:s3cr@t@db:5432/credits"),
            "postgres://creditd:***@db:5432/credits"
        );
        assert_eq!(
            redacted("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redacted("sqlite://creditd.db"), "sqlite://creditd.db");
        assert_eq!(
            redacted("not a url: pass@word"),
            "(a database URL that does not parse)"
        );
    }
}
