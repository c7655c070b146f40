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
//! A batch is built while the one before it commits: once a batch is handed over
//! ([`WriteTransaction::hand_off`](creditd_store::WriteTransaction::hand_off)), the
//! writer takes, reads and runs the next, which sees what the first wrote, and answers
//! the first's commands once it is durable. On SQLite the two halves of a batch (the
//! commands on tokio's side, the statements and fsync on the writer's thread) then run
//! side by side on the two cores instead of one after the other. Should a commit fail,
//! the batch built on it fails too (503, nothing of it stays).
//!
//! Requests come first. Background work (the sweep that records time's effects on
//! accounts nobody touches) goes through a queue of its own, and a batch takes from it
//! only what room the waiting requests leave, and at most [`BACKGROUND_PER_BATCH`]: a
//! month turning for a million members goes on in small shares of every batch, and a
//! charge waits for at most the batch in flight, never for the sweep's backlog.
//!
//! On a store that serializes accounts itself (PostgreSQL's locks), several transactions
//! may be open at once. There the requests' batches take no background work: it has
//! writers of its own ([`BACKGROUND_WRITERS`]), whose larger batches
//! ([`BACKGROUND_BATCH`]) run in their own transactions beside the requests'. A batch
//! there is mostly round trips and waits for the database, one after the other, so one
//! writer alone leaves half of this machine idle; the locks keep every account in order
//! whichever transaction reaches it first.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use creditd_store::{Changes, Durable, StoreError};
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::command::{AfterCommit, Batch, BatchNeeds, Refused, Submission};
use crate::core::Core;
use crate::idempotency::{self, Reply};

/// Most commands in one transaction: enough to amortize the fsync over thousands of
/// requests per second, small enough that one batch's work stays well under a
/// millisecond per hundred commands.
pub const MAX_BATCH: usize = 1024;
/// Batches in their transactions at once, where the store allows more than one. One:
/// on PostgreSQL, batches that overlap wait on each other's account locks anyway, and
/// each is smaller for it. One hot account, 64 clients: 12,784–13,286 charges/s with one
/// batch at a time against 8,099–8,722 with four; 10,000 accounts: the same within the
/// noise (9,122–10,049 against 9,197–9,330; docs/BENCHMARKS.md, issue 16).
const CONCURRENT_BATCHES: usize = 1;
/// Commands waiting for the writer before handlers wait to enqueue (backpressure).
const QUEUE_DEPTH: usize = 16 * MAX_BATCH;
/// Background commands in one batch. A catch-up that distributes a month costs about
/// 0.2 ms of its batch (docs/BENCHMARKS.md): 256 beside 16 charges made each batch, and
/// so each charge, take about 60 ms, and a whole batch of them, taken in a moment when
/// no request happened to wait, held the next requests 200 ms and more. 64 keep every
/// batch near 15 ms; the sweep goes on at every load, a little slower when alone.
pub const BACKGROUND_PER_BATCH: usize = 64;
/// Writers of background work alone, where the store allows transactions beside the
/// requests' ([`Store::concurrent_transactions`](creditd_store::Store::concurrent_transactions)).
const BACKGROUND_WRITERS: usize = 3;
/// Background commands in one batch of a background writer: no request waits in it.
const BACKGROUND_BATCH: usize = 512;

type Queued = (Submission, oneshot::Sender<Reply>);

/// The handle requests send their commands through.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Queued>,
    background: mpsc::Sender<Queued>,
}

/// The two queues a batch is taken from.
struct Queues {
    requests: mpsc::Receiver<Queued>,
    background: mpsc::Receiver<Queued>,
}

