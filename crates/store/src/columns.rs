//! How the store's records sit in columns, the same in every database: instants as
//! integer microseconds, the ledger core's types in a stated format ([`JSON`], [`COMPACT`] …; which
//! the store saves and reads back but never interprets), an idempotency key as one
//! label. Rows read back are decoded and checked here, whichever database they came
//! from, and the rows of `history` are built here for both.

use std::collections::HashSet;
use std::marker::PhantomData;

use creditd_ledger::{
    Account, AccountId, BucketId, Currency, EntryType, Hold, HoldId, LedgerEntry, LedgerQuery,
    OrderId, Payment,
};
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeSeed;
use serde_test::Configure;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::instant::{from_db, to_db};
use crate::{
    ApiKeyRecord, Changes, IdempotencyKey, IdempotencyRecord, PurchasePosition, PurchaseRecord,
    StoreError, StoredAccount, StoredEntry,
};

/// The formats of the ledger core's types in the store: account states, ledger entries
/// and settled holds (and, on SQLite, the backlog's batches of them). Every row that
/// holds one says its format in a `format` column, and [`decode`] reads every format
/// there has been.
///
/// - [`JSON`] (1): the core's serde JSON, pinned by `tests/golden/format-1/`. What
///   the first versions wrote; read still.
/// - [`BINARY`] (2): the same serde data model in postcard (fields in declaration order,
///   integers as varints, enum variants by index, no field names), with instants and
///   the core's named values as their JSON text. Pinned by `tests/golden/format-2/`,
///   which hold the golden format-1 values so encoded. Written as blobs (SQLite) and
///   `bytea` (PostgreSQL, since its migration `0012_binary_states`) until format 3;
///   read still.
/// - [`COMPACT`] (3): format 2 where instants are their integer nanoseconds (9 bytes
///   against 21 to 31 of text) and named values their one-byte place in the core's `ALL`
///   lists, as the core serializes itself where serde says a format is not
///   human-readable. Pinned by `tests/golden/format-3/`. What both databases write:
///   instants were 69% of a stored state's bytes in format 2 (docs/BENCHMARKS.md,
///   "Bytes per change").
///
/// Postcard calls itself not human-readable, so format 2 is read and written through
/// serde_test's `Readable`, which tells the core's types the format is: they then take
/// the text spelling format 2 was written in.
///
/// A change to those types that changes their serde data model (a field added,
/// removed or moved, a variant moved) is a new format: its number here, a decoder for
/// the old ones kept beside it (or a migration that rewrites the rows), and golden
/// files of its own. The formats have no optional fields: postcard cannot skip one, so
/// every field is always written (a JSON reader takes a missing one as its default).
pub const JSON: i64 = 1;
/// See [`JSON`].
pub const BINARY: i64 = 2;
/// See [`JSON`].
pub const COMPACT: i64 = 3;
/// The newest format this version reads, and the one it writes.
pub const NEWEST: i64 = COMPACT;

/// One of the core's types in `format` ([`JSON`], [`BINARY`] or [`COMPACT`]).
pub(crate) fn encode<T: Serialize + ?Sized>(format: i64, value: &T) -> Result<Vec<u8>, StoreError> {
    match format {
        JSON => serde_json::to_vec(value).map_err(corrupt),
        BINARY => postcard::to_stdvec(&value.readable()).map_err(corrupt),
        COMPACT => postcard::to_stdvec(value).map_err(corrupt),
        other => Err(corrupt(format!(
            "format {other} is not one this version writes"
        ))),
    }
}

/// One of the core's types as a row in `format` holds it.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    format: i64,
    data: &[u8],
) -> Result<T, StoreError> {
    match format {
        JSON => serde_json::from_slice(data).map_err(corrupt),
        BINARY => whole(format, data, PhantomData::<T>.readable()),
        COMPACT => whole(format, data, PhantomData::<T>),
        other => Err(StoreError::Corrupt(format!(
            "a row is stored in format {other}; this version reads formats 1 to {NEWEST}: \
             was the database written by a newer creditd?"
        ))),
    }
}

