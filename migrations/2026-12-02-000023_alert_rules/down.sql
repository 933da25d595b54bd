-- Undoes up.sql. The role heartbeat_rules stays: roles belong to the whole cluster and may serve
-- other databases (DROP ROLE it by hand once no database uses it).
DROP TABLE alert_rules;
DO $$
BEGIN
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM heartbeat_rules', current_schema());
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM heartbeat_rules', current_database());
END $$;
