//! Group commit: one writer applies every change, many requests per transaction.
//!
//! Handlers send a [`Command`] and wait. The writer runs commands through the ledger
//! core as they arrive, gathering them into a batch, and commits the batch at once (one
//! fsync); only then does it answer them. A batch's commands see each other's effects,
//! so two commands on one account stay in order, and an idempotency key or order id used
//! twice in one batch applies once.
//!
//! The writer is a pipeline one batch deep: while a batch commits, the next one is
//! prepared on top of it, reading what the committing batch will have stored from that
//! batch rather than from the database. So the database's writer is busy committing
//! while the next batch reads its accounts and runs its rules on another thread.
//! Reads take no lock; the store commits an account only at the revision the batch read
//! it at. When a commit fails, the batch prepared on top of it is prepared again from
//! the database: after a conflict (another process wrote first) both batches run
//! again; after any other failure the failed batch's commands are answered 503 and
//! nothing of them stays.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use creditd_ledger::{
    Account, AccountId, Adjustment, Grant, HoldId, Journal, Moment, OrderId, Purchase,
    PurchaseCredits, Refusal, Use,
};
use creditd_store::{
    ApiKeyRecord, Base, BatchReads, Changes, IdempotencyKey, IdempotencyRecord, Payment,
    PurchaseRecord, StoreError,
};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::answer::{Answer, Problem};
use crate::auth::{Role, new_api_key};
use crate::clock::ClockError;
use crate::core::Core;
use crate::dto::{
    AccountDto, AdjustmentDto, ApiKeyDto, BucketDto, ClockDto, DailyLoginDto, EntryDto, HoldDto,
    PurchaseDto, TokenDto,
};

/// Most commands in one transaction: enough to amortize the fsync over thousands of
/// requests per second, small enough that one batch's work stays well under a
/// millisecond per hundred commands.
pub const MAX_BATCH: usize = 1024;
/// Commands waiting for the writer before handlers wait to enqueue (backpressure).
const QUEUE_DEPTH: usize = 16 * MAX_BATCH;
/// Conflicts a command meets before it is answered 503: another process keeps writing
/// its account first. Each conflict means the other writer made progress.
const MAX_CONFLICTS: u8 = 16;

/// A membership change.
#[derive(Clone, Debug)]
pub enum MembershipAction {
    /// Start a trial of the plan.
    StartTrial(String),
    /// Start or renew a paid membership of the plan until the instant.
    Activate(String, Timestamp),
    /// Lapse now.
    Cancel,
}

/// A move of the test clock.
#[derive(Clone, Copy, Debug)]
pub enum ClockMove {
    /// To an instant.
    To(Timestamp),
    /// Forward by seconds.
    Advance(i64),
}

/// One change to apply.
#[derive(Clone, Debug)]
pub enum Op {
    /// Create an account, or change its zone.
    PutAccount(AccountId, Option<TimeZone>),
    /// Start a trial, activate, cancel.
    Membership(AccountId, MembershipAction),
    /// The daily login.
    DailyLogin(AccountId),
    /// A promotion or compensation.
    Grant(AccountId, Grant),
    /// A purchase, with the payment as reported.
    Purchase(AccountId, Purchase, Option<Payment>),
    /// Place a hold.
    Hold(AccountId, Use),
    /// A hold captured at once.
    Charge(AccountId, Use),
    /// Capture a hold for a delivered quantity (all if `None`).
    Capture(AccountId, HoldId, Option<u32>),
    /// Release a hold.
    Release(AccountId, HoldId),
    /// An admin's adjustment.
    Adjust(AccountId, Adjustment),
    /// Record the time-based effects due on an account (the sweeper, ledger reads).
    CatchUp(AccountId),
    /// A read-only token for an account.
    Token(AccountId, SignedDuration),
    /// A new API key.
    CreateKey(String, Role),
    /// Revoke an API key (as read by the caller).
    RevokeKey(ApiKeyRecord),
    /// Move the test clock.
    MoveClock(ClockMove),
}