impl Queues {
    /// Waits for commands and takes a batch into `batch`: every waiting request up to
    /// `max_batch`, then background commands in the room left (at most
    /// [`BACKGROUND_PER_BATCH`]). 0 once both queues are closed
    /// and empty (the writer's handles are all dropped and every command is done).
    async fn take(&mut self, batch: &mut Vec<Queued>, max_batch: usize) -> usize {
        let first = tokio::select! {
            biased;
            Some(queued) = self.requests.recv() => queued,
            Some(queued) = self.background.recv() => queued,
            else => return 0,
        };
        batch.push(first);
        take_waiting(&mut self.requests, batch, max_batch);
        let background = batch
            .iter()
            .filter(|(submission, _)| submission.background)
            .count();
        let room = max_batch.min(
            batch
                .len()
                .saturating_add(BACKGROUND_PER_BATCH)
                .saturating_sub(background),
        );
        take_waiting(&mut self.background, batch, room);
        batch.len()
    }
}

/// Takes what is waiting in `queue` into `batch` until it holds `up_to` commands.
fn take_waiting(queue: &mut mpsc::Receiver<Queued>, batch: &mut Vec<Queued>, up_to: usize) {
    while batch.len() < up_to {
        match queue.try_recv() {
            Ok(queued) => batch.push(queued),
            Err(_) => break,
        }
    }
}

type Shared<T> = Arc<tokio::sync::Mutex<T>>;

/// Where a writer takes its batches from. A queue is locked only while a batch is taken
/// from it.
#[derive(Clone)]
enum Source {
    /// Requests first, then background work in the room they leave ([`Queues::take`]).
    Both(Shared<Queues>),
    /// Requests alone: background work has writers of its own.
    Requests(Shared<mpsc::Receiver<Queued>>),
    /// Background work alone, up to [`BACKGROUND_BATCH`] a batch.
    Background(Shared<mpsc::Receiver<Queued>>),
}

impl Source {
    /// Waits for commands and takes a batch into `batch`; 0 once its queues are closed
    /// and empty.
    async fn take(&self, batch: &mut Vec<Queued>, max_batch: usize) -> usize {
        let (queue, up_to) = match self {
            Source::Both(queues) => return queues.lock().await.take(batch, max_batch).await,
            Source::Requests(queue) => (queue, max_batch),
            Source::Background(queue) => (queue, BACKGROUND_BATCH),
        };
        let mut queue = queue.lock().await;
        let Some(first) = queue.recv().await else {
            return 0;
        };
        batch.push(first);
        take_waiting(&mut queue, batch, up_to);
        batch.len()
    }
}

impl Writer {
    /// Starts the writer task on `core`, committing up to `max_batch` commands at a time
    /// (1: one transaction per request, the baseline group commit is measured against).
    /// The task ends when every `Writer` handle is dropped and the queue is drained.
    pub fn start(core: Arc<Core>, max_batch: usize) -> (Writer, tokio::task::JoinHandle<()>) {
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        let (background, waiting) = mpsc::channel(QUEUE_DEPTH);
        let max_batch = max_batch.clamp(1, MAX_BATCH);
        let allowed = core.store.concurrent_transactions().max(1);
        let sources = if max_batch > 1 && allowed > CONCURRENT_BATCHES {
            let requests = Source::Requests(Arc::new(tokio::sync::Mutex::new(requests)));
            let background = Source::Background(Arc::new(tokio::sync::Mutex::new(waiting)));
            let mut sources = vec![requests; CONCURRENT_BATCHES];
            sources.extend(std::iter::repeat_n(
                background,
                BACKGROUND_WRITERS.min(allowed.saturating_sub(CONCURRENT_BATCHES)),
            ));
            sources
        } else {
            // One request per transaction: as many transactions as the store allows,
            // what a plain service does; else batches one at a time.
            let writers = if max_batch == 1 {
                allowed
            } else {
                CONCURRENT_BATCHES
            };
            let both = Source::Both(Arc::new(tokio::sync::Mutex::new(Queues {
                requests,
                background: waiting,
            })));
            vec![both; writers]
        };
        let task = tokio::spawn(async move {
            let mut workers = tokio::task::JoinSet::new();
            for source in sources {
                workers.spawn(run(Arc::clone(&core), source, max_batch));
            }
            while workers.join_next().await.is_some() {}
        });
        (Writer { queue, background }, task)
    }

