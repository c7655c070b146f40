//! The rows of what people do, the same in every database: the audit trail, written by a
//! batch's commit ([`crate::Changes::audit`]) in the transaction of the change it tells
//! of and read a page at a time, newest first; and the console's sessions.

use creditd_ledger::AccountId;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::columns::{corrupt, unsigned};
use crate::instant::from_db;
use crate::{AuditRecord, ConsoleSession, StoreError, StoredAudit};

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

/// The console session read (`$1` its id).
pub(crate) const CONSOLE_SESSION: &str = "SELECT id, key_id, csrf, created_at, expires_at, ended_at
    FROM console_sessions WHERE id = $1";

/// Begins or ends a session on PostgreSQL (`$1` … `$6` its columns, as
/// [`CONSOLE_SESSION`] reads them); SQLite's batch builds the same statement with its
/// own parameters.
pub(crate) const UPSERT_CONSOLE_SESSION: &str = "INSERT INTO console_sessions
    (id, key_id, csrf, created_at, expires_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (id) DO UPDATE SET ended_at = excluded.ended_at";

/// A console session from its row ([`CONSOLE_SESSION`]).
pub(crate) fn console_session<'r, R: Row>(row: &'r R) -> Result<ConsoleSession, StoreError>
where
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ConsoleSession {
        id: row.try_get(0)?,
        key_id: row.try_get(1)?,
        csrf: row.try_get(2)?,
        created_at: from_db(row.try_get(3)?)?,
        expires_at: from_db(row.try_get(4)?)?,
        ended_at: row.try_get::<Option<i64>, _>(5)?.map(from_db).transpose()?,
    })
}

/// When an account's tokens were revoked (`$1` the account).
pub(crate) const TOKENS_REVOKED_AT: &str =
    "SELECT revoked_at FROM token_revocations WHERE account_id = $1";

/// Revokes an account's tokens on PostgreSQL (`$1` the account, `$2` when); a later
/// revocation moves the instant on. SQLite's batch builds the same statement.
pub(crate) const REVOKE_TOKENS: &str = "INSERT INTO token_revocations (account_id, revoked_at)
    VALUES ($1, $2) ON CONFLICT (account_id) DO UPDATE SET revoked_at = excluded.revoked_at";
