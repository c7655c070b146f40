//! Events and webhook deliveries on SQLite. Events are written with the batch that
//! recorded them ([`push_events`], in the commit's one script); the delivery tables are
//! written by the webhook worker in transactions of their own on the writer connection,
//! between batches. Commits happen one after another, so an event's `position` is the
//! order it became visible in.

use async_trait::async_trait;
use creditd_ledger::{AccountId, EventType};
use jiff::Timestamp;
use rusqlite::types::Value;
use serde::Serialize;
use sqlx::Row;

use super::writer_thread::{Script, rows_of_first_step};
use super::{SqliteStore, WriterConnection};
use crate::columns::{corrupt, from_json, to_json, unsigned};
use crate::events::{
    EVENT_COLUMNS, attempt_record, compress_data, db_count, event_delivery, sql, stored_event,
};
use crate::instant::{from_db, to_db};
use crate::{
    AttemptRecord, Changes, ClaimedDelivery, EventDelivery, EventFilter, EventRecord, EventStore,
    StoreError, StoredEvent, WebhookEndpoint,
};

/// The statements on events that are SQLite's alone (PostgreSQL keeps a batch's events
/// of one account in one row, `src/postgres/events.rs`).
pub(super) mod statements {
    /// With no endpoint to hand events to, the dispatcher skips to the newest event (an
    /// endpoint receives only events recorded after its creation anyway): one
    /// statement, so the endpoints and events it looks at are of one moment. Changes
    /// no row when there is an endpoint.
    pub(crate) const SKIP_WITHOUT_ENDPOINTS: &str = "UPDATE webhook_dispatch
        SET position = (SELECT coalesce(max(position), 0) FROM events)
        WHERE NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)";
    /// When the oldest event not yet delivered was recorded: the event of the first
    /// pending delivery, and the first event not yet handed out. Events are recorded and
    /// handed out in the order of their positions, so both are found by position from
    /// an index, not among every event or every pending delivery: `/metrics` asks on
    /// every scrape.
    pub(crate) const OLDEST_UNDELIVERED: &str = "SELECT min(at) FROM (
        SELECT (SELECT e.recorded_at FROM webhook_deliveries d
                JOIN events e ON e.position = d.position
                WHERE d.state = 'pending' AND d.position IS NOT NULL
                ORDER BY d.position LIMIT 1) AS at
        UNION ALL
        SELECT (SELECT e.recorded_at FROM events e
                WHERE e.position > (SELECT position FROM webhook_dispatch)
                ORDER BY e.position LIMIT 1)
        WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)) m";
    /// Events recorded before `$1`.
    pub(crate) const PURGE_EVENTS: &str = "DELETE FROM events WHERE recorded_at < $1";
    /// Finished deliveries of events no longer kept.
    pub(crate) const PURGE_DELIVERIES: &str = "DELETE FROM webhook_deliveries
        WHERE state != 'pending' AND NOT EXISTS (SELECT 1 FROM events e
            WHERE e.account_id = webhook_deliveries.account_id
              AND e.sequence = webhook_deliveries.sequence)";
    /// One event by account `$1` and number `$2` (`stored_event`).
    pub(crate) const EVENT: &str = "SELECT position, account_id, sequence, type, created_at,
        recorded_at, data FROM events WHERE account_id = $1 AND sequence = $2";
    /// An account's events numbered below `$2`, newest first, at most `$3`.
    pub(crate) const ACCOUNT_EVENTS: &str = "SELECT position, account_id, sequence, type,
        created_at, recorded_at, data FROM events WHERE account_id = $1 AND sequence < $2
        ORDER BY sequence DESC LIMIT $3";
}

/// Frees the deliveries a previous run had claimed.
pub(super) const RELEASE_LEASES: &str = "UPDATE webhook_deliveries
     SET holder = NULL, lease_until = NULL WHERE holder IS NOT NULL";

/// An endpoint as the upsert reads it from JSON.
#[derive(Serialize)]
struct EndpointRow<'a> {
    id: &'a str,
    url: &'a str,
    event_types: Option<String>,
    description: Option<&'a str>,
    secret: &'a str,
    created_at: i64,
    deleted_at: Option<i64>,
}

