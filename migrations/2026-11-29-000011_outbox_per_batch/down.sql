ALTER TABLE alert_outbox RENAME TO alert_outbox_per_batch;
CREATE TABLE alert_outbox (
    anomaly_id bigint PRIMARY KEY
);
INSERT INTO alert_outbox (anomaly_id)
    SELECT DISTINCT unnest(anomaly_ids) FROM alert_outbox_per_batch;
DROP TABLE alert_outbox_per_batch;
GRANT SELECT, INSERT, DELETE ON alert_outbox TO heartbeat_writer;
