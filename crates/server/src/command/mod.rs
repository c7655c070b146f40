//! Commands: every change the service makes, as a typed request with a typed outcome.
//!
//! A handler parses a request once into a [`Command`]; the writer runs a batch of them
//! in one transaction through [`Batch::apply`], which hands account commands to the
//! ledger core ([`creditd_ledger::AccountCommand`]) and runs the service's own (tokens,
//! keys, the test clock) in [`service`]. Each answers an [`Outcome`] or a [`Refused`];
//! the HTTP layer encodes them (`crate::dto`), and nothing here knows HTTP.
//!
//! A batch's commands see each other's effects: a [`Batch`] keeps the accounts it read
//! and changed, the purchases recorded so far, and the [`Changes`] to commit.

mod account;
mod service;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use creditd_ledger::{
    Account, AccountCommand, AccountId, Bucket, DailyLogin, EventKind, History, Hold, OrderId,
    Refusal,
};
use creditd_store::{
    ApiKeyRecord, AuditRecord, BatchReads, Changes, ConsoleSession, EventRecord, IdempotencyKey,
    IdempotencyRecord, PurchaseRecord, StoreError, StoredEntry, WebhookEndpoint,
};
use jiff::{SignedDuration, Timestamp};

use crate::auth::{Actor, Role};
use crate::clock::ClockError;
use crate::core::Core;
use crate::dto;
use crate::idempotency::Idempotency;

pub use service::ClockMove;
pub use webhooks::{NewEndpoint, SECRET_PREFIX, new_secret};

/// One change to make.
#[derive(Clone, Debug)]
pub enum Command {
    /// A write on one account, decided by the ledger core.
    Account(AccountId, AccountCommand),
    /// A read-only token for an account, valid for `ttl`.
    Token {
        /// The account it reads.
        account: AccountId,
        /// How long it works.
        ttl: SignedDuration,
        /// The API key asking: the token works while that key does.
        issued_by: String,
    },
    /// Every token of the account issued until now stops working.
    RevokeTokens(AccountId),
    /// A new API key.
    CreateKey {
        /// What it is for.
        name: String,
        /// What it may do.
        role: Role,
    },
    /// Revoke an API key (as read by the caller).
    RevokeKey(ApiKeyRecord),
    /// Move the test clock.
    MoveClock(ClockMove),
    /// A new webhook endpoint.
    CreateEndpoint(NewEndpoint),
    /// A new secret for an endpoint (as read by the caller); the old one stops signing.
    RotateSecret(WebhookEndpoint),
    /// Delete an endpoint (as read by the caller): no delivery starts after it.
    DeleteEndpoint(WebhookEndpoint),
    /// Begin or end a console session (stored whole).
    ConsoleSession(ConsoleSession),
    /// A new round of attempts for an event.
    Redeliver {
        /// The event's account.
        account: AccountId,
        /// The event's number.
        sequence: u64,
        /// The endpoints to deliver it to.
        endpoints: Vec<String>,
    },
}

