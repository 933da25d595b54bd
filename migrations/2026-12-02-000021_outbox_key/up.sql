-- A primary key for the alert outbox, so every table has one and `diesel print-schema` can
-- describe it (src/db/schema.rs is generated, never edited). An identity column changes nothing
-- the pipeline does: the writers insert anomaly_ids only (the id comes from the sequence), the
-- publisher still finds a batch's row by its first id through alert_outbox_first, and rows stay
-- one per batch. It costs a sequence step and one b-tree entry per batch, not per anomaly.
ALTER TABLE alert_outbox ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;

-- Inserts as heartbeat_writer take the id from the sequence (migration 000007's roles).
GRANT USAGE ON SEQUENCE alert_outbox_id_seq TO heartbeat_writer;
