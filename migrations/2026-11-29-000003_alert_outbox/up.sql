-- Anomalies stored but not yet acknowledged on the alerts topic (a transactional outbox): a row
-- is added in the same transaction as its anomaly and removed once the broker acknowledged the
-- alert record, so an alert interrupted by a crash is published again at the next start instead
-- of being lost (the records that raised it are duplicates by then and raise nothing).
CREATE TABLE alert_outbox (
    anomaly_id bigint PRIMARY KEY REFERENCES anomalies (id) ON DELETE CASCADE
);
