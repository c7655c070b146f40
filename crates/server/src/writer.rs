//! Group commit: one writer applies every change, many requests per transaction.
//!
//! This module knows how to batch, not what a command means. Handlers send a
//! [`Submission`] and wait. The writer takes every command waiting (up to
//! [`MAX_BATCH`]), opens one transaction, locks the accounts they touch, runs them in
//! arrival order through a [`Batch`] (the commands and their idempotency policy),
//! commits once (one fsync) and only then answers
//! each. A batch's commands see each other's effects, so two commands on one account stay
//! in order, and an idempotency key or order id used twice in one batch applies once.
//! If the commit fails, every command of the batch is answered 503 and nothing of it
//! stays: the next batch reads the accounts back from the database.
//!
//! On a store that serializes accounts itself (PostgreSQL's locks), several batches may
//! be in their transactions at once: while one waits for its commit to be flushed, the
//! next ones are locked, read and written.

use std::sync::Arc;

use creditd_store::StoreError;
use tokio::sync::{mpsc, oneshot};

use crate::command::{Batch, BatchNeeds, Refused, Submission};
use crate::core::Core;
use crate::idempotency::{self, Reply};

/// Most commands in one transaction: enough to amortize the fsync over thousands of
/// requests per second, small enough that one batch's work stays well under a
/// millisecond per hundred commands.
pub const MAX_BATCH: usize = 1024;
/// Batches in their transactions at once, where the store allows more than one: while
/// one waits for its commit to be flushed, the next ones lock, read and write.
const CONCURRENT_BATCHES: usize = 4;
/// Commands waiting for the writer before handlers wait to enqueue (backpressure).
const QUEUE_DEPTH: usize = 16 * MAX_BATCH;

type Queued = (Submission, oneshot::Sender<Reply>);

/// The handle requests send their commands through.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Queued>,
}

impl Writer {
    /// Starts the writer task on `core`, committing up to `max_batch` commands at a time
    /// (1: one transaction per request, the baseline group commit is measured against).
    /// The task ends when every `Writer` handle is dropped and the queue is drained.
    pub fn start(core: Arc<Core>, max_batch: usize) -> (Writer, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let max_batch = max_batch.clamp(1, MAX_BATCH);
        // One transaction at a time unless the store serializes accounts itself. Then a
        // few batches at once (more would only make them smaller), or, one request per
        // transaction, as many transactions as the store allows: what a plain service
        // does.
        let writers = if max_batch > 1 {
            CONCURRENT_BATCHES
        } else {
            usize::MAX
        }
        .min(core.store.concurrent_transactions())
        .max(1);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let task = tokio::spawn(async move {
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..writers {
                workers.spawn(run(Arc::clone(&core), Arc::clone(&receiver), max_batch));
            }
            while workers.join_next().await.is_some() {}
        });
        (Writer { queue }, task)
    }

    /// Applies `submission` and returns its reply once it is durable.
    pub async fn submit(&self, submission: Submission) -> Reply {
        let (reply, replied) = oneshot::channel();
        if self.queue.send((submission, reply)).await.is_err() {
            return Reply::Done(Err(Refused::Stopped));
        }
        replied.await.unwrap_or(Reply::Done(Err(Refused::Stopped)))
    }
}

async fn run(
    core: Arc<Core>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>,
    max_batch: usize,
) {
    let mut queued: Vec<Queued> = Vec::with_capacity(max_batch);
    // The queue is locked only while taking a batch from it.
    while receiver
        .lock()
        .await
        .recv_many(&mut queued, max_batch)
        .await
        > 0
    {
        let submissions: Vec<&Submission> = queued.iter().map(|(s, _)| s).collect();
        let replies = match commit(&core, &submissions).await {
            Ok(replies) => replies,
            Err(error) => {
                let error = Arc::new(error);
                (0..queued.len())
                    .map(|_| Reply::Done(Err(Refused::Store(Arc::clone(&error)))))
                    .collect()
            }
        };
        for ((_, sender), reply) in queued.drain(..).zip(replies) {
            // The requester may have gone away; its change stands all the same.
            let _ = sender.send(reply);
        }
    }
}

/// Runs one batch in one transaction; the replies are sent only once it is durable.
async fn commit(core: &Core, submissions: &[&Submission]) -> Result<Vec<Reply>, StoreError> {
    let needs = BatchNeeds::of(submissions.iter().copied());
    let mut tx = core.store.begin().await?;
    let reads = tx.read(&needs.accounts, &needs.keys, &needs.orders).await?;
    let mut batch = Batch::new(core, reads);
    let replies: Vec<Reply> = submissions
        .iter()
        .map(|submission| idempotency::run(&mut batch, submission))
        .collect();
    let (changes, after_commit) = batch.finish();
    // Committed even when empty: it ends the transaction the reads began.
    tx.commit(&changes).await?;
    core.metrics.committed(submissions.len(), &changes);
    if !changes.events.is_empty() || !changes.redeliveries.is_empty() {
        core.events_recorded.notify_one();
    }
    after_commit.apply(core);
    Ok(replies)
}
