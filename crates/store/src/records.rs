//! The records the store keeps beside the ledger core's own types.

use creditd_ledger::{
    Account, AccountId, BucketId, Distribution, EventType, History, Hold, LedgerEntry, OrderId,
    OrderTerms, Payment,
};
use jiff::Timestamp;

/// An account as stored: the core's state and how many ledger entries it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAccount {
    /// The ledger core's state.
    pub account: Account,
    /// Ledger entries written so far; the next entry is number `entry_seq + 1`.
    pub entry_seq: u64,
}

/// A ledger entry with its number within the account (1, 2, … in recording order), as
/// written and as read back for a page (a later page continues before its number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its number within the account.
    pub seq: u64,
    /// The entry.
    pub entry: LedgerEntry,
}

/// The number of an account's ledger entry: the entry at `index` (from 0) of those a
/// transaction adds after the `entries_before` the account had is number
/// `entries_before + index + 1`. Entries are numbered 1, 2, … in recording order.
pub fn entry_number(entries_before: u64, index: usize) -> u64 {
    entries_before
        .saturating_add(index as u64)
        .saturating_add(1)
}

/// A recorded purchase. Its order id is unique across the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseRecord {
    /// The platform's order id.
    pub order_id: OrderId,
    /// The account credited.
    pub account_id: AccountId,
    /// Credits granted (a package counts as its credits).
    pub credits: u64,
    /// The bucket they went into.
    pub bucket_id: BucketId,
    /// When it was paid.
    pub paid_at: Timestamp,
    /// `paid_at` as the first request gave it, if it did: a retry must agree with it.
    pub paid_at_requested: Option<Timestamp>,
    /// When the credits expire.
    pub expires_at: Timestamp,
    /// What was paid, if the platform said.
    pub paid: Option<Payment>,
    /// When creditd recorded it.
    pub recorded_at: Timestamp,
}

/// Where a page of an account's purchases stopped: the last row's recording time and
/// order id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchasePosition {
    /// Its `recorded_at`.
    pub recorded_at: Timestamp,
    /// Its order id.
    pub order_id: OrderId,
}

impl PurchaseRecord {
    /// The terms it was first recorded on, which a retry or a reconciliation row must
    /// match (SPEC §8).
    pub fn terms(&self) -> OrderTerms {
        OrderTerms {
            account_id: self.account_id.clone(),
            credits: self.credits,
            paid_at: self.paid_at_requested,
        }
    }

    /// Where a page that ends with this purchase stopped.
    pub fn position(&self) -> PurchasePosition {
        PurchasePosition {
            recorded_at: self.recorded_at,
            order_id: self.order_id.clone(),
        }
    }
}

/// Where an idempotency key lives: keys are scoped to the API key that sent them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// The sending API key's id.
    pub owner: String,
    /// The client's `Idempotency-Key`.
    pub key: String,
}

/// The first answer to a request sent with an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Owner and key.
    pub key: IdempotencyKey,
    /// The account the request was about, if any: the record is kept with its rows.
    pub account: Option<AccountId>,
    /// A digest of the request (hex): the same key with another request is a conflict.
    pub fingerprint: String,
    /// The answer's HTTP status.
    pub status: u16,
    /// The answer's body (JSON).
    pub body: String,
    /// When it was first answered.
    pub created_at: Timestamp,
}

/// An API key. The secret itself is never stored, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id, part of the key as given to its holder.
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// `admin`, `service` or `viewer`.
    pub role: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked; it works until then.
    pub revoked_at: Option<Timestamp>,
}

/// One change a person made, for the audit trail: who (the API key they acted with),
/// when, through what, what, about which account, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// When (the service clock).
    pub at: Timestamp,
    /// The API key's id.
    pub key_id: String,
    /// The key's name then.
    pub key_name: String,
    /// `api` or `console`.
    pub via: String,
    /// What was done: `grant`, `adjust`, `hold.release`, `key.revoke`, …
    pub action: String,
    /// The account it was about, if one.
    pub account_id: Option<AccountId>,
    /// Why, as the person gave it.
    pub reason: Option<String>,
    /// The answer the change got (JSON), without secrets.
    pub detail: String,
}

