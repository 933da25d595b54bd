-- Least privilege (docs/SECURITY.md): two NOLOGIN group roles an operator makes login users
-- members of, so no password ever sits in a migration.
--
--   heartbeat_writer  what the processor needs and no more: read every pipeline table, insert
--                     readings, rejects and anomalies, keep its own state (alerts and
--                     detector_state are upserted, acknowledged alert_outbox rows deleted), and
--                     create day partitions through heartbeat_ensure_day_partition(), which now
--                     runs with its owner's rights. It cannot DROP, ALTER, TRUNCATE, DELETE
--                     readings or run retention: migrations and retention need the owner.
--   heartbeat_reader  SELECT only (Grafana, analysts).
--
-- Roles belong to the whole cluster while migrations run per database, and processors of other
-- databases may run this at the same moment (the migration advisory lock is per database): a
-- role that exists already, or that another session creates first, is fine. The migrating role
-- needs CREATEROLE only when the roles do not exist yet (an administrator may create them).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['heartbeat_writer', 'heartbeat_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created by a concurrent migration of another database
            END;
        END IF;
    END LOOP;
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO heartbeat_writer',
                   current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO heartbeat_reader', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO heartbeat_writer, heartbeat_reader',
                   current_schema());
END $$;

-- The writer. INSERT into `readings` reaches the day partitions through the parent, whose
-- privileges are the ones checked.
GRANT SELECT, INSERT ON readings, rejected_readings, anomalies TO heartbeat_writer;
GRANT SELECT, INSERT, UPDATE ON alerts, detector_state TO heartbeat_writer;
GRANT SELECT, INSERT, DELETE ON alert_outbox TO heartbeat_writer;
GRANT USAGE ON SEQUENCE rejected_readings_id_seq, anomalies_id_seq TO heartbeat_writer;
-- `run` checks which migrations are applied before it starts (and applies none as the writer).
GRANT SELECT ON __diesel_schema_migrations TO heartbeat_writer;

-- The reader: every table there is, and (below) every table the owner creates later.
DO $$
BEGIN
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO heartbeat_reader',
                   current_schema());
    -- Day partitions made later by heartbeat_ensure_day_partition() (as its owner, the role
    -- running this) and tables of later migrations: readable by both, directly too.
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES '
                   'TO heartbeat_reader, heartbeat_writer', current_schema());
    -- Partitions that exist already.
    EXECUTE (
        SELECT coalesce(string_agg(format('GRANT SELECT ON %I.%I TO heartbeat_reader, '
                                          'heartbeat_writer', n.nspname, c.relname), '; '),
                        'SELECT 1')
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'readings' AND p.relnamespace = c.relnamespace
          AND n.nspname = current_schema());
END $$;

-- Partition creation on the data path: a batch that touches a new UTC day must not wait for an
-- owner. The function creates nothing but an empty partition of `readings` named after a date,
-- so running it with its owner's rights gives the writer no other DDL. Its search_path is pinned
-- (pg_temp last), as every SECURITY DEFINER function's must be.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION heartbeat_ensure_day_partition(timestamptz) SECURITY DEFINER '
                   'SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE EXECUTE ON FUNCTION heartbeat_ensure_day_partition(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION heartbeat_ensure_day_partition(timestamptz) TO heartbeat_writer;
-- Retention drops whole days: the owner's job, never the writer's (it stays SECURITY INVOKER).
REVOKE EXECUTE ON FUNCTION heartbeat_drop_expired_partitions(int) FROM PUBLIC;
