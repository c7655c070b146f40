//! The SQLite store's journal: a batch is made durable as one appended row, and folded
//! into the tables later, many batches at a time.
//!
//! A WAL commit costs the pages it changes. Written into the tables, a charge changes a
//! page at random for its account's state, one for its history index entries and one
//! for its idempotency key: about eight pages, 32 KB, per charge, copied, checksummed and
//! fsync'd at every commit (docs/BENCHMARKS.md, "SQLite alone"). Appended to `journal`
//! as one row per batch, the same changes fill a few pages in order. What the journal
//! holds and the tables do not yet, the [`Unfolded`] changes, is kept in memory too,
//! where the store's reads find it first. Once there are [`FOLD_AT`] rows of it, one
//! transaction writes them into the tables, where many charges now share each page, and
//! empties the journal.
//!
//! Nothing is lost in a crash: the journal is in the database, and opening the database
//! folds it. Another process writing the same file (an admin command while the server
//! runs) folds the journal before its own first write; the next write transaction here
//! sees, by `PRAGMA data_version`, that another connection committed, and drops what it
//! kept in memory for what the database now holds.

use std::collections::BTreeMap;
use std::ops::Bound;

use creditd_ledger::{Account, AccountId, Hold, HoldId, LedgerEntry, LedgerQuery};
use serde::{Deserialize, Serialize};

use crate::columns::{checked_account, idempotency_from_columns};
use crate::{IdempotencyRecord, LedgerRow, StoreError, StoredAccount, StoredEntry};

/// Unfolded rows (account states, entries, holds, idempotency records) at which each
/// write transaction first folds a cut of them: enough that a cut's rows are
/// neighbours, few enough that they take some megabytes of memory.
pub(super) const FOLD_AT: usize = 16_384;
/// Rows per cut: a fold holds the writer for some milliseconds.
pub(super) const FOLD_SLICE: usize = 2_048;

/// One batch's changes to the busy tables, as one journal row (JSON). Rarer changes
/// (purchases, distributions, due times, keys, settings) go to their tables at once.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct JournalBatch {
    /// New account states, with their entry counts.
    pub(super) accounts: Vec<(Account, u64)>,
    /// New ledger entries: account, number, entry.
    pub(super) entries: Vec<(AccountId, u64, LedgerEntry)>,
    /// Settled holds.
    pub(super) holds: Vec<(AccountId, Hold)>,
    /// Idempotency records, as their columns.
    pub(super) keys: Vec<JournalKey>,
}

impl JournalBatch {
    /// Whether the batch changed none of the busy tables.
    pub(super) fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.entries.is_empty()
            && self.holds.is_empty()
            && self.keys.is_empty()
    }
}

/// An idempotency record's columns (see `idempotency_keys`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct JournalKey {
    pub(super) label: String,
    pub(super) account: String,
    pub(super) digest: String,
    pub(super) status: u16,
    pub(super) body: String,
    pub(super) at: i64,
}

/// What the journal holds and the tables may not yet, in the tables' key order, and how
/// far the sweep that folds it has got.
#[derive(Debug, Default)]
pub(super) struct Unfolded {
    pub(super) accounts: BTreeMap<AccountId, StoredAccount>,
    /// Each account's new entries, oldest first.
    pub(super) entries: BTreeMap<AccountId, Vec<StoredEntry>>,
    pub(super) holds: BTreeMap<AccountId, BTreeMap<HoldId, Hold>>,
    /// Records by label, with the columns they are folded as.
    pub(super) keys: BTreeMap<String, (JournalKey, IdempotencyRecord)>,
    rows: usize,
    sweep: Sweep,
}

/// A sweep folds the unfolded changes a [`Cut`] at a time, accounts in id order, then
/// idempotency records in label order: each cut changes neighbouring rows, so many of
/// them share a page, and a fold holds the writer for milliseconds. Once a sweep is
/// through, every journal row there was when it began has been folded.
#[derive(Debug, Default)]
struct Sweep {
    /// The last journal row when the sweep began; `None` before it begins.
    began_after: Option<i64>,
    /// Where the next cut starts.
    next: Next,
}

#[derive(Debug, Default)]
enum Next {
    /// Accounts from the first.
    #[default]
    AccountsFrom,
    /// Accounts after this id.
    AccountsAfter(AccountId),
    /// Idempotency records from the first.
    KeysFrom,
    /// Idempotency records after this label.
    KeysAfter(String),
}

