-- Every text column in a key or an index compares byte by byte (COLLATE "C"), as
-- SQLite's BINARY does, whatever collation the database was created with. Two reasons:
--  * Order: pages of accounts, purchases and the console's lists come in the same
--    order on both databases, and a cursor means the same thing on each.
--  * Speed: a comparison under any other collation copies both strings and calls the
--    C library's strcoll; under "C" it is a memcmp. Index inserts were half of
--    PostgreSQL's CPU in a distribution sweep, and these comparisons a fifth of those
--    (docs/BENCHMARKS.md, "Keys compared byte by byte").
-- accounts_by_id_bytes (0002) only gave a bytewise order beside the key's; the key now
-- has it, so the index goes, and with it an index entry for every account written.
-- Changing a collation rewrites no table, only the indexes on the column: a large
-- database is migrated ahead of the rollout (docs/DEPLOYMENT.md).
ALTER TABLE accounts ALTER COLUMN id TYPE text COLLATE "C";
DROP INDEX accounts_by_id_bytes;
ALTER TABLE history
    ALTER COLUMN account_id TYPE text COLLATE "C",
    ALTER COLUMN kind TYPE text COLLATE "C",
    ALTER COLUMN label TYPE text COLLATE "C";
ALTER TABLE account_due ALTER COLUMN account_id TYPE text COLLATE "C";
ALTER TABLE distributions ALTER COLUMN account_id TYPE text COLLATE "C";
ALTER TABLE events ALTER COLUMN account_id TYPE text COLLATE "C";
ALTER TABLE idempotency_keys ALTER COLUMN label TYPE text COLLATE "C";
ALTER TABLE purchases
    ALTER COLUMN order_id TYPE text COLLATE "C",
    ALTER COLUMN account_id TYPE text COLLATE "C";
ALTER TABLE audit ALTER COLUMN account_id TYPE text COLLATE "C";
ALTER TABLE token_revocations ALTER COLUMN account_id TYPE text COLLATE "C";
ALTER TABLE api_keys ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE settings ALTER COLUMN name TYPE text COLLATE "C";
ALTER TABLE console_sessions ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE webhook_endpoints ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE webhook_deliveries
    ALTER COLUMN endpoint_id TYPE text COLLATE "C",
    ALTER COLUMN account_id TYPE text COLLATE "C";
ALTER TABLE webhook_attempts ALTER COLUMN endpoint_id TYPE text COLLATE "C";