/// The one value `data` holds in postcard, read by `seed`; bytes past it are corrupt.
fn whole<'de, S: DeserializeSeed<'de>>(
    format: i64,
    data: &'de [u8],
    seed: S,
) -> Result<S::Value, StoreError> {
    let mut deserializer = postcard::Deserializer::from_bytes(data);
    let value = seed.deserialize(&mut deserializer).map_err(corrupt)?;
    let rest = deserializer.finalize().map_err(corrupt)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(corrupt(format!(
            "a format {format} row has {} bytes past its value",
            rest.len()
        )))
    }
}

/// A ledger entry or settled hold as `history` keeps it, in both databases.
pub(crate) struct HistoryRow<'a> {
    pub(crate) account: &'a str,
    /// `entry` or `hold`.
    pub(crate) kind: &'static str,
    /// The entry's or hold's number within the account.
    pub(crate) number: i64,
    /// When it happened (for a hold, when it settled).
    pub(crate) at: i64,
    /// The entry's type or the hold's status, for filters.
    pub(crate) label: &'static str,
    /// The core's entry or hold, encoded in the batch's format.
    pub(crate) data: Vec<u8>,
}

/// The `history` rows of a batch's new ledger entries and settled holds, in `format`.
pub(crate) fn history_rows(
    changes: &Changes,
    format: i64,
) -> Result<Vec<HistoryRow<'_>>, StoreError> {
    let mut rows = Vec::with_capacity(
        changes
            .entries
            .len()
            .saturating_add(changes.settled_holds.len()),
    );
    for (account, stored) in &changes.entries {
        rows.push(entry_row(account, stored.seq, &stored.entry, format)?);
    }
    for (account, hold) in &changes.settled_holds {
        rows.push(hold_row(account, hold, format)?);
    }
    Ok(rows)
}

/// The `history` row of a ledger entry.
pub(crate) fn entry_row<'a>(
    account: &'a AccountId,
    seq: u64,
    entry: &LedgerEntry,
    format: i64,
) -> Result<HistoryRow<'a>, StoreError> {
    Ok(HistoryRow {
        account: account.as_str(),
        kind: "entry",
        number: i64::try_from(seq).map_err(corrupt)?,
        at: to_db(entry.at),
        label: entry.entry_type.as_str(),
        data: encode(format, entry)?,
    })
}

/// The `history` row of a settled hold.
pub(crate) fn hold_row<'a>(
    account: &'a AccountId,
    hold: &Hold,
    format: i64,
) -> Result<HistoryRow<'a>, StoreError> {
    let settled = hold
        .settlement()
        .ok_or_else(|| corrupt(format!("hold {} stored unsettled", hold.id())))?;
    Ok(HistoryRow {
        account: account.as_str(),
        kind: "hold",
        number: i64::try_from(hold.id().get()).map_err(corrupt)?,
        at: to_db(settled.at),
        label: hold.status().as_str(),
        data: encode(format, hold)?,
    })
}

/// An account whose next time effect moved: `account_due` must follow.
pub(crate) struct DueChange<'a> {
    pub(crate) account: &'a str,
    /// When its next effect was due as the transaction read it.
    pub(crate) before: Option<i64>,
    /// When it is due now.
    pub(crate) after: Option<i64>,
}

/// The accounts of `changes` whose next effect moved, given when each was due as read
/// (`before`). Each state is checked against the rules here too, before it is written.
pub(crate) fn due_changes<'a>(
    changes: &'a Changes,
    before: impl Fn(&AccountId) -> Option<i64>,
) -> Vec<DueChange<'a>> {
    changes
        .accounts
        .iter()
        .filter_map(|stored| {
            let account = &stored.account;
            debug_assert!(
                account.check_invariants().is_ok(),
                "storing a broken account"
            );
            let change = DueChange {
                account: account.id().as_str(),
                before: before(account.id()),
                after: account.next_effect_at().map(to_db),
            };
            (change.before != change.after).then_some(change)
        })
        .collect()
}

