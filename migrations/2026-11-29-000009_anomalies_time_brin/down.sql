DROP INDEX IF EXISTS anomalies_recorded_at_brin;
CREATE INDEX anomalies_kind_time ON anomalies (kind, recorded_at);
