//! How the store's records sit in columns, the same in every database: instants as
//! integer microseconds, the ledger core's types as JSON (which the store saves and
//! reads back but never interprets), an idempotency key as one label. Rows read back are
//! decoded and checked here, whichever database they came from.

use std::collections::HashSet;

use creditd_ledger::{Account, AccountId, BucketId, Currency, OrderId, Payment};
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::instant::from_db;
use crate::{
    ApiKeyRecord, IdempotencyKey, IdempotencyRecord, PurchaseRecord, StoreError, StoredAccount,
};

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
    pub(crate) const ACCOUNT: &str = "SELECT state, entry_seq FROM accounts WHERE id = $1";
    /// A settled hold's JSON.
    pub(crate) const SETTLED_HOLD: &str =
        "SELECT data FROM history WHERE account_id = $1 AND kind = 'hold' AND number = $2";
    /// A purchase by order id (`purchase_record`).
    pub(crate) const PURCHASE: &str = "SELECT order_id, account_id, credits, bucket_id, paid_at,
        paid_at_requested, expires_at, amount_minor, currency, recorded_at
        FROM purchases WHERE order_id = $1";
    /// Accounts with an effect due by `$1`, at most `$2`.
    pub(crate) const DUE_ACCOUNTS: &str = "SELECT account_id FROM account_due
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

pub(crate) fn count(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(corrupt)
}

/// An account row read back, checked.
pub(crate) fn stored_account<'r, R: Row>(row: &'r R) -> Result<StoredAccount, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    checked_account(
        from_json(row.try_get::<&str, _>(0)?)?,
        count(row.try_get(1)?)?,
    )
}

/// An account state read back, from a row or the SQLite journal, once it is checked.
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
/// as a row has them, or as the SQLite journal keeps them.
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
    let count = |value: i64| u64::try_from(value).map_err(corrupt);
    let amount_minor: Option<i64> = row.try_get(7)?;
    let currency: Option<String> = row.try_get(8)?;
    Ok(PurchaseRecord {
        order_id: OrderId::parse(row.try_get(0)?).map_err(corrupt)?,
        account_id: AccountId::parse(row.try_get(1)?).map_err(corrupt)?,
        credits: count(row.try_get(2)?)?,
        bucket_id: BucketId::new(count(row.try_get(3)?)?),
        paid_at: from_db(row.try_get(4)?)?,
        paid_at_requested: row.try_get::<Option<i64>, _>(5)?.map(from_db).transpose()?,
        expires_at: from_db(row.try_get(6)?)?,
        paid: match (amount_minor, currency) {
            (Some(amount), Some(currency)) => Some(Payment {
                amount_minor: count(amount)?,
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
