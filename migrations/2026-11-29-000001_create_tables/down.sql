DROP TABLE alerts;
DROP TABLE anomalies;
DROP TABLE rejected_readings;
DROP FUNCTION heartbeat_ensure_day_partition(timestamptz);
DROP TABLE readings;
