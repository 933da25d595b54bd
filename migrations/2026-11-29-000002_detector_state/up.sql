-- What the AnomalyDetector remembers per customer (baseline, previous reading, open episodes),
-- saved in the same transaction as the readings that changed it, so a restart or a rebalance
-- resumes where the last committed batch left off instead of starting cold.
--
-- Every batch rewrites the state of the customers it touched, so the table is built for cheap
-- updates: only the primary key is indexed (loading a partition's customers at assignment is a
-- rare sequential scan), and pages keep room for the new row versions (fillfactor), so updates
-- stay HOT (no index maintenance).
CREATE TABLE detector_state (
    customer_id     text        PRIMARY KEY,
    kafka_partition int         NOT NULL,
    state           jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);
