//! Events and webhook deliveries on PostgreSQL. Events are written in the batch's
//! transaction ([`write_events`]), last, under a transaction-scoped advisory lock
//! ([`EVENTS_LOCK`]) held until the commit: several transactions commit at once here,
//! on one node or several, and a serial number taken without the lock could be
//! committed after a larger one had been read, behind a consumer's cursor. Under the
//! lock, positions are taken in commit order, so a page that goes by position never
//! misses an event. Only batches that record events wait for it, and only for one
//! another's flush.
//!
//! (Listing only events older than every running transaction, `pg_snapshot_xmin`, would
//! need no lock, but it looks at the whole cluster: one long write transaction in any
//! database would hold every event back.)
//!
//! Deliveries are claimed with `FOR UPDATE SKIP LOCKED` and a lease, so each due
//! delivery goes to one node at a time, and to another once the lease of a node that
//! died has run out.

use async_trait::async_trait;
use creditd_ledger::{AccountId, EventType};
use jiff::Timestamp;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::PostgresStore;
use crate::columns::corrupt;
use crate::events::{
    EVENT_COLUMNS, attempt_record, compress_data, db_count, event_delivery, sql, stored_event,
};
use crate::instant::{from_db, to_db};
use crate::{
    AttemptRecord, Changes, ClaimedDelivery, EventDelivery, EventFilter, EventStore, StoreError,
    StoredEvent, WebhookEndpoint,
};

/// The lock under which a transaction takes its events' positions, until it commits:
/// the two-key form of advisory locks, apart from the one-key locks of accounts.
const EVENTS_LOCK: (i32, i32) = (0x6372_6564, 2);

