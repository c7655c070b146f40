-- Batches committed and not yet folded into the tables above: each row holds one
-- batch's new account states, ledger entries, settled holds and idempotency records as
-- JSON (src/sqlite/journal.rs). A commit appends one row, a few pages in order, instead
-- of changing a page at random per account, index entry and key; a fold writes many
-- batches into the tables at once and deletes their rows.
CREATE TABLE journal (
    id   INTEGER PRIMARY KEY,
    data TEXT    NOT NULL
);

-- The process (one creditd serve, or one admin command) that committed last. While it
-- is this process, what it keeps unfolded in memory is the newest state of each
-- account; otherwise its reads of account states come from the tables.
CREATE TABLE journal_writer (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    process TEXT    NOT NULL
);
INSERT INTO journal_writer (id, process) VALUES (1, '');
