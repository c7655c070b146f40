//! Events and webhook deliveries on PostgreSQL. Events are written in the batch's
//! transaction ([`write_events`]), last, under a transaction-scoped advisory lock
//! ([`EVENTS_LOCK`]) held until the commit: several transactions commit at once here,
//! on one node or several, and a serial number taken without the lock could be
//! committed after a larger one had been read, behind a consumer's cursor. Under the
//! lock, positions are taken in commit order, so a page that goes by position never
//! misses an event. Only batches that record events wait for it, and only for one
//! another's flush.
//!
//! A batch's events of one account are one row, a run ([`EventRuns`], migration
//! `0015_event_runs`): a month's distribution records four events a member, and as
//! rows of their own they were a third of the sweep's index entries. A run's events
//! take contiguous positions and numbers, so each keeps a position of its own; the view
//! `events` shows them a row each, and every statement here bounds the runs it reads
//! ([`RUN_LIMIT`]).
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
use crate::columns::{corrupt, unsigned};
use crate::events::{
    EVENT_COLUMNS, attempt_record, compress_data, db_count, event_delivery, sql, stored_event,
};
use crate::instant::{from_db, to_db};
use crate::{
    AttemptRecord, Changes, ClaimedDelivery, EventDelivery, EventFilter, EventRecord, EventStore,
    StoreError, StoredEvent, WebhookEndpoint,
};

/// The lock under which a transaction takes its events' positions, until it commits:
/// the two-key form of advisory locks, apart from the one-key locks of accounts.
const EVENTS_LOCK: (i32, i32) = (0x6372_6564, 2);

/// The most events one run holds. A statement finds an event by its position or its
/// number from the runs whose first position (or first number) is at most this far
/// before it, an index range; without the bound, from every run before it.
const RUN_LIMIT: usize = 256;
/// [`RUN_LIMIT`] as the statements take it.
const RUN_BOUND: i64 = RUN_LIMIT as i64;

/// A batch's runs: each takes the next positions from `event_positions` (`$1` of them in
/// all, contiguous under the lock), its first `$2` after the batch's first. The events of
/// a run are bound as PostgreSQL array literals, one per run: arrays of arrays must have
/// rows of one length, and runs do not.
const INSERT_RUNS: &str = "WITH taken AS (
        SELECT setval('event_positions', nextval('event_positions') + $1 - 1) - $1 + 1
            AS first)
    INSERT INTO event_runs (first_position, account_id, first_sequence, recorded_at, types,
                            created_ats, data)
    SELECT taken.first + r.shift, r.account_id, r.first_sequence, r.recorded_at,
           r.types::text[], r.created_ats::int8[], r.data::bytea[]
    FROM taken, unnest($2::int8[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[],
                       $8::text[])
        AS r (shift, account_id, first_sequence, recorded_at, types, created_ats, data)";

/// A batch's events as runs ([`INSERT_RUNS`]): one run for the events that follow each
/// other in the batch for one account, recorded at one instant, at most [`RUN_LIMIT`].
#[derive(Default)]
struct EventRuns<'a> {
    /// Each run's first event, counted from the batch's first.
    offsets: Vec<i64>,
    accounts: Vec<&'a str>,
    first_sequences: Vec<i64>,
    recorded_ats: Vec<i64>,
    /// `{"credits.granted",…}`
    types: Vec<String>,
    /// `{1764…,…}`
    created_ats: Vec<String>,
    /// `{"\\x02…",…}`: each event's data, compressed, in hexadecimal.
    data: Vec<String>,
}

