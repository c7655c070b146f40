-- Accounts in bytewise id order, whatever the database's collation: account search by
-- prefix (GET /v1/accounts?prefix) reads a range of this index.
CREATE INDEX accounts_by_id_bytes ON accounts (id COLLATE "C");
