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
//! The writer keeps a checkpoint of its own at [`WRITER_CHECKPOINT_PAGES`], should this
//! one fall behind.

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

/// The task that checkpoints; it stops when this is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    task: tokio::task::AbortHandle,
}

impl Checkpointer {
    /// Opens a connection with `options` and checkpoints through it every
    /// [`CHECKPOINT_EVERY`].
    pub(super) async fn start(options: &SqliteConnectOptions) -> Result<Checkpointer, StoreError> {
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
                    Ok(row) if row.try_get::<i64, _>(0).unwrap_or(0) == 0 => {}
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
