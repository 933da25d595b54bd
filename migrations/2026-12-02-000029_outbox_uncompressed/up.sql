-- An outbox row holds the ids of one batch's anomalies: some 2,000 to 5,000 bigints, 16-40 KB,
-- above the 2 KB at which PostgreSQL moves a value out of line, and by default compresses it
-- first with pglz, which took about 1.5% of the server's CPU under a backlog (perf, 300,000
-- readings). The row lives until the batch's alerts are acknowledged, usually well under a
-- second: stored out of line uncompressed, as it is read at most once.
ALTER TABLE alert_outbox ALTER COLUMN anomaly_ids SET STORAGE EXTERNAL;
