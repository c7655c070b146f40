-- creditd's schema on SQLite. Instants are integers: microseconds since the Unix epoch,
-- UTC.
--
-- On a WAL database a commit costs the pages it changes: each is copied into the log,
-- checksummed and fsync'd. So a request changes as few pages as it can: its account's
-- state row in place, and rows appended at the end of the history and idempotency
-- tables (every account's, in the order they were written), where a whole batch shares
-- a few pages. Only the indexes that find an account's entries and holds, and an
-- idempotency key, take a page each at random.

-- One row per account: the ledger core's state as JSON, which the store saves and reads
-- back but never interprets.
CREATE TABLE accounts (
    id        TEXT    NOT NULL PRIMARY KEY,
    state     TEXT    NOT NULL,
    entry_seq INTEGER NOT NULL    -- ledger entries so far; the next is e{entry_seq + 1}
) WITHOUT ROWID;

-- The ledger entries and settled holds of every account, appended in writing order.
CREATE TABLE history (
    id         INTEGER PRIMARY KEY, -- writing order across the service
    account_id TEXT    NOT NULL,
    kind       TEXT    NOT NULL,    -- 'entry' or 'hold'
    number     INTEGER NOT NULL,    -- entry: its number (e{n}); hold: its id (h{n})
    at         INTEGER NOT NULL,    -- entry: when; hold: when settled
    label      TEXT    NOT NULL,    -- entry: its type; hold: its status
    data       TEXT    NOT NULL     -- the ledger core's LedgerEntry or Hold as JSON
);
-- An account's entries and holds by number: pages of its ledger, a hold by id; and a
-- second entry or hold with the same number is refused.
CREATE UNIQUE INDEX history_numbers ON history (account_id, kind, number);

-- Answers to requests sent with an Idempotency-Key, appended in the order answered.
CREATE TABLE idempotency_keys (
    id         INTEGER PRIMARY KEY,
    label      TEXT    NOT NULL,    -- the sending API key's id, LF, the client's key
    account_id TEXT    NOT NULL,    -- the account the request was about; '' for none
    digest     TEXT    NOT NULL,    -- SHA-256 (hex) of method, path and body
    status     INTEGER NOT NULL,
    body       TEXT    NOT NULL,    -- JSON, as answered
    at         INTEGER NOT NULL     -- when answered
);
-- Keys are unique across the service and found without their account.
CREATE UNIQUE INDEX idempotency_keys_by_label ON idempotency_keys (label);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (at);

-- When each account's next time-based effect is due, for the sweeper. Written only when
-- it changes (a charge usually leaves it as it was).
CREATE TABLE account_due (
    next_effect_at INTEGER NOT NULL,
    account_id     TEXT    NOT NULL,
    PRIMARY KEY (next_effect_at, account_id)
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