impl Op {
    fn account(&self) -> Option<&AccountId> {
        match self {
            Op::PutAccount(id, _)
            | Op::Membership(id, _)
            | Op::DailyLogin(id)
            | Op::Grant(id, _)
            | Op::Purchase(id, _, _)
            | Op::Hold(id, _)
            | Op::Charge(id, _)
            | Op::Capture(id, _, _)
            | Op::Release(id, _)
            | Op::Adjust(id, _)
            | Op::CatchUp(id) => Some(id),
            Op::Token(..) | Op::CreateKey(..) | Op::RevokeKey(_) | Op::MoveClock(_) => None,
        }
    }
}

/// An idempotency key with the digest of the request it came with.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// Owner and key.
    pub key: IdempotencyKey,
    /// Digest of method, path and body.
    pub fingerprint: String,
}

/// A change and, if the client sent one, its idempotency key.
#[derive(Clone, Debug)]
pub struct Command {
    /// What to do.
    pub op: Op,
    /// The key to answer retries from.
    pub idempotency: Option<Idempotency>,
}

/// A command waiting for its answer.
struct Pending {
    command: Command,
    reply: oneshot::Sender<Answer>,
    /// Commits of its batch that met a conflict.
    conflicts: u8,
    /// The answer of a command whose effect is outside the database (the test clock):
    /// if its batch runs again, the command is not.
    done: Option<Answer>,
}

/// The handle requests send their commands through.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Pending>,
}

impl Writer {
    /// Starts the writer task on `core`, committing up to `max_batch` commands at a time
    /// (1: one transaction per request, each prepared only once the one before is
    /// durable: the baseline group commit is measured against). The task ends when every
    /// `Writer` handle is dropped and the queue is drained.
    pub fn start(core: Arc<Core>, max_batch: usize) -> (Writer, JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(run(core, receiver, max_batch.clamp(1, MAX_BATCH)));
        (Writer { queue }, task)
    }

    /// Applies `command` and returns its answer once it is durable.
    pub async fn submit(&self, command: Command) -> Answer {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            command,
            reply,
            conflicts: 0,
            done: None,
        };
        if self.queue.send(pending).await.is_err() {
            return Problem::unavailable(&"the writer has stopped").into();
        }
        answer
            .await
            .unwrap_or_else(|_| Problem::unavailable(&"the writer has stopped").into())
    }
}

async fn run(core: Arc<Core>, mut receiver: mpsc::Receiver<Pending>, max_batch: usize) {
    let mut pipeline = Pipeline {
        current: Batch::new(&core),
        core,
        in_flight: None,
    };
    let mut arrivals: Vec<Pending> = Vec::with_capacity(max_batch);
    let mut open = true;
    while open || pipeline.in_flight.is_some() {
        let room = max_batch.saturating_sub(pipeline.current.pending.len());
        // One transaction per request: the next is not prepared until this one is done.
        let receiving = open && room > 0 && (max_batch > 1 || pipeline.in_flight.is_none());
        tokio::select! {
            biased;
            committed = pipeline.committed(), if pipeline.in_flight.is_some() => {
                pipeline.settle(committed).await;
            }
            received = receiver.recv_many(&mut arrivals, room), if receiving => {
                if received == 0 {
                    open = false;
                } else {
                    pipeline.prepare(std::mem::take(&mut arrivals)).await;
                }
            }
        }
        pipeline.launch();
    }
}

/// The batch being prepared and the one committing.
struct Pipeline {
    core: Arc<Core>,
    current: Batch,
    in_flight: Option<InFlight>,
}

/// A batch whose commit is under way, with an index of what it will have stored: the
/// batch prepared meanwhile reads from it, not from the database.
struct InFlight {
    pending: Vec<Pending>,
    answers: Vec<Answer>,
    keys_to_remember: Vec<ApiKeyRecord>,
    changes: Arc<Changes>,
    accounts: HashMap<AccountId, usize>,
    idempotency: HashMap<IdempotencyKey, usize>,
    purchases: HashMap<OrderId, usize>,
    commit: JoinHandle<Result<(), StoreError>>,
}

