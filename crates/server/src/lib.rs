//! creditd's server: the HTTP API of SPEC §6 over the ledger core and the store.
//!
//! A request goes: [`http`] (auth, parsing into a typed [`command::Command`]) →
//! [`writer`] (group commit: one task batches concurrent commands into one transaction)
//! → [`command::Batch`] (each command through the ledger core, under the
//! [`idempotency`] policy) → a typed [`command::Outcome`] → [`dto`] (its HTTP answer).
//! Reads go from [`http`] to the store. [`core::Core`] holds what they share; [`jobs`]
//! are the background sweeps.
//!
//! Architecture invariant: handlers never touch SQL and never decide a credit rule; the
//! ledger core decides, the store keeps, this crate connects them.

pub mod answer;
pub mod auth;
pub mod clock;
pub mod command;
pub mod connections;
pub mod console;
pub mod core;
pub mod dto;
pub mod http;
pub mod idempotency;
pub mod jobs;
pub mod metrics;
pub mod pages;
pub mod reconcile;
pub mod webhooks;
pub mod writer;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use crate::connections::ConnectionLimits;
pub use crate::core::{Core, FirstStart, WebhookDestinations};
pub use crate::writer::{MAX_BATCH, Writer};

/// How the writer commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// Many requests per transaction (the default).
    Group,
    /// One transaction per request: the baseline group commit is measured against.
    PerRequest,
}

impl CommitMode {
    fn max_batch(self) -> usize {
        match self {
            CommitMode::Group => MAX_BATCH,
            CommitMode::PerRequest => 1,
        }
    }
}

/// A running service: the writer and the background jobs on one core.
pub struct Service {
    /// The shared core.
    pub core: Arc<Core>,
    /// The writer handle.
    pub writer: Writer,
    writer_task: tokio::task::JoinHandle<()>,
    jobs: jobs::Jobs,
    deliveries: webhooks::Deliveries,
}

impl Service {
    /// Starts the writer and the background jobs.
    pub fn start(core: Core, mode: CommitMode) -> Service {
        let core = Arc::new(core);
        let (writer, writer_task) = Writer::start(Arc::clone(&core), mode.max_batch());
        let jobs = jobs::Jobs::start(Arc::clone(&core), writer.clone());
        let deliveries = webhooks::Deliveries::start(Arc::clone(&core));
        Service {
            core,
            writer,
            writer_task,
            jobs,
            deliveries,
        }
    }

    /// The HTTP router.
    pub fn router(&self) -> axum::Router {
        http::router(http::AppState {
            core: Arc::clone(&self.core),
            writer: self.writer.clone(),
        })
    }

    /// Serves HTTP on `listener` within `limits` until `shutdown` resolves, then lets
    /// requests in flight finish, drains the writer and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        limits: ConnectionLimits,
        shutdown: impl Future<Output = ()>,
    ) {
        connections::serve(listener, self.router(), limits, shutdown).await;
        self.stop().await;
    }

    /// Stops the jobs, lets the writer finish what it was given, closes the database.
    pub async fn stop(self) {
        self.deliveries.stop().await;
        self.jobs.stop().await;
        drop(self.writer);
        // The writer ends once every handle is gone and its queue is empty.
        let _ = self.writer_task.await;
        self.core.store.close().await;
    }
}
