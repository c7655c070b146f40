//! The SQLite store's backlog: a batch is made durable as one appended row, and folded
//! into the tables later, a cut of neighbouring rows at a time.
//!
//! A WAL commit costs the pages it changes. Written into the tables, a charge changes a
//! page at random for its account's state, one for its history index entries and one
//! for its idempotency key: about eight pages, 32 KB, per charge, copied, checksummed and
//! fsync'd at every commit (docs/BENCHMARKS.md, "The ceiling of SQLite rows"). Appended
//! to `backlog` as one row per batch, the same changes fill a few pages in order. What
//! the backlog holds and the tables may not yet, the [`Unfolded`] changes, is kept in
//! memory too, and is the truth for the rows it holds: a read of a row finds it there or
//! in the tables, never both (for a ledger page, the backlog answers for an account's
//! entries from its oldest unfolded one on, [`Unfolded::ledger_rows`]). Once there are
//! [`FOLD_AT`] rows of it, each commit also folds a [`Cut`] of it into the tables: rows
//! that are neighbours there, so many share a page. A sweep of cuts goes through every kind of
//! row in key order; when it is through, the backlog rows it began with are deleted.
//!
//! Nothing is lost in a crash: the backlog is in the database, a cut commits with the
//! batch it rides on, and opening the database folds the whole backlog. What is kept in
//! memory is only this store's, so one store at a time has the file open (it holds
//! `PATH.lock`; admin commands go through the server's API). The backlog stays because
//! it pays: 27% to 78% more charges per second than writing the same rows into the
//! tables at every commit, on 10,000 accounts (docs/BENCHMARKS.md, session 6: "the
//! journal, kept by measurement"; the backlog was called the journal until then).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::ops::Bound;

use creditd_ledger::{Account, AccountId, Hold, HoldId, HoldStatus, LedgerEntry, LedgerQuery};
use serde::{Deserialize, Serialize};

use crate::columns::{
    checked_account, idempotency_from_columns, key_label, record_account, written,
};
use crate::instant::to_db;
use crate::{Changes, IdempotencyRecord, StoreError, StoredAccount, StoredEntry};

/// Unfolded rows (account states, entries, holds, idempotency records) from which each
/// write transaction also folds a cut of them: enough that a cut's rows are neighbours
/// (an account's entries share an index page, its state is written once for several
/// changes), few enough that they take a few hundred megabytes of memory at most and a
/// crash's backlog folds in seconds. Where it matters is a database with a long history:
/// there an account's entries fill index pages of their own, and every row folded alone
/// costs a page written. With 10 million entries stored, 262,144 against 65,536 gave
/// 20% more charges per second (7,888 and 7,864 against 6,616 and 6,546, 30 s runs) and
/// a third less written per charge, for about 160 MB more resident (334 MB at the peak);
/// on an empty database, the same (docs/BENCHMARKS.md, issue 16: "cost in history").
/// 65,536 against 16,384 earlier: 6% to 18% more charges per second, 25 MB more.
pub(super) const FOLD_AT: usize = 262_144;
/// Rows a cut folds at least; a batch folds twice the rows it adds, so under any load
/// the unfolded rows shrink back. Small cuts fold as fast per row as large ones here
/// (8,900 charges/s with cuts of 256 rows, 7,600 with 2,048; docs/BENCHMARKS.md), and
/// each adds only milliseconds to its batch's commit.
pub(super) const FOLD_SLICE: usize = 256;

/// One batch's changes to the busy tables, as one backlog row (JSON). Rarer changes
/// (purchases, distributions, due times, keys, settings) go to their tables at once.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct BacklogRow {
    /// New account states, with their entry counts.
    pub(super) accounts: Vec<(Account, u64)>,
    /// New ledger entries: account, number, entry.
    pub(super) entries: Vec<(AccountId, u64, LedgerEntry)>,
    /// Settled holds.
    pub(super) holds: Vec<(AccountId, Hold)>,
    /// Idempotency records, as their columns.
    pub(super) keys: Vec<KeyColumns>,
}

impl BacklogRow {
    /// The busy rows of `changes`, as one backlog row.
    pub(super) fn of(changes: &Changes) -> BacklogRow {
        let written = written(changes);
        BacklogRow {
            accounts: changes
                .accounts
                .iter()
                .map(|stored| (stored.account.clone(), stored.entry_seq))
                .collect(),
            entries: changes
                .entries
                .iter()
                .map(|(account, stored)| (account.clone(), stored.seq, stored.entry.clone()))
                .collect(),
            holds: changes.settled_holds.clone(),
            keys: changes
                .idempotency
                .iter()
                .map(|record| KeyColumns {
                    label: key_label(&record.key),
                    account: record_account(record, &written).to_owned(),
                    digest: record.fingerprint.clone(),
                    status: record.status,
                    body: record.body.clone(),
                    at: to_db(record.created_at),
                })
                .collect(),
        }
    }

    /// The rows it adds to the busy tables.
    pub(super) fn rows(&self) -> usize {
        self.accounts
            .len()
            .saturating_add(self.entries.len())
            .saturating_add(self.holds.len())
            .saturating_add(self.keys.len())
    }
}

/// An idempotency record's columns (see `idempotency_keys`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct KeyColumns {
    pub(super) label: String,
    pub(super) account: String,
    pub(super) digest: String,
    pub(super) status: u16,
    pub(super) body: String,
    pub(super) at: i64,
}

