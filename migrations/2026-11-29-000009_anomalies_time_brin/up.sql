-- The fleet dashboards ask for anomalies of a time range, never of one kind first, so the b-tree
-- on (kind, recorded_at) served no query and cost an index insert per anomaly (about a third of
-- the readings). A BRIN index on recorded_at serves the time ranges for almost nothing per insert;
-- per-customer panels keep anomalies_customer_time.
DROP INDEX IF EXISTS anomalies_kind_time;
CREATE INDEX anomalies_recorded_at_brin ON anomalies USING brin (recorded_at);