/// An audit record with its number, in the order records were written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAudit {
    /// Its number: later records have higher ones.
    pub number: u64,
    /// The record.
    pub record: AuditRecord,
}

/// A session of the support console. The cookie holds a secret; the store keeps only
/// its SHA-256, as for API keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the cookie's secret.
    pub id: String,
    /// The API key signed in with: the session acts as that key, while it is not revoked.
    pub key_id: String,
    /// The token every form of the session carries (CSRF).
    pub csrf: String,
    /// When it began.
    pub created_at: Timestamp,
    /// When it ends by itself.
    pub expires_at: Timestamp,
    /// When it was signed out.
    pub ended_at: Option<Timestamp>,
}

/// What a batch reads before it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReads {
    /// The accounts that exist, as stored.
    pub accounts: Vec<StoredAccount>,
    /// The idempotency records found.
    pub idempotency: Vec<IdempotencyRecord>,
    /// The purchases found.
    pub purchases: Vec<PurchaseRecord>,
}

/// Everything one write transaction stores. Each list is applied in order.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// New or changed accounts, each with its new entry count.
    pub accounts: Vec<StoredAccount>,
    /// New ledger entries, each with its account.
    pub entries: Vec<(AccountId, StoredEntry)>,
    /// Holds that were settled.
    pub settled_holds: Vec<(AccountId, Hold)>,
    /// Distributions made.
    pub distributions: Vec<(AccountId, Distribution)>,
    /// New events, in the order of their effects.
    pub events: Vec<EventRecord>,
    /// Webhook endpoints created or changed (rotated, deleted), whole.
    pub webhook_endpoints: Vec<WebhookEndpoint>,
    /// New rounds of delivery attempts.
    pub redeliveries: Vec<Redelivery>,
    /// New purchases.
    pub purchases: Vec<PurchaseRecord>,
    /// Changes people made, for the audit trail.
    pub audit: Vec<AuditRecord>,
    /// Console sessions begun or ended, whole.
    pub console_sessions: Vec<ConsoleSession>,
    /// Accounts whose tokens were revoked, with when: tokens issued then or before stop.
    pub token_revocations: Vec<(AccountId, Timestamp)>,
    /// New idempotency records.
    pub idempotency: Vec<IdempotencyRecord>,
    /// New API keys.
    pub new_api_keys: Vec<ApiKeyRecord>,
    /// API keys revoked, with when.
    pub revoked_api_keys: Vec<(String, Timestamp)>,
    /// Settings to set where they have no value yet: the first writer's value stands
    /// (two nodes starting together agree on one token secret).
    pub settings: Vec<(String, String)>,
}

impl Changes {
    /// Adds an account's new state and what its commands recorded: the entries are
    /// numbered on from `entries_before`, the entries it had. Its events are not among
    /// them: the server records them as the API shows them ([`Changes::events`]).
    pub fn record(&mut self, account: Account, entries_before: u64, history: History) {
        let id = account.id().clone();
        let mut seq = entries_before;
        for (index, entry) in history.entries.into_iter().enumerate() {
            seq = entry_number(entries_before, index);
            self.entries.push((id.clone(), StoredEntry { seq, entry }));
        }
        for hold in history.settled_holds {
            self.settled_holds.push((id.clone(), hold));
        }
        for distribution in history.distributions {
            self.distributions.push((id.clone(), distribution));
        }
        self.accounts.push(StoredAccount {
            account,
            entry_seq: seq,
        });
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.entries.is_empty()
            && self.settled_holds.is_empty()
            && self.distributions.is_empty()
            && self.events.is_empty()
            && self.webhook_endpoints.is_empty()
            && self.redeliveries.is_empty()
            && self.purchases.is_empty()
            && self.audit.is_empty()
            && self.console_sessions.is_empty()
            && self.token_revocations.is_empty()
            && self.idempotency.is_empty()
            && self.new_api_keys.is_empty()
            && self.revoked_api_keys.is_empty()
            && self.settings.is_empty()
    }
}