impl Pipeline {
    /// Runs commands that arrived into the current batch, first reading what they need
    /// that neither it nor the committing batch has.
    async fn prepare(&mut self, arrivals: Vec<Pending>) {
        let mut ids: HashSet<AccountId> = HashSet::new();
        let mut keys: HashSet<IdempotencyKey> = HashSet::new();
        let mut orders: HashSet<OrderId> = HashSet::new();
        for pending in &arrivals {
            let command = &pending.command;
            if let Some(id) = command.op.account()
                && !self.current.accounts.contains_key(id)
            {
                ids.insert(id.clone());
            }
            if let Some(idem) = &command.idempotency
                && !self.current.idempotency.contains_key(&idem.key)
            {
                keys.insert(idem.key.clone());
            }
            if let Op::Purchase(_, purchase, _) = &command.op
                && !self.current.purchases.contains_key(&purchase.order_id)
            {
                orders.insert(purchase.order_id.clone());
            }
        }
        if let Some(flight) = &self.in_flight {
            let changes = &flight.changes;
            ids.retain(|id| {
                let Some(&at) = flight.accounts.get(id) else {
                    return true;
                };
                let stored = &changes.accounts[at].stored;
                self.current.accounts.insert(
                    id.clone(),
                    Slot::read(stored.account.clone(), stored.base()),
                );
                false
            });
            keys.retain(|key| {
                let Some(&at) = flight.idempotency.get(key) else {
                    return true;
                };
                let record = changes.idempotency[at].clone();
                self.current.idempotency.insert(key.clone(), record);
                false
            });
            orders.retain(|order| {
                let Some(&at) = flight.purchases.get(order) else {
                    return true;
                };
                let record = changes.purchases[at].clone();
                self.current.purchases.insert(order.clone(), record);
                false
            });
        }
        if !(ids.is_empty() && keys.is_empty() && orders.is_empty()) {
            let ids: Vec<AccountId> = ids.into_iter().collect();
            let keys: Vec<IdempotencyKey> = keys.into_iter().collect();
            let orders: Vec<OrderId> = orders.into_iter().collect();
            match self.core.store.read(&ids, &keys, &orders).await {
                Ok(reads) => self.current.absorb(ids, reads),
                Err(error) => {
                    let answer: Answer = Problem::from(error).into();
                    for pending in arrivals {
                        let _ = pending.reply.send(answer.clone());
                    }
                    return;
                }
            }
        }
        for mut pending in arrivals {
            let answer = match pending.done.take() {
                Some(answer) => answer,
                None => self.current.run(&pending.command),
            };
            if matches!(pending.command.op, Op::MoveClock(_)) {
                pending.done = Some(answer.clone());
            }
            self.current.pending.push(pending);
            self.current.answers.push(answer);
        }
    }

