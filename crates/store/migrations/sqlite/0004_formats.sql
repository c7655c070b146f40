-- Every row that holds one of the ledger core's types as JSON says which format it was
-- written in (src/columns.rs, FORMAT; the files under tests/golden/). Rows written
-- before this migration are format 1, the first.
ALTER TABLE accounts ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE history ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE backlog ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
