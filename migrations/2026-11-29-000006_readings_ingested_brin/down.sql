DROP INDEX IF EXISTS readings_ingested_at_brin;