/// The ids of the accounts `changes` writes (an idempotency record is kept under its
/// account only if the batch writes that account, `record_account`).
pub(crate) fn written(changes: &Changes) -> HashSet<&str> {
    changes
        .accounts
        .iter()
        .map(|stored| stored.account.id().as_str())
        .collect()
}

/// A character above every character an account id may hold (SPEC §8's alphabet ends
/// at `z`): every id that starts with a prefix sorts at or after the prefix and before
/// the prefix followed by this, so a prefix is a range of the id index.
pub const ACCOUNT_ID_END: char = '~';

/// The account id under which records of requests about no account are kept.
pub(crate) const NO_ACCOUNT: &str = "";

/// The reads every backend runs as they are, beside the decoders of their rows below
/// (`$1`, `$2`, … mean the same in SQLite and PostgreSQL when they first appear in order).
pub(crate) mod sql {
    /// An account (`stored_account`).
    pub(crate) const ACCOUNT: &str = "SELECT state, entry_seq, format FROM accounts WHERE id = $1";
    /// A settled hold (`settled_hold`).
    pub(crate) const SETTLED_HOLD: &str = "SELECT data, format FROM history
        WHERE account_id = $1 AND kind = 'hold' AND number = $2";
    /// A purchase by order id (`purchase_record`).
    pub(crate) const PURCHASE: &str = "SELECT order_id, account_id, credits, bucket_id, paid_at,
        paid_at_requested, expires_at, amount_minor, currency, recorded_at
        FROM purchases WHERE order_id = $1";
    /// An account's purchases before (`$2` recorded_at, `$3` order id), newest first, at
    /// most `$4` (`purchase_record`).
    pub(crate) const PURCHASES_PAGE: &str = "SELECT order_id, account_id, credits, bucket_id,
        paid_at, paid_at_requested, expires_at, amount_minor, currency, recorded_at
        FROM purchases WHERE account_id = $1 AND (recorded_at, order_id) < ($2, $3)
        ORDER BY recorded_at DESC, order_id DESC LIMIT $4";
    /// Accounts with an effect due by `$1`, at most `$2`.
    pub(crate) const DUE_ACCOUNTS: &str = "SELECT account_id, next_effect_at FROM account_due
        WHERE next_effect_at <= $1 ORDER BY next_effect_at LIMIT $2";
    /// An API key by id (`api_key`).
    pub(crate) const API_KEY: &str = "SELECT id, name, role, secret_hash, created_at, revoked_at
        FROM api_keys WHERE id = $1";
    /// Every API key, oldest first (`api_key`).
    pub(crate) const API_KEYS: &str = "SELECT id, name, role, secret_hash, created_at, revoked_at
        FROM api_keys ORDER BY created_at, id";
    /// A setting's value.
    pub(crate) const SETTING: &str = "SELECT value FROM settings WHERE name = $1";
    /// Forgets idempotency records answered before `$1`.
    pub(crate) const PURGE_IDEMPOTENCY: &str = "DELETE FROM idempotency_keys WHERE at < $1";
}

/// The bounds `sql::PURCHASES_PAGE` binds as `$2` and `$3`: before the previous page's
/// last row, or before every row.
pub(crate) fn purchases_before(before: Option<&PurchasePosition>) -> (i64, &str) {
    before.map_or((i64::MAX, ""), |position| {
        (to_db(position.recorded_at), position.order_id.as_str())
    })
}

/// A hold id as its rows' `number`; an id past every stored one reads as the largest.
pub(crate) fn hold_number(before: Option<HoldId>) -> i64 {
    before.map_or(i64::MAX, |id| i64::try_from(id.get()).unwrap_or(i64::MAX))
}

