-- What the AnomalyDetector remembers per customer (baseline, previous reading, open episodes),
-- saved in the same transaction as the readings that changed it, so a restart or a rebalance
-- resumes where the last committed batch left off instead of starting cold.
CREATE TABLE detector_state (
    customer_id     text        PRIMARY KEY,
    kafka_partition int         NOT NULL,
    state           jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX detector_state_partition ON detector_state (kafka_partition);
