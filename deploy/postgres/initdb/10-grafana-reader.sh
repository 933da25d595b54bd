#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume
# (the image runs every file in /docker-entrypoint-initdb.d in order).
#
# Creates `grafana_reader`, the login Grafana's PostgreSQL datasource uses:
# SELECT only, on every table the pipeline creates now or later (its
# migrations run as $POSTGRES_USER, so default privileges for that role cover
# new tables and day partitions). Grafana does not restrict the SQL a
# dashboard editor may run; a read-only role keeps DROP TABLE out of reach.
set -eu

: "${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD must be set (deploy/.env)}"

psql -v ON_ERROR_STOP=1 \
     --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader_password="$GRAFANA_DB_PASSWORD" \
     -v owner="$POSTGRES_USER" \
     -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
-- Guard against runaway dashboard queries and accidental writes.
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"db" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT ON TABLES TO grafana_reader;
SQL