/// The account a record is kept under: its own if the batch writes that account, else
/// NO_ACCOUNT (a request that left no account: refused on a new id, or about none).
pub(crate) fn record_account<'a>(
    record: &'a IdempotencyRecord,
    written: &HashSet<&str>,
) -> &'a str {
    record
        .account
        .as_ref()
        .map(AccountId::as_str)
        .filter(|id| written.contains(id))
        .unwrap_or(NO_ACCOUNT)
}

/// How an idempotency key is kept: owner, a line feed, the key (neither holds a LF).
pub(crate) fn key_label(key: &IdempotencyKey) -> String {
    format!("{}\n{}", key.owner, key.key)
}

/// A count or number kept as a signed integer column, read back: negative is corrupt.
pub(crate) fn unsigned(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(corrupt)
}

/// A row of `account_due` (`account_id, next_effect_at`).
pub(crate) fn due_account<'r, R: Row>(row: &'r R) -> Result<(AccountId, Timestamp), StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((
        AccountId::parse(row.try_get::<&str, _>(0)?).map_err(corrupt)?,
        from_db(row.try_get(1)?)?,
    ))
}

/// How a database's driver reads a column holding one of the core's types or an
/// answer: SQLite's as bytes (a blob or text), PostgreSQL's as bytes (`bytea`: states,
/// entries, holds) or text (answers).
pub(crate) trait Data<'r, R: Row>:
    Decode<'r, R::Database> + Type<R::Database> + AsRef<[u8]>
{
}

impl<'r, R: Row, D> Data<'r, R> for D where
    D: Decode<'r, R::Database> + Type<R::Database> + AsRef<[u8]>
{
}

/// An account row read back, checked.
pub(crate) fn stored_account<'r, R: Row, D: Data<'r, R>>(
    row: &'r R,
) -> Result<StoredAccount, StoreError>
where
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    checked_account(
        decode(row.try_get(2)?, row.try_get::<D, _>(0)?.as_ref())?,
        unsigned(row.try_get(1)?)?,
    )
}

/// A settled hold from its row (`data, format`).
pub(crate) fn settled_hold<'r, R: Row, D: Data<'r, R>>(row: &'r R) -> Result<Hold, StoreError>
where
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    decode(row.try_get(1)?, row.try_get::<D, _>(0)?.as_ref())
}

/// A ledger entry from its row (`number, data, format`).
pub(crate) fn stored_entry<'r, R: Row, D: Data<'r, R>>(
    row: &'r R,
) -> Result<StoredEntry, StoreError>
where
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StoredEntry {
        seq: unsigned(row.try_get(0)?)?,
        entry: decode(row.try_get(2)?, row.try_get::<D, _>(1)?.as_ref())?,
    })
}

/// An account state read back, from a row or the SQLite backlog, once it is checked.
pub(crate) fn checked_account(
    account: Account,
    entry_seq: u64,
) -> Result<StoredAccount, StoreError> {
    account
        .check_invariants()
        .map_err(|broken| StoreError::Corrupt(broken.to_string()))?;
    Ok(StoredAccount { account, entry_seq })
}

/// An idempotency record from its row (`account_id, label, digest, status, body, at`);
/// the body of either format ([`answers`](crate::answers)).
pub(crate) fn idempotency_record<'r, R: Row, D: Data<'r, R>>(
    row: &'r R,
) -> Result<IdempotencyRecord, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    idempotency_from_columns(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        crate::answers::text(row.try_get::<D, _>(4)?.as_ref())?,
        row.try_get(5)?,
    )
}