impl KeyColumns {
    /// The record, checked as a row read back is.
    pub(super) fn record(&self) -> Result<IdempotencyRecord, StoreError> {
        idempotency_from_columns(
            &self.account,
            &self.label,
            self.digest.clone(),
            i64::from(self.status),
            self.body.clone(),
            self.at,
        )
    }
}

/// What the backlog holds and the tables may not yet, each kind found by its key and
/// put in its table's key order for a sweep, and how far the sweep that folds it has
/// got.
#[derive(Debug, Default)]
pub(super) struct Unfolded {
    accounts: ByKey<AccountId, KeptState>,
    entries: PerAccount<u64, LedgerEntry>,
    holds: PerAccount<HoldId, Hold>,
    /// Records by label, as the columns they are folded as.
    keys: ByKey<String, KeyColumns>,
    sweep: Sweep,
    /// The newest backlog row added.
    last_row: i64,
}

/// An account's unfolded state, with the backlog row that brought it: a cut folds the
/// state it finds, and forgets it once committed only if no newer one came meanwhile
/// (from a batch that committed while the cut's own batch was on its way).
#[derive(Debug)]
pub(super) struct KeptState {
    pub(super) stored: StoredAccount,
    pub(super) row: i64,
}

/// Unfolded rows of a kind only ever read by key (account states, idempotency records),
/// in a hash map: every charge adds one of each and looks one of each up, and walks down
/// `BTreeMap`s of up to 262,144 string keys were most of the encoding stage, itself a
/// sixth of a charge's CPU (docs/BENCHMARKS.md, issue 16: "the backlog's maps"). A sweep takes them in key order, so
/// that a cut's rows are neighbours in their table: the keys there are when its pass
/// over the kind begins. A row added later waits for the next sweep, as its backlog row
/// is newer than the sweep's beginning. The map keeps std's randomly keyed hasher:
/// labels are chosen by clients.
///
/// The next pass's keys are put in order as they come ([`ByKey::next`]), and a pass
/// begins by taking them whole, not by sorting every key then: sorting the idempotency
/// labels (163,288 in one run) held the batch being built, and so every request waiting
/// on it, for up to 89 ms once a sweep (docs/BENCHMARKS.md, "where the slowest charges
/// wait").
#[derive(Debug)]
struct ByKey<K, V> {
    rows: HashMap<K, V>,
    /// The keys of the sweep's pass over this kind, in order.
    pass: BTreeSet<K>,
    /// The keys the next pass takes, in order: every key new to the map since this pass
    /// began, and every key a cut of it folded but could not forget (changed meanwhile).
    next: BTreeSet<K>,
    /// Whether `next` holds exactly the keys kept when nothing of this pass is left to
    /// fold; not after the sweep was put back ([`Unfolded::restore_sweep`]), which may
    /// fold a key of `next` in this pass. The next pass then takes every key anew.
    next_exact: bool,
}

impl<K, V> Default for ByKey<K, V> {
    fn default() -> Self {
        ByKey {
            rows: HashMap::new(),
            pass: BTreeSet::new(),
            next: BTreeSet::new(),
            next_exact: true,
        }
    }
}

/// Unfolded rows of a kind numbered within their account (entries, settled holds): a
/// hash map of accounts, each with its rows in order, as ledger and hold pages read an
/// account's range of them and every charge adds to one account. One `BTreeMap` keyed by
/// (account id, number) cost a string compare at every level of a walk down 262,144
/// rows. A sweep takes the accounts in order, the ones there are when its pass over the
/// kind begins, sorted once; a cut is a span of (position in that order, number).
#[derive(Debug)]
struct PerAccount<N, V> {
    rows: HashMap<AccountId, BTreeMap<N, V>>,
    /// Rows in all.
    len: usize,
    /// The accounts of the sweep's pass over this kind, in order.
    order: Vec<AccountId>,
}

impl<N, V> Default for PerAccount<N, V> {
    fn default() -> Self {
        PerAccount {
            rows: HashMap::new(),
            len: 0,
            order: Vec::new(),
        }
    }
}

/// Where a row of a [`PerAccount`] kind is in a pass: its account's position in the
/// pass's order, and its number.
type Place<N> = (usize, N);

impl<N: Ord + Copy, V> PerAccount<N, V> {
    /// Forgets every row and pass.
    fn clear(&mut self) {
        self.rows.clear();
        self.len = 0;
        self.order.clear();
    }

    fn insert(&mut self, account: AccountId, number: N, row: V) {
        if self
            .rows
            .entry(account)
            .or_default()
            .insert(number, row)
            .is_none()
        {
            self.len = self.len.saturating_add(1);
        }
    }

    fn of(&self, account: &AccountId) -> Option<&BTreeMap<N, V>> {
        self.rows.get(account)
    }