    /// Starts committing the current batch, unless one is committing already.
    fn launch(&mut self) {
        if self.in_flight.is_some() || self.current.pending.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.current, Batch::new(&self.core));
        let Finished {
            changes,
            keys_to_remember,
            pending,
            answers,
        } = batch.finish();
        let changes = Arc::new(changes);
        let index = |ids: &mut dyn Iterator<Item = AccountId>| -> HashMap<AccountId, usize> {
            ids.enumerate().map(|(at, id)| (id, at)).collect()
        };
        let accounts = index(
            &mut changes
                .accounts
                .iter()
                .map(|change| change.stored.account.id().clone()),
        );
        let idempotency = changes
            .idempotency
            .iter()
            .enumerate()
            .map(|(at, record)| (record.key.clone(), at))
            .collect();
        let purchases = changes
            .purchases
            .iter()
            .enumerate()
            .map(|(at, record)| (record.order_id.clone(), at))
            .collect();
        let core = Arc::clone(&self.core);
        let committing = Arc::clone(&changes);
        let commit = tokio::spawn(async move { core.store.commit(&committing).await });
        self.in_flight = Some(InFlight {
            pending,
            answers,
            keys_to_remember,
            changes,
            accounts,
            idempotency,
            purchases,
            commit,
        });
    }

    /// Waits for the committing batch.
    async fn committed(&mut self) -> Result<(), StoreError> {
        let Some(flight) = self.in_flight.as_mut() else {
            return Ok(());
        };
        match (&mut flight.commit).await {
            Ok(result) => result,
            Err(failed) => Err(StoreError::Corrupt(format!(
                "the commit task failed: {failed}"
            ))),
        }
    }

    /// Answers the committed batch; or, if its commit failed, deals with it and
    /// prepares the current batch again without it.
    async fn settle(&mut self, committed: Result<(), StoreError>) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        if committed.is_ok() {
            self.core
                .metrics
                .committed(flight.pending.len(), &flight.changes);
            for record in flight.keys_to_remember {
                self.core.auth.remember(record);
            }
            for (pending, answer) in flight.pending.into_iter().zip(flight.answers) {
                // The requester may have gone away; its change stands all the same.
                let _ = pending.reply.send(answer);
            }
            return;
        }
        let mut again = Vec::new();
        match committed {
            Err(StoreError::Conflict(why)) => {
                tracing::info!(%why, "a batch met another writer's change; running it again");
                self.core.metrics.conflict();
                for mut pending in flight.pending {
                    pending.conflicts = pending.conflicts.saturating_add(1);
                    if pending.conflicts < MAX_CONFLICTS {
                        again.push(pending);
                    } else {
                        let answer: Answer =
                            Problem::from(StoreError::Conflict(why.clone())).into();
                        let _ = pending.reply.send(answer);
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "a batch failed to commit");
                let answer: Answer = Problem::from(error).into();
                for pending in flight.pending {
                    let _ = pending.reply.send(answer.clone());
                }
            }
            Ok(()) => {}
        }
        // The current batch was prepared on top of the failed one.
        let current = std::mem::replace(&mut self.current, Batch::new(&self.core));
        again.extend(current.pending);
        if !again.is_empty() {
            self.prepare(again).await;
        }
    }
}

/// One account within a batch.
struct Slot {
    /// `None`: the account does not exist (yet).
    account: Option<Account>,
    /// What it was read as.
    base: Base,
    journal: Journal,
    touched: bool,
}

impl Slot {
    fn read(account: Account, base: Base) -> Slot {
        Slot {
            account: Some(account),
            base,
            journal: Journal::default(),
            touched: false,
        }
    }

    fn absent() -> Slot {
        Slot {
            account: None,
            base: Base::default(),
            journal: Journal::default(),
            touched: false,
        }
    }
}

/// Whether a command may create the account it names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Creates {
    Yes,
    No,
}

/// The batch being prepared: what it read, what its commands did, their answers.
struct Batch {
    core: Arc<Core>,
    accounts: HashMap<AccountId, Slot>,
    idempotency: HashMap<IdempotencyKey, IdempotencyRecord>,
    purchases: HashMap<OrderId, PurchaseRecord>,
    changes: Changes,
    keys_to_remember: Vec<ApiKeyRecord>,
    pending: Vec<Pending>,
    answers: Vec<Answer>,
}

/// A batch ready to commit.
struct Finished {
    changes: Changes,
    keys_to_remember: Vec<ApiKeyRecord>,
    pending: Vec<Pending>,
    answers: Vec<Answer>,
}

