-- Events (SPEC §9), recorded in the same transaction as their effect, and their
-- webhook deliveries.

-- Every event. `position` is the commit order: a transaction takes its events'
-- positions under an advisory lock that it holds until it commits
-- (src/postgres/events.rs), so no event is committed behind one already read.
CREATE TABLE events (
    position    bigserial NOT NULL,
    account_id  text      NOT NULL,
    sequence    bigint    NOT NULL,   -- from 1 per account, without gaps
    type        text      NOT NULL,
    created_at  bigint    NOT NULL,   -- the instant of the effect
    recorded_at bigint    NOT NULL,   -- when recorded; retention counts from here
    data        text      NOT NULL,
    PRIMARY KEY (account_id, sequence)
);
CREATE UNIQUE INDEX events_in_order ON events (position);
CREATE INDEX events_by_age ON events (recorded_at);

CREATE TABLE webhook_endpoints (
    id          text   NOT NULL PRIMARY KEY,
    url         text   NOT NULL,
    event_types text[],              -- NULL: every type
    description text,
    secret      text   NOT NULL,     -- kept as given: the service signs with it
    created_at  bigint NOT NULL,
    deleted_at  bigint
);

-- The last event handed out to the endpoints (one row).
CREATE TABLE webhook_dispatch (
    id       int    PRIMARY KEY CHECK (id = 1),
    position bigint NOT NULL
);
INSERT INTO webhook_dispatch (id, position) VALUES (1, 0);

CREATE TABLE webhook_deliveries (
    endpoint_id     text   NOT NULL,
    account_id      text   NOT NULL,
    sequence        bigint NOT NULL,
    attempts        int    NOT NULL,  -- made in this round
    state           text   NOT NULL,  -- pending, delivered, failed, cancelled
    next_attempt_at bigint,           -- the service clock; NULL once not pending
    holder          text,             -- the node that claimed it, until lease_until
    lease_until     bigint,           -- the wall clock
    PRIMARY KEY (endpoint_id, account_id, sequence)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    id              bigserial PRIMARY KEY,
    endpoint_id     text   NOT NULL,
    account_id      text   NOT NULL,
    sequence        bigint NOT NULL,
    attempt         int    NOT NULL,
    at              bigint NOT NULL,
    status_code     int,
    error           text,
    next_attempt_at bigint,
    state           text   NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_by_age ON webhook_attempts (at);