/// An idempotency record from its columns (account, label, digest, status, body, at):
/// as a row has them, or as the SQLite backlog keeps them.
pub(crate) fn idempotency_from_columns(
    account: &str,
    label: &str,
    fingerprint: String,
    status: i64,
    body: String,
    at: i64,
) -> Result<IdempotencyRecord, StoreError> {
    let (owner, key) = label
        .split_once('\n')
        .ok_or_else(|| corrupt(format!("idempotency label {label:?}")))?;
    Ok(IdempotencyRecord {
        key: IdempotencyKey {
            owner: owner.to_owned(),
            key: key.to_owned(),
        },
        account: (account != NO_ACCOUNT)
            .then(|| AccountId::parse(account).map_err(corrupt))
            .transpose()?,
        fingerprint,
        status: u16::try_from(status).map_err(corrupt)?,
        body,
        created_at: from_db(at)?,
    })
}

pub(crate) fn purchase_record<'r, R: Row>(row: &'r R) -> Result<PurchaseRecord, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let amount_minor: Option<i64> = row.try_get(7)?;
    let currency: Option<String> = row.try_get(8)?;
    Ok(PurchaseRecord {
        order_id: OrderId::parse(row.try_get(0)?).map_err(corrupt)?,
        account_id: AccountId::parse(row.try_get(1)?).map_err(corrupt)?,
        credits: unsigned(row.try_get(2)?)?,
        bucket_id: BucketId::new(unsigned(row.try_get(3)?)?),
        paid_at: from_db(row.try_get(4)?)?,
        paid_at_requested: row.try_get::<Option<i64>, _>(5)?.map(from_db).transpose()?,
        expires_at: from_db(row.try_get(6)?)?,
        paid: match (amount_minor, currency) {
            (Some(amount), Some(currency)) => Some(Payment {
                amount_minor: unsigned(amount)?,
                currency: Currency::parse(&currency).map_err(corrupt)?,
            }),
            _ => None,
        },
        recorded_at: from_db(row.try_get(9)?)?,
    })
}

pub(crate) fn api_key<'r, R: Row>(row: &'r R) -> Result<ApiKeyRecord, StoreError>
where
    usize: ColumnIndex<R>,
    &'r [u8]: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let hash: &[u8] = row.try_get(3)?;
    Ok(ApiKeyRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: row.try_get(2)?,
        secret_hash: hash.try_into().map_err(corrupt)?,
        created_at: from_db(row.try_get(4)?)?,
        revoked_at: row.try_get::<Option<i64>, _>(5)?.map(from_db).transpose()?,
    })
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

/// The query of a ledger page: `of_rare_type` for a page of one type other than debit,
/// which the partial index `history_rare_entries` holds (migration `rare_entries`): most
/// entries are debits, so a page of a rarer type would otherwise look through every
/// debit before it. That query repeats the index's condition, [`rare_entries!`], word for
/// word: that is how SQLite knows the index holds every row the query wants.
pub(crate) fn ledger_page_sql(
    query: &LedgerQuery,
    any: &'static str,
    of_rare_type: &'static str,
) -> &'static str {
    if query
        .entry_type()
        .is_some_and(|entry_type| entry_type != EntryType::Debit)
    {
        of_rare_type
    } else {
        any
    }
}

/// The condition of the partial index `history_rare_entries`, as its migrations and
/// queries say it.
macro_rules! rare_entries {
    () => {
        "kind = 'entry' AND label <> 'debit'"
    };
}
pub(crate) use rare_entries;

