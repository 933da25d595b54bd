DROP INDEX IF EXISTS readings_recorded_at_brin;
