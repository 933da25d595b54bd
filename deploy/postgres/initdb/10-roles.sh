#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume
# (the image runs every file in /docker-entrypoint-initdb.d in order).
#
# Least privilege (docs/SECURITY.md). $POSTGRES_USER owns the database and runs
# the migrations (the one-shot `migrate` service); nobody else changes the
# schema. Two NOLOGIN group roles hold the privileges; migration
# 2026-11-29-000007_roles grants them (it creates them too when missing, so this
# script and the migration agree whichever runs first):
#   heartbeat_writer  insert and read the pipeline's tables, nothing else
#   heartbeat_reader  SELECT only
# and two logins are members:
#   heartbeat_processor  the processor services (password PROCESSOR_DB_PASSWORD)
#   grafana_reader       Grafana's datasource (password GRAFANA_DB_PASSWORD)
# Either password may come from a file instead (NAME_FILE, a docker secret: as
# docker-compose.secure.yml gives the processor's), like the image's own
# POSTGRES_PASSWORD_FILE; setting both is refused.
set -eu

for name in GRAFANA_DB_PASSWORD PROCESSOR_DB_PASSWORD; do
    eval "value=\${$name:-} file=\${${name}_FILE:-}"
    if [ -n "$file" ]; then
        if [ -n "$value" ]; then
            echo "10-roles.sh: both $name and ${name}_FILE are set; set only one" >&2
            exit 1
        fi
        # $(...) drops the file's trailing newline, as the pipeline's *_file keys do.
        value=$(cat "$file")
        eval "$name=\$value"
    fi
done

: "${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD must be set (deploy/.env)}"
: "${PROCESSOR_DB_PASSWORD:?PROCESSOR_DB_PASSWORD must be set (deploy/.env)}"

psql -v ON_ERROR_STOP=1 \
     --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader_password="$GRAFANA_DB_PASSWORD" \
     -v processor_password="$PROCESSOR_DB_PASSWORD" \
     -v db="$POSTGRES_DB" <<'SQL'
-- PostgreSQL 15 no longer lets every role create tables in public; say so anyway.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE ROLE heartbeat_writer NOLOGIN;
CREATE ROLE heartbeat_reader NOLOGIN;

CREATE ROLE heartbeat_processor LOGIN PASSWORD :'processor_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE IN ROLE heartbeat_writer;

CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE IN ROLE heartbeat_reader;
-- Guard against runaway dashboard queries and accidental writes.
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
SQL
