//! PostgreSQL's rows of the core's types across its migration to binary formats
//! (`migrations/postgres/0012_binary_states.sql`): a database an earlier version left,
//! with `text` columns of format 1 JSON, reads back after the migration beside the
//! rows this version writes; format 2 rows read back beside format 3 ones. (SQLite's,
//! whose columns take either, in `backlog.rs`.)

use creditd_store::{Changes, EventFilter};
use sqlx::{Connection, Executor, PgConnection};

use crate::conformance::{assert_reads, batch, commit, history_in, stored_in};
use crate::events::{event_data, events_of_a};
use crate::postgres_or_skip;

/// Rewrites the states, entries and holds of `changes` in an earlier `format`, as bytes
/// (format 1 is its JSON text's UTF-8 bytes, as migration 12 left it).
async fn as_written_in(connection: &mut PgConnection, changes: &Changes, format: u8) {
    for stored in &changes.accounts {
        sqlx::query("UPDATE accounts SET state = $1, format = $2 WHERE id = $3")
            .bind(stored_in(format, &stored.account))
            .bind(i64::from(format))
            .bind(stored.account.id().as_str())
            .execute(&mut *connection)
            .await
            .unwrap();
    }
    for (id, kind, number, data) in history_in(changes, format) {
        sqlx::query(
            "UPDATE history SET data = $1, format = $2
             WHERE account_id = $3 AND kind = $4 AND number = $5",
        )
        .bind(data)
        .bind(i64::from(format))
        .bind(id.as_str())
        .bind(kind)
        .bind(i64::try_from(number).unwrap())
        .execute(&mut *connection)
        .await
        .unwrap();
    }
}

/// Turns the rows of `changes` back into what versions before format 2 on PostgreSQL
/// left: format 1 JSON in `text` columns, migration 12 not applied.
async fn as_an_earlier_version_left_them(connection: &mut PgConnection, changes: &Changes) {
    as_written_in(connection, changes, 1).await;
    connection
        .execute(
            "ALTER TABLE accounts ALTER COLUMN state TYPE text USING convert_from(state, 'UTF8');
             ALTER TABLE history ALTER COLUMN data TYPE text USING convert_from(data, 'UTF8');
             DELETE FROM _sqlx_migrations WHERE version = 12;",
        )
        .await
        .unwrap();
}

/// The type and format of every row of the core's types, in `accounts` and `history`.
async fn formats(connection: &mut PgConnection) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT pg_typeof(state)::text, format FROM accounts
         UNION SELECT pg_typeof(data)::text, format FROM history ORDER BY 2",
    )
    .fetch_all(connection)
    .await
    .unwrap()
}

/// A database whose rows `rewrite` turns into an earlier version's reads back beside the
/// rows this version writes. Returns the types and formats of the rows before and after.
async fn reads_back_beside_rows_of_this_version(
    rewrite: impl AsyncFnOnce(&mut PgConnection, &Changes),
) -> Option<(Vec<(String, i64)>, Vec<(String, i64)>)> {
    let database = postgres_or_skip().await?;
    let db = creditd_store::open(database.url()).await.unwrap();
    let (old, changes) = batch(0, 5);
    commit(&db, &changes).await.unwrap();
    db.close().await;
    let mut connection = PgConnection::connect(database.url()).await.unwrap();
    rewrite(&mut connection, &changes).await;
    let before = formats(&mut connection).await;

    let db = creditd_store::open(database.url()).await.unwrap();
    assert_reads(&db, &old).await;
    let (new, changes) = batch(5, 5);
    commit(&db, &changes).await.unwrap();
    let after = formats(&mut connection).await;
    assert_reads(&db, &[old, new].concat()).await;
    db.close().await;
    connection.close().await.unwrap();
    database.drop().await;
    Some((before, after))
}

#[tokio::test]
async fn a_postgres_database_of_format_1_text_reads_back_beside_rows_of_this_version() {
    let Some((before, after)) =
        reads_back_beside_rows_of_this_version(as_an_earlier_version_left_them).await
    else {
        return;
    };
    assert_eq!(before, [("text".to_owned(), 1)]);
    assert_eq!(after, [("bytea".to_owned(), 1), ("bytea".to_owned(), 3)]);
}

#[tokio::test]
async fn a_postgres_database_of_format_2_reads_back_beside_format_3_rows() {
    let Some((before, after)) = reads_back_beside_rows_of_this_version(
        async |connection: &mut PgConnection, changes: &Changes| {
            as_written_in(connection, changes, 2).await;
        },
    )
    .await
    else {
        return;
    };
    assert_eq!(before, [("bytea".to_owned(), 2)]);
    assert_eq!(after, [("bytea".to_owned(), 2), ("bytea".to_owned(), 3)]);
}

/// Events an earlier version stored, a row each with their data as JSON `text`, read
/// back after migrations 13 (data as bytes) and 15 (a batch's events of one account in
/// one row) beside the compressed runs this version writes, at the positions they had;
/// the positions of new events go on after theirs.
#[tokio::test]
async fn events_stored_a_row_each_as_text_read_back_after_their_migrations() {
    let Some(database) = postgres_or_skip().await else {
        return;
    };
    let db = creditd_store::open(database.url()).await.unwrap();
    let old = events_of_a(&[1]);
    commit(&db, &old).await.unwrap();
    db.close().await;
    let mut connection = PgConnection::connect(database.url()).await.unwrap();
    let (created_at, recorded_at): (i64, i64) =
        sqlx::query_as("SELECT created_ats[1], recorded_at FROM event_runs")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    // The table as migrations 4 and 14 left it, the old event in it at position 7.
    connection
        .execute(
            r#"DROP VIEW events;
               DROP TABLE event_runs;
               DROP SEQUENCE event_positions;
               CREATE TABLE events (
                   position    bigserial NOT NULL,
                   account_id  text COLLATE "C" NOT NULL,
                   sequence    bigint NOT NULL,
                   type        text NOT NULL,
                   created_at  bigint NOT NULL,
                   recorded_at bigint NOT NULL,
                   data        text NOT NULL,
                   PRIMARY KEY (account_id, sequence));
               CREATE UNIQUE INDEX events_in_order ON events (position);
               CREATE INDEX events_by_age ON events (recorded_at);
               SELECT setval('events_position_seq', 6);
               DELETE FROM _sqlx_migrations WHERE version IN (13, 15);"#,
        )
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (account_id, sequence, type, created_at, recorded_at, data)
         VALUES ('a', 1, 'credits.granted', $1, $2, $3)",
    )
    .bind(created_at)
    .bind(recorded_at)
    .bind(&old.events[0].data)
    .execute(&mut connection)
    .await
    .unwrap();

    let db = creditd_store::open(database.url()).await.unwrap();
    let new = events_of_a(&[2]);
    commit(&db, &new).await.unwrap();
    let first_bytes: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT position, substr(data, 1, 1) FROM events ORDER BY position")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(first_bytes, [(7, b"{".to_vec()), (8, vec![2])]);
    assert_eq!(
        event_data(&db).await,
        [old.events[0].data.clone(), new.events[0].data.clone()]
    );
    let page = db
        .events_page(Some(7), &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].event, new.events[0]);
    db.close().await;
    connection.close().await.unwrap();
    database.drop().await;
}