impl Command {
    /// The account the command is about, if any.
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Command::Account(id, _) => Some(id),
            Command::Token { .. }
            | Command::RevokeTokens(_)
            | Command::CreateKey { .. }
            | Command::RevokeKey(_)
            | Command::MoveClock(_)
            | Command::CreateEndpoint(_)
            | Command::RotateSecret(_)
            | Command::DeleteEndpoint(_)
            | Command::ConsoleSession(_)
            | Command::Redeliver { .. } => None,
        }
    }

    /// The account the command is about, for the audit trail: [`Command::account`]'s, and
    /// the account a token reads (which the batch need not read).
    pub fn about(&self) -> Option<&AccountId> {
        match self {
            Command::Token { account, .. } | Command::RevokeTokens(account) => Some(account),
            command => command.account(),
        }
    }

    /// What the command does, as the audit trail names it.
    pub fn action(&self) -> &'static str {
        match self {
            Command::Account(_, command) => match command {
                AccountCommand::Open { .. } => "account.put",
                AccountCommand::StartTrial { .. } => "membership.start_trial",
                AccountCommand::Activate { .. } => "membership.activate",
                AccountCommand::Cancel => "membership.cancel",
                AccountCommand::DailyLogin => "daily_login",
                AccountCommand::Grant(_) => "grant",
                AccountCommand::Purchase(_) => "purchase",
                AccountCommand::PlaceHold(_) => "hold.place",
                AccountCommand::Charge(_) => "charge",
                AccountCommand::Capture { .. } => "hold.capture",
                AccountCommand::Release(_) => "hold.release",
                AccountCommand::Adjust(_) => "adjust",
                AccountCommand::CatchUp => "catch_up",
            },
            Command::Token { .. } => "token.create",
            Command::RevokeTokens(_) => "token.revoke",
            Command::CreateKey { .. } => "key.create",
            Command::RevokeKey(_) => "key.revoke",
            Command::MoveClock(_) => "clock.move",
            Command::CreateEndpoint(_) => "webhook.create",
            Command::RotateSecret(_) => "webhook.rotate_secret",
            Command::DeleteEndpoint(_) => "webhook.delete",
            Command::Redeliver { .. } => "event.redeliver",
            Command::ConsoleSession(session) if session.ended_at.is_some() => "console.sign_out",
            Command::ConsoleSession(_) => "console.sign_in",
        }
    }

    /// The reason the command itself carries (an adjustment's), for the audit trail.
    pub fn reason(&self) -> Option<String> {
        match self {
            Command::Account(_, AccountCommand::Adjust(adjustment)) => {
                Some(adjustment.reason.clone())
            }
            _ => None,
        }
    }

    /// The order id a purchase records, which the batch must read first.
    fn order(&self) -> Option<&OrderId> {
        match self {
            Command::Account(_, AccountCommand::Purchase(purchase)) => Some(&purchase.order_id),
            _ => None,
        }
    }
}

/// A command as the writer carries it: with the client's idempotency key, if any.
#[derive(Clone, Debug)]
pub struct Submission {
    /// What to do.
    pub command: Command,
    /// The key to answer retries from.
    pub idempotency: Option<Idempotency>,
    /// Background work (a sweep's catch-up): it waits behind requests.
    pub background: bool,
    /// The person it is audited for, if it is a person's change.
    pub actor: Option<Actor>,
}

/// What a command did.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The account after the command (opened, zone or membership changed).
    Account {
        /// Its state.
        account: Box<Account>,
        /// Whether the command created it: an `Open` of an account that did not exist.
        created: bool,
        /// The low-balance threshold in force (the account's, else the policy's).
        low_balance_threshold: Option<u64>,
    },
    /// A daily login.
    DailyLogin(DailyLogin),
    /// A promotion or compensation bucket.
    Granted {
        /// The bucket.
        bucket: Bucket,
        /// Whether it is frozen now.
        frozen: bool,
    },
    /// A purchase.
    Purchased {
        /// As recorded.
        record: PurchaseRecord,
        /// `false`: recorded before under this order id, and nothing was granted now.
        new: bool,
    },
    /// A hold placed, charged, captured or released.
    Hold {
        /// Its account.
        account: AccountId,
        /// The hold.
        hold: Hold,
        /// Whether the command created it (a hold or charge) or settled it.
        created: bool,
    },
    /// An adjustment's ledger entries, numbered.
    Adjusted {
        /// The account.
        account: AccountId,
        /// Every entry it made, in recording order.
        entries: Vec<StoredEntry>,
    },
    /// Time's effects on an account recorded.
    CaughtUp,
    /// A read-only account token.
    Token {
        /// The bearer token.
        token: String,
        /// When it stops working.
        expires_at: Timestamp,
    },
    /// A new API key and its secret (shown once).
    KeyCreated {
        /// The key as stored.
        record: ApiKeyRecord,
        /// The secret to give its holder.
        secret: String,
    },
    /// An API key revoked.
    KeyRevoked,
    /// An account's tokens revoked.
    TokensRevoked,
    /// The test clock moved to this instant.
    ClockMoved(Timestamp),
    /// A webhook endpoint and its secret (shown once).
    EndpointCreated(WebhookEndpoint),
    /// An endpoint's new secret.
    SecretRotated(String),
    /// An endpoint deleted.
    EndpointDeleted,
    /// A console session begun or ended.
    ConsoleSession,
    /// New rounds of attempts scheduled.
    Redelivering {
        /// The event's account.
        account: AccountId,
        /// The event's number.
        sequence: u64,
        /// The endpoints.
        endpoints: Vec<String>,
    },
}

