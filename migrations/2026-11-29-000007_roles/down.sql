-- Undoes the grants of up.sql. The roles stay: they belong to the whole cluster and may serve
-- other databases (DROP ROLE them by hand once no database uses them).
GRANT EXECUTE ON FUNCTION heartbeat_drop_expired_partitions(int) TO PUBLIC;
GRANT EXECUTE ON FUNCTION heartbeat_ensure_day_partition(timestamptz) TO PUBLIC;
REVOKE EXECUTE ON FUNCTION heartbeat_ensure_day_partition(timestamptz) FROM heartbeat_writer;
ALTER FUNCTION heartbeat_ensure_day_partition(timestamptz) SECURITY INVOKER RESET search_path;
DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES '
                   'FROM heartbeat_reader, heartbeat_writer', current_schema());
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM heartbeat_reader, heartbeat_writer',
                   current_schema());
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM heartbeat_writer',
                   current_schema());
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM heartbeat_writer, heartbeat_reader',
                   current_schema());
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM heartbeat_writer',
                   current_database());
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM heartbeat_reader', current_database());
END $$;
