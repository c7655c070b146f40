//! The writer connection on a thread of its own, driven through rusqlite, and the
//! writer's read connection on another.
//!
//! SQLite's calls block, so the connection that writes lives on one thread and the
//! async side hands it work: a closure per step (a batch's writes and `COMMIT`, a
//! transaction of the store's own), run there in one go and answered through a
//! oneshot. A batch's reads go the same way to the read connection's thread, beside
//! the writer's, which may be committing the batch before. A step's
//! statements have fixed texts ([`Script`]): each is prepared once and kept in the
//! connection's statement cache, then run once per row with its parameters bound, where
//! sqlx ran every statement through its own worker thread, and a batch's multi-row
//! INSERT text, whose shape followed the batch, was parsed anew each time
//! (docs/BENCHMARKS.md, "The writer on rusqlite").
//!
//! Not `tokio-rusqlite`, which does the same hand-off: its closures answer its own
//! error type, where these answer the store's, decoding rows on the writer's thread.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, Row};
use tokio::sync::oneshot;

use crate::StoreError;

/// Statements kept prepared: every fixed text the writer runs, with room to spare.
const STATEMENT_CACHE: usize = 64;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The handle of a connection's thread. Dropping it ends the thread, which closes the
/// connection.
#[derive(Debug)]
pub(super) struct ConnectionThread {
    jobs: mpsc::Sender<Job>,
}

/// How a connection is opened.
pub(super) struct ConnectionOptions {
    pub(super) path: PathBuf,
    pub(super) access: Access,
    pub(super) busy_timeout: Duration,
    /// `PRAGMA cache_size`, in SQLite's terms (negative: KiB).
    pub(super) cache_size: i64,
}

/// What a connection does.
#[derive(Clone, Copy)]
pub(super) enum Access {
    /// The writer, checkpointing itself past `autocheckpoint` pages of log
    /// (`PRAGMA wal_autocheckpoint`).
    Write { autocheckpoint: i64 },
    /// The writer's read connection: opened read-only.
    Read,
}

impl ConnectionThread {
    /// Opens the connection (the database exists and is migrated, in WAL mode) on a
    /// thread of its own.
    pub(super) async fn open(options: ConnectionOptions) -> Result<ConnectionThread, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, answer) = oneshot::channel();
        let name = match options.access {
            Access::Read => "creditd-sqlite-batch-reader",
            Access::Write { .. } => "creditd-sqlite-writer",
        };
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let connection = (|| {
                    let access = match options.access {
                        Access::Read => OpenFlags::SQLITE_OPEN_READ_ONLY,
                        Access::Write { .. } => OpenFlags::SQLITE_OPEN_READ_WRITE,
                    };
                    let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let connection = Connection::open_with_flags(&options.path, flags)?;
                    connection.busy_timeout(options.busy_timeout)?;
                    if let Access::Write { autocheckpoint } = options.access {
                        // A commit returns only once its log is on disk.
                        connection.pragma_update(None, "synchronous", "FULL")?;
                        connection.pragma_update(None, "wal_autocheckpoint", autocheckpoint)?;
                    }
                    connection.pragma_update(None, "cache_size", options.cache_size)?;
                    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                    Ok::<_, rusqlite::Error>(connection)
                })();
                let mut connection = match connection {
                    Ok(connection) => {
                        let _ = opened.send(Ok(()));
                        connection
                    }
                    Err(error) => {
                        let _ = opened.send(Err(error));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    job(&mut connection);
                }
            })
            .map_err(|error| StoreError::Lock(format!("starting the thread {name}: {error}")))?;
        answer.await.map_err(|_| StoreError::Closed)??;
        Ok(ConnectionThread { jobs })
    }

    /// Runs `work` on the connection's thread and answers what it returned.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.send(work)?.await
    }

    /// Hands `work` to the connection's thread now, behind the work handed to it before,
    /// and answers a future of what it returns: the thread runs it whether or not that
    /// future is awaited.
    pub(super) fn send<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<impl Future<Output = Result<T, StoreError>> + Send + 'static, StoreError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            // A step that panics (a bug) fails alone: its transaction is left open and
            // rolled back by the next, and the thread goes on serving the store.
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(connection)))
                .unwrap_or_else(|_| {
                    Err(crate::columns::corrupt(
                        "a step on a SQLite connection's thread panicked",
                    ))
                });
            let _ = answer.send(outcome);
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        Ok(async move { answered.await.map_err(|_| StoreError::Closed)? })
    }
}