impl<'a> EventRuns<'a> {
    fn of(events: &'a [EventRecord]) -> Result<EventRuns<'a>, StoreError> {
        let mut runs = EventRuns::default();
        let mut rest = events;
        while !rest.is_empty() {
            let (run, after) = rest.split_at(run_length(rest));
            runs.push(events.len().saturating_sub(rest.len()), run)?;
            rest = after;
        }
        Ok(runs)
    }

    fn push(&mut self, offset: usize, run: &'a [EventRecord]) -> Result<(), StoreError> {
        let Some(first) = run.first() else {
            return Ok(());
        };
        self.offsets.push(i64::try_from(offset).map_err(corrupt)?);
        self.accounts.push(first.account_id.as_str());
        self.first_sequences.push(db_count(first.sequence)?);
        self.recorded_ats.push(to_db(first.recorded_at));
        self.types.push(array_literal(
            run.iter().map(|e| format!("\"{}\"", e.event_type.as_str())),
        ));
        self.created_ats.push(array_literal(
            run.iter().map(|e| to_db(e.created_at).to_string()),
        ));
        let data = run
            .iter()
            .map(|e| compress_data(&e.data).map(|bytes| bytea_element(&bytes)))
            .collect::<Result<Vec<_>, _>>()?;
        self.data.push(array_literal(data.into_iter()));
        Ok(())
    }
}

/// How many of `events`, from the first, make one run: those that follow each other
/// for one account, recorded at one instant, at most [`RUN_LIMIT`].
fn run_length(events: &[EventRecord]) -> usize {
    let follow = events
        .windows(2)
        .take(RUN_LIMIT.saturating_sub(1))
        .take_while(|pair| {
            let [before, next] = pair else { return false };
            before.account_id == next.account_id
                && before.sequence.checked_add(1) == Some(next.sequence)
                && before.recorded_at == next.recorded_at
        })
        .count();
    follow.saturating_add(1)
}

/// `{a,b,…}`: PostgreSQL's text form of an array.
fn array_literal(elements: impl Iterator<Item = String>) -> String {
    let mut literal = String::from("{");
    for (n, element) in elements.enumerate() {
        if n > 0 {
            literal.push(',');
        }
        literal.push_str(&element);
    }
    literal.push('}');
    literal
}

/// `"\\x0a1b…"`: bytes as a quoted element of a `bytea[]` literal (a backslash in a
/// quoted element is written twice).
fn bytea_element(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut element = String::with_capacity(bytes.len().saturating_mul(2).saturating_add(5));
    element.push_str("\"\\\\x");
    for byte in bytes {
        for digit in [byte >> 4, byte & 0xf] {
            element.push(char::from(DIGITS[usize::from(digit)]));
        }
    }
    element.push('"');
    element
}

/// Statements on the events view (migration `0015_event_runs`). Each bounds the runs it
/// reads by `first_position` or `first_sequence`, with [`RUN_LIMIT`] as a parameter (the
/// run limit): a condition on an event's own `position` or `sequence` is on the view's
/// arithmetic, which no index has.
mod statements {
    /// Events after position `$1`, of type `$2` and account `$3` where not null, oldest
    /// first, at most `$4`; `$5` the run limit.
    pub(super) const EVENTS_PAGE: &str = "SELECT position, account_id, sequence, type,
        created_at, recorded_at, data FROM events
        WHERE first_position > $1 - $5 AND position > $1
          AND ($2::text IS NULL OR type = $2) AND ($3::text IS NULL OR account_id = $3)
        ORDER BY first_position, position LIMIT $4";
    /// One event by account `$1` and number `$2`; `$3` the run limit.
    pub(super) const EVENT: &str = "SELECT position, account_id, sequence, type, created_at,
        recorded_at, data FROM events
        WHERE account_id = $1 AND first_sequence <= $2 AND first_sequence > $2 - $3
          AND sequence = $2";
    /// An account's events numbered below `$2`, newest first, at most `$3`: from its
    /// last `$3` runs below `$2` at most (each holds one event or more), so that the sort
    /// never takes every run of an account with millions.
    pub(super) const ACCOUNT_EVENTS: &str = "SELECT position, account_id, sequence, type,
        created_at, recorded_at, data FROM events
        WHERE account_id = $1 AND first_sequence < $2 AND sequence < $2
          AND first_sequence >= (SELECT min(first_sequence) FROM (
              SELECT first_sequence FROM event_runs WHERE account_id = $1 AND first_sequence < $2
              ORDER BY first_sequence DESC LIMIT $3) last)
        ORDER BY first_sequence DESC, sequence DESC LIMIT $3";
    /// The runs recorded before `$1`; the number of events they held.
    pub(super) const PURGE_EVENTS: &str = "WITH gone AS (
            DELETE FROM event_runs WHERE recorded_at < $1 RETURNING cardinality(types) AS n)
        SELECT coalesce(sum(n), 0)::int8 FROM gone";
    /// Finished deliveries of events no longer kept; `$1` the run limit.
    pub(super) const PURGE_DELIVERIES: &str = "DELETE FROM webhook_deliveries d
        WHERE state != 'pending' AND NOT EXISTS (SELECT 1 FROM event_runs r
            WHERE r.account_id = d.account_id AND r.first_sequence <= d.sequence
              AND r.first_sequence > d.sequence - $1
              AND d.sequence < r.first_sequence + cardinality(r.types))";
    /// As SQLite's statement of the same name (`src/sqlite/events.rs`), with the last
    /// position taken from the newest run.
    pub(super) const SKIP_WITHOUT_ENDPOINTS: &str = "UPDATE webhook_dispatch
        SET position = coalesce((SELECT first_position + cardinality(types) - 1
                                 FROM event_runs ORDER BY first_position DESC LIMIT 1), 0)
        WHERE NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)";
    /// As SQLite's statement of the same name (`src/sqlite/events.rs`): the run of the
    /// first pending delivery's event, and the first run with an event not yet handed
    /// out; `$1` the run limit.
    pub(super) const OLDEST_UNDELIVERED: &str = "SELECT min(at) FROM (
        SELECT (SELECT r.recorded_at FROM event_runs r
                WHERE r.first_position <= pending.position
                  AND r.first_position > pending.position - $1
                ORDER BY r.first_position DESC LIMIT 1) AS at
        FROM (SELECT (SELECT position FROM webhook_deliveries
                      WHERE state = 'pending' AND position IS NOT NULL
                      ORDER BY position LIMIT 1) AS position) pending
        UNION ALL
        SELECT (SELECT r.recorded_at FROM event_runs r
                WHERE r.first_position > d.position - $1
                  AND r.first_position + cardinality(r.types) - 1 > d.position
                ORDER BY r.first_position LIMIT 1)
        FROM webhook_dispatch d
        WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)) m";
    /// The events after position `$1` up to `$2` with their endpoints, as deliveries due
    /// at `$3`; `$4` the run limit.
    pub(super) const DISPATCH: &str = "INSERT INTO webhook_deliveries (endpoint_id,
            account_id, sequence, attempts, state, next_attempt_at, position)
        SELECT w.id, e.account_id, e.sequence, 0, 'pending', $3, e.position
        FROM events e JOIN webhook_endpoints w
          ON w.deleted_at IS NULL AND w.created_at <= e.recorded_at
         AND (w.event_types IS NULL OR e.type = ANY(w.event_types))
        WHERE e.first_position > $1 - $4 AND e.first_position <= $2
          AND e.position > $1 AND e.position <= $2
        ON CONFLICT DO NOTHING";
    /// The last position and the number of events after position `$1`, at most `$2`;
    /// `$3` the run limit.
    pub(super) const TO_DISPATCH: &str = "SELECT max(position), count(*) FROM (
            SELECT position FROM events WHERE first_position > $1 - $3 AND position > $1
            ORDER BY first_position, position LIMIT $2) e";
    /// A redelivery of account `$2`'s event `$3` to endpoint `$1` due at `$4`; `$5` the
    /// run limit.
    pub(super) const REDELIVER: &str = "INSERT INTO webhook_deliveries (endpoint_id,
            account_id, sequence, attempts, state, next_attempt_at, position)
        VALUES ($1, $2, $3, 0, 'pending', $4,
                (SELECT e.position FROM events e
                 WHERE e.account_id = $2 AND e.first_sequence <= $3
                   AND e.first_sequence > $3 - $5 AND e.sequence = $3))
        ON CONFLICT (endpoint_id, account_id, sequence) DO UPDATE SET attempts = 0,
            state = 'pending', next_attempt_at = excluded.next_attempt_at, holder = NULL,
            lease_until = NULL";
}

