-- The alert outbox notes a batch's anomalies in one row (their ids in an array) instead of one row
-- per anomaly. About a third of the simulator's readings are anomalous, so the per-anomaly rows
-- (each a heap tuple and a b-tree entry, written with the anomaly and deleted once its alert is
-- acknowledged) cost about 7% of PostgreSQL's time at full speed; a row per batch costs nothing
-- measurable.
--
-- The publisher acknowledges a batch's alerts together (never a part of a batch), so a row is
-- found by any one of its ids: the first, through the unique index below.
ALTER TABLE alert_outbox RENAME TO alert_outbox_per_anomaly;
CREATE TABLE alert_outbox (
    anomaly_ids bigint[] NOT NULL CHECK (cardinality(anomaly_ids) > 0)
);
CREATE UNIQUE INDEX alert_outbox_first ON alert_outbox ((anomaly_ids[1]));
INSERT INTO alert_outbox (anomaly_ids)
    SELECT array_agg(anomaly_id ORDER BY anomaly_id) FROM alert_outbox_per_anomaly
    HAVING count(*) > 0;
DROP TABLE alert_outbox_per_anomaly;

-- The writer's rights on it, as on the table it replaces (SELECT comes from the default
-- privileges of migration 000007, for the reader too).
GRANT SELECT, INSERT, DELETE ON alert_outbox TO heartbeat_writer;
