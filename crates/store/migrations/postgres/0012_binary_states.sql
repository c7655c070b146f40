-- Account states, ledger entries and settled holds are written in format 2 (postcard,
-- src/columns.rs) from this version on, as on SQLite: about a third of their JSON's bytes
-- (docs/BENCHMARKS.md, "Format 2 on PostgreSQL").
-- The columns become bytes; the rows already there keep their format 1 JSON, as its UTF-8
-- bytes, and their `format` column says so. This rewrites both tables under an exclusive
-- lock: a large database is migrated ahead of the rollout (docs/DEPLOYMENT.md).
ALTER TABLE accounts ALTER COLUMN state TYPE bytea USING convert_to(state, 'UTF8');
ALTER TABLE history ALTER COLUMN data TYPE bytea USING convert_to(data, 'UTF8');