    /// The rows of `span` still kept, in (account, number) order.
    fn cut<'a>(&'a self, span: &KeyRange<Place<N>>) -> Vec<(&'a AccountId, N, &'a V)> {
        let (from, to) = span.bounds();
        let first = match &from {
            Bound::Excluded((at, _)) | Bound::Included((at, _)) => *at,
            Bound::Unbounded => 0,
        };
        let last = match &to {
            Bound::Excluded((at, _)) | Bound::Included((at, _)) => *at,
            Bound::Unbounded => self.order.len().saturating_sub(1),
        };
        let mut rows = Vec::new();
        for (at, account) in self
            .order
            .iter()
            .enumerate()
            .take(last.saturating_add(1))
            .skip(first)
        {
            let Some(kept) = self.rows.get_key_value(account) else {
                continue;
            };
            let (account, kept) = kept;
            let low = match &from {
                Bound::Excluded((place, number)) if *place == at => Bound::Excluded(*number),
                Bound::Included((place, number)) if *place == at => Bound::Included(*number),
                _ => Bound::Unbounded,
            };
            let high = match &to {
                Bound::Excluded((place, number)) if *place == at => Bound::Excluded(*number),
                Bound::Included((place, number)) if *place == at => Bound::Included(*number),
                _ => Bound::Unbounded,
            };
            rows.extend(
                kept.range((low, high))
                    .map(|(number, row)| (account, *number, row)),
            );
        }
        rows
    }

    /// The span of at most `rows` rows after `after`; a pass begins (its order is taken)
    /// when `after` is `None`.
    fn span(&mut self, after: Option<Place<N>>, rows: usize) -> KeyRange<Place<N>> {
        if after.is_none() {
            self.order = self.rows.keys().cloned().collect();
            self.order.sort_unstable();
        }
        let rest = KeyRange {
            after,
            through: None,
        };
        let wanted = rows.max(1);
        let mut taken = 0_usize;
        let first = rest.after.map_or(0, |(at, _)| at);
        for (at, account) in self.order.iter().enumerate().skip(first) {
            let Some(kept) = self.rows.get(account) else {
                continue;
            };
            let low = match rest.after {
                Some((place, number)) if place == at => Bound::Excluded(number),
                _ => Bound::Unbounded,
            };
            for (number, _) in kept.range((low, Bound::Unbounded)) {
                taken = taken.saturating_add(1);
                if taken == wanted {
                    return KeyRange {
                        through: Some((at, *number)),
                        ..rest
                    };
                }
            }
        }
        rest
    }

    /// Forgets one row, once folded.
    fn remove(&mut self, account: &AccountId, number: N) {
        if let Some(kept) = self.rows.get_mut(account) {
            if kept.remove(&number).is_some() {
                self.len = self.len.saturating_sub(1);
            }
            if kept.is_empty() {
                self.rows.remove(account);
            }
        }
    }

    /// Every row, in (account, number) order.
    fn all(&self) -> Vec<(&AccountId, N, &V)> {
        let mut accounts: Vec<(&AccountId, &BTreeMap<N, V>)> = self.rows.iter().collect();
        accounts.sort_unstable_by(|a, b| a.0.cmp(b.0));
        accounts
            .into_iter()
            .flat_map(|(account, kept)| {
                kept.iter()
                    .map(move |(number, row)| (account, *number, row))
            })
            .collect()
    }
}

impl<K: Hash + Ord + Clone, V> ByKey<K, V> {
    /// Forgets every row and pass.
    fn clear(&mut self) {
        self.rows.clear();
        self.pass.clear();
        self.next.clear();
        self.next_exact = true;
    }

    /// Keeps `row` as the key's; a key new to the map joins the next pass.
    fn insert(&mut self, key: K, row: V) {
        match self.rows.entry(key) {
            Entry::Occupied(mut kept) => {
                kept.insert(row);
            }
            Entry::Vacant(new) => {
                self.next.insert(new.key().clone());
                new.insert(row);
            }
        }
    }

    /// The cut of at most `rows` keys of the pass after `after`; a pass begins (takes
    /// its keys) when `after` is `None`. A cut whose `through` is `None` ends the pass.
    fn span(&mut self, after: Option<K>, rows: usize) -> KeyRange<K> {
        if after.is_none() {
            self.pass = std::mem::take(&mut self.next);
            // A sweep deletes the backlog rows it began after once its passes are
            // through, so a pass must hold every key kept: should `next` not be known to
            // be exactly those, every key, taken anew.
            if !self.next_exact || self.pass.len() != self.rows.len() {
                self.pass = self.rows.keys().cloned().collect();
            }
            self.next_exact = true;
        }
        let low = after.clone().map_or(Bound::Unbounded, Bound::Excluded);
        let through = self
            .pass
            .range((low, Bound::Unbounded))
            .nth(rows.max(1).saturating_sub(1))
            .cloned();
        KeyRange { after, through }
    }

    /// The rows of `span` still kept, in key order.
    fn cut(&self, span: &KeyRange<K>) -> impl Iterator<Item = (&K, &V)> {
        self.pass
            .range(span.bounds())
            .filter_map(|key| self.rows.get_key_value(key))
    }

    /// Every row, in key order.
    fn all(&self) -> Vec<(&K, &V)> {
        let mut rows: Vec<(&K, &V)> = self.rows.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows
    }
}

/// A sweep folds the unfolded changes a [`Cut`] at a time: account states in id order,
/// then entries and holds in (account, number) order, then idempotency records in
/// label order. A cut's rows are neighbours in their table and its indexes, so many of
/// them share a page, and a fold holds the writer for milliseconds. Once a sweep is
/// through, every backlog row there was when it began has been folded.
#[derive(Clone, Debug, Default)]
struct Sweep {
    /// The last backlog row when the sweep began; `None` before it begins.
    began_after: Option<i64>,
    /// Where the next cut starts.
    next: Next,
}

/// Where a sweep was ([`Unfolded::sweep_mark`]).
#[derive(Debug)]
pub(super) struct SweepMark(Sweep);

