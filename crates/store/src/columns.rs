//! How the store's records sit in columns, the same in every database: instants as
//! integer microseconds, the ledger core's types as JSON in a stated [`FORMAT`] (which
//! the store saves and reads back but never interprets), an idempotency key as one
//! label. Rows read back are decoded and checked here, whichever database they came
//! from, and the rows of `history` are built here for both.

use std::collections::HashSet;

use creditd_ledger::{
    Account, AccountId, BucketId, Currency, Hold, HoldId, LedgerEntry, OrderId, Payment,
};
use jiff::Timestamp;
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::instant::{from_db, to_db};
use crate::{
    ApiKeyRecord, Changes, IdempotencyKey, IdempotencyRecord, PurchasePosition, PurchaseRecord,
    StoreError, StoredAccount, StoredEntry,
};

/// The format this version writes the ledger core's types in: account states, ledger
/// entries and settled holds (and, on SQLite, the backlog's batches of them). Every
/// row that holds one says its format in a `format` column, and [`decode`] reads every
/// format there has been. Format 1 is the core's serde JSON as of this version, pinned
/// by the files under `tests/golden/format-1/`. A change to those types that changes
/// their JSON is format 2: its number here, a decoder for format 1 kept beside it (or a
/// migration that rewrites the rows), and golden files of its own; format 1's files
/// keep reading back. A field added with a default and left out while empty (a settled
/// hold's `refunds`) is no new format: format 1 rows read back and write out the same.
pub const FORMAT: i64 = 1;

/// One of the core's types as this version stores it (in [`FORMAT`]).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    to_json(value)
}

/// One of the core's types as a row in `format` holds it.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    format: i64,
    text: &str,
) -> Result<T, StoreError> {
    match format {
        1 => from_json(text),
        other => Err(StoreError::Corrupt(format!(
            "a row is stored in format {other}; this version reads formats 1 to {FORMAT}: \
             was the database written by a newer creditd?"
        ))),
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
    /// The core's entry or hold, encoded in [`FORMAT`].
    pub(crate) data: String,
}

/// The `history` rows of a batch's new ledger entries and settled holds.
pub(crate) fn history_rows(changes: &Changes) -> Result<Vec<HistoryRow<'_>>, StoreError> {
    let mut rows = Vec::with_capacity(
        changes
            .entries
            .len()
            .saturating_add(changes.settled_holds.len()),
    );
    for (account, stored) in &changes.entries {
        rows.push(entry_row(account, stored.seq, &stored.entry)?);
    }
    for (account, hold) in &changes.settled_holds {
        rows.push(hold_row(account, hold)?);
    }
    Ok(rows)
}

/// The `history` row of a ledger entry.
pub(crate) fn entry_row<'a>(
    account: &'a AccountId,
    seq: u64,
    entry: &LedgerEntry,
) -> Result<HistoryRow<'a>, StoreError> {
    Ok(HistoryRow {
        account: account.as_str(),
        kind: "entry",
        number: i64::try_from(seq).map_err(corrupt)?,
        at: to_db(entry.at),
        label: entry.entry_type.as_str(),
        data: encode(entry)?,
    })
}

/// The `history` row of a settled hold.
pub(crate) fn hold_row<'a>(
    account: &'a AccountId,
    hold: &Hold,
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
        data: encode(hold)?,
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

/// An account row read back, checked.
pub(crate) fn stored_account<'r, R: Row>(row: &'r R) -> Result<StoredAccount, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    checked_account(
        decode(row.try_get(2)?, row.try_get::<&str, _>(0)?)?,
        unsigned(row.try_get(1)?)?,
    )
}

/// A settled hold from its row (`data, format`).
pub(crate) fn settled_hold<'r, R: Row>(row: &'r R) -> Result<Hold, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    decode(row.try_get(1)?, row.try_get::<&str, _>(0)?)
}

/// A ledger entry from its row (`number, data, format`).
pub(crate) fn stored_entry<'r, R: Row>(row: &'r R) -> Result<StoredEntry, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StoredEntry {
        seq: unsigned(row.try_get(0)?)?,
        entry: decode(row.try_get(2)?, row.try_get::<&str, _>(1)?)?,
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

pub(crate) fn idempotency_record<'r, R: Row>(row: &'r R) -> Result<IdempotencyRecord, StoreError>
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
        row.try_get(4)?,
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

pub(crate) fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

#[cfg(test)]
mod tests {
    use creditd_ledger::{Catalog, History, Hold, HoldStatus, LedgerEntry, MembershipStatus};
    use serde_json::Value;

    use super::*;

    /// States, entries and holds written by the version that made format 1.
    const ACCOUNT: &str = include_str!("../tests/golden/format-1/account.json");
    const ENTRIES: &str = include_str!("../tests/golden/format-1/entries.json");
    const HOLDS: &str = include_str!("../tests/golden/format-1/holds.json");

    /// `text` as this version writes what it decoded: the same JSON, or format 1 has
    /// changed and FORMAT must move on (see its docs).
    fn assert_written_as_read(text: &str, again: &str) {
        let read: Value = serde_json::from_str(text).expect("JSON");
        let written: Value = serde_json::from_str(again).expect("JSON");
        assert_eq!(
            read, written,
            "format 1 is no longer what this version writes"
        );
    }

    #[test]
    fn format_1_account_states_read_back_and_are_what_this_version_writes() {
        let account: Account = decode(1, ACCOUNT).expect("a format 1 state");
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
        assert_written_as_read(ACCOUNT, &encode(account).expect("encodes"));
    }

    #[test]
    fn format_1_ledger_entries_and_settled_holds_read_back_and_are_what_this_version_writes() {
        let entries: Vec<Value> = serde_json::from_str(ENTRIES).expect("JSON");
        assert_eq!(entries.len(), 16);
        for text in entries.iter().map(Value::to_string) {
            let entry: LedgerEntry = decode(1, &text).expect("a format 1 entry");
            assert_written_as_read(&text, &encode(&entry).expect("encodes"));
        }
        let holds: Vec<Value> = serde_json::from_str(HOLDS).expect("JSON");
        let mut statuses = Vec::new();
        for text in holds.iter().map(Value::to_string) {
            let hold: Hold = decode(1, &text).expect("a format 1 hold");
            statuses.push(hold.status());
            assert_written_as_read(&text, &encode(&hold).expect("encodes"));
        }
        assert!(
            statuses.contains(&HoldStatus::Captured) && statuses.contains(&HoldStatus::Expired)
        );
    }

    #[test]
    fn a_format_this_version_does_not_know_is_refused_not_misread() {
        let refused = decode::<Account>(FORMAT + 1, ACCOUNT);
        assert!(
            matches!(&refused, Err(StoreError::Corrupt(why)) if why.contains("format 2")),
            "{refused:?}"
        );
    }
}