/// An event as kept and sent (SPEC §9): its `data` is fixed as the API showed it when
/// it was recorded, so a webhook sent later, or the event read a month on, says what
/// was said then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// The account.
    pub account_id: AccountId,
    /// Its number within the account, from 1 without gaps.
    pub sequence: u64,
    /// Its type.
    pub event_type: EventType,
    /// The instant of its effect.
    pub created_at: Timestamp,
    /// When the service recorded it (retention counts from here).
    pub recorded_at: Timestamp,
    /// `data` as JSON.
    pub data: String,
}

/// An event with its place in the service's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its place in the order `GET /v1/events` lists events in: the order they were
    /// committed, across accounts (1, 2, …; purged ones leave gaps, never reused). An
    /// event never appears behind a position a consumer has seen.
    pub position: u64,
    /// The event.
    pub event: EventRecord,
}

/// Which events a page lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only of this type.
    pub event_type: Option<EventType>,
    /// Only of this account.
    pub account: Option<AccountId>,
}

/// A webhook endpoint (SPEC §9). Its secret is kept as given to the platform: the
/// service signs with it, so it cannot keep only a hash as for API keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// `we_…`.
    pub id: String,
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// The types it receives; `None`: all.
    pub event_types: Option<Vec<EventType>>,
    /// The platform's words about it.
    pub description: Option<String>,
    /// `whsec_…`: base64 of the signing key after the prefix.
    pub secret: String,
    /// When it was created; it receives events recorded from then on.
    pub created_at: Timestamp,
    /// When it was deleted: no delivery starts after it.
    pub deleted_at: Option<Timestamp>,
}

impl WebhookEndpoint {
    /// Whether it receives events of `event_type`.
    pub fn receives(&self, event_type: EventType) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.contains(&event_type))
    }
}

/// A new round of attempts to deliver one event to one endpoint, starting at `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redelivery {
    /// The endpoint.
    pub endpoint_id: String,
    /// The event's account.
    pub account_id: AccountId,
    /// The event's number.
    pub sequence: u64,
    /// When the first attempt of the round is due.
    pub at: Timestamp,
}

/// A delivery claimed by one node: the event, where to send it and with which secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// Its secret.
    pub secret: String,
    /// The event.
    pub event: EventRecord,
    /// Attempts made in this round so far.
    pub attempts: u32,
}

/// An event's delivery to one endpoint, as it stands: its round of attempts in
/// progress, or how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDelivery {
    /// The endpoint.
    pub endpoint_id: String,
    /// `pending`, `delivered`, `failed` or `cancelled`.
    pub state: String,
    /// Attempts made in this round.
    pub attempts: u64,
    /// When the next attempt is due (the service clock), while pending.
    pub next_attempt_at: Option<Timestamp>,
}

/// What became of a delivery after one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Another attempt is due at its `next_attempt_at`.
    Pending,
    /// A 2xx answer came.
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
}

impl DeliveryState {
    /// Its name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One attempt to deliver an event to an endpoint, as listed (newest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Its place in the endpoint's list (a page continues before it).
    pub number: u64,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event's account.
    pub account_id: AccountId,
    /// The event's number.
    pub sequence: u64,
    /// 1 for the first attempt of a round.
    pub attempt: u32,
    /// When it was made (the service clock).
    pub at: Timestamp,
    /// The receiver's status code, if it answered.
    pub status_code: Option<u16>,
    /// What went wrong, if anything did.
    pub error: Option<String>,
    /// When the next attempt is due; `None`: none (delivered, or failed for good).
    pub next_attempt_at: Option<Timestamp>,
    /// The delivery's state after it.
    pub state: DeliveryState,
}
