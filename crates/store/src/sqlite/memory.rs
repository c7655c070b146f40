//! What the SQLite store keeps in memory beside the database: the changes the backlog
//! holds and the tables may not yet ([`Unfolded`]), and the batches handed to the
//! writer's thread and not yet committed ([`InFlight`]).
//!
//! A batch is built while the one before it commits: the server's writer takes, reads
//! and runs the next batch's commands on tokio's side while the writer's thread writes
//! and fsyncs the previous one (docs/BENCHMARKS.md, "A batch built while the one before
//! it commits"). So the next batch reads what the batches on their way wrote, newest
//! first, then what is unfolded, then the tables; readers of the API see only what is
//! committed, the unfolded changes and the tables. The thread answers in order, so a
//! batch is added to the unfolded changes (and its cut forgotten) right after its own
//! `COMMIT`, on the thread, whether or not anyone awaits it. A batch that fails on the
//! thread leaves the memory stale: every batch handed over after it, built on what it
//! wrote, is refused, and the next transaction reads the backlog anew. A batch that
//! fails before it is handed over changes nothing the batch before it needs: its cut,
//! if it took one, is given back to the sweep ([`SweepRestore`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, MutexGuard, PoisonError};

use creditd_ledger::{AccountId, OrderId};
use rusqlite::Connection;

use super::backlog::{BacklogRow, Folded, SweepMark, Unfolded};
use super::writer_thread::Script;
use crate::columns::corrupt;
use crate::{IdempotencyRecord, PurchaseRecord, StoreError, StoredAccount};

/// Shared by the writer, the writer's thread and the readers (which look at the
/// unfolded changes first). Locked only to look up or swap, never across an await.
pub(super) type Shared = Arc<std::sync::Mutex<Kept>>;

/// Locks what is kept.
pub(super) fn kept(shared: &Shared) -> MutexGuard<'_, Kept> {
    // A panic while holding the lock leaves the maps as whole as before it.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The SQLite store's memory.
#[derive(Debug, Default)]
pub(super) struct Kept {
    /// Committed, in the backlog, perhaps not yet in the tables.
    pub(super) unfolded: Unfolded,
    /// Handed to the writer's thread, oldest first.
    pub(super) in_flight: VecDeque<InFlight>,
    /// A commit failed, or its outcome is unknown: what is kept may differ from the
    /// backlog. Batches handed over are refused until the backlog is read anew.
    pub(super) stale: bool,
}

/// A batch handed to the writer's thread and not yet committed.
#[derive(Debug)]
pub(super) struct InFlight {
    /// Its place in the order batches are handed over.
    pub(super) ticket: u64,
    /// Its backlog row's id, if it adds one.
    pub(super) row: Option<i64>,
    pub(super) batch: BacklogRow,
    /// The purchases it records (written to their table at once, not to the backlog).
    pub(super) purchases: Vec<PurchaseRecord>,
    /// What its cut folds, if it folds one.
    pub(super) folded: Option<Folded>,
}

/// What a batch reads from memory: every value here is newer than the tables'.
#[derive(Debug, Default)]
pub(super) struct Newest {
    pub(super) accounts: HashMap<AccountId, StoredAccount>,
    /// Idempotency records, by label.
    pub(super) records: HashMap<String, IdempotencyRecord>,
    pub(super) purchases: HashMap<OrderId, PurchaseRecord>,
}