/// Where the next cut starts.
#[derive(Clone, Debug)]
enum Next {
    /// After this account of the pass over account states (at the first if `None`).
    Accounts(Option<AccountId>),
    /// After this entry of the pass over entries (at the first if `None`).
    Entries(Option<Place<u64>>),
    /// After this hold of the pass over settled holds (at the first if `None`).
    Holds(Option<Place<HoldId>>),
    /// After this label of the pass over idempotency records (at the first if `None`).
    Keys(Option<String>),
}

impl Default for Next {
    fn default() -> Self {
        Next::Accounts(None)
    }
}

/// The keys of one kind after `after` through `through` (from the first if `after` is
/// `None`, through the last if `through` is).
#[derive(Clone, Debug)]
pub(super) struct KeyRange<K> {
    after: Option<K>,
    through: Option<K>,
}

impl<K: Clone> KeyRange<K> {
    /// Whether the range runs through the last key of its pass.
    pub(super) fn ends_sweep(&self) -> bool {
        self.through.is_none()
    }

    fn bounds(&self) -> (Bound<K>, Bound<K>) {
        (
            self.after.clone().map_or(Bound::Unbounded, Bound::Excluded),
            self.through
                .clone()
                .map_or(Bound::Unbounded, Bound::Included),
        )
    }
}

/// What one fold writes into the tables.
#[derive(Debug)]
pub(super) enum Cut {
    /// Everything unfolded; then the backlog is emptied.
    All,
    /// Account states.
    Accounts(KeyRange<AccountId>),
    /// Ledger entries.
    Entries(KeyRange<Place<u64>>),
    /// Settled holds.
    Holds(KeyRange<Place<HoldId>>),
    /// Idempotency records. When the cut reaches the last of the pass
    /// ([`KeyRange::ends_sweep`]), it ends the sweep, and the backlog rows up to the one
    /// given are deleted.
    Keys(KeyRange<String>, i64),
}

impl Unfolded {
    /// Nothing unfolded yet, with room for the idempotency records of a backlog of
    /// `fold_at` rows: half as many, which the map rounds up to 229,376 for
    /// [`FOLD_AT`], above the most seen in a run of charges (163,288; a write request
    /// adds a record, and a charge an entry and a hold beside it). Grown as it fills
    /// instead, the map moved every record it held at each doubling, in one piece: 42 ms
    /// at 57,000 and 116 ms at 115,000, while the batch being built waited
    /// (docs/BENCHMARKS.md, "where the slowest charges wait"). Room not used is address
    /// space, not memory.
    pub(super) fn with_room(fold_at: usize) -> Unfolded {
        let mut unfolded = Unfolded::default();
        unfolded.keys.rows.reserve(fold_at / 2);
        unfolded
    }

    /// Adds a batch committed to the backlog as row `row` (or found there on opening).
    /// Account states are checked here, idempotency records when looked up: each as the
    /// tables' rows are checked when read.
    pub(super) fn add(&mut self, row: i64, batch: BacklogRow) -> Result<(), StoreError> {
        self.last_row = self.last_row.max(row);
        for (account, entry_seq) in batch.accounts {
            let stored = checked_account(account, entry_seq)?;
            self.accounts
                .insert(stored.account.id().clone(), KeptState { stored, row });
        }
        for (account, seq, entry) in batch.entries {
            self.entries.insert(account, seq, entry);
        }
        for (account, hold) in batch.holds {
            self.holds.insert(account, hold.id(), hold);
        }
        for key in batch.keys {
            self.keys.insert(key.label.clone(), key);
        }
        Ok(())
    }

    /// Rows waiting to be folded.
    pub(super) fn rows(&self) -> usize {
        self.accounts
            .rows
            .len()
            .saturating_add(self.entries.len)
            .saturating_add(self.holds.len)
            .saturating_add(self.keys.rows.len())
    }

    /// The sweep's next cut, of at most `rows` rows, and the sweep moved on past it: the
    /// cut after it may be taken before this one is committed (and forgotten). A sweep
    /// that begins with this cut begins after the newest backlog row added. A kind with
    /// nothing left to fold is passed over; the last cut, of idempotency records, is made
    /// even if empty, as it deletes the backlog rows the sweep has folded.
    pub(super) fn next_cut(&mut self, rows: usize) -> Cut {
        let began_after = *self.sweep.began_after.get_or_insert(self.last_row);
        loop {
            let (cut, next) = match &self.sweep.next {
                Next::Accounts(after) => {
                    let span = self.accounts.span(after.clone(), rows);
                    let next = span
                        .through
                        .clone()
                        .map_or(Next::Entries(None), |at| Next::Accounts(Some(at)));
                    (Cut::Accounts(span), next)
                }
                Next::Entries(after) => {
                    let span = self.entries.span(*after, rows);
                    let next = span
                        .through
                        .map_or(Next::Holds(None), |at| Next::Entries(Some(at)));
                    (Cut::Entries(span), next)
                }
                Next::Holds(after) => {
                    let span = self.holds.span(*after, rows);
                    let next = span
                        .through
                        .map_or(Next::Keys(None), |at| Next::Holds(Some(at)));
                    (Cut::Holds(span), next)
                }
                Next::Keys(after) => {
                    let span = self.keys.span(after.clone(), rows);
                    match &span.through {
                        None => self.sweep = Sweep::default(),
                        Some(at) => self.sweep.next = Next::Keys(Some(at.clone())),
                    }
                    return Cut::Keys(span, began_after);
                }
            };
            let empty = self.cut(&cut).is_empty();
            self.sweep.next = next;
            if !empty {
                return cut;
            }
        }
    }

