-- creditd's schema on PostgreSQL. Instants are bigints: microseconds since the Unix
-- epoch, UTC. The ledger core's types are kept as JSON text, which the store saves and
-- reads back but never interprets.
--
-- Ready to be distributed by account: every table about an account is keyed by the
-- account id first (accounts, history, account_due, distributions), and a transaction
-- writes the rows of the accounts of its batch and the records its requests made.
-- Records that are unique across the service (idempotency keys, order ids, API keys,
-- settings) are keyed by their own ids. See docs/DEPLOYMENT.md.

CREATE TABLE accounts (
    id        text   NOT NULL PRIMARY KEY,
    state     text   NOT NULL,   -- the ledger core's Account as JSON
    entry_seq bigint NOT NULL    -- ledger entries so far; the next is e{entry_seq + 1}
);

-- Ledger entries and settled holds of each account, by number.
CREATE TABLE history (
    account_id text   NOT NULL,
    kind       text   NOT NULL,  -- 'entry' or 'hold'
    number     bigint NOT NULL,  -- entry: its number (e{n}); hold: its id (h{n})
    at         bigint NOT NULL,  -- entry: when; hold: when settled
    label      text   NOT NULL,  -- entry: its type; hold: its status
    data       text   NOT NULL,  -- the ledger core's LedgerEntry or Hold as JSON
    PRIMARY KEY (account_id, kind, number)
);

-- Answers to requests sent with an Idempotency-Key.
CREATE TABLE idempotency_keys (
    label      text   NOT NULL PRIMARY KEY, -- the sending API key's id, LF, the client's key
    account_id text   NOT NULL,             -- the account the request was about; '' for none
    digest     text   NOT NULL,             -- SHA-256 (hex) of method, path and body
    status     bigint NOT NULL,
    body       text   NOT NULL,             -- JSON, as answered
    at         bigint NOT NULL              -- when answered
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (at);

-- When each account's next time-based effect is due, for the sweeper.
CREATE TABLE account_due (
    account_id     text   NOT NULL PRIMARY KEY,
    next_effect_at bigint NOT NULL
);
CREATE INDEX account_due_by_time ON account_due (next_effect_at);

-- Monthly distributions made: the key refuses a second one of the same month.
CREATE TABLE distributions (
    account_id text   NOT NULL,
    schedule   bigint NOT NULL,
    idx        bigint NOT NULL,
    at         bigint NOT NULL,
    PRIMARY KEY (account_id, schedule, idx)
);

-- Purchases by the platform's order id: the key makes a purchase exactly-once.
CREATE TABLE purchases (
    order_id          text   NOT NULL PRIMARY KEY,
    account_id        text   NOT NULL,
    credits           bigint NOT NULL,
    bucket_id         bigint NOT NULL,
    paid_at           bigint NOT NULL,
    paid_at_requested bigint,          -- paid_at as the request gave it, if it did
    expires_at        bigint NOT NULL,
    amount_minor      bigint,
    currency          text,
    recorded_at       bigint NOT NULL
);

-- API keys: the secret is stored only as its SHA-256.
CREATE TABLE api_keys (
    id          text   NOT NULL PRIMARY KEY,
    name        text   NOT NULL,
    role        text   NOT NULL,
    secret_hash bytea  NOT NULL,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);

-- Service-wide values, such as the secret that signs account tokens.
CREATE TABLE settings (
    name  text NOT NULL PRIMARY KEY,
    value text NOT NULL
);
