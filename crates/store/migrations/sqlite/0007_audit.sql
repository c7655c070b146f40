-- The audit trail: every change a person made (the console, the CLI, an admin key),
-- written in the transaction of its effect. `id` is the order they were recorded in
-- (AUTOINCREMENT: never used twice), which the audit's pages go by, newest first.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,  -- the service clock when the change was made
    key_id     TEXT    NOT NULL,  -- the API key the person acted with
    key_name   TEXT    NOT NULL,  -- its name then
    via        TEXT    NOT NULL,  -- api or console
    action     TEXT    NOT NULL,  -- what was done (grant, adjust, key.revoke, …)
    account_id TEXT,              -- the account it was about, if one
    reason     TEXT,              -- why, as the person gave it
    detail     TEXT    NOT NULL   -- the answer the change got, as JSON, secrets left out
);
CREATE INDEX audit_by_account ON audit (account_id, id);
