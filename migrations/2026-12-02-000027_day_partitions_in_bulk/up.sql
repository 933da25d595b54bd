-- Day partitions of readings made in bulk (SPEC section 5, issue 19): a batch whose readings span
-- thousands of days (a producer whose clock is wrong, an archive replayed with
-- validation.max_age_days = 0) used to take one round trip, one commit and about 20 ms of DDL per
-- missing day: 3,000 days took 66 s. Measured on this project's machines (PostgreSQL 15), most of
-- a partition's cost is not the round trip but the fsync every B-tree build ends with
-- (nbtsort.c's smgrimmedsync, about 5-15 ms each): one for the primary key, one for
-- readings_customer_time, and one for the index of the partition's TOAST table. Counted with
-- strace on the backend, 32 partitions made one statement at a time took 96 fsyncs and 32 WAL
-- flushes; made as below, 64 and 1.
--
-- 1. No TOAST table per partition. A reading's text is short by rule (customer_id and device_id at
--    most 64 characters, class and activity one word: a row stays far below the 2 kB where TOAST
--    would even start), so the text columns need no out-of-line storage. With STORAGE PLAIN on the
--    parent a new partition gets no TOAST table (PARTITION OF takes the parent's storage), which
--    cut the time to create one by a third to a half here. Existing partitions keep theirs,
--    unused. Catalog only, nothing is rewritten. A row that does not fit a page (text of
--    kilobytes put there by hand) is refused with "row is too big" instead of stored out of line.
ALTER TABLE readings
    ALTER COLUMN customer_id SET STORAGE PLAIN,
    ALTER COLUMN class SET STORAGE PLAIN,
    ALTER COLUMN activity SET STORAGE PLAIN,
    ALTER COLUMN device_id SET STORAGE PLAIN;

-- 2. Which of a batch's days have no partition yet, in one query (the writer asks once per batch
--    for the days it does not know, also after a restart, when it knows none).
CREATE FUNCTION heartbeat_missing_day_partitions(days date[]) RETURNS SETOF date
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT d FROM unnest(days) AS d
    WHERE d IS NOT NULL AND to_regclass('readings_' || to_char(d, 'YYYYMMDD')) IS NULL
    ORDER BY d
$$;

-- 3. Creates the partitions of the given UTC days that are missing, in one statement and one
--    transaction, under the advisory lock of heartbeat_ensure_day_partition() and retention, taken
--    once; returns the names it created. Each creation holds an ACCESS EXCLUSIVE lock on readings
--    until the commit and a few entries of the shared lock table, so the writer passes a bounded
--    number of days per call (db::queries::partitions). Same names and bounds as the one-day
--    function, which stays for the partitions made ahead and for operators.
CREATE FUNCTION heartbeat_ensure_day_partitions(days date[]) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    day  date;
    name text;
    locked boolean := false;
BEGIN
    FOR day IN SELECT DISTINCT d FROM unnest(days) AS d WHERE d IS NOT NULL ORDER BY d LOOP
        name := 'readings_' || to_char(day, 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            IF NOT locked THEN
                PERFORM pg_advisory_xact_lock(hashtext('heartbeat_partitions'));
                locked := true;
            END IF;
            -- Again under the lock: another processor may have made it meanwhile.
            IF to_regclass(name) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                    name,
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC'));
                RETURN NEXT name;
            END IF;
        END IF;
    END LOOP;
END $$;

-- As migration 000007 did for the one-day function: the writer creates partitions with the
-- owner's rights and nothing else (search_path pinned, pg_temp last); the look-up has the same
-- pinned search_path, so both name the same tables whatever the session's path.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION heartbeat_ensure_day_partitions(date[]) SECURITY DEFINER '
                   'SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION heartbeat_missing_day_partitions(date[]) '
                   'SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE EXECUTE ON FUNCTION heartbeat_ensure_day_partitions(date[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heartbeat_missing_day_partitions(date[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION heartbeat_ensure_day_partitions(date[]) TO heartbeat_writer;
GRANT EXECUTE ON FUNCTION heartbeat_missing_day_partitions(date[]) TO heartbeat_writer;