    /// Where the sweep is: to put it back should the cut taken after this not be
    /// written after all (its batch failed before it was handed over).
    pub(super) fn sweep_mark(&self) -> SweepMark {
        SweepMark(self.sweep.clone())
    }

    /// Puts the sweep back where `mark` found it.
    pub(super) fn restore_sweep(&mut self, mark: SweepMark) {
        self.sweep = mark.0;
        self.accounts.next_exact = false;
        self.keys.next_exact = false;
    }

    /// The rows a cut writes.
    pub(super) fn cut<'a>(&'a self, cut: &Cut) -> CutRows<'a> {
        let mut rows = CutRows::default();
        match cut {
            Cut::Accounts(span) => rows.accounts.extend(self.accounts.cut(span)),
            Cut::Entries(span) => rows.entries = self.entries.cut(span),
            Cut::Holds(span) => rows.holds = self.holds.cut(span),
            Cut::Keys(span, _) => rows.keys.extend(self.keys.cut(span).map(|(_, key)| key)),
            Cut::All => {
                rows.accounts = self.accounts.all();
                rows.entries = self.entries.all();
                rows.holds = self.holds.all();
                rows.keys = self.keys.all().into_iter().map(|(_, key)| key).collect();
            }
        }
        rows
    }

    /// Forgets what a cut wrote, once it is committed: exactly its rows, and an account's
    /// state only if it is still the one folded.
    pub(super) fn forget(&mut self, folded: &Folded) {
        for (account, row) in &folded.accounts {
            match self.accounts.rows.get(account) {
                Some(kept) if kept.row == *row => {
                    self.accounts.rows.remove(account);
                }
                // Changed since the cut was taken: the next pass folds it again.
                Some(_) => {
                    self.accounts.next.insert(account.clone());
                }
                None => {}
            }
        }
        for (account, number) in &folded.entries {
            self.entries.remove(account, *number);
        }
        for (account, number) in &folded.holds {
            self.holds.remove(account, *number);
        }
        for label in &folded.keys {
            self.keys.rows.remove(label);
        }
    }

    /// Forgets everything, once a fold of [`Cut::All`] is committed (nothing else was on
    /// its way meanwhile). The maps keep their room.
    pub(super) fn forget_all(&mut self) {
        let Unfolded {
            accounts,
            entries,
            holds,
            keys,
            sweep,
            last_row: _,
        } = self;
        accounts.clear();
        entries.clear();
        holds.clear();
        keys.clear();
        *sweep = Sweep::default();
    }

    /// Kept states of accounts with ids in `start..end` after `after`, at most `limit`.
    pub(super) fn accounts_in(
        &self,
        start: &str,
        end: &str,
        after: &str,
        limit: u32,
    ) -> Vec<StoredAccount> {
        let mut kept: Vec<&StoredAccount> = self
            .accounts
            .rows
            .values()
            .map(|kept| &kept.stored)
            .filter(|stored| {
                let id = stored.account.id().as_str();
                id >= start && id < end && id > after
            })
            .collect();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if kept.len() > limit {
            kept.select_nth_unstable_by(limit, |a, b| a.account.id().cmp(b.account.id()));
            kept.truncate(limit);
        }
        kept.sort_unstable_by(|a, b| a.account.id().cmp(b.account.id()));
        kept.into_iter().cloned().collect()
    }

    pub(super) fn account(&self, id: &AccountId) -> Option<StoredAccount> {
        self.accounts.rows.get(id).map(|kept| kept.stored.clone())
    }

    /// The record kept under `label`, checked as a row read back is.
    pub(super) fn idempotency(&self, label: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.keys
            .rows
            .get(label)
            .map(KeyColumns::record)
            .transpose()
    }

    pub(super) fn hold(&self, id: &AccountId, hold: HoldId) -> Option<Hold> {
        self.holds.of(id).and_then(|kept| kept.get(&hold)).cloned()
    }

    /// The account's unfolded settled holds, newest first: those below `before`, of
    /// `status` if given, at most `limit`. Holds settle in any order, so unlike entries
    /// they may be unfolded anywhere in the account's range: a page merges these with
    /// the table's.
    pub(super) fn holds_rows(
        &self,
        id: &AccountId,
        status: Option<HoldStatus>,
        before: Option<HoldId>,
        limit: u32,
    ) -> Vec<Hold> {
        let to = before.map_or(Bound::Unbounded, Bound::Excluded);
        self.holds
            .of(id)
            .into_iter()
            .flat_map(|kept| kept.range((Bound::Unbounded, to)).rev())
            .map(|(_, hold)| hold)
            .filter(|hold| status.is_none_or(|s| hold.status() == s))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// The account's unfolded entries on a ledger page: those `query` matches numbered
    /// below `before`, newest first, at most a page of them; and the number of its first
    /// unfolded entry. The backlog is the truth for the account's entries from that one
    /// on, the table for those before it: a sweep folds an account's entries oldest
    /// first and its commands add only newer ones, so what stays unfolded is always the
    /// newest, and each entry of a page is read from exactly one place.
    pub(super) fn ledger_rows(
        &self,
        id: &AccountId,
        query: &LedgerQuery,
        before: Option<u64>,
    ) -> UnfoldedEntries {
        let kept = self.entries.of(id);
        let first_unfolded = kept.and_then(|kept| kept.keys().next().copied());
        let to = before.map_or(Bound::Unbounded, Bound::Excluded);
        let rows = kept
            .into_iter()
            .flat_map(|kept| kept.range((Bound::Unbounded, to)).rev())
            .filter(|(_, entry)| query.matches(entry))
            .take(usize::try_from(query.limit()).unwrap_or(usize::MAX))
            .map(|(seq, entry)| StoredEntry {
                seq: *seq,
                entry: entry.clone(),
            })
            .collect();
        UnfoldedEntries {
            rows,
            first_unfolded,
        }
    }
}