/// Statements with their rows, built on the async side and run on the writer's thread:
/// each step a fixed text run once per row of its parameters.
#[derive(Default)]
pub(super) struct Script {
    steps: Vec<Step>,
}

struct Step {
    sql: &'static str,
    /// Parameters per row.
    width: usize,
    values: Vec<Value>,
}

impl Script {
    /// Adds a row to run `sql` with; rows of one text in a row share a step. A text
    /// without parameters is a step of its own, run once.
    pub(super) fn push<const N: usize>(&mut self, sql: &'static str, row: [Value; N]) {
        match self.steps.last_mut() {
            Some(step) if N > 0 && step.sql == sql && step.width == N => step.values.extend(row),
            _ => self.steps.push(Step {
                sql,
                width: N,
                values: Vec::from(row),
            }),
        }
    }

    /// Runs every step, in order, and answers the rows each changed. A text's
    /// parameters are bound by number: `$N` where it names them so (the texts shared
    /// with PostgreSQL), else in order.
    pub(super) fn run(&self, connection: &Connection) -> Result<Vec<usize>, StoreError> {
        let mut changed = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let mut statement = connection.prepare_cached(step.sql)?;
            if statement.parameter_count() != step.width {
                return Err(crate::columns::corrupt(format!(
                    "a statement taking {} parameters was given rows of {}: {}",
                    statement.parameter_count(),
                    step.width,
                    step.sql
                )));
            }
            // The value each place takes, counted from 0: the `N`th of the row where
            // the place is `$N`, else the place's own.
            let value_of_place: Vec<usize> = (0..step.width)
                .map(|place| {
                    statement
                        .parameter_name(place.saturating_add(1))
                        .and_then(|name| name.strip_prefix('$')?.parse::<usize>().ok())
                        .and_then(|n| n.checked_sub(1))
                        .filter(|&value| value < step.width)
                        .unwrap_or(place)
                })
                .collect();
            let mut rows = 0_usize;
            for row in step.values.chunks(step.width.max(1)) {
                for (place, &value) in value_of_place.iter().enumerate() {
                    let value = row.get(value).ok_or_else(|| {
                        crate::columns::corrupt(format!("a short row for {}", step.sql))
                    })?;
                    statement.raw_bind_parameter(place.saturating_add(1), value)?;
                }
                rows = rows.saturating_add(statement.raw_execute()?);
            }
            if step.values.is_empty() {
                rows = statement.raw_execute()?;
            }
            changed.push(rows);
        }
        Ok(changed)
    }
}

/// The rows the first step of a script changed, as [`Script::run`] answered them.
pub(super) fn rows_of_first_step(changed: &[usize]) -> u64 {
    changed
        .first()
        .map_or(0, |&rows| u64::try_from(rows).unwrap_or(u64::MAX))
}