/// What one fold writes into the tables.
#[derive(Debug)]
pub(super) enum Cut {
    /// Everything unfolded; then the journal is emptied.
    All,
    /// The accounts in this range of ids, with their entries and holds; through the last
    /// if `through` is `None`.
    Accounts {
        after: Option<AccountId>,
        through: Option<AccountId>,
    },
    /// The idempotency records in this range of labels; through the last if `through`
    /// is `None`, which ends the sweep: then the journal rows up to `emptied_through`
    /// are deleted.
    Keys {
        after: Option<String>,
        through: Option<String>,
        emptied_through: i64,
    },
}

/// Keys after `after` through `through` (`None`: from the first, through the last).
fn range<K: Ord + Clone>(after: Option<&K>, through: Option<&K>) -> (Bound<K>, Bound<K>) {
    (
        after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.clone())),
        through.map_or(Bound::Unbounded, |k| Bound::Included(k.clone())),
    )
}

/// The rows an account's changes make: its state, entries and holds.
fn account_rows(unfolded: &Unfolded, id: &AccountId) -> usize {
    1usize
        .saturating_add(unfolded.entries.get(id).map_or(0, Vec::len))
        .saturating_add(unfolded.holds.get(id).map_or(0, BTreeMap::len))
}

impl Unfolded {
    /// Adds a batch committed to the journal (or found there on opening), checking it as
    /// the tables' rows are checked when read.
    pub(super) fn add(&mut self, batch: JournalBatch) -> Result<(), StoreError> {
        self.rows = self
            .rows
            .saturating_add(batch.accounts.len())
            .saturating_add(batch.entries.len())
            .saturating_add(batch.holds.len())
            .saturating_add(batch.keys.len());
        for (account, entry_seq) in batch.accounts {
            let stored = checked_account(account, entry_seq)?;
            if self
                .accounts
                .insert(stored.account.id().clone(), stored)
                .is_some()
            {
                // A newer state replaces the one counted before.
                self.rows = self.rows.saturating_sub(1);
            }
        }
        for (account, seq, entry) in batch.entries {
            self.entries
                .entry(account)
                .or_default()
                .push(StoredEntry { seq, entry });
        }
        for (account, hold) in batch.holds {
            self.holds
                .entry(account)
                .or_default()
                .insert(hold.id(), hold);
        }
        for key in batch.keys {
            let record = idempotency_from_columns(
                &key.account,
                &key.label,
                key.digest.clone(),
                i64::from(key.status),
                key.body.clone(),
                key.at,
            )?;
            self.keys.insert(key.label.clone(), (key, record));
        }
        Ok(())
    }

    /// Rows waiting to be folded.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// The next cut of the sweep, of about `rows` rows. `last_journal_row`: the journal's
    /// newest row now, where a sweep that begins with this cut begins.
    pub(super) fn next_cut(&mut self, rows: usize, last_journal_row: i64) -> Cut {
        let began_after = *self.sweep.began_after.get_or_insert(last_journal_row);
        match &self.sweep.next {
            Next::AccountsFrom | Next::AccountsAfter(_) => {
                let after = match &self.sweep.next {
                    Next::AccountsAfter(id) => Some(id.clone()),
                    _ => None,
                };
                let through = self.last_within(
                    self.accounts
                        .range(range(after.as_ref(), None))
                        .map(|(id, _)| id),
                    rows,
                    |id| account_rows(self, id),
                );
                Cut::Accounts { after, through }
            }
            Next::KeysFrom | Next::KeysAfter(_) => {
                let after = match &self.sweep.next {
                    Next::KeysAfter(label) => Some(label.clone()),
                    _ => None,
                };
                let through = self.last_within(
                    self.keys
                        .range(range(after.as_ref(), None))
                        .map(|(label, _)| label),
                    rows,
                    |_| 1,
                );
                Cut::Keys {
                    after,
                    through,
                    emptied_through: began_after,
                }
            }
        }
    }

    /// The key at which `rows` rows are reached, or `None` if the rest is fewer.
    fn last_within<'a, K: Clone + 'a>(
        &self,
        keys: impl Iterator<Item = &'a K>,
        rows: usize,
        size: impl Fn(&K) -> usize,
    ) -> Option<K> {
        let mut taken = 0usize;
        for key in keys {
            taken = taken.saturating_add(size(key));
            if taken >= rows {
                return Some(key.clone());
            }
        }
        None
    }

