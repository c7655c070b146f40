-- An event's deliveries, for the console's account page.
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (account_id, sequence);