    /// Applies `submission` and returns its reply once it is durable. Background work
    /// (`submission.background`) waits behind requests.
    pub async fn submit(&self, submission: Submission) -> Reply {
        let (reply, replied) = oneshot::channel();
        let queue = if submission.background {
            &self.background
        } else {
            &self.queue
        };
        if queue.send((submission, reply)).await.is_err() {
            return Reply::Done(Err(Refused::Stopped));
        }
        replied.await.unwrap_or(Reply::Done(Err(Refused::Stopped)))
    }
}

async fn run(core: Arc<Core>, source: Source, max_batch: usize) {
    let mut queued: Vec<Queued> = Vec::with_capacity(max_batch);
    // The batch whose commit is on its way while the next one is built. Its commands
    // are answered as soon as it is durable, whatever the writer is doing then.
    let mut committing: Option<(Durable, Answers)> = None;
    loop {
        let taken = match committing.take() {
            None => source.take(&mut queued, max_batch).await,
            Some((mut durable, answers)) => tokio::select! {
                biased;
                outcome = &mut durable => {
                    answers.send(&core, outcome);
                    continue;
                }
                taken = source.take(&mut queued, max_batch) => {
                    committing = Some((durable, answers));
                    taken
                }
            },
        };
        if taken == 0 {
            break;
        }
        let (submissions, senders): (Vec<Submission>, Vec<_>) = queued.drain(..).unzip();
        // A bug that panics while a batch is built fails that batch alone: the one on
        // its way is still answered as what it is, and the writer goes on.
        let building = AssertUnwindSafe(hand_off(&core, &submissions)).catch_unwind();
        tokio::pin!(building);
        let built = match committing.take() {
            None => building.await,
            Some((mut durable, answers)) => tokio::select! {
                biased;
                outcome = &mut durable => {
                    answers.send(&core, outcome);
                    building.await
                }
                built = &mut building => {
                    answers.send(&core, durable.await);
                    built
                }
            },
        };
        match built {
            Ok(Ok((durable, answers))) => {
                committing = Some((durable, Answers { senders, ..answers }));
            }
            Ok(Err(error)) => answer_all(senders, error),
            Err(_) => {
                tracing::error!(commands = senders.len(), "building a batch panicked");
                answer_all(
                    senders,
                    StoreError::Corrupt("building a batch panicked".to_owned()),
                );
            }
        }
    }
    if let Some((durable, answers)) = committing.take() {
        answers.send(&core, durable.await);
    }
}

/// A commit slower than this is logged (the database's own statement logs are off).
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A batch handed over to be committed: its replies, waiting for it to be durable.
struct Answers {
    senders: Vec<oneshot::Sender<Reply>>,
    replies: Vec<Reply>,
    changes: Changes,
    after_commit: AfterCommit,
    handed_at: std::time::Instant,
}

impl Answers {
    /// Answers the batch's commands once its commit's `outcome` is known: their
    /// replies once it is durable, else 503 each.
    fn send(self, core: &Core, outcome: Result<(), StoreError>) {
        if let Err(error) = outcome {
            answer_all(self.senders, error);
            return;
        }
        let took = self.handed_at.elapsed();
        if took >= SLOW_COMMIT {
            tracing::warn!(
                commands = self.replies.len(),
                entries = self.changes.entries.len(),
                events = self.changes.events.len(),
                took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                "slow commit"
            );
        }
        core.metrics.committed(self.replies.len(), &self.changes);
        if !self.changes.events.is_empty() || !self.changes.redeliveries.is_empty() {
            core.events_recorded.notify_one();
        }
        self.after_commit.apply(core);
        for (sender, reply) in self.senders.into_iter().zip(self.replies) {
            // The requester may have gone away; its change stands all the same.
            let _ = sender.send(reply);
        }
    }
}

/// Answers every command of a batch that failed with the store's error.
fn answer_all(senders: Vec<oneshot::Sender<Reply>>, error: StoreError) {
    let error = Arc::new(error);
    for sender in senders {
        let _ = sender.send(Reply::Done(Err(Refused::Store(Arc::clone(&error)))));
    }
}

