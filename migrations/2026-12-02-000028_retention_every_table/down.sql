-- Retention drops days of readings only again.
DROP FUNCTION heartbeat_expire_rows(int, int);
DROP INDEX alert_events_done_created;
DROP INDEX alerts_resolved_at;
DROP INDEX rejected_readings_rejected_at_brin;
