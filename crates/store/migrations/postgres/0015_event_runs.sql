-- The events a batch records for one account are stored in one row, a run, instead of a
-- row each. A member's monthly distribution records four events; as four rows they were
-- four heap tuples and twelve index entries, a third of a distribution's index entries,
-- and index inserts were half of PostgreSQL's CPU in a sweep. As one row, one tuple and
-- three entries: a third fewer WAL records a member, and in four interleaved pairs a
-- sweep of 400,000 members took 2-26% less PostgreSQL CPU a member (docs/BENCHMARKS.md,
-- "A batch's events of one account in one row").
--
-- A run's events follow each other without gaps in both numbers: the account's
-- `sequence` from `first_sequence`, the commit order's `position` from
-- `first_position` (taken from `event_positions`, under the lock of
-- src/postgres/events.rs). A run holds at most 256 events (`RUN_LIMIT`), so an event
-- is found from an index range of 256 runs at most, by position or by number.
CREATE TABLE event_runs (
    first_position bigint             NOT NULL,
    account_id     text COLLATE "C"   NOT NULL,
    first_sequence bigint             NOT NULL,
    recorded_at    bigint             NOT NULL, -- every event of a run was recorded at once
    types          text[]             NOT NULL, -- one per event, in order
    created_ats    bigint[]           NOT NULL,
    data           bytea[]            NOT NULL,
    PRIMARY KEY (account_id, first_sequence)
);
CREATE UNIQUE INDEX event_runs_in_order ON event_runs (first_position);
CREATE INDEX event_runs_by_age ON event_runs (recorded_at);

-- The events kept so far, a run each: their positions (and so every cursor given out)
-- stay as they were. This copies the table: a large database is migrated ahead of the
-- rollout (docs/DEPLOYMENT.md).
INSERT INTO event_runs (first_position, account_id, first_sequence, recorded_at, types,
                        created_ats, data)
    SELECT position, account_id, sequence, recorded_at, ARRAY[type], ARRAY[created_at],
           ARRAY[data]
    FROM events;
ALTER SEQUENCE events_position_seq OWNED BY NONE;
ALTER SEQUENCE events_position_seq RENAME TO event_positions;
DROP TABLE events;

-- Every event, a row each, as the table had them. `first_position` and `first_sequence`
-- are there for the statements to bound their index ranges with (src/postgres/events.rs):
-- a condition on `position` or `sequence` alone cannot use an index.
CREATE VIEW events AS
    SELECT r.first_position + e.n - 1 AS position, r.account_id,
           r.first_sequence + e.n - 1 AS sequence, e.type, e.created_at, r.recorded_at,
           e.data, r.first_position, r.first_sequence
    FROM event_runs r
    CROSS JOIN LATERAL unnest(r.types, r.created_ats, r.data) WITH ORDINALITY
        AS e (type, created_at, data, n);