pub(crate) fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn the_migrations_make_the_index_of_rare_entries_on_the_condition_its_queries_say() {
        for migration in [
            include_str!("../migrations/sqlite/0011_rare_entries.sql"),
            include_str!("../migrations/postgres/0010_rare_entries.sql"),
        ] {
            assert!(migration.contains(concat!("WHERE ", rare_entries!(), ";")));
        }
    }

    use creditd_ledger::{Catalog, History, Hold, HoldStatus, LedgerEntry, MembershipStatus};
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;

    /// States, entries and holds written by the version that made format 1.
    const ACCOUNT: &str = include_str!("../tests/golden/format-1/account.json");
    const ENTRIES: &str = include_str!("../tests/golden/format-1/entries.json");
    const HOLDS: &str = include_str!("../tests/golden/format-1/holds.json");
    /// The same values in format 2.
    const ACCOUNT_2: &[u8] = include_bytes!("../tests/golden/format-2/account.bin");
    const ENTRIES_2: &[u8] = include_bytes!("../tests/golden/format-2/entries.bin");
    const HOLDS_2: &[u8] = include_bytes!("../tests/golden/format-2/holds.bin");
    /// The same values in format 3.
    const ACCOUNT_3: &[u8] = include_bytes!("../tests/golden/format-3/account.bin");
    const ENTRIES_3: &[u8] = include_bytes!("../tests/golden/format-3/entries.bin");
    const HOLDS_3: &[u8] = include_bytes!("../tests/golden/format-3/holds.bin");

    /// `value` without the fields format 1 left out while they held their default
    /// (`null`, `[]`, an account's `next_event` of 1): this version spells them out.
    fn defaults_left_out(value: Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(name, value)| {
                        !(value.is_null()
                            || value.as_array().is_some_and(Vec::is_empty)
                            || (name == "next_event" && value.as_u64() == Some(1)))
                    })
                    .map(|(name, value)| (name, defaults_left_out(value)))
                    .collect(),
            ),
            Value::Array(values) => {
                Value::Array(values.into_iter().map(defaults_left_out).collect())
            }
            other => other,
        }
    }

    /// `text` as this version writes what it decoded in JSON: the same fields with the
    /// same values, defaults aside, or format 1 has changed and a new format is due (see
    /// [`JSON`]).
    pub(crate) fn assert_written_as_read(text: &[u8], again: &[u8]) {
        let read: Value = serde_json::from_slice(text).expect("JSON");
        let written: Value = serde_json::from_slice(again).expect("JSON");
        assert_eq!(
            defaults_left_out(read),
            defaults_left_out(written),
            "format 1 is no longer what this version writes"
        );
    }

    /// The golden bytes of `format` decode to the value the format 1 golden text holds,
    /// and are what this version writes for it in that format: the format has not moved.
    pub(crate) fn assert_pinned<T: Serialize + DeserializeOwned>(
        format: i64,
        json: &[u8],
        stored: &[u8],
    ) {
        let from_json: T = decode(JSON, json).expect("a format 1 value");
        let from_stored: T = decode(format, stored).expect("a stored value");
        assert_eq!(
            encode(JSON, &from_stored).expect("encodes"),
            encode(JSON, &from_json).expect("encodes"),
            "format {format} reads back other values than format 1"
        );
        assert_eq!(
            encode(format, &from_json).expect("encodes"),
            stored,
            "format {format} is no longer what this version writes"
        );
    }

    #[test]
    fn format_1_account_states_read_back_and_are_what_this_version_writes() {
        let account: Account = decode(JSON, ACCOUNT.as_bytes()).expect("a format 1 state");
        let stored = checked_account(account, 16).expect("a state the rules can produce");
        let account = &stored.account;
        assert_eq!(account.id().as_str(), "golden-1");
        assert_eq!(account.membership().status(), MembershipStatus::Lapsed);
        assert_eq!(account.pending_holds().len(), 1);
        let mut history = History::default();
        let mut later = account.clone();
        let balance = later
            .at(&Catalog::default(), account.as_of(), &mut history)
            .account()
            .balance();
        assert_eq!((balance.general.frozen, balance.agent.held), (600, 4));
        assert_written_as_read(ACCOUNT.as_bytes(), &encode(JSON, account).expect("encodes"));
    }

    #[test]
    fn format_1_ledger_entries_and_settled_holds_read_back_and_are_what_this_version_writes() {
        let entries: Vec<Value> = serde_json::from_str(ENTRIES).expect("JSON");
        assert_eq!(entries.len(), 16);
        for text in entries.iter().map(Value::to_string) {
            let entry: LedgerEntry = decode(JSON, text.as_bytes()).expect("a format 1 entry");
            assert_written_as_read(text.as_bytes(), &encode(JSON, &entry).expect("encodes"));
        }
        let holds: Vec<Value> = serde_json::from_str(HOLDS).expect("JSON");
        let mut statuses = Vec::new();
        for text in holds.iter().map(Value::to_string) {
            let hold: Hold = decode(JSON, text.as_bytes()).expect("a format 1 hold");
            statuses.push(hold.status());
            assert_written_as_read(text.as_bytes(), &encode(JSON, &hold).expect("encodes"));
        }
        assert!(
            statuses.contains(&HoldStatus::Captured) && statuses.contains(&HoldStatus::Expired)
        );
    }

    #[test]
    fn format_2_holds_the_format_1_values_and_is_what_this_version_writes() {
        assert_pinned::<Account>(BINARY, ACCOUNT.as_bytes(), ACCOUNT_2);
        assert_pinned::<Vec<LedgerEntry>>(BINARY, ENTRIES.as_bytes(), ENTRIES_2);
        assert_pinned::<Vec<Hold>>(BINARY, HOLDS.as_bytes(), HOLDS_2);
    }

    #[test]
    fn format_3_holds_the_format_1_values_and_is_what_this_version_writes() {
        assert_pinned::<Account>(COMPACT, ACCOUNT.as_bytes(), ACCOUNT_3);
        assert_pinned::<Vec<LedgerEntry>>(COMPACT, ENTRIES.as_bytes(), ENTRIES_3);
        assert_pinned::<Vec<Hold>>(COMPACT, HOLDS.as_bytes(), HOLDS_3);
    }

    /// Format 2 is about a third of format 1, and format 3 about half of format 2.
    #[test]
    fn each_binary_format_is_smaller_than_the_one_before() {
        let golden = [
            (ACCOUNT.as_bytes(), ACCOUNT_2, ACCOUNT_3),
            (ENTRIES.as_bytes(), ENTRIES_2, ENTRIES_3),
            (HOLDS.as_bytes(), HOLDS_2, HOLDS_3),
        ];
        for (json, binary, compact) in golden {
            assert!(
                binary.len() * 3 <= json.len() + json.len() / 4,
                "{} of {}",
                binary.len(),
                json.len()
            );
            assert!(
                compact.len() * 2 <= binary.len() + binary.len() / 10,
                "{} of {}",
                compact.len(),
                binary.len()
            );
        }
    }

    #[test]
    fn a_binary_value_with_bytes_past_its_end_or_cut_short_is_refused() {
        for (format, golden) in [(BINARY, ACCOUNT_2), (COMPACT, ACCOUNT_3)] {
            let mut longer = golden.to_vec();
            longer.push(0);
            let refused = decode::<Account>(format, &longer);
            assert!(
                matches!(&refused, Err(StoreError::Corrupt(why)) if why.contains("past its value")),
                "{refused:?}"
            );
            let cut = decode::<Account>(format, &golden[..golden.len() - 1]);
            assert!(matches!(cut, Err(StoreError::Corrupt(_))), "{cut:?}");
        }
    }

    /// Formats 2 and 3 are the same bytes but for instants and named values: one read
    /// as the other fails rather than yielding another account.
    #[test]
    fn a_binary_value_read_as_the_other_binary_format_is_refused() {
        assert!(decode::<Account>(COMPACT, ACCOUNT_2).is_err());
        assert!(decode::<Account>(BINARY, ACCOUNT_3).is_err());
    }

    #[test]
    fn a_format_this_version_does_not_know_is_refused_not_misread() {
        let refused = decode::<Account>(NEWEST + 1, ACCOUNT.as_bytes());
        assert!(
            matches!(&refused, Err(StoreError::Corrupt(why)) if why.contains("format 4")),
            "{refused:?}"
        );
    }
}