/// The batch's events, endpoints and redeliveries.
pub(super) async fn write_events(
    tx: &mut Transaction<'static, Postgres>,
    changes: &Changes,
) -> Result<(), StoreError> {
    if !changes.events.is_empty() {
        // Built and compressed before the lock, which other nodes' batches with events
        // wait for.
        let runs = EventRuns::of(&changes.events)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(EVENTS_LOCK.0)
            .bind(EVENTS_LOCK.1)
            .execute(&mut **tx)
            .await?;
        sqlx::query(INSERT_RUNS)
            .bind(i64::try_from(changes.events.len()).map_err(corrupt)?)
            .bind(&runs.offsets)
            .bind(&runs.accounts)
            .bind(&runs.first_sequences)
            .bind(&runs.recorded_ats)
            .bind(&runs.types)
            .bind(&runs.created_ats)
            .bind(&runs.data)
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
        sqlx::query(statements::REDELIVER)
            .bind(&r.endpoint_id)
            .bind(r.account_id.as_str())
            .bind(db_count(r.sequence)?)
            .bind(to_db(r.at))
            .bind(RUN_BOUND)
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
        let rows = sqlx::query(statements::EVENTS_PAGE)
            .bind(db_count(after.unwrap_or(0))?)
            .bind(filter.event_type.map(EventType::as_str))
            .bind(filter.account.as_ref().map(AccountId::as_str))
            .bind(i64::from(limit))
            .bind(RUN_BOUND)
            .fetch_all(&self.pool)
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
            .bind(RUN_BOUND)
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
        let rows = sqlx::query(statements::ACCOUNT_EVENTS)
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
        let purged: i64 = sqlx::query_scalar(statements::PURGE_EVENTS)
            .bind(before)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(statements::PURGE_DELIVERIES)
            .bind(RUN_BOUND)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::PURGE_ATTEMPTS)
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        unsigned(purged)
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
        let skipped = sqlx::query(statements::SKIP_WITHOUT_ENDPOINTS)
            .execute(&mut *tx)
            .await?;
        if skipped.rows_affected() > 0 {
            tx.commit().await?;
            return Ok(0);
        }
        let (through, count): (Option<i64>, i64) = sqlx::query_as(statements::TO_DISPATCH)
            .bind(from)
            .bind(i64::from(limit))
            .bind(RUN_BOUND)
            .fetch_one(&mut *tx)
            .await?;
        let Some(through) = through else {
            tx.commit().await?;
            return Ok(0);
        };
        sqlx::query(statements::DISPATCH)
            .bind(from)
            .bind(through)
            .bind(to_db(now))
            .bind(RUN_BOUND)
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
             JOIN events e ON e.account_id = c.account_id AND e.sequence = c.sequence
              AND e.first_sequence <= c.sequence AND e.first_sequence > c.sequence - $7",
            EVENT_COLUMNS.replace(", ", ", e.")
        ))
        .bind(holder)
        .bind(lease_until)
        .bind(to_db(now))
        .bind(wall)
        .bind(i64::from(limit))
        .bind(endpoint_id)
        .bind(RUN_BOUND)
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
        let oldest: Option<i64> = sqlx::query_scalar(statements::OLDEST_UNDELIVERED)
            .bind(RUN_BOUND)
            .fetch_one(&self.pool)
            .await?;
        oldest.map(from_db).transpose()
    }
}
