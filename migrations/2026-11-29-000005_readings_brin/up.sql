-- A BRIN index on the time of readings: a few pages per partition, and what time-range scans
-- over long histories (dashboards over months, retention checks) need. Readings arrive in
-- roughly time order, so block ranges stay narrow. Point look-ups per customer use
-- readings_customer_time.
CREATE INDEX readings_recorded_at_brin ON readings USING brin (recorded_at);