/// Why a command did not happen. Nothing of it was changed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Refused {
    /// A rule of the ledger refused it.
    #[error(transparent)]
    Rule(#[from] Refusal),
    /// The test clock cannot move so.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The batch's transaction failed; the command may be retried.
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The writer has stopped (the service is shutting down).
    #[error("the writer has stopped")]
    Stopped,
}

/// An account within a batch.
#[derive(Default)]
struct Slot {
    /// `None`: the account does not exist (yet).
    account: Option<Account>,
    /// Ledger entries stored before this batch.
    entry_seq: u64,
    history: History,
    touched: bool,
}

/// One batch's view of the service: what it read, and what its commands changed.
pub struct Batch<'a> {
    core: &'a Core,
    accounts: HashMap<AccountId, Slot>,
    idempotency: HashMap<IdempotencyKey, IdempotencyRecord>,
    purchases: HashMap<OrderId, PurchaseRecord>,
    changes: Changes,
    keys_to_remember: Vec<ApiKeyRecord>,
}

/// What a batch must read before it runs: its accounts, the idempotency records of its
/// keys, and the purchases under its order ids.
#[derive(Debug, Default)]
pub struct BatchNeeds {
    /// Accounts, sorted, once each.
    pub accounts: Vec<AccountId>,
    /// Idempotency keys.
    pub keys: Vec<IdempotencyKey>,
    /// Order ids of purchases.
    pub orders: Vec<OrderId>,
}

impl BatchNeeds {
    /// What `submissions` need.
    pub fn of<'s>(submissions: impl Iterator<Item = &'s Submission> + Clone) -> BatchNeeds {
        let mut accounts: Vec<AccountId> = submissions
            .clone()
            .filter_map(|s| s.command.account().cloned())
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        BatchNeeds {
            accounts,
            keys: submissions
                .clone()
                .filter_map(|s| Some(s.idempotency.as_ref()?.key.clone()))
                .collect(),
            orders: submissions
                .filter_map(|s| s.command.order().cloned())
                .collect(),
        }
    }
}

/// What must happen once a batch is committed, and only then.
pub struct AfterCommit {
    keys_to_remember: Vec<ApiKeyRecord>,
}

impl AfterCommit {
    /// New and revoked keys take effect for authentication.
    pub fn apply(self, core: &Core) {
        for record in self.keys_to_remember {
            core.auth.remember(record);
        }
    }
}

