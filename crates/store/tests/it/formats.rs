//! PostgreSQL's rows of the core's types across its migration to format 2
//! (`migrations/postgres/0012_binary_states.sql`): a database an earlier version left,
//! with `text` columns of format 1 JSON, reads back after the migration beside the
//! format 2 rows this version writes. (SQLite's, whose columns take either, in
//! `backlog.rs`.)

use creditd_store::Changes;
use sqlx::{Connection, Executor, PgConnection};

use crate::conformance::{assert_reads, batch, commit, format_1_history};
use crate::events::{event_data, events_of_a};
use crate::postgres_or_skip;

/// Turns the rows of `changes` back into what versions before format 2 on PostgreSQL
/// left: format 1 JSON in `text` columns, migration 12 not applied.
async fn as_an_earlier_version_left_them(connection: &mut PgConnection, changes: &Changes) {
    for stored in &changes.accounts {
        sqlx::query("UPDATE accounts SET state = convert_to($1, 'UTF8'), format = 1 WHERE id = $2")
            .bind(serde_json::to_string(&stored.account).unwrap())
            .bind(stored.account.id().as_str())
            .execute(&mut *connection)
            .await
            .unwrap();
    }
    for (id, kind, number, json) in format_1_history(changes) {
        sqlx::query(
            "UPDATE history SET data = convert_to($1, 'UTF8'), format = 1
             WHERE account_id = $2 AND kind = $3 AND number = $4",
        )
        .bind(json)
        .bind(id.as_str())
        .bind(kind)
        .bind(i64::try_from(number).unwrap())
        .execute(&mut *connection)
        .await
        .unwrap();
    }
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

#[tokio::test]
async fn a_postgres_database_of_format_1_text_reads_back_beside_format_2_rows() {
    let Some(database) = postgres_or_skip().await else {
        return;
    };
    let db = creditd_store::open(database.url()).await.unwrap();
    let (old, changes) = batch(0, 5);
    commit(&db, &changes).await.unwrap();
    db.close().await;
    let mut connection = PgConnection::connect(database.url()).await.unwrap();
    as_an_earlier_version_left_them(&mut connection, &changes).await;
    assert_eq!(formats(&mut connection).await, [("text".to_owned(), 1)]);

    let db = creditd_store::open(database.url()).await.unwrap();
    assert_reads(&db, &old).await;
    let (new, changes) = batch(5, 5);
    commit(&db, &changes).await.unwrap();
    assert_eq!(
        formats(&mut connection).await,
        [("bytea".to_owned(), 1), ("bytea".to_owned(), 2)]
    );
    assert_reads(&db, &[old, new].concat()).await;
    db.close().await;
    connection.close().await.unwrap();
    database.drop().await;
}

/// Events' data an earlier version stored as JSON `text` reads back, after migration 13,
/// beside the compressed data this version stores.
#[tokio::test]
async fn event_data_stored_as_text_reads_back_after_its_migration() {
    let Some(database) = postgres_or_skip().await else {
        return;
    };
    let db = creditd_store::open(database.url()).await.unwrap();
    let old = events_of_a(&[1]);
    commit(&db, &old).await.unwrap();
    db.close().await;
    let mut connection = PgConnection::connect(database.url()).await.unwrap();
    connection
        .execute(
            "ALTER TABLE events ALTER COLUMN data TYPE text USING '';
             DELETE FROM _sqlx_migrations WHERE version = 13;",
        )
        .await
        .unwrap();
    sqlx::query("UPDATE events SET data = $1")
        .bind(&old.events[0].data)
        .execute(&mut connection)
        .await
        .unwrap();

    let db = creditd_store::open(database.url()).await.unwrap();
    let new = events_of_a(&[2]);
    commit(&db, &new).await.unwrap();
    let first_bytes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT substr(data, 1, 1) FROM events ORDER BY position")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(first_bytes, [b"{".to_vec(), vec![2]]);
    assert_eq!(
        event_data(&db).await,
        [old.events[0].data.clone(), new.events[0].data.clone()]
    );
    db.close().await;
    connection.close().await.unwrap();
    database.drop().await;
}