    /// The accounts, entries, holds and records a cut writes.
    pub(super) fn cut<'a>(&'a self, cut: &Cut) -> CutRows<'a> {
        let mut rows = CutRows::default();
        let (accounts, keys) = match cut {
            Cut::All => (Some(range(None, None)), Some(range(None, None))),
            Cut::Accounts { after, through } => {
                (Some(range(after.as_ref(), through.as_ref())), None)
            }
            Cut::Keys { after, through, .. } => {
                (None, Some(range(after.as_ref(), through.as_ref())))
            }
        };
        if let Some(accounts) = accounts {
            rows.accounts.extend(self.accounts.range(accounts.clone()));
            for (id, entries) in self.entries.range(accounts.clone()) {
                rows.entries.extend(entries.iter().map(|entry| (id, entry)));
            }
            for (id, holds) in self.holds.range(accounts) {
                rows.holds.extend(holds.values().map(|hold| (id, hold)));
            }
        }
        if let Some(keys) = keys {
            rows.keys
                .extend(self.keys.range(keys).map(|(_, (key, _))| key));
        }
        rows
    }

    /// Forgets what a cut wrote, once it is committed, and moves the sweep on.
    pub(super) fn folded(&mut self, cut: Cut) {
        match cut {
            Cut::All => *self = Unfolded::default(),
            Cut::Accounts { after, through } => {
                let ids: Vec<AccountId> = self
                    .accounts
                    .range(range(after.as_ref(), through.as_ref()))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in &ids {
                    let rows = account_rows(self, id);
                    self.rows = self.rows.saturating_sub(rows);
                    self.accounts.remove(id);
                    self.entries.remove(id);
                    self.holds.remove(id);
                }
                self.sweep.next = match through {
                    Some(id) => Next::AccountsAfter(id),
                    None => Next::KeysFrom,
                };
            }
            Cut::Keys { after, through, .. } => {
                let labels: Vec<String> = self
                    .keys
                    .range(range(after.as_ref(), through.as_ref()))
                    .map(|(label, _)| label.clone())
                    .collect();
                for label in &labels {
                    self.keys.remove(label);
                }
                self.rows = self.rows.saturating_sub(labels.len());
                self.sweep = match through {
                    Some(label) => Sweep {
                        began_after: self.sweep.began_after,
                        next: Next::KeysAfter(label),
                    },
                    None => Sweep::default(),
                };
            }
        }
    }

    pub(super) fn account(&self, id: &AccountId) -> Option<StoredAccount> {
        self.accounts.get(id).cloned()
    }

    pub(super) fn idempotency(&self, label: &str) -> Option<IdempotencyRecord> {
        self.keys.get(label).map(|(_, record)| record.clone())
    }

    pub(super) fn hold(&self, id: &AccountId, hold: HoldId) -> Option<Hold> {
        self.holds.get(id)?.get(&hold).cloned()
    }

    /// The highest entry number this knows of for `id`.
    pub(super) fn entry_seq(&self, id: &AccountId) -> Option<u64> {
        self.accounts.get(id).map(|stored| stored.entry_seq)
    }

    /// The account's unfolded entries on a ledger page: those `query` matches numbered
    /// below `before`, newest first, at most a page of them.
    pub(super) fn ledger_rows(
        &self,
        id: &AccountId,
        query: &LedgerQuery,
        before: Option<u64>,
    ) -> Vec<LedgerRow> {
        let Some(entries) = self.entries.get(id) else {
            return Vec::new();
        };
        entries
            .iter()
            .rev()
            .filter(|stored| before.is_none_or(|before| stored.seq < before))
            .filter(|stored| query.matches(&stored.entry))
            .take(usize::try_from(query.limit()).unwrap_or(usize::MAX))
            .map(|stored| LedgerRow {
                seq: stored.seq,
                position: stored.seq,
                entry: stored.entry.clone(),
            })
            .collect()
    }
}

/// The rows one cut writes, borrowed from [`Unfolded`].
#[derive(Debug, Default)]
pub(super) struct CutRows<'a> {
    pub(super) accounts: Vec<(&'a AccountId, &'a StoredAccount)>,
    pub(super) entries: Vec<(&'a AccountId, &'a StoredEntry)>,
    pub(super) holds: Vec<(&'a AccountId, &'a Hold)>,
    pub(super) keys: Vec<&'a JournalKey>,
}

/// A ledger page from the unfolded entries and the table's rows: each entry once (a
/// fold may have written some into the table while they were still kept unfolded),
/// newest first, at most `limit`.
pub(super) fn merged_page(
    unfolded: Vec<LedgerRow>,
    table: Vec<LedgerRow>,
    limit: u32,
) -> Vec<LedgerRow> {
    let mut rows = unfolded;
    rows.extend(table);
    rows.sort_unstable_by_key(|row| std::cmp::Reverse(row.seq));
    rows.dedup_by_key(|row| row.seq);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    rows
}