/// A column holding bytes, as a blob or as text (rows of format 1 hold JSON text).
pub(super) fn bytes<'r>(row: &'r Row<'_>, column: usize) -> Result<&'r [u8], StoreError> {
    match row.get_ref(column)? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes),
        other => Err(crate::columns::corrupt(format!(
            "column {column} holds {:?}, not bytes",
            other.data_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn opened(folder: &tempfile::TempDir) -> ConnectionThread {
        let path = folder.path().join("writer.db");
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (a INTEGER, b TEXT)"))
            .expect("created");
        ConnectionThread::open(ConnectionOptions {
            path,
            access: Access::Write {
                autocheckpoint: 1000,
            },
            busy_timeout: Duration::from_secs(1),
            cache_size: -1024,
        })
        .await
        .expect("opened")
    }

    async fn rows(writer: &ConnectionThread) -> Vec<(i64, String)> {
        writer
            .call(|c| {
                let mut statement = c.prepare("SELECT a, b FROM t ORDER BY a")?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .expect("read")
    }

    #[tokio::test]
    async fn parameters_named_by_number_are_bound_by_their_number_not_their_place() {
        let folder = tempfile::tempdir().expect("folder");
        let writer = opened(&folder).await;
        let mut script = Script::default();
        // `$2` comes first in the text; its value is still the second of the row.
        script.push(
            "INSERT INTO t (b, a) VALUES ($2, $1)",
            [1.into(), "one".to_owned().into()],
        );
        script.push(
            "INSERT INTO t (a, b) VALUES (?, ?)",
            [2.into(), "two".to_owned().into()],
        );
        writer.call(move |c| script.run(c)).await.expect("ran");
        assert_eq!(rows(&writer).await, [(1, "one".into()), (2, "two".into())]);
    }

    #[tokio::test]
    async fn rows_of_one_text_share_a_step_and_each_step_says_the_rows_it_changed() {
        let folder = tempfile::tempdir().expect("folder");
        let writer = opened(&folder).await;
        let mut script = Script::default();
        for a in 1..=3 {
            script.push(
                "INSERT INTO t (a, b) VALUES (?1, ?2)",
                [a.into(), "x".to_owned().into()],
            );
        }
        script.push("UPDATE t SET b = 'y'", []);
        script.push("UPDATE t SET b = 'z'", []);
        script.push("DELETE FROM t WHERE a = ?1", [2.into()]);
        let changed = writer.call(move |c| script.run(c)).await.expect("ran");
        assert_eq!(changed, [3, 3, 3, 1]);
        assert_eq!(rows(&writer).await, [(1, "z".into()), (3, "z".into())]);
    }

    #[tokio::test]
    async fn rows_wider_or_narrower_than_their_statement_are_refused_before_it_runs() {
        let folder = tempfile::tempdir().expect("folder");
        let writer = opened(&folder).await;
        let mut script = Script::default();
        script.push("INSERT INTO t (a, b) VALUES (?1, ?2)", [1.into()]);
        let refused = writer.call(move |c| script.run(c)).await;
        assert!(
            matches!(refused, Err(StoreError::Corrupt(_))),
            "{refused:?}"
        );
        assert_eq!(rows(&writer).await, []);
    }

    #[tokio::test]
    async fn a_step_that_panics_answers_an_error_and_the_thread_goes_on() {
        let folder = tempfile::tempdir().expect("folder");
        let writer = opened(&folder).await;
        let panicked = writer
            .call(|c| -> Result<(), StoreError> {
                c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t (a, b) VALUES (1, 'x')")?;
                panic!("a bug");
            })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Corrupt(_))),
            "{panicked:?}"
        );
        // What the step left open is rolled back, as the store's next transaction does.
        writer
            .call(|c| Ok(c.execute_batch("ROLLBACK")?))
            .await
            .expect("rolled back");
        assert_eq!(rows(&writer).await, []);
    }

    #[tokio::test]
    async fn a_failed_step_answers_its_error_and_the_thread_goes_on() {
        let folder = tempfile::tempdir().expect("folder");
        let writer = opened(&folder).await;
        let mut script = Script::default();
        script.push("INSERT INTO missing (a) VALUES (?1)", [1.into()]);
        let failed = writer.call(move |c| script.run(c)).await;
        assert!(matches!(failed, Err(StoreError::Sqlite(_))), "{failed:?}");
        assert_eq!(rows(&writer).await, []);
    }
}
