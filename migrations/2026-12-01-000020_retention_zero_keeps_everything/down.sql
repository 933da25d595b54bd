-- The function of migration 000004 again (0 drops every day before today).
CREATE OR REPLACE FUNCTION heartbeat_drop_expired_partitions(keep_days int) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    oldest_kept date := (now() AT TIME ZONE 'UTC')::date - keep_days;
    part        text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('heartbeat_partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'readings'
          AND c.relname ~ '^readings_[0-9]{8}$'
          AND to_date(substr(c.relname, 10), 'YYYYMMDD') < oldest_kept
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;
END $$;
