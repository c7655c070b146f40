-- Batches committed and not yet folded into the tables above: each row holds one
-- batch's new account states, ledger entries, settled holds and idempotency records as
-- JSON (src/sqlite/journal.rs). A commit appends one row, a few pages in order, instead
-- of changing a page at random per account, index entry and key; a fold writes many
-- batches into the tables at once and deletes their rows.
CREATE TABLE journal (
    id   INTEGER PRIMARY KEY,
    data TEXT    NOT NULL
);
