-- Account tokens revoked: every token of the account issued at or before `revoked_at`
-- stops working (DELETE /v1/accounts/{id}/tokens).
CREATE TABLE token_revocations (
    account_id TEXT    NOT NULL PRIMARY KEY,
    revoked_at INTEGER NOT NULL
) WITHOUT ROWID;