/// Runs one batch in one transaction and hands its changes over to be committed; its
/// replies are sent only once it is durable ([`Answers::send`]).
async fn hand_off(
    core: &Core,
    submissions: &[Submission],
) -> Result<(Durable, Answers), StoreError> {
    let needs = BatchNeeds::of(submissions.iter());
    let mut tx = core.store.begin().await?;
    let reads = tx.read(&needs.accounts, &needs.keys, &needs.orders).await?;
    let mut batch = Batch::new(core, reads);
    let replies: Vec<Reply> = submissions
        .iter()
        .map(|submission| idempotency::run(&mut batch, submission))
        .collect();
    let (changes, after_commit) = batch.finish();
    // Handed over even when empty: on PostgreSQL it ends the transaction the reads
    // began, and on SQLite its answers (a replay of a record still on its way, say) wait
    // behind every batch handed over before it.
    let handed_at = std::time::Instant::now();
    let durable = tx.hand_off(&changes).await?;
    let answers = Answers {
        senders: Vec::new(),
        replies,
        changes,
        after_commit,
        handed_at,
    };
    Ok((durable, answers))
}

#[cfg(test)]
mod tests {
    use creditd_ledger::{AccountCommand, AccountId};

    use super::*;
    use crate::command::Command;

    fn queued(background: bool) -> Queued {
        let submission = Submission {
            command: Command::Account(AccountId::parse("a").expect("id"), AccountCommand::CatchUp),
            idempotency: None,
            background,
            actor: None,
        };
        (submission, oneshot::channel().0)
    }

    #[tokio::test]
    async fn requests_go_first_and_background_work_fills_only_the_room_they_leave() {
        let (request, requests) = mpsc::channel(QUEUE_DEPTH);
        let (sweep, background) = mpsc::channel(QUEUE_DEPTH);
        let mut queues = Queues {
            requests,
            background,
        };
        for _ in 0..1_000 {
            sweep.send(queued(true)).await.expect("queued");
        }
        for _ in 0..10 {
            request.send(queued(false)).await.expect("queued");
        }
        let mut batch = Vec::new();
        assert_eq!(
            queues.take(&mut batch, MAX_BATCH).await,
            10 + BACKGROUND_PER_BATCH
        );
        assert!(batch[..10].iter().all(|(s, _)| !s.background));
        // With no request waiting, background work takes its share still.
        batch.clear();
        assert_eq!(
            queues.take(&mut batch, MAX_BATCH).await,
            BACKGROUND_PER_BATCH
        );
        drop((request, sweep));
        batch.clear();
        // Closed: what is queued is still taken, then nothing.
        let mut rest = 0;
        loop {
            batch.clear();
            match queues.take(&mut batch, MAX_BATCH).await {
                0 => break,
                taken => rest += taken,
            }
        }
        assert_eq!(rest, 1_000 - 2 * BACKGROUND_PER_BATCH);
    }

    #[tokio::test]
    async fn beside_background_writers_requests_and_background_work_go_in_batches_of_their_own() {
        let (request, requests) = mpsc::channel(QUEUE_DEPTH);
        let (sweep, background) = mpsc::channel(QUEUE_DEPTH);
        let requests = Source::Requests(Arc::new(tokio::sync::Mutex::new(requests)));
        let background = Source::Background(Arc::new(tokio::sync::Mutex::new(background)));
        for _ in 0..1_000 {
            sweep.send(queued(true)).await.expect("queued");
        }
        for _ in 0..10 {
            request.send(queued(false)).await.expect("queued");
        }
        let mut batch = Vec::new();
        assert_eq!(requests.take(&mut batch, MAX_BATCH).await, 10);
        assert!(batch.iter().all(|(s, _)| !s.background));
        batch.clear();
        assert_eq!(
            background.take(&mut batch, MAX_BATCH).await,
            BACKGROUND_BATCH
        );
        assert!(batch.iter().all(|(s, _)| s.background));
        drop((request, sweep));
        batch.clear();
        assert_eq!(requests.take(&mut batch, MAX_BATCH).await, 0);
        assert_eq!(
            background.take(&mut batch, MAX_BATCH).await,
            1_000 - BACKGROUND_BATCH
        );
    }
}