/// The batch's events, endpoints and redeliveries.
pub(super) async fn write_events(
    tx: &mut Transaction<'static, Postgres>,
    changes: &Changes,
) -> Result<(), StoreError> {
    if !changes.events.is_empty() {
        // Compressed before the lock, which other nodes' batches with events wait for.
        let data = changes
            .events
            .iter()
            .map(|e| compress_data(&e.data))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(EVENTS_LOCK.0)
            .bind(EVENTS_LOCK.1)
            .execute(&mut **tx)
            .await?;
        let e = &changes.events;
        let sequences = e
            .iter()
            .map(|e| db_count(e.sequence))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query(
            "INSERT INTO events (account_id, sequence, type, created_at, recorded_at, data)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[],
                                  $6::bytea[])",
        )
        .bind(e.iter().map(|e| e.account_id.as_str()).collect::<Vec<_>>())
        .bind(sequences)
        .bind(e.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| to_db(e.created_at)).collect::<Vec<_>>())
        .bind(e.iter().map(|e| to_db(e.recorded_at)).collect::<Vec<_>>())
        .bind(data)
        .execute(&mut **tx)
        .await?;
    }
    for e in &changes.webhook_endpoints {
        let types: Option<Vec<&str>> = e
            .event_types
            .as_ref()
            .map(|types| types.iter().map(|t| t.as_str()).collect());
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, event_types, description, secret,
                                            created_at, deleted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET secret = excluded.secret,
                 deleted_at = excluded.deleted_at",
        )
        .bind(&e.id)
        .bind(&e.url)
        .bind(types)
        .bind(e.description.as_deref())
        .bind(&e.secret)
        .bind(to_db(e.created_at))
        .bind(e.deleted_at.map(to_db))
        .execute(&mut **tx)
        .await?;
        if e.deleted_at.is_some() {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'cancelled', next_attempt_at = NULL
                 WHERE state = 'pending' AND endpoint_id = $1",
            )
            .bind(&e.id)
            .execute(&mut **tx)
            .await?;
        }
    }
    for r in &changes.redeliveries {
        sqlx::query(
            "INSERT INTO webhook_deliveries (endpoint_id, account_id, sequence, attempts, state,
                                             next_attempt_at, position)
             VALUES ($1, $2, $3, 0, 'pending', $4, (SELECT e.position FROM events e
                                                    WHERE e.account_id = $2 AND e.sequence = $3))
             ON CONFLICT (endpoint_id, account_id, sequence) DO UPDATE SET attempts = 0,
                 state = 'pending', next_attempt_at = excluded.next_attempt_at, holder = NULL,
                 lease_until = NULL",
        )
        .bind(&r.endpoint_id)
        .bind(r.account_id.as_str())
        .bind(db_count(r.sequence)?)
        .bind(to_db(r.at))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn endpoint(row: &PgRow) -> Result<WebhookEndpoint, StoreError> {
    let types: Option<Vec<String>> = row.try_get(2)?;
    let event_types = types
        .map(|names| {
            names
                .iter()
                .map(|name| name.parse::<EventType>().map_err(corrupt))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(WebhookEndpoint {
        id: row.try_get(0)?,
        url: row.try_get(1)?,
        event_types,
        description: row.try_get(3)?,
        secret: row.try_get(4)?,
        created_at: from_db(row.try_get(5)?)?,
        deleted_at: row.try_get::<Option<i64>, _>(6)?.map(from_db).transpose()?,
    })
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn events_page(
        &self,
        after: Option<u64>,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE position > $1
               AND ($2::text IS NULL OR type = $2) AND ($3::text IS NULL OR account_id = $3)
             ORDER BY position LIMIT $4"
        ))
        .bind(db_count(after.unwrap_or(0))?)
        .bind(filter.event_type.map(EventType::as_str))
        .bind(filter.account.as_ref().map(AccountId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_event).collect()
    }

    async fn event(
        &self,
        account: &AccountId,
        sequence: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query(sql::EVENT)
            .bind(account.as_str())
            .bind(db_count(sequence)?)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| stored_event(&row)).transpose()
    }

    async fn account_events(
        &self,
        account: &AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(sql::ACCOUNT_EVENTS)
            .bind(account.as_str())
            .bind(before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_event).collect()
    }

    async fn event_deliveries(
        &self,
        account: &AccountId,
        sequence: u64,
    ) -> Result<Vec<EventDelivery>, StoreError> {
        let rows = sqlx::query(sql::EVENT_DELIVERIES)
            .bind(account.as_str())
            .bind(db_count(sequence)?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_delivery).collect()
    }

    async fn purge_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = to_db(before);
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(sql::PURGE_EVENTS)
            .bind(before)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::PURGE_DELIVERIES).execute(&mut *tx).await?;
        sqlx::query(sql::PURGE_ATTEMPTS)
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let rows = sqlx::query(sql::ENDPOINTS).fetch_all(&self.pool).await?;
        rows.iter().map(endpoint).collect()
    }

    async fn webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(sql::ENDPOINT)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| endpoint(&row)).transpose()
    }

    async fn dispatch_events(&self, now: Timestamp, limit: u32) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One dispatcher at a time, whichever node runs it.
        let from: i64 = sqlx::query_scalar("SELECT position FROM webhook_dispatch FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
        let skipped = sqlx::query(sql::SKIP_WITHOUT_ENDPOINTS)
            .execute(&mut *tx)
            .await?;
        if skipped.rows_affected() > 0 {
            tx.commit().await?;
            return Ok(0);
        }
        let (through, count): (Option<i64>, i64) = sqlx::query_as(
            "SELECT max(position), count(*) FROM (
                 SELECT position FROM events WHERE position > $1 ORDER BY position LIMIT $2) e",
        )
        .bind(from)
        .bind(i64::from(limit))
        .fetch_one(&mut *tx)
        .await?;
        let Some(through) = through else {
            tx.commit().await?;
            return Ok(0);
        };
        sqlx::query(
            "INSERT INTO webhook_deliveries (endpoint_id, account_id, sequence, attempts, state,
                                             next_attempt_at, position)
             SELECT w.id, e.account_id, e.sequence, 0, 'pending', $3, e.position
             FROM events e JOIN webhook_endpoints w
               ON w.deleted_at IS NULL AND w.created_at <= e.recorded_at
              AND (w.event_types IS NULL OR e.type = ANY(w.event_types))
             WHERE e.position > $1 AND e.position <= $2
             ON CONFLICT DO NOTHING",
        )
        .bind(from)
        .bind(through)
        .bind(to_db(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE webhook_dispatch SET position = $1")
            .bind(through)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        u32::try_from(count).map_err(corrupt)
    }

    async fn claim_deliveries(
        &self,
        endpoint_id: &str,
        now: Timestamp,
        holder: &str,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let wall = Timestamp::now().as_microsecond();
        let rows = sqlx::query(&format!(
            "WITH claimed AS (
                 UPDATE webhook_deliveries d SET holder = $1::text, lease_until = $2::int8
                 FROM (SELECT endpoint_id, account_id, sequence FROM webhook_deliveries
                       WHERE state = 'pending' AND next_attempt_at <= $3::int8
                         AND endpoint_id = $6::text
                         AND (lease_until IS NULL OR lease_until < $4::int8)
                       ORDER BY next_attempt_at LIMIT $5::int8
                       FOR UPDATE SKIP LOCKED) due
                 WHERE d.endpoint_id = due.endpoint_id AND d.account_id = due.account_id
                   AND d.sequence = due.sequence
                 RETURNING d.endpoint_id, d.account_id, d.sequence, d.attempts)
             SELECT e.{}, w.id, w.url, w.secret, c.attempts
             FROM claimed c
             JOIN webhook_endpoints w ON w.id = c.endpoint_id
             JOIN events e ON e.account_id = c.account_id AND e.sequence = c.sequence",
            EVENT_COLUMNS.replace(", ", ", e.")
        ))
        .bind(holder)
        .bind(lease_until)
        .bind(to_db(now))
        .bind(wall)
        .bind(i64::from(limit))
        .bind(endpoint_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedDelivery {
                    event: stored_event(row)?.event,
                    endpoint_id: row.try_get(7)?,
                    url: row.try_get(8)?,
                    secret: row.try_get(9)?,
                    attempts: u32::try_from(row.try_get::<i32, _>(10)?).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn record_attempts(
        &self,
        holder: &str,
        attempts: &[AttemptRecord],
    ) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for a in attempts {
            let attempt = i32::try_from(a.attempt).map_err(corrupt)?;
            sqlx::query(sql::INSERT_ATTEMPT)
                .bind(&a.endpoint_id)
                .bind(a.account_id.as_str())
                .bind(db_count(a.sequence)?)
                .bind(attempt)
                .bind(to_db(a.at))
                .bind(a.status_code.map(i32::from))
                .bind(a.error.as_deref())
                .bind(a.next_attempt_at.map(to_db))
                .bind(a.state.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql::FINISH_ATTEMPT)
                .bind(&a.endpoint_id)
                .bind(a.account_id.as_str())
                .bind(db_count(a.sequence)?)
                .bind(attempt)
                .bind(a.state.as_str())
                .bind(a.next_attempt_at.map(to_db))
                .bind(holder)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn attempts_page(
        &self,
        endpoint_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let before = before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = sqlx::query(sql::ATTEMPTS_PAGE)
            .bind(endpoint_id)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(attempt_record).collect()
    }

    async fn oldest_undelivered(&self) -> Result<Option<Timestamp>, StoreError> {
        let oldest: Option<i64> = sqlx::query_scalar(sql::OLDEST_UNDELIVERED)
            .fetch_one(&self.pool)
            .await?;
        oldest.map(from_db).transpose()
    }
}