/// An account's unfolded entries for a ledger page ([`Unfolded::ledger_rows`]).
#[derive(Debug)]
pub(super) struct UnfoldedEntries {
    /// The page's entries that are unfolded, newest first.
    pub(super) rows: Vec<StoredEntry>,
    /// The number of the account's oldest unfolded entry, if it has one: the table
    /// answers only for those before it.
    pub(super) first_unfolded: Option<u64>,
}

/// What one cut wrote, by key: forgotten once its commit is through
/// ([`Unfolded::forget`]).
#[derive(Debug, Default)]
pub(super) struct Folded {
    /// Account states, with the backlog row of the state folded.
    accounts: Vec<(AccountId, i64)>,
    entries: Vec<(AccountId, u64)>,
    holds: Vec<(AccountId, HoldId)>,
    keys: Vec<String>,
}

/// The rows one cut writes, borrowed from [`Unfolded`].
#[derive(Debug, Default)]
pub(super) struct CutRows<'a> {
    pub(super) accounts: Vec<(&'a AccountId, &'a KeptState)>,
    pub(super) entries: Vec<(&'a AccountId, u64, &'a LedgerEntry)>,
    pub(super) holds: Vec<(&'a AccountId, HoldId, &'a Hold)>,
    pub(super) keys: Vec<&'a KeyColumns>,
}

