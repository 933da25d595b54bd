ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_anomaly_id_fkey
    FOREIGN KEY (anomaly_id) REFERENCES anomalies (id) ON DELETE CASCADE;
