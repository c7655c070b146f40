//! Background jobs. None is needed for correctness — every read and write applies the
//! effects due by its own instant — but they keep the stored ledger following time, so
//! that expiries and distributions appear (and count in `/metrics`) even on accounts
//! nobody touches, and they forget idempotency records past their retention.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::core::Core;
use creditd_ledger::{AccountCommand, AccountId, AccountIdPrefix, Refusal};

use crate::command::{Command, Refused, Submission};
use crate::idempotency::Reply;
use crate::metrics::AccountTally;
use crate::writer::Writer;

/// How often due accounts are caught up.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Accounts caught up per round of a sweep, queued at once, so the writers go from one
/// batch to the next without waiting for the sweeper to list the next accounts. A round
/// ends when its last batch does: on PostgreSQL, whose three background writers take
/// 512 each, 4,096 left writers idle at the end of every round of eight batches, and
/// 16,384 made a sweep of 400,000 members 5–12% faster (docs/BENCHMARKS.md). Requests
/// never wait behind the queued catch-ups (they have a queue of their own).
const SWEEP_LIMIT: u32 = 16_384;
/// How often the outstanding credits and pending holds are counted for `/metrics`: a
/// count reads every account (100,000 took 6 s of one core here), so it runs hourly,
/// off the request path, on one node; `creditd_tally_timestamp_seconds` says when.
const TALLY_INTERVAL: Duration = Duration::from_secs(3_600);
/// Accounts read per page while counting: on SQLite each page also looks through every
/// unfolded account state (up to `FOLD_AT`, 262,144), so fewer, larger pages.
const TALLY_PAGE: u32 = 5_000;
/// How often old idempotency records are forgotten.
const PURGE_INTERVAL: Duration = Duration::from_secs(3_600);
/// How long an idempotency record is kept: at least 24 hours (the issue asks that), and
/// a day more for clients that retry late.
pub const IDEMPOTENCY_RETENTION: SignedDuration = SignedDuration::from_hours(48);
/// How long events are kept: SPEC §9's 30 days, and a day more so that a consumer
/// polling once a month misses nothing at the edge. Every webhook round (about 28 h of
/// retries) ends long before.
pub const EVENT_RETENTION: SignedDuration = SignedDuration::from_hours(31 * 24);

/// The running jobs.
pub struct Jobs {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    tally: JoinHandle<()>,
}

impl Jobs {
    /// Starts the jobs.
    pub fn start(core: Arc<Core>, writer: Writer) -> Jobs {
        let (stop, mut stopped) = watch::channel(false);
        let tally = tokio::spawn(tally_now_and_then(Arc::clone(&core), stopped.clone()));
        let task = tokio::spawn(async move {
            let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
            let mut purge = tokio::time::interval(PURGE_INTERVAL);
            let mut leader = Leader::default();
            loop {
                tokio::select! {
                    _ = sweep.tick() => if leader.leads(&core).await {
                        sweep_due_accounts(&core, &writer).await;
                    },
                    _ = purge.tick() => if leader.leads(&core).await {
                        purge_idempotency(&core).await;
                        purge_events(&core).await;
                    },
                    _ = stopped.changed() => break,
                }
            }
        });
        Jobs { stop, task, tally }
    }

    /// Stops the jobs after the current one finishes.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let _ = self.tally.await;
    }
}

/// Whether this node runs the jobs (one node of those sharing a database), said in the
/// log when that changes.
#[derive(Default)]
struct Leader {
    leads: Option<bool>,
}

impl Leader {
    async fn leads(&mut self, core: &Core) -> bool {
        let leads = match core.store.leads_jobs().await {
            Ok(leads) => leads,
            Err(error) => {
                tracing::warn!(%error, "jobs: could not tell whether this node runs them");
                false
            }
        };
        if self.leads != Some(leads) {
            if leads {
                tracing::info!("this node runs the background jobs (sweep, purge)");
            } else {
                tracing::info!("another node runs the background jobs");
            }
            self.leads = Some(leads);
        }
        leads
    }
}