impl CutRows<'_> {
    /// The keys of the rows it writes, to forget once they are committed.
    pub(super) fn folded(&self) -> Folded {
        Folded {
            accounts: self
                .accounts
                .iter()
                .map(|(id, kept)| ((*id).clone(), kept.row))
                .collect(),
            entries: self
                .entries
                .iter()
                .map(|(id, number, _)| ((*id).clone(), *number))
                .collect(),
            holds: self
                .holds
                .iter()
                .map(|(id, number, _)| ((*id).clone(), *number))
                .collect(),
            keys: self.keys.iter().map(|key| key.label.clone()).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.entries.is_empty()
            && self.holds.is_empty()
            && self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    //! A model of the backlog and the tables, driven by random batches and cuts: what a
    //! sweep lets go of must be in the tables, and what is kept is the newest.
    #![allow(
        clippy::unwrap_used,
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing
    )]

    use std::collections::{BTreeMap, HashMap};

    use creditd_ledger::{
        Account, AccountId, BucketId, CreditKind, EntryType, Hold, HoldId, LedgerEntry, Source,
    };
    use jiff::Timestamp;
    use jiff::tz::TimeZone;
    use proptest::prelude::*;

    use super::{BacklogRow, ByKey, Cut, Folded, KeyColumns, Unfolded};
    use crate::columns;

    /// A row of the tables: an account's state (by its entry count), an entry, a settled
    /// hold, a key.
    #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    enum Row {
        State(String),
        Entry(String, u64),
        Hold(String, u64),
        Key(String),
    }

    fn entry() -> LedgerEntry {
        LedgerEntry {
            at: Timestamp::UNIX_EPOCH,
            entry_type: EntryType::Grant,
            amount: 1,
            kind: CreditKind::General,
            source: Source::Promotion,
            bucket_id: BucketId::new(1),
            hold_id: None,
            feature: None,
            quantity: None,
            order_id: None,
            frozen: None,
            note: None,
        }
    }

    /// A settled hold numbered `number`, from the format 1 golden holds.
    fn hold(number: u64) -> Hold {
        let holds: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/golden/format-1/holds.json")).unwrap();
        let mut hold = holds[0].clone();
        hold["id"] = number.into();
        serde_json::from_value(hold).unwrap()
    }

    /// A batch on the accounts named by `picks` (one entry each, and a settled hold for
    /// an even pick) with a new key each; `seqs` holds each account's entry count so far.
    /// Returns the batch and its rows with their versions (an account state's is its
    /// entry count, a hold's its number).
    fn batch(
        picks: &[u8],
        seqs: &mut HashMap<String, u64>,
        keys: &mut u64,
    ) -> (BacklogRow, Vec<(Row, u64)>) {
        let mut batch = BacklogRow::default();
        let mut rows = Vec::new();
        for pick in picks {
            let name = format!("user-{pick}");
            if batch.accounts.iter().any(|(a, _)| a.id().as_str() == name) {
                continue;
            }
            let id = AccountId::parse(&name).unwrap();
            let seq = seqs.entry(name.clone()).or_insert(0);
            *seq += 1;
            let account = Account::open(id.clone(), TimeZone::UTC, Timestamp::UNIX_EPOCH);
            batch.accounts.push((account, *seq));
            batch.entries.push((id.clone(), *seq, entry()));
            if pick % 2 == 0 {
                batch.holds.push((id, hold(*seq)));
                rows.push((Row::Hold(name.clone(), *seq), *seq));
            }
            *keys += 1;
            let label = format!("k\n{keys}");
            batch.keys.push(key_columns(&label));
            rows.push((Row::State(name.clone()), *seq));
            rows.push((Row::Entry(name, *seq), *seq));
            rows.push((Row::Key(label), 0));
        }
        (batch, rows)
    }

    /// A record's columns under `label`.
    fn key_columns(label: &str) -> KeyColumns {
        KeyColumns {
            label: label.to_owned(),
            account: String::new(),
            digest: String::new(),
            status: 201,
            body: String::new(),
            at: 0,
        }
    }

    /// What a cut writes, as rows with versions.
    fn written(unfolded: &Unfolded, cut: &Cut) -> Vec<(Row, u64)> {
        let rows = unfolded.cut(cut);
        let mut out = Vec::new();
        for (id, kept) in rows.accounts {
            out.push((Row::State(id.to_string()), kept.stored.entry_seq));
        }
        for (id, seq, _) in rows.entries {
            out.push((Row::Entry(id.to_string(), seq), seq));
        }
        for (id, number, _) in rows.holds {
            out.push((Row::Hold(id.to_string(), number.get()), number.get()));
        }
        for key in rows.keys {
            out.push((Row::Key(key.label.clone()), 0));
        }
        out
    }

    /// A batch handed to the writer and not yet committed, as the model keeps it.
    struct Pending {
        id: i64,
        written: Vec<(Row, u64)>,
        emptied_through: Option<i64>,
        folded: Folded,
        batch: BacklogRow,
        rows: Vec<(Row, u64)>,
    }

    /// What a commit does, in the model: the cut's rows written to the tables (over
    /// whatever is there), the backlog rows it empties deleted, the batch's row
    /// appended; then, as the writer's thread does once it is through, the cut
    /// forgotten and the batch added.
    fn complete(
        pending: Pending,
        unfolded: &mut Unfolded,
        backlog: &mut BTreeMap<i64, Vec<(Row, u64)>>,
        tables: &mut HashMap<Row, u64>,
        committed: &mut HashMap<String, u64>,
    ) -> Result<(), TestCaseError> {
        for (row, _) in &pending.rows {
            if let Row::Entry(name, seq) = row {
                committed.insert(name.clone(), *seq);
            }
        }
        for (row, version) in pending.written {
            tables.insert(row, version);
        }
        if let Some(emptied_through) = pending.emptied_through {
            let deleted: Vec<i64> = backlog
                .range(..=emptied_through)
                .map(|(id, _)| *id)
                .collect();
            for id in deleted {
                for (row, version) in backlog.remove(&id).unwrap() {
                    prop_assert!(
                        tables.get(&row).is_some_and(|folded| *folded >= version),
                        "backlog row {id} deleted with {row:?} v{version} not folded"
                    );
                }
            }
        }
        backlog.insert(pending.id, pending.rows);
        unfolded.forget(&pending.folded);
        unfolded.add(pending.id, pending.batch).unwrap();
        Ok(())
    }

    impl<K: std::hash::Hash + Ord, V> ByKey<K, V> {
        /// Whether the next pass's keys are exactly the keys kept.
        fn next_is_every_key_kept(&self) -> bool {
            self.next.len() == self.rows.len()
                && self.rows.keys().all(|key| self.next.contains(key))
        }
    }

    proptest! {
        /// Batches as the writer hands them over: each takes its cut before the one
        /// before it has committed (`overlap`) or after.
        #[test]
        fn a_sweep_deletes_only_backlog_rows_whose_changes_the_tables_hold(
            batches in prop::collection::vec(
                (prop::collection::vec(0u8..40, 1..12), 1usize..40, any::<bool>()),
                1..150,
            ),
        ) {
            let mut unfolded = Unfolded::default();
            let mut backlog: BTreeMap<i64, Vec<(Row, u64)>> = BTreeMap::new();
            let mut tables: HashMap<Row, u64> = HashMap::new();
            let mut newest: HashMap<Row, u64> = HashMap::new();
            let mut seqs = HashMap::new();
            let mut keys = 0;
            let mut on_its_way: Option<Pending> = None;
            let mut committed = HashMap::new();
            for (id, (picks, cut_rows, overlap)) in (1..).zip(batches) {
                if !overlap && let Some(pending) = on_its_way.take() {
                    complete(pending, &mut unfolded, &mut backlog, &mut tables, &mut committed)?;
                }
                // A pass over account states or records begins with every key in the
                // order kept as they came, without sorting them all.
                if matches!(unfolded.sweep.next, super::Next::Accounts(None)) {
                    prop_assert!(unfolded.accounts.next_is_every_key_kept());
                }
                if matches!(unfolded.sweep.next, super::Next::Keys(None)) {
                    prop_assert!(unfolded.keys.next_is_every_key_kept());
                }
                let cut = unfolded.next_cut(cut_rows);
                let emptied_through = match &cut {
                    Cut::Keys(span, through) if span.ends_sweep() => Some(*through),
                    _ => None,
                };
                let written = written(&unfolded, &cut);
                let folded = unfolded.cut(&cut).folded();
                let (batch, rows) = batch(&picks, &mut seqs, &mut keys);
                for (row, version) in &rows {
                    newest.insert(row.clone(), *version);
                }
                if let Some(pending) = on_its_way.take() {
                    complete(pending, &mut unfolded, &mut backlog, &mut tables, &mut committed)?;
                }
                on_its_way = Some(Pending { id, written, emptied_through, folded, batch, rows });
                // What a ledger page takes from memory: each account's unfolded entries
                // are a run without gaps that ends at its newest committed.
                for (name, last) in &committed {
                    let id = AccountId::parse(name).unwrap();
                    let kept: Vec<u64> = unfolded
                        .entries
                        .of(&id)
                        .map(|kept| kept.keys().copied().collect())
                        .unwrap_or_default();
                    if let Some(first) = kept.first() {
                        prop_assert_eq!(&kept, &(*first..=*last).collect::<Vec<_>>(), "{}", name);
                    }
                }
            }
            if let Some(pending) = on_its_way.take() {
                complete(pending, &mut unfolded, &mut backlog, &mut tables, &mut committed)?;
            }
            // Every row's newest version is kept unfolded or in the tables, and what is
            // kept unfolded is the newest.
            for (row, version) in &newest {
                let kept = match row {
                    Row::State(name) => unfolded
                        .account(&AccountId::parse(name).unwrap())
                        .map(|stored| stored.entry_seq),
                    Row::Entry(name, seq) => unfolded
                        .entries
                        .of(&AccountId::parse(name).unwrap())
                        .is_some_and(|kept| kept.contains_key(seq))
                        .then_some(*seq),
                    Row::Hold(name, number) => unfolded
                        .holds
                        .of(&AccountId::parse(name).unwrap())
                        .is_some_and(|kept| kept.contains_key(&HoldId::new(*number)))
                        .then_some(*number),
                    Row::Key(label) => unfolded.keys.rows.contains_key(label).then_some(0),
                };
                match kept {
                    Some(kept) => prop_assert_eq!(kept, *version, "{:?}", row),
                    None => prop_assert_eq!(tables.get(row), Some(version), "{:?}", row),
                }
            }
            // Folding all leaves the tables with every newest version.
            for (row, version) in written(&unfolded, &Cut::All) {
                tables.insert(row, version);
            }
            for (row, version) in &newest {
                prop_assert_eq!(tables.get(row), Some(version), "{:?}", row);
            }
        }
    }

    #[test]
    fn a_pass_takes_the_keys_in_order_and_a_key_added_during_it_waits_for_the_next() {
        let mut kept: ByKey<String, u32> = ByKey::default();
        for key in ["d", "b"] {
            kept.insert(key.to_owned(), 0);
        }
        let cut = |kept: &ByKey<String, u32>, span| {
            kept.cut(span)
                .map(|(key, _)| key.clone())
                .collect::<Vec<_>>()
        };
        let first = kept.span(None, 1);
        assert_eq!(cut(&kept, &first), ["b"]);
        assert!(!first.ends_sweep());
        kept.rows.remove("b");
        kept.insert("c".to_owned(), 0);
        let second = kept.span(first.through.clone(), 1);
        assert_eq!(cut(&kept, &second), ["d"]);
        let third = kept.span(second.through.clone(), 1);
        assert!(cut(&kept, &third).is_empty());
        assert!(third.ends_sweep());
        kept.rows.remove("d");
        assert_eq!(kept.rows.keys().collect::<Vec<_>>(), ["c"]);
        let again = kept.span(None, 8);
        assert_eq!(cut(&kept, &again), ["c"]);
        assert!(again.ends_sweep());
    }

    #[test]
    fn a_pass_after_the_sweep_was_put_back_takes_every_key_kept_anew() {
        let mut unfolded = Unfolded::default();
        for key in ["a", "b"] {
            unfolded.keys.insert(key.to_owned(), key_columns(key));
        }
        let mark = unfolded.sweep_mark();
        unfolded.keys.span(None, 8);
        // As a cut put back and taken again can leave them: `next` as long as the keys
        // kept, but with a key no longer kept in place of one that is.
        unfolded.keys.rows.clear();
        unfolded.keys.next.insert("z".to_owned());
        unfolded.keys.rows.insert("c".to_owned(), key_columns("c"));
        unfolded.restore_sweep(mark);
        let span = unfolded.keys.span(None, 8);
        let labels: Vec<&String> = unfolded.keys.cut(&span).map(|(label, _)| label).collect();
        assert_eq!(labels, ["c"]);
    }

    /// A backlog row written by the version that made format 1, and the same in formats
    /// 2 and 3.
    const GOLDEN_BATCH: &str = include_str!("../../tests/golden/format-1/backlog-batch.json");
    const GOLDEN_BATCH_2: &[u8] = include_bytes!("../../tests/golden/format-2/backlog-batch.bin");
    const GOLDEN_BATCH_3: &[u8] = include_bytes!("../../tests/golden/format-3/backlog-batch.bin");

    #[test]
    fn format_1_backlog_rows_read_back_and_are_what_this_version_writes() {
        let batch: BacklogRow = columns::decode(columns::JSON, GOLDEN_BATCH.as_bytes()).unwrap();
        assert_eq!(
            (
                batch.accounts.len(),
                batch.entries.len(),
                batch.holds.len(),
                batch.keys.len()
            ),
            (1, 4, 1, 1)
        );
        let mut unfolded = Unfolded::default();
        let again = columns::encode(columns::JSON, &batch).unwrap();
        unfolded.add(1, batch).unwrap();
        assert!(unfolded.idempotency("k1\nretry-7").unwrap().is_some());
        columns::tests::assert_written_as_read(GOLDEN_BATCH.as_bytes(), &again);
    }

    #[test]
    fn binary_backlog_rows_hold_the_format_1_values_and_are_what_this_version_writes() {
        for (format, golden) in [
            (columns::BINARY, GOLDEN_BATCH_2),
            (columns::COMPACT, GOLDEN_BATCH_3),
        ] {
            columns::tests::assert_pinned::<BacklogRow>(format, GOLDEN_BATCH.as_bytes(), golden);
        }
    }
}
