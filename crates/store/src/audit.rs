//! The audit trail's rows, the same in every database: written by a batch's commit
//! ([`crate::Changes::audit`]) in the transaction of the change it tells of, and read a
//! page at a time, newest first.

use creditd_ledger::AccountId;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::columns::{corrupt, unsigned};
use crate::instant::from_db;
use crate::{AuditRecord, StoreError, StoredAudit};

/// The columns [`stored_audit`] reads, in its order.
pub(crate) const AUDIT_COLUMNS: &str =
    "id, at, key_id, key_name, via, action, account_id, reason, detail";

/// An audit record from its row ([`AUDIT_COLUMNS`]).
pub(crate) fn stored_audit<'r, R: Row>(row: &'r R) -> Result<StoredAudit, StoreError>
where
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let account: Option<&str> = row.try_get(6)?;
    Ok(StoredAudit {
        number: unsigned(row.try_get(0)?)?,
        record: AuditRecord {
            at: from_db(row.try_get(1)?)?,
            key_id: row.try_get(2)?,
            key_name: row.try_get(3)?,
            via: row.try_get(4)?,
            action: row.try_get(5)?,
            account_id: account.map(AccountId::parse).transpose().map_err(corrupt)?,
            reason: row.try_get(7)?,
            detail: row.try_get(8)?,
        },
    })
}
