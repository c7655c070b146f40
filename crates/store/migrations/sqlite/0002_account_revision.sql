-- Writes are optimistic: a batch reads its accounts without a lock, and its commit
-- stores an account only if it is still at the revision the batch read. Every commit
-- that writes an account counts its revision up by one.
ALTER TABLE accounts ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
