-- An account's purchases, newest recorded first (GET /v1/accounts/{id}/purchases).
CREATE INDEX purchases_by_account ON purchases (account_id, recorded_at, order_id);