/// Records the time effects of every account whose next effect has come, [`SWEEP_LIMIT`]
/// accounts a round, until none is due (a million members whose month turns at one
/// instant are caught up in one go, not a round a second).
pub async fn sweep_due_accounts(core: &Core, writer: &Writer) {
    let mut first = true;
    loop {
        let now = core.clock.now();
        let due = match core.store.due_accounts(now, SWEEP_LIMIT).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "sweep: could not list due accounts");
                return;
            }
        };
        if first {
            let lag = due
                .first()
                .map_or(0.0, |(_, at)| now.duration_since(*at).as_secs_f64());
            core.metrics.set_jobs_lag(lag.max(0.0));
            first = false;
        }
        let full = due.len() >= usize::try_from(SWEEP_LIMIT).unwrap_or(usize::MAX);
        let behind = catch_up(writer, due.into_iter().map(|(id, _)| id)).await;
        // An account far behind was caught up a step: it is due again at once.
        if !full && !behind {
            return;
        }
    }
}

/// Catches `accounts` up, submitted together (the writer batches them). Whether one of
/// them had more effects due than one step catches up.
async fn catch_up(writer: &Writer, accounts: impl Iterator<Item = AccountId>) -> bool {
    let mut submitted = JoinSet::new();
    for id in accounts {
        let writer = writer.clone();
        submitted.spawn(async move {
            writer
                .submit(Submission {
                    command: Command::Account(id, AccountCommand::CatchUp),
                    idempotency: None,
                    background: true,
                    actor: None,
                })
                .await
        });
    }
    let mut behind = false;
    while let Some(reply) = submitted.join_next().await {
        behind |= matches!(
            reply,
            Ok(Reply::Done(Err(Refused::Rule(Refusal::CatchingUp { .. }))))
        );
    }
    behind
}

/// Counts the accounts every [`TALLY_INTERVAL`] (the first time at start) while this
/// node runs the jobs; a count in progress ends with the service. In a task of its own,
/// so a count of a million accounts delays no sweep.
async fn tally_now_and_then(core: Arc<Core>, mut stopped: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(TALLY_INTERVAL);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if core.store.leads_jobs().await.unwrap_or(false) {
                    tokio::select! {
                        () = tally_accounts(&core) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

/// Counts the outstanding credits by kind (available, held and frozen: what the
/// platform still owes) and the pending holds over every account as of now, a page of
/// [`TALLY_PAGE`] accounts at a time, and sets the gauges of `/metrics`.
pub async fn tally_accounts(core: &Core) {
    let everyone = AccountIdPrefix::parse("").expect("the empty prefix is one");
    let started = std::time::Instant::now();
    let mut after: Option<AccountId> = None;
    let mut tally = AccountTally::default();
    loop {
        let page = match core
            .store
            .accounts_page(&everyone, after.as_ref(), TALLY_PAGE)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "tally: could not read accounts");
                return;
            }
        };
        let full = page.len() >= usize::try_from(TALLY_PAGE).unwrap_or(usize::MAX);
        for stored in page {
            let (account, _, _) = core.brought_towards_now(stored.account);
            tally.add(&account);
            after = Some(account.id().clone());
        }
        if !full {
            break;
        }
        tokio::task::yield_now().await;
    }
    core.metrics.set_tally(&tally, core.clock.now());
    tracing::info!(
        accounts = tally.accounts,
        took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "counted the accounts for /metrics"
    );
}

/// Forgets the events recorded more than [`EVENT_RETENTION`] ago, with their deliveries.
pub async fn purge_events(core: &Core) {
    let Ok(before) = core.clock.now().checked_sub(EVENT_RETENTION) else {
        return;
    };
    match core.store.purge_events(before).await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "forgot old events"),
        Err(error) => tracing::warn!(%error, "could not purge events"),
    }
}

/// Forgets the idempotency records older than [`IDEMPOTENCY_RETENTION`].
pub async fn purge_idempotency(core: &Core) {
    let Ok(before) = core.clock.now().checked_sub(IDEMPOTENCY_RETENTION) else {
        return;
    };
    match core.store.purge_idempotency(before).await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "forgot old idempotency records"),
        Err(error) => tracing::warn!(%error, "could not purge idempotency records"),
    }
}
