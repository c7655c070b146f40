-- Events' data is written compressed (format 2, src/events.rs) from this version on, as
-- on SQLite: a fifth of its JSON's bytes or less (docs/BENCHMARKS.md, "Event data
-- compressed"). The column becomes bytes; the rows already there keep their JSON, as its
-- UTF-8 bytes, which every reader takes as format 1 (JSON never begins with the byte 2).
-- This rewrites the table under an exclusive lock: a large database is migrated ahead of
-- the rollout (docs/DEPLOYMENT.md).
ALTER TABLE events ALTER COLUMN data TYPE bytea USING convert_to(data, 'UTF8');