impl<'a> Batch<'a> {
    /// A batch over what its transaction read.
    pub fn new(core: &'a Core, reads: BatchReads) -> Batch<'a> {
        let accounts = reads
            .accounts
            .into_iter()
            .map(|stored| {
                let id = stored.account.id().clone();
                let slot = Slot {
                    entry_seq: stored.entry_seq,
                    account: Some(stored.account),
                    ..Slot::default()
                };
                (id, slot)
            })
            .collect();
        Batch {
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
        }
    }

    /// Runs one command at the service's now.
    pub fn apply(&mut self, command: &Command) -> Result<Outcome, Refused> {
        let now = self.core.clock.now();
        match command {
            Command::Account(id, command) => self.on_account(id, command, now),
            Command::Token {
                account,
                ttl,
                issued_by,
            } => self.token(account, *ttl, issued_by, now),
            Command::RevokeTokens(account) => {
                self.changes.token_revocations.push((account.clone(), now));
                Ok(Outcome::TokensRevoked)
            }
            Command::CreateKey { name, role } => Ok(self.create_key(name, *role, now)),
            Command::RevokeKey(record) => Ok(self.revoke_key(record, now)),
            Command::MoveClock(movement) => self.move_clock(*movement),
            Command::CreateEndpoint(new) => Ok(self.create_endpoint(new, now)),
            Command::RotateSecret(endpoint) => Ok(self.rotate_secret(endpoint)),
            Command::DeleteEndpoint(endpoint) => Ok(self.delete_endpoint(endpoint, now)),
            Command::ConsoleSession(session) => {
                self.changes.console_sessions.push(session.clone());
                Ok(Outcome::ConsoleSession)
            }
            Command::Redeliver {
                account,
                sequence,
                endpoints,
            } => Ok(self.redeliver(account, *sequence, endpoints, now)),
        }
    }

    /// The idempotency record stored (or answered earlier in this batch) under `key`.
    pub(crate) fn idempotency_record(&self, key: &IdempotencyKey) -> Option<&IdempotencyRecord> {
        self.idempotency.get(key)
    }

    /// Stores the first answer to a request sent with an idempotency key.
    pub(crate) fn remember_answer(&mut self, record: IdempotencyRecord) {
        self.idempotency.insert(record.key.clone(), record.clone());
        self.changes.idempotency.push(record);
    }

    /// Records in the audit trail that `actor` made `command`, which got `result`: a
    /// change that happened only (a refusal, or a purchase already recorded, changed
    /// nothing). The answer is kept as it was sent, without secrets (an API key's, a
    /// webhook endpoint's, an account token).
    pub(crate) fn audit(
        &mut self,
        actor: &Actor,
        command: &Command,
        result: &Result<Outcome, Refused>,
    ) {
        match result {
            Err(_) | Ok(Outcome::Purchased { new: false, .. } | Outcome::CaughtUp) => return,
            Ok(_) => {}
        }
        let answer = dto::answer(result);
        let mut detail: serde_json::Value =
            serde_json::from_str(&answer.body).unwrap_or_else(|_| serde_json::json!({}));
        if let Some(fields) = detail.as_object_mut() {
            for secret in ["key", "secret", "token"] {
                fields.remove(secret);
            }
        }
        self.changes.audit.push(AuditRecord {
            at: self.now(),
            key_id: actor.key_id.clone(),
            key_name: actor.key_name.clone(),
            via: actor.via.as_str().to_owned(),
            action: command.action().to_owned(),
            account_id: command.about().cloned(),
            reason: actor.reason.clone(),
            detail: detail.to_string(),
        });
    }

    /// The service's now, for the records the batch keeps.
    pub(crate) fn now(&self) -> Timestamp {
        self.core.clock.now()
    }

    /// The batch's changes: every touched account with its new entries numbered and
    /// its events as the API shows them.
    pub fn finish(mut self) -> (Changes, AfterCommit) {
        let recorded_at = self.core.clock.now();
        for slot in self.accounts.into_values() {
            if let Some(account) = slot.account
                && slot.touched
            {
                for event in &slot.history.events {
                    let purchase = match &event.kind {
                        EventKind::PurchaseRecorded(receipt) => {
                            self.purchases.get(&receipt.order_id)
                        }
                        _ => None,
                    };
                    let data = dto::event_data(account.id(), event, purchase)
                        .expect("event data is plain structs of text and numbers");
                    self.changes.events.push(EventRecord {
                        account_id: account.id().clone(),
                        sequence: event.sequence,
                        event_type: event.kind.event_type(),
                        created_at: event.at,
                        recorded_at,
                        data,
                    });
                }
                self.changes.record(account, slot.entry_seq, slot.history);
            }
        }
        let after = AfterCommit {
            keys_to_remember: self.keys_to_remember,
        };
        (self.changes, after)
    }
}
