//! How the store's records sit in columns, the same in every database: instants as
//! integer microseconds, the ledger core's types as JSON (which the store saves and
//! reads back but never interprets), an idempotency key as one label. Rows read back are
//! decoded and checked here, whichever database they came from.

use std::collections::HashSet;

use creditd_ledger::{Account, AccountId, BucketId, OrderId};
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::instant::from_db;
use crate::{
    ApiKeyRecord, IdempotencyKey, IdempotencyRecord, Payment, PurchaseRecord, StoreError,
    StoredAccount,
};

/// The account id under which records of requests about no account are kept.
pub(crate) const NO_ACCOUNT: &str = "";

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
    let account: Account = from_json(row.try_get::<&str, _>(0)?)?;
    account
        .check_invariants()
        .map_err(|broken| StoreError::Corrupt(broken.to_string()))?;
    Ok(StoredAccount {
        account,
        entry_seq: count(row.try_get(1)?)?,
    })
}

pub(crate) fn idempotency_record<'r, R: Row>(row: &'r R) -> Result<IdempotencyRecord, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let account: &str = row.try_get(0)?;
    let label: &str = row.try_get(1)?;
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
        fingerprint: row.try_get(2)?,
        status: u16::try_from(row.try_get::<i64, _>(3)?).map_err(corrupt)?,
        body: row.try_get(4)?,
        created_at: from_db(row.try_get(5)?)?,
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
                currency,
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
