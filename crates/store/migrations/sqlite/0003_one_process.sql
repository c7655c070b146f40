-- One creditd process writes a SQLite database (it holds PATH.lock while it has the file
-- open; admin commands go through its API), so no process needs to learn whether
-- another has committed since: the table that told it goes.
DROP TABLE journal_writer;

-- "Journal" meant three things (the ledger core's, this table, SQLite's journal mode):
-- the batches committed and not yet folded into the tables are the backlog.
ALTER TABLE journal RENAME TO backlog;