/// One event.
const INSERT_EVENT: &str =
    "INSERT INTO events (account_id, sequence, type, created_at, recorded_at, data)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Events in a statement of [`INSERT_EVENTS`], a distribution's four.
const EVENTS_AT_ONCE: usize = 4;
/// [`EVENTS_AT_ONCE`] events, committed in the order listed. `position` is
/// AUTOINCREMENT, whose counter SQLite reads and writes back once a statement, and a
/// statement has a cost of its own besides: four events a statement take about a tenth
/// less of the writer's time than a statement each (docs/BENCHMARKS.md, levers).
const INSERT_EVENTS: &str =
    "INSERT INTO events (account_id, sequence, type, created_at, recorded_at, data)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6), (?7, ?8, ?9, ?10, ?11, ?12),
            (?13, ?14, ?15, ?16, ?17, ?18), (?19, ?20, ?21, ?22, ?23, ?24)";

/// An event as [`INSERT_EVENT`] takes it.
fn event_row(e: &EventRecord) -> Result<[Value; 6], StoreError> {
    Ok([
        e.account_id.to_string().into(),
        db_count(e.sequence)?.into(),
        e.event_type.as_str().to_owned().into(),
        to_db(e.created_at).into(),
        to_db(e.recorded_at).into(),
        compress_data(&e.data)?.into(),
    ])
}

/// The batch's events, endpoints and redeliveries, each a statement taking its rows as
/// one JSON array.
pub(super) fn push_events(script: &mut Script, changes: &Changes) -> Result<(), StoreError> {
    // Bound parameters, not one JSON array: a sweep that distributes to thousands of
    // members writes four events each, and reading fields out of JSON text cost more
    // than the rows themselves.
    let mut events = changes.events.chunks_exact(EVENTS_AT_ONCE);
    for some in &mut events {
        let mut row = Vec::with_capacity(6 * EVENTS_AT_ONCE);
        for e in some {
            row.extend(event_row(e)?);
        }
        let row: [Value; 6 * EVENTS_AT_ONCE] = row
            .try_into()
            .map_err(|_| corrupt("events of the wrong number for one statement"))?;
        script.push(INSERT_EVENTS, row);
    }
    for e in events.remainder() {
        script.push(INSERT_EVENT, event_row(e)?);
    }
    if !changes.webhook_endpoints.is_empty() {
        let mut rows = Vec::with_capacity(changes.webhook_endpoints.len());
        for e in &changes.webhook_endpoints {
            let types: Option<Vec<&str>> = e
                .event_types
                .as_ref()
                .map(|types| types.iter().map(|t| t.as_str()).collect());
            rows.push(EndpointRow {
                id: &e.id,
                url: &e.url,
                event_types: types.map(|types| to_json(&types)).transpose()?,
                description: e.description.as_deref(),
                secret: &e.secret,
                created_at: to_db(e.created_at),
                deleted_at: e.deleted_at.map(to_db),
            });
        }
        script.push(
            "INSERT INTO webhook_endpoints (id, url, event_types, description, secret,
                                            created_at, deleted_at)
             SELECT value ->> '$.id', value ->> '$.url', value ->> '$.event_types',
                    value ->> '$.description', value ->> '$.secret', value ->> '$.created_at',
                    value ->> '$.deleted_at'
             FROM json_each(?1) WHERE true ON CONFLICT (id) DO UPDATE SET secret = excluded.secret,
                 deleted_at = excluded.deleted_at",
            [to_json(&rows)?.into()],
        );
        let deleted: Vec<&str> = changes
            .webhook_endpoints
            .iter()
            .filter(|e| e.deleted_at.is_some())
            .map(|e| e.id.as_str())
            .collect();
        if !deleted.is_empty() {
            script.push(
                "UPDATE webhook_deliveries SET state = 'cancelled', next_attempt_at = NULL
                 WHERE state = 'pending'
                   AND endpoint_id IN (SELECT value FROM json_each(?1))",
                [to_json(&deleted)?.into()],
            );
        }
    }
    if !changes.redeliveries.is_empty() {
        let rows: Vec<(&str, &str, u64, i64)> = changes
            .redeliveries
            .iter()
            .map(|r| {
                (
                    r.endpoint_id.as_str(),
                    r.account_id.as_str(),
                    r.sequence,
                    to_db(r.at),
                )
            })
            .collect();
        script.push(
            "INSERT INTO webhook_deliveries (endpoint_id, account_id, sequence, attempts, state,
                                             next_attempt_at, position)
             SELECT value ->> 0, value ->> 1, value ->> 2, 0, 'pending', value ->> 3,
                    (SELECT e.position FROM events e
                     WHERE e.account_id = value ->> 1 AND e.sequence = value ->> 2)
             FROM json_each(?1) WHERE true ON CONFLICT DO UPDATE SET attempts = 0, state = 'pending',
                 next_attempt_at = excluded.next_attempt_at, holder = NULL, lease_until = NULL",
            [to_json(&rows)?.into()],
        );
    }
    Ok(())
}

