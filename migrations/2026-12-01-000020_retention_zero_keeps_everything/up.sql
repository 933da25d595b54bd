-- Retention of 0 days keeps everything (storage.retention_days, SPEC sections 3 and 5), wherever it
-- is set. heartbeat_drop_expired_partitions(0) used to drop every day before today, and a negative
-- count every day up to the future ones, so a caller that passed the setting through (the compose
-- `retention` job did) erased the history it was told to keep. The function itself now drops
-- nothing for 0, a negative count or null, so no caller can make that mistake. CREATE OR REPLACE
-- keeps the function's owner and grants (EXECUTE revoked from PUBLIC by migration 000007).
CREATE OR REPLACE FUNCTION heartbeat_drop_expired_partitions(keep_days int) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    oldest_kept date;
    part        text;
BEGIN
    IF keep_days IS NULL OR keep_days <= 0 THEN
        RETURN;
    END IF;
    oldest_kept := (now() AT TIME ZONE 'UTC')::date - keep_days;
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
