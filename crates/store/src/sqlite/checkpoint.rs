//! Checkpoints beside the writer: a connection of their own copies the write-ahead log
//! into the database file, so that the writer's commits do not.
//!
//! SQLite checkpoints by default in the connection that commits, once the log passes
//! 1,000 pages: the copy and the database file's fsync then run on the writer's thread,
//! between one batch and the next. Sweeping 400,000 members' distributions, that was 17%
//! of the writer connection's thread (docs/BENCHMARKS.md, "the checkpoints moved off the
//! writer"). A `PASSIVE` checkpoint from another connection takes no lock a writer waits
//! for: it copies what is committed while the writer goes on, and once it has copied
//! everything, the writer's next transaction starts the log again from its beginning.
//!
//! Under a steady load that never happens: the writer's next transaction begins a moment
//! after its last commit, always with a few frames not yet copied, so the log only
//! grows, until the writer's own checkpoint at [`WRITER_CHECKPOINT_PAGES`] copies what is
//! left and fsyncs the file inside a commit. Such commits took 8 to 32 ms, about once a
//! second at 20,000 charges a second, and every request waiting on them with them (one
//! of three stalls behind the slowest requests, docs/BENCHMARKS.md, "where the slowest
//! charges wait"). So once this one has copied the whole log and it is past
//! [`RESTART_AFTER_PAGES`], it asks the writer for a checkpoint between two batches
//! ([`RestartWanted`]): what is left then is only what was committed meanwhile, and the
//! next transaction starts the log again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};

use crate::StoreError;

/// How often the log is copied into the database. Often enough that the log stays a
/// few tens of megabytes at the highest write rates measured here (about 60 MB/s of log
/// in a sweep), seldom enough that an idle service does nothing noticeable.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Pages of log past which the writer checkpoints itself (SQLite's `wal_autocheckpoint`):
/// only should the checkpointer fall behind. 16,384 pages of 4 KiB: 64 MiB of log.
pub(super) const WRITER_CHECKPOINT_PAGES: i64 = 16_384;

/// Pages of log past which a checkpoint that copied all of it asks the writer to start
/// the log again: 12,288 pages of 4 KiB (48 MiB), three quarters of
/// [`WRITER_CHECKPOINT_PAGES`]. The writer's checkpoint still delays the batch behind it
/// by a few milliseconds: asked for past 4,096 pages, about every 300 ms at 20,000
/// charges a second, it made the 99th percentile worse (10.69–10.89 ms against
/// 9.63–9.86 past 12,288; docs/BENCHMARKS.md, "where the slowest charges wait").
const RESTART_AFTER_PAGES: i64 = 12_288;

/// Whether the writer should checkpoint between two batches, to start the log again: set
/// by the checkpointer, taken by the writer.
#[derive(Debug, Default)]
pub(super) struct RestartWanted(AtomicBool);

impl RestartWanted {
    /// Asks for a checkpoint.
    fn ask(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a checkpoint is wanted; the wish is taken with the answer.
    pub(super) fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// The writer's checkpoint between two batches: `PASSIVE`, as nothing else writes then.
/// Should it fail, it is told, and the writer's own at [`WRITER_CHECKPOINT_PAGES`]
/// remains.
pub(super) fn restart_on_thread(connection: &mut rusqlite::Connection) -> Result<(), StoreError> {
    if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        log::debug!("the writer's checkpoint failed: {error}");
    }
    Ok(())
}

/// The task that checkpoints; it stops when this is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    task: tokio::task::AbortHandle,
}

impl Checkpointer {
    /// Opens a connection with `options` and checkpoints through it every
    /// [`CHECKPOINT_EVERY`], asking through `restart` for the writer's checkpoint.
    pub(super) async fn start(
        options: &SqliteConnectOptions,
        restart: Arc<RestartWanted>,
    ) -> Result<Checkpointer, StoreError> {
        let mut connection = options.clone().connect().await?;
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                // `PASSIVE` never waits: what it cannot copy now, the next one will. A
                // failure is told once a round at most, and retried the next.
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&mut connection)
                    .await
                {
                    Ok(row) if row.try_get::<i64, _>(0).unwrap_or(0) == 0 => {
                        // The log's pages, and those copied: all of them, past the mark,
                        // and the writer is asked to start it again.
                        let log = row.try_get::<i64, _>(1).unwrap_or(0);
                        let copied = row.try_get::<i64, _>(2).unwrap_or(0);
                        if log >= RESTART_AFTER_PAGES && copied == log {
                            restart.ask();
                        }
                    }
                    Ok(_) => log::debug!("checkpoint: the database was busy"),
                    Err(error) => log::warn!("checkpoint failed: {error}"),
                }
            }
        });
        Ok(Checkpointer {
            task: task.abort_handle(),
        })
    }

    /// Stops checkpointing (at closing, before the writer's last checkpoint).
    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The pages of log a `PASSIVE` checkpoint through `connection` reports.
    fn log_pages(connection: &rusqlite::Connection) -> i64 {
        connection
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
            .unwrap()
    }

    #[test]
    fn after_the_writers_checkpoint_its_next_transaction_starts_the_log_again() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("log.db");
        let mut writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (v BLOB)",
            )
            .unwrap();
        let (reader, checkpointer) = (
            rusqlite::Connection::open(&path).unwrap(),
            rusqlite::Connection::open(&path).unwrap(),
        );
        let write = |writer: &rusqlite::Connection| {
            writer
                .execute("INSERT INTO t (v) VALUES (zeroblob(40000))", [])
                .unwrap();
        };
        for _ in 0..20 {
            write(&writer);
        }
        // As under load: the checkpointer copies the log while the writer commits (here
        // a reader holds it back from the newest commit), so the copy is never whole
        // when the writer's next transaction begins.
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        write(&writer);
        let grown = log_pages(&checkpointer);
        reader.execute_batch("COMMIT").unwrap();
        assert!(grown > 200, "{grown} pages");
        restart_on_thread(&mut writer).unwrap();
        write(&writer);
        let started_again = log_pages(&checkpointer);
        assert!(
            started_again < grown / 10,
            "{started_again} pages after {grown}"
        );
    }
}
