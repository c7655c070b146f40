-- An account's entries of every type but debit, by number: a ledger page filtered by a
-- rarer type (grants, refunds, expiries, adjustments) reads these instead of looking
-- through every debit before it. Debits, a charge's entry, are left out: most entries
-- are debits, and a page of debits finds them in history_numbers at once.
CREATE INDEX history_rare_entries ON history (account_id, label, number)
    WHERE kind = 'entry' AND label <> 'debit';
