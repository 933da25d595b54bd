-- Per-customer alert rules (SPEC section 5, `alert_rules`): a customer's own thresholds (null =
-- the fleet band of `detector.bands.*`), a mute, a note, and who changed the row last. Written by
-- `heartbeat-pipeline rules` (docs/OPERATIONS.md, "Per-customer rules") or by SQL; every
-- processor reads it.
--
-- The command checks what the database cannot: thresholds within
-- `validation.min_heart_rate`..=`validation.max_heart_rate` and in order once the fleet bands
-- stand in for the unset ones. The constraints below hold what is true whatever the
-- configuration, so a row written by SQL cannot be nonsense either: a customer id by SPEC
-- section 4's rule, thresholds that fit a heart rate (a smallint), and the set ones in order.
CREATE TABLE alert_rules (
    customer_id         text PRIMARY KEY
        CHECK (customer_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    critical_low_below  int CHECK (critical_low_below BETWEEN 0 AND 32767),
    low_below           int CHECK (low_below BETWEEN 0 AND 32767),
    high_above          int CHECK (high_above BETWEEN 0 AND 32767),
    critical_high_above int CHECK (critical_high_above BETWEEN 0 AND 32767),
    muted_until         timestamptz,
    note                text,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          text NOT NULL DEFAULT session_user,
    -- critical_low_below <= low_below < high_above <= critical_high_above among the set ones (a
    -- comparison with a null is null, which a CHECK lets pass).
    CONSTRAINT alert_rules_in_order CHECK (
        critical_low_below <= low_below AND low_below < high_above
        AND high_above <= critical_high_above
        AND critical_low_below < high_above AND critical_low_below < critical_high_above
        AND low_below < critical_high_above)
);

-- Who may touch it (migration 000007's roles, docs/SECURITY.md):
--   heartbeat_writer  reads it (every processor applies the rules), never writes: a stolen
--                     processor credential must not be able to mute customers or move their
--                     thresholds, which would silence their alerts.
--   heartbeat_reader  reads it (Grafana, analysts).
--   heartbeat_rules   a new NOLOGIN group role for the people who change rules (on call,
--                     clinicians): reads and writes this table and nothing else, so handing out
--                     a rules login gives no way to the readings or the schema. Its members log
--                     in under their own names, which `updated_by` records.
-- The owner (who runs `migrate`) may of course write it too.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'heartbeat_rules') THEN
        BEGIN
            CREATE ROLE heartbeat_rules NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created by a concurrent migration of another database
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO heartbeat_rules', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO heartbeat_rules', current_schema());
END $$;

-- Default privileges (000007) already give the writer and the reader SELECT on tables the owner
-- creates; said again here so a table made by another role is readable too.
GRANT SELECT ON alert_rules TO heartbeat_writer, heartbeat_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_rules TO heartbeat_rules;
