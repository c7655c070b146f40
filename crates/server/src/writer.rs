//! Group commit: one writer applies every change, many requests per transaction.
//!
//! Handlers send a [`Command`] and wait. The writer takes every command waiting (up to
//! [`MAX_BATCH`]), opens one transaction, locks the accounts they touch, runs them in
//! arrival order through the ledger core, commits once (one fsync) and only then answers
//! each. A batch's commands see each other's effects, so two commands on one account stay
//! in order, and an idempotency key or order id used twice in one batch applies once.
//! If the commit fails, every command of the batch is answered 503 and nothing of it
//! stays: the next batch reads the accounts back from the database.
//!
//! On a store that serializes accounts itself (PostgreSQL's locks), several batches may
//! be in their transactions at once: while one waits for its commit to be flushed, the
//! next ones are locked, read and written.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use creditd_ledger::{
    Account, AccountId, Adjustment, Grant, HoldId, Journal, Moment, OrderId, Purchase,
    PurchaseCredits, Refusal, Use,
};
use creditd_store::{
    ApiKeyRecord, Changes, IdempotencyKey, IdempotencyRecord, Payment, PurchaseRecord, StoreError,
};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, oneshot};

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
/// Batches in their transactions at once, where the store allows more than one: while
/// one waits for its commit to be flushed, the next ones lock, read and write.
const CONCURRENT_BATCHES: usize = 4;
/// Commands waiting for the writer before handlers wait to enqueue (backpressure).
const QUEUE_DEPTH: usize = 16 * MAX_BATCH;

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

type Queued = (Command, oneshot::Sender<Answer>);

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

    /// Applies `command` and returns its answer once it is durable.
    pub async fn submit(&self, command: Command) -> Answer {
        let (reply, answer) = oneshot::channel();
        if self.queue.send((command, reply)).await.is_err() {
            return Problem::unavailable(&"the writer has stopped").into();
        }
        answer
            .await
            .unwrap_or_else(|_| Problem::unavailable(&"the writer has stopped").into())
    }
}

async fn run(
    core: Arc<Core>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>,
    max_batch: usize,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(max_batch);
    // The queue is locked only while taking a batch from it.
    while receiver.lock().await.recv_many(&mut batch, max_batch).await > 0 {
        let commands: Vec<&Command> = batch.iter().map(|(command, _)| command).collect();
        let answers = match apply(&core, &commands).await {
            Ok(answers) => answers,
            Err(error) => vec![Problem::from(error).into(); batch.len()],
        };
        for ((_, reply), answer) in batch.drain(..).zip(answers) {
            // The requester may have gone away; its change stands all the same.
            let _ = reply.send(answer);
        }
    }
}

/// Runs one batch in one transaction.
async fn apply(core: &Core, commands: &[&Command]) -> Result<Vec<Answer>, StoreError> {
    let mut ids: Vec<AccountId> = commands
        .iter()
        .filter_map(|c| c.op.account().cloned())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let keys: Vec<IdempotencyKey> = commands
        .iter()
        .filter_map(|c| Some(c.idempotency.as_ref()?.key.clone()))
        .collect();
    let orders: Vec<OrderId> = commands
        .iter()
        .filter_map(|c| match &c.op {
            Op::Purchase(_, purchase, _) => Some(purchase.order_id.clone()),
            _ => None,
        })
        .collect();

    let mut tx = core.store.begin().await?;
    let reads = tx.read(&ids, &keys, &orders).await?;
    let accounts = reads
        .accounts
        .into_iter()
        .map(|stored| {
            let id = stored.account.id().clone();
            let slot = Slot {
                entry_seq: stored.entry_seq,
                account: Some(stored.account),
                journal: Journal::default(),
                touched: false,
            };
            (id, slot)
        })
        .collect();
    let mut batch = Batch {
        core,
        accounts,
        idempotency: reads
            .idempotency
            .into_iter()
            .map(|record| (record.key.clone(), record))
            .collect(),
        purchases: reads
            .purchases
            .into_iter()
            .map(|record| (record.order_id.clone(), record))
            .collect(),
        changes: Changes::default(),
        keys_to_remember: Vec::new(),
    };

    let answers: Vec<Answer> = commands.iter().map(|c| batch.run(c)).collect();
    let (changes, keys_to_remember) = batch.finish();
    // Committed even when empty: it ends the transaction the reads began.
    tx.commit(&changes).await?;
    core.metrics.committed(commands.len(), &changes);
    for record in keys_to_remember {
        core.auth.remember(record);
    }
    Ok(answers)
}

/// One account within a batch.
struct Slot {
    /// `None`: the account does not exist (yet).
    account: Option<Account>,
    entry_seq: u64,
    journal: Journal,
    touched: bool,
}

/// Whether a command may create the account it names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Creates {
    Yes,
    No,
}

struct Batch<'a> {
    core: &'a Core,
    accounts: HashMap<AccountId, Slot>,
    idempotency: HashMap<IdempotencyKey, IdempotencyRecord>,
    purchases: HashMap<OrderId, PurchaseRecord>,
    changes: Changes,
    keys_to_remember: Vec<ApiKeyRecord>,
}

impl Batch<'_> {
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
        let slot = self.accounts.entry(id.clone()).or_insert_with(|| Slot {
            account: None,
            entry_seq: 0,
            journal: Journal::default(),
            touched: false,
        });
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
            self.accounts.insert(
                id.clone(),
                Slot {
                    account: Some(Account::open(id.clone(), zone, now)),
                    entry_seq: 0,
                    journal: Journal::default(),
                    touched: true,
                },
            );
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

    /// The batch's changes: every touched account with its new entries numbered.
    fn finish(mut self) -> (Changes, Vec<ApiKeyRecord>) {
        for slot in self.accounts.into_values() {
            if let Some(account) = slot.account
                && slot.touched
            {
                self.changes.record(account, slot.entry_seq, slot.journal);
            }
        }
        (self.changes, self.keys_to_remember)
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
