-- Events (SPEC §9), recorded in the same transaction as their effect, and their
-- webhook deliveries.

-- Every event, in the order it was committed: `position` is that order (AUTOINCREMENT,
-- so a position is never used twice, even once the newest rows are purged), which
-- `GET /v1/events` pages by. `data` is the event's data as the API showed it then.
CREATE TABLE events (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  TEXT    NOT NULL,
    sequence    INTEGER NOT NULL,  -- from 1 per account, without gaps
    type        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,  -- the instant of the effect
    recorded_at INTEGER NOT NULL,  -- when the service recorded it; retention counts from here
    data        TEXT    NOT NULL
);
-- An event by id (account and number); a second event with the same number is refused.
CREATE UNIQUE INDEX events_by_account ON events (account_id, sequence);
CREATE INDEX events_by_age ON events (recorded_at);

-- Webhook endpoints. The secret is kept as given: the service signs with it.
CREATE TABLE webhook_endpoints (
    id          TEXT    NOT NULL PRIMARY KEY,
    url         TEXT    NOT NULL,
    event_types TEXT,              -- a JSON array of types; NULL: every type
    description TEXT,
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    deleted_at  INTEGER
) WITHOUT ROWID;

-- The last event handed out to the endpoints (one row).
CREATE TABLE webhook_dispatch (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
INSERT INTO webhook_dispatch (id, position) VALUES (1, 0);

-- One event to one endpoint: the round of attempts in progress or its outcome.
CREATE TABLE webhook_deliveries (
    endpoint_id     TEXT    NOT NULL,
    account_id      TEXT    NOT NULL,
    sequence        INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,  -- made in this round
    state           TEXT    NOT NULL,  -- pending, delivered, failed, cancelled
    next_attempt_at INTEGER,           -- the service clock; NULL once not pending
    holder          TEXT,              -- the node that claimed it, until lease_until
    lease_until     INTEGER,           -- the wall clock
    PRIMARY KEY (endpoint_id, account_id, sequence)
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';

-- Every attempt, for the endpoint's list (newest first).
CREATE TABLE webhook_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id     TEXT    NOT NULL,
    account_id      TEXT    NOT NULL,
    sequence        INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    next_attempt_at INTEGER,
    state           TEXT    NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_by_age ON webhook_attempts (at);