impl Batch {
    fn new(core: &Arc<Core>) -> Batch {
        Batch {
            core: Arc::clone(core),
            accounts: HashMap::new(),
            idempotency: HashMap::new(),
            purchases: HashMap::new(),
            changes: Changes::default(),
            keys_to_remember: Vec::new(),
            pending: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// Takes in what was read for `ids`: an id not read back has no account.
    fn absorb(&mut self, ids: Vec<AccountId>, reads: BatchReads) {
        for id in ids {
            self.accounts.insert(id, Slot::absent());
        }
        for stored in reads.accounts {
            let base = stored.base();
            let id = stored.account.id().clone();
            self.accounts.insert(id, Slot::read(stored.account, base));
        }
        for record in reads.idempotency {
            self.idempotency.entry(record.key.clone()).or_insert(record);
        }
        for record in reads.purchases {
            self.purchases
                .entry(record.order_id.clone())
                .or_insert(record);
        }
    }

    fn run(&mut self, command: &Command) -> Answer {
        if let Some(idem) = &command.idempotency
            && let Some(record) = self.idempotency.get(&idem.key)
        {
            return if record.fingerprint == idem.fingerprint {
                Answer {
                    status: StatusCode::from_u16(record.status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body: record.body.clone(),
                    replayed: true,
                }
            } else {
                Problem::idempotency_conflict(
                    "this Idempotency-Key was used with a different request",
                )
                .into()
            };
        }
        let answer = self.execute(&command.op);
        if let Some(idem) = &command.idempotency
            && !answer.is_server_error()
        {
            let body = match command.op {
                // A key's secret is shown once and never stored: a replay shows the key
                // without it.
                Op::CreateKey(..) => without_secret(&answer.body),
                _ => answer.body.clone(),
            };
            let record = IdempotencyRecord {
                key: idem.key.clone(),
                account: command.op.account().cloned(),
                fingerprint: idem.fingerprint.clone(),
                status: answer.status.as_u16(),
                body,
                created_at: self.core.clock.now(),
            };
            self.idempotency.insert(record.key.clone(), record.clone());
            self.changes.idempotency.push(record);
        }
        answer
    }

    fn execute(&mut self, op: &Op) -> Answer {
        let now = self.core.clock.now();
        let answer = match op {
            Op::PutAccount(id, zone) => self.put_account(id, zone.clone(), now),
            Op::Membership(id, action) => self.on(id, Creates::Yes, now, |m| {
                match action {
                    MembershipAction::StartTrial(plan) => m.start_trial(plan)?,
                    MembershipAction::Activate(plan, end) => m.activate(plan, *end)?,
                    MembershipAction::Cancel => m.cancel()?,
                }
                Ok(Answer::json(StatusCode::OK, &AccountDto::from(m.account())))
            }),
            Op::DailyLogin(id) => self.on(id, Creates::Yes, now, |m| {
                let login = m.daily_login()?;
                let dto = DailyLoginDto {
                    granted: login.granted,
                    local_date: login.local_date,
                    expires_at: login.expires_at,
                    bucket_id: login.bucket_id.map(|b| b.to_string()),
                };
                Ok(Answer::json(StatusCode::OK, &dto))
            }),
            Op::Grant(id, grant) => self.on(id, Creates::Yes, now, |m| {
                let bucket = m.grant(grant.clone())?;
                let frozen = m.account().is_frozen(&bucket);
                Ok(Answer::json(
                    StatusCode::CREATED,
                    &BucketDto::new(&bucket, frozen),
                ))
            }),
            Op::Purchase(id, purchase, paid) => self.purchase(id, purchase, paid, now),
            Op::Hold(id, intended) => self.on(id, Creates::Yes, now, |m| {
                let hold = m.place_hold(intended)?;
                Ok(Answer::json(StatusCode::CREATED, &HoldDto::new(id, &hold)))
            }),
            Op::Charge(id, intended) => self.on(id, Creates::Yes, now, |m| {
                let hold = m.charge(intended)?;
                Ok(Answer::json(StatusCode::CREATED, &HoldDto::new(id, &hold)))
            }),
            Op::Capture(id, hold, quantity) => self.on(id, Creates::No, now, |m| {
                let hold = m.capture(*hold, *quantity)?;
                Ok(Answer::json(StatusCode::OK, &HoldDto::new(id, &hold)))
            }),
            Op::Release(id, hold) => self.on(id, Creates::No, now, |m| {
                let hold = m.release(*hold)?;
                Ok(Answer::json(StatusCode::OK, &HoldDto::new(id, &hold)))
            }),
            Op::Adjust(id, adjustment) => self.adjust(id, adjustment, now),
            Op::CatchUp(id) => self.on(id, Creates::No, now, |_| Ok(Answer::no_content())),
            Op::Token(id, ttl) => Ok(self.token(id, *ttl, now)),
            Op::CreateKey(name, role) => Ok(self.create_key(name, *role, now)),
            Op::RevokeKey(record) => {
                let mut revoked = record.clone();
                revoked.revoked_at = Some(now);
                self.changes.revoked_api_keys.push((record.id.clone(), now));
                self.keys_to_remember.push(revoked);
                Ok(Answer::no_content())
            }
            Op::MoveClock(movement) => Ok(self.move_clock(*movement)),
        };
        answer.unwrap_or_else(|problem| problem)
    }

    /// Runs `command` on the account `id` as of `now`. An account that does not exist is
    /// opened first if the command may create it (and kept only if the command
    /// succeeds); otherwise the answer is `not_found`. A refusal becomes its problem.
    fn on<T>(
        &mut self,
        id: &AccountId,
        creates: Creates,
        now: Timestamp,
        command: impl FnOnce(&mut Moment<'_>) -> Result<T, Refusal>,
    ) -> Result<T, Answer> {
        let catalog = &self.core.catalog;
        let slot = self.accounts.entry(id.clone()).or_insert_with(Slot::absent);
        let opened = slot.account.is_none();
        if opened {
            if creates == Creates::No {
                return Err(Problem::not_found(format!("account {id} does not exist")).into());
            }
            let zone = catalog.policies().default_time_zone.clone();
            slot.account = Some(Account::open(id.clone(), zone, now));
        }
        let Some(account) = slot.account.as_mut() else {
            unreachable!("opened above")
        };
        let mut moment = account.at(catalog, now, &mut slot.journal);
        let result = command(&mut moment);
        drop(moment);
        if opened && result.is_err() {
            // A refused command leaves no trace, not even a new empty account.
            slot.account = None;
            slot.journal.clear();
        } else {
            slot.touched = true;
        }
        result.map_err(|refusal| Problem::from(refusal).into())
    }

    fn put_account(
        &mut self,
        id: &AccountId,
        zone: Option<TimeZone>,
        now: Timestamp,
    ) -> Result<Answer, Answer> {
        let exists = self
            .accounts
            .get(id)
            .is_some_and(|slot| slot.account.is_some());
        if !exists {
            let zone = zone
                .clone()
                .unwrap_or_else(|| self.core.catalog.policies().default_time_zone.clone());
            let slot = self.accounts.entry(id.clone()).or_insert_with(Slot::absent);
            slot.account = Some(Account::open(id.clone(), zone, now));
            slot.touched = true;
        }
        let status = if exists {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        self.on(id, Creates::No, now, |m| {
            if let Some(zone) = zone {
                m.set_time_zone(zone);
            }
            Ok(Answer::json(status, &AccountDto::from(m.account())))
        })
    }

    fn purchase(
        &mut self,
        id: &AccountId,
        purchase: &Purchase,
        paid: &Option<Payment>,
        now: Timestamp,
    ) -> Result<Answer, Answer> {
        let credits = match &purchase.credits {
            PurchaseCredits::Package(name) => match self.core.catalog.package(name) {
                Ok(package) => package.credits,
                Err(refusal) => return Err(Problem::from(refusal).into()),
            },
            PurchaseCredits::Credits(amount) => amount.get(),
        };
        if let Some(first) = self.purchases.get(&purchase.order_id) {
            let same = first.account_id == *id
                && first.credits == credits
                && (first.paid_at_requested.is_none()
                    || purchase.paid_at.is_none()
                    || first.paid_at_requested == purchase.paid_at);
            return Ok(if same {
                Answer::json(StatusCode::OK, &recorded_purchase(first))
            } else {
                Problem::idempotency_conflict(format!(
                    "order {} was recorded with another account, amount or paid_at",
                    purchase.order_id
                ))
                .into()
            });
        }
        let mut record = None;
        let answer = self.on(id, Creates::Yes, now, |m| {
            let receipt = m.purchase(purchase.clone())?;
            record = Some(PurchaseRecord {
                order_id: receipt.order_id.clone(),
                account_id: id.clone(),
                credits: receipt.credits,
                bucket_id: receipt.bucket_id,
                paid_at: receipt.paid_at,
                paid_at_requested: purchase.paid_at,
                expires_at: receipt.expires_at,
                paid: paid.clone(),
                recorded_at: m.now(),
            });
            Ok(Answer::json(
                StatusCode::CREATED,
                &PurchaseDto::new(id, &receipt),
            ))
        })?;
        if let Some(record) = record {
            self.purchases
                .insert(record.order_id.clone(), record.clone());
            self.changes.purchases.push(record);
        }
        Ok(answer)
    }

    fn adjust(
        &mut self,
        id: &AccountId,
        adjustment: &Adjustment,
        now: Timestamp,
    ) -> Result<Answer, Answer> {
        let entries = self.on(id, Creates::Yes, now, |m| m.adjust(adjustment.clone()))?;
        // The adjustment's entries are the last journaled: number them as `finish` will.
        let slot = &self.accounts[id];
        let recorded = slot
            .base
            .entry_seq
            .saturating_add(slot.journal.entries.len() as u64);
        let first = recorded
            .saturating_sub(entries.len() as u64)
            .saturating_add(1);
        let dtos: Vec<EntryDto> = entries
            .iter()
            .zip(first..)
            .map(|(entry, seq)| EntryDto::new(id, seq, entry))
            .collect();
        let Some(first_entry) = entries.first() else {
            return Err(Problem::internal(&"an adjustment made no entry").into());
        };
        let mut summary = EntryDto::new(id, first, first_entry);
        summary.amount = entries
            .iter()
            .map(|e| e.amount)
            .fold(0, i64::saturating_add);
        Ok(Answer::json(
            StatusCode::CREATED,
            &AdjustmentDto {
                entry: summary,
                entries: dtos,
            },
        ))
    }

    fn token(&self, id: &AccountId, ttl: SignedDuration, now: Timestamp) -> Answer {
        let Ok(expires_at) = now.checked_add(ttl) else {
            return Problem::invalid("ttl_seconds is out of range").into();
        };
        let dto = TokenDto {
            token: self.core.auth.issue_token(id, expires_at),
            expires_at,
        };
        Answer::json(StatusCode::CREATED, &dto)
    }

    fn create_key(&mut self, name: &str, role: Role, now: Timestamp) -> Answer {
        let new = new_api_key(name, role, now);
        let dto = ApiKeyDto {
            id: new.record.id.clone(),
            name: new.record.name.clone(),
            role: new.record.role.clone(),
            created_at: now,
            revoked_at: None,
            key: Some(new.key),
        };
        self.changes.new_api_keys.push(new.record.clone());
        self.keys_to_remember.push(new.record);
        Answer::json(StatusCode::CREATED, &dto)
    }

    fn move_clock(&self, movement: ClockMove) -> Answer {
        let clock = &self.core.clock;
        let moved = match movement {
            ClockMove::To(at) => clock.set(at),
            ClockMove::Advance(seconds) => clock.advance(seconds),
        };
        match moved {
            Ok(now) => Answer::json(StatusCode::OK, &ClockDto { now }),
            Err(ClockError::Backwards(back)) => {
                Problem::new(StatusCode::CONFLICT, "clock_backwards", back.to_string()).into()
            }
            Err(ClockError::NotATestClock) => {
                Problem::not_found("the service runs on the system clock").into()
            }
            Err(ClockError::OutOfRange) => {
                Problem::invalid("the target time is out of range").into()
            }
        }
    }

    /// The batch's changes, every touched account with its new entries numbered, and
    /// its commands with their answers.
    fn finish(mut self) -> Finished {
        for slot in self.accounts.into_values() {
            if let Some(account) = slot.account
                && slot.touched
            {
                self.changes.record(account, slot.base, slot.journal);
            }
        }
        Finished {
            changes: self.changes,
            keys_to_remember: self.keys_to_remember,
            pending: self.pending,
            answers: self.answers,
        }
    }
}

fn recorded_purchase(record: &PurchaseRecord) -> PurchaseDto {
    PurchaseDto {
        order_id: record.order_id.to_string(),
        account_id: record.account_id.to_string(),
        credits: record.credits,
        bucket_id: record.bucket_id.to_string(),
        paid_at: record.paid_at,
        expires_at: record.expires_at,
    }
}

fn without_secret(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.remove("key");
            serde_json::Value::Object(fields).to_string()
        }
        _ => body.to_owned(),
    }
}
