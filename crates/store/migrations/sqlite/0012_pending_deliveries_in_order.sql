-- Each delivery keeps its event's position, so that the oldest pending delivery is found
-- from an index (`/metrics` asks on every scrape), not by reading every pending one: an
-- endpoint that is down gathers a pending delivery per event for a day and more.
ALTER TABLE webhook_deliveries ADD COLUMN position INTEGER;
UPDATE webhook_deliveries SET position = (
    SELECT e.position FROM events e
    WHERE e.account_id = webhook_deliveries.account_id
      AND e.sequence = webhook_deliveries.sequence);
CREATE INDEX webhook_deliveries_pending_in_order ON webhook_deliveries (position)
    WHERE state = 'pending';