fn endpoint(row: &sqlx::sqlite::SqliteRow) -> Result<WebhookEndpoint, StoreError> {
    let types: Option<String> = row.try_get(2)?;
    let event_types = types
        .map(|text| {
            let names: Vec<String> = from_json(&text)?;
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

impl WriterConnection {
    /// Runs `script` and `COMMIT` in the transaction begun, and answers the rows each
    /// of its steps changed.
    async fn commit_own(&mut self, mut script: Script) -> Result<Vec<usize>, StoreError> {
        script.push("COMMIT", []);
        let changed = self.run(script).await?;
        self.in_transaction = false;
        Ok(changed)
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn events_page(
        &self,
        after: Option<u64>,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let after = db_count(after.unwrap_or(0))?;
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE position > $1 AND ($2 IS NULL OR type = $2) AND ($3 IS NULL OR account_id = $3)
             ORDER BY position LIMIT $4"
        ))
        .bind(after)
        .bind(filter.event_type.map(EventType::as_str))
        .bind(filter.account.as_ref().map(AccountId::as_str))
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(stored_event).collect()
    }

    async fn event(
        &self,
        account: &AccountId,
        sequence: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query(statements::EVENT)
            .bind(account.as_str())
            .bind(db_count(sequence)?)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| stored_event(&row)).transpose()
    }

    async fn account_events(
        &self,
        account: &AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(statements::ACCOUNT_EVENTS)
            .bind(account.as_str())
            .bind(before.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
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
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(event_delivery).collect()
    }

    async fn purge_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut writer = self.writer.lock().await;
        writer.begin().await?;
        let before = to_db(before);
        let mut script = Script::default();
        script.push(statements::PURGE_EVENTS, [before.into()]);
        script.push(statements::PURGE_DELIVERIES, []);
        script.push(sql::PURGE_ATTEMPTS, [before.into()]);
        Ok(rows_of_first_step(&writer.commit_own(script).await?))
    }

    async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let rows = sqlx::query(sql::ENDPOINTS).fetch_all(&self.readers).await?;
        rows.iter().map(endpoint).collect()
    }

    async fn webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(sql::ENDPOINT)
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|row| endpoint(&row)).transpose()
    }

    async fn dispatch_events(&self, now: Timestamp, limit: u32) -> Result<u32, StoreError> {
        let mut writer = self.writer.lock().await;
        writer.begin().await?;
        let now = to_db(now);
        let handed_out = writer
            .connection
            .call(move |connection| {
                let skipped = connection
                    .prepare_cached(statements::SKIP_WITHOUT_ENDPOINTS)?
                    .execute([])?;
                if skipped > 0 {
                    connection.execute_batch("COMMIT")?;
                    return Ok(0);
                }
                let from: i64 =
                    connection.query_row("SELECT position FROM webhook_dispatch", [], |row| {
                        row.get(0)
                    })?;
                let (through, count): (Option<i64>, i64) = connection
                    .prepare_cached(
                        "SELECT max(position), count(*) FROM (
                             SELECT position FROM events WHERE position > ?1
                             ORDER BY position LIMIT ?2)",
                    )?
                    .query_row([from, i64::from(limit)], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                let Some(through) = through.filter(|_| count > 0) else {
                    connection.execute_batch("COMMIT")?;
                    return Ok(0);
                };
                connection
                    .prepare_cached(
                        "INSERT INTO webhook_deliveries (endpoint_id, account_id, sequence,
                                                         attempts, state, next_attempt_at,
                                                         position)
                         SELECT w.id, e.account_id, e.sequence, 0, 'pending', ?3, e.position
                         FROM events e JOIN webhook_endpoints w
                           ON w.deleted_at IS NULL AND w.created_at <= e.recorded_at
                          AND (w.event_types IS NULL
                               OR EXISTS (SELECT 1 FROM json_each(w.event_types)
                                          WHERE value = e.type))
                         WHERE e.position > ?1 AND e.position <= ?2
                         ON CONFLICT DO NOTHING",
                    )?
                    .execute([from, through, now])?;
                connection
                    .prepare_cached("UPDATE webhook_dispatch SET position = ?1")?
                    .execute([through])?;
                connection.execute_batch("COMMIT")?;
                Ok(count)
            })
            .await?;
        writer.in_transaction = false;
        u32::try_from(handed_out).map_err(corrupt)
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
        {
            let mut writer = self.writer.lock().await;
            writer.begin().await?;
            let mut script = Script::default();
            script.push(
                "UPDATE webhook_deliveries SET holder = ?1, lease_until = ?2
                 WHERE (endpoint_id, account_id, sequence) IN (
                     SELECT endpoint_id, account_id, sequence FROM webhook_deliveries
                     WHERE state = 'pending' AND next_attempt_at <= ?3 AND endpoint_id = ?6
                       AND (lease_until IS NULL OR lease_until < ?4)
                     ORDER BY next_attempt_at LIMIT ?5)",
                [
                    holder.to_owned().into(),
                    lease_until.into(),
                    to_db(now).into(),
                    wall.into(),
                    i64::from(limit).into(),
                    endpoint_id.to_owned().into(),
                ],
            );
            writer.commit_own(script).await?;
        }
        // The claims are committed, so a reader sees them; they are this holder's until
        // its lease runs out.
        let rows = sqlx::query(&format!(
            "SELECT e.{}, w.id, w.url, w.secret, d.attempts
             FROM webhook_deliveries d
             JOIN webhook_endpoints w ON w.id = d.endpoint_id
             JOIN events e ON e.account_id = d.account_id AND e.sequence = d.sequence
             WHERE d.holder = $1 AND d.lease_until = $2 AND d.state = 'pending'",
            EVENT_COLUMNS.replace(", ", ", e.")
        ))
        .bind(holder)
        .bind(lease_until)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedDelivery {
                    event: stored_event(row)?.event,
                    endpoint_id: row.try_get(7)?,
                    url: row.try_get(8)?,
                    secret: row.try_get(9)?,
                    attempts: u32::try_from(unsigned(row.try_get(10)?)?).map_err(corrupt)?,
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
        let mut script = Script::default();
        for a in attempts {
            let sequence = db_count(a.sequence)?;
            let state = || Value::from(a.state.as_str().to_owned());
            script.push(
                sql::INSERT_ATTEMPT,
                [
                    a.endpoint_id.clone().into(),
                    a.account_id.to_string().into(),
                    sequence.into(),
                    i64::from(a.attempt).into(),
                    to_db(a.at).into(),
                    a.status_code.map(i64::from).into(),
                    a.error.clone().into(),
                    a.next_attempt_at.map(to_db).into(),
                    state(),
                ],
            );
            script.push(
                sql::FINISH_ATTEMPT,
                [
                    a.endpoint_id.clone().into(),
                    a.account_id.to_string().into(),
                    sequence.into(),
                    i64::from(a.attempt).into(),
                    state(),
                    a.next_attempt_at.map(to_db).into(),
                    holder.to_owned().into(),
                ],
            );
        }
        let mut writer = self.writer.lock().await;
        writer.begin().await?;
        writer.commit_own(script).await?;
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
            .bind(limit)
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(attempt_record).collect()
    }

    async fn oldest_undelivered(&self) -> Result<Option<Timestamp>, StoreError> {
        let oldest: Option<i64> = sqlx::query_scalar(statements::OLDEST_UNDELIVERED)
            .fetch_one(&self.readers)
            .await?;
        oldest.map(from_db).transpose()
    }
}