impl Kept {
    /// The newest of `ids`, `labels` and `orders` that memory holds: from the batches
    /// on their way, the newest first, then from the unfolded changes. What is not found
    /// here is read from the tables afterwards: a commit forgets a row only once the
    /// tables hold it, so a row not in memory now is in the tables from now on.
    pub(super) fn newest(
        &self,
        ids: &[AccountId],
        labels: &[String],
        orders: &[OrderId],
    ) -> Result<Newest, StoreError> {
        let mut newest = Newest::default();
        let wanted_ids: HashSet<&AccountId> = ids.iter().collect();
        let wanted_labels: HashSet<&str> = labels.iter().map(String::as_str).collect();
        let wanted_orders: HashSet<&OrderId> = orders.iter().collect();
        // Oldest first, so that a newer batch's value replaces an older one's.
        for on_its_way in &self.in_flight {
            for (account, entry_seq) in &on_its_way.batch.accounts {
                if wanted_ids.contains(account.id()) {
                    let stored = StoredAccount {
                        account: account.clone(),
                        entry_seq: *entry_seq,
                    };
                    newest.accounts.insert(account.id().clone(), stored);
                }
            }
            for key in &on_its_way.batch.keys {
                if wanted_labels.contains(key.label.as_str()) {
                    newest.records.insert(key.label.clone(), key.record()?);
                }
            }
            for purchase in &on_its_way.purchases {
                if wanted_orders.contains(&purchase.order_id) {
                    newest
                        .purchases
                        .insert(purchase.order_id.clone(), purchase.clone());
                }
            }
        }
        for id in ids {
            if !newest.accounts.contains_key(id)
                && let Some(stored) = self.unfolded.account(id)
            {
                newest.accounts.insert(id.clone(), stored);
            }
        }
        for label in labels {
            if !newest.records.contains_key(label)
                && let Some(record) = self.unfolded.idempotency(label)?
            {
                newest.records.insert(label.clone(), record);
            }
        }
        Ok(newest)
    }
}

/// Runs a batch's `script` (`BEGIN IMMEDIATE` … `COMMIT`) on the writer's thread and,
/// once it is committed, adds the batch to the unfolded changes and forgets what its
/// cut folded. Refused, with nothing written, while the memory is stale: the batch was
/// built on one that failed.
pub(super) fn commit_on_thread(
    connection: &mut Connection,
    script: &Script,
    shared: &Shared,
    ticket: u64,
) -> Result<(), StoreError> {
    if kept(shared).stale {
        return Err(StoreError::Aborted);
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| script.run(connection)))
        .unwrap_or_else(|_| Err(corrupt("a batch's commit panicked")));
    if let Err(error) = outcome {
        // SQLite may have rolled it back already; then the ROLLBACK fails, with nothing
        // left to undo.
        let _ = connection.execute_batch("ROLLBACK");
        kept(shared).stale = true;
        return Err(error);
    }
    let mut kept = kept(shared);
    // Stale until the memory has the batch: should the update panic (a bug), the next
    // transaction reads the backlog anew instead of what the update left.
    kept.stale = true;
    let added = match kept.in_flight.pop_front() {
        Some(done) if done.ticket == ticket => {
            if let Some(folded) = &done.folded {
                kept.unfolded.forget(folded);
            }
            match done.row {
                Some(row) => kept.unfolded.add(row, done.batch),
                None => Ok(()),
            }
        }
        _ => Err(corrupt(format!(
            "batch {ticket} committed out of the order it was handed over in"
        ))),
    };
    kept.stale = added.is_err();
    added
}

/// Puts the sweep back where it was when dropped armed: a batch whose script failed to
/// be built (an error, a panic) after its cut was taken leaves no cut unwritten that
/// the sweep has moved past. Disarmed once the script is built.
pub(super) struct SweepRestore {
    shared: Shared,
    mark: Option<SweepMark>,
}

impl SweepRestore {
    pub(super) fn arm(shared: &Shared) -> SweepRestore {
        SweepRestore {
            shared: Arc::clone(shared),
            mark: Some(kept(shared).unfolded.sweep_mark()),
        }
    }

    pub(super) fn disarm(mut self) {
        self.mark = None;
    }
}

impl Drop for SweepRestore {
    fn drop(&mut self) {
        if let Some(mark) = self.mark.take() {
            kept(&self.shared).unfolded.restore_sweep(mark);
        }
    }
}
