-- creditd's first schema. Every account-scoped table is keyed by account id first, so
-- one account's rows sit together and the schema can later be distributed by account.
-- Instants are integers: microseconds since the Unix epoch, UTC.

-- One row per account: the ledger core's state as JSON, which the store saves and reads
-- back but never interprets (only `next_effect_at`, which it indexes for the sweeper).
CREATE TABLE accounts (
    id             TEXT    NOT NULL PRIMARY KEY,
    state          TEXT    NOT NULL,
    entry_seq      INTEGER NOT NULL,   -- ledger entries written so far
    next_effect_at INTEGER,            -- when a time-based effect is next due; NULL: none
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX accounts_by_next_effect ON accounts (next_effect_at) WHERE next_effect_at IS NOT NULL;

-- The append-only ledger: every credit that arrived or left, in the order it happened.
CREATE TABLE ledger_entries (
    account_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,       -- 1, 2, … within the account, in recording order
    at         INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    amount     INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    bucket_id  INTEGER NOT NULL,
    hold_id    INTEGER,
    feature    TEXT,
    quantity   INTEGER,
    order_id   TEXT,
    frozen     INTEGER,
    note       TEXT,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;

-- Holds that left the pending state (pending ones live in the account's state).
CREATE TABLE settled_holds (
    account_id TEXT    NOT NULL,
    hold_id    INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    settled_at INTEGER NOT NULL,
    hold       TEXT    NOT NULL,       -- the ledger core's Hold as JSON
    PRIMARY KEY (account_id, hold_id)
) WITHOUT ROWID;

-- Monthly distributions made: the key refuses a second one of the same month.
CREATE TABLE distributions (
    account_id TEXT    NOT NULL,
    schedule   INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (account_id, schedule, idx)
) WITHOUT ROWID;

-- Purchases by the platform's order id: the key makes a purchase exactly-once.
CREATE TABLE purchases (
    order_id          TEXT    NOT NULL PRIMARY KEY,
    account_id        TEXT    NOT NULL,
    credits           INTEGER NOT NULL,
    bucket_id         INTEGER NOT NULL,
    paid_at           INTEGER NOT NULL,
    paid_at_requested INTEGER,         -- paid_at as the request gave it, if it did
    expires_at        INTEGER NOT NULL,
    amount_minor      INTEGER,
    currency          TEXT,
    recorded_at       INTEGER NOT NULL
) WITHOUT ROWID;

-- Answers to requests sent with an Idempotency-Key, replayed for the same key.
CREATE TABLE idempotency_keys (
    owner       TEXT    NOT NULL,      -- the API key that sent it: keys are scoped to it
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,      -- hex SHA-256 of method, path and body
    status      INTEGER NOT NULL,
    body        TEXT    NOT NULL,      -- JSON, as answered
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- API keys: the secret is stored only as its SHA-256.
CREATE TABLE api_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    secret_hash BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) WITHOUT ROWID;

-- Service-wide values, such as the secret that signs account tokens.
CREATE TABLE settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
