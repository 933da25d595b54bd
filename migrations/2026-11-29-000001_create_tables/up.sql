-- The tables of SPEC section 5.

-- Every valid reading, once per identity (event_id, recorded_at), partitioned by UTC day.
-- Partitions are created on demand by heartbeat_ensure_day_partition() for every day a batch
-- touches, and dropped whole by retention.
CREATE TABLE readings (
    event_id        uuid        NOT NULL,
    customer_id     text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    heart_rate      smallint    NOT NULL,
    class           text        NOT NULL,
    kafka_partition int         NOT NULL,
    kafka_offset    bigint      NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, recorded_at)
) PARTITION BY RANGE (recorded_at);

-- Dashboards ask for one customer over a time range.
CREATE INDEX readings_customer_time ON readings (customer_id, recorded_at);

-- Creates the partition of readings for the UTC day holding `at`, if it is missing. Serialized
-- with an advisory lock so processors that start together do not race on the DDL.
CREATE FUNCTION heartbeat_ensure_day_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    day  date := (at AT TIME ZONE 'UTC')::date;
    name text := 'readings_' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('heartbeat_partitions'));
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
            name,
            (day::timestamp AT TIME ZONE 'UTC'),
            ((day + 1)::timestamp AT TIME ZONE 'UTC'));
    END IF;
    RETURN name;
END $$;

-- Every rejected record, at most once per (topic, partition, offset, sha256 of raw).
CREATE TABLE rejected_readings (
    id              bigserial   PRIMARY KEY,
    raw             bytea       NOT NULL,
    raw_sha256      bytea       GENERATED ALWAYS AS (sha256(raw)) STORED,
    reason          text        NOT NULL,
    detail          text        NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition int         NOT NULL,
    kafka_offset    bigint      NOT NULL,
    rejected_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX rejected_readings_source
    ON rejected_readings (kafka_topic, kafka_partition, kafka_offset, raw_sha256);
CREATE INDEX rejected_readings_reason_time ON rejected_readings (reason, rejected_at);

-- Anomalies found by the detector, once per (event_id, recorded_at, kind); silences, which have
-- no event, once per (customer_id, kind, recorded_at).
CREATE TABLE anomalies (
    id          bigserial   PRIMARY KEY,
    event_id    uuid,
    customer_id text        NOT NULL,
    kind        text        NOT NULL,
    heart_rate  smallint,
    recorded_at timestamptz NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE UNIQUE INDEX anomalies_event_kind ON anomalies (event_id, recorded_at, kind)
    WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX anomalies_silent ON anomalies (customer_id, kind, recorded_at)
    WHERE kind = 'silent';
CREATE INDEX anomalies_customer_time ON anomalies (customer_id, recorded_at);
CREATE INDEX anomalies_kind_time ON anomalies (kind, recorded_at);

-- Alert episodes: one row per episode of a (customer_id, kind).
CREATE TABLE alerts (
    customer_id     text        NOT NULL,
    kind            text        NOT NULL,
    opened_at       timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    resolved_at     timestamptz,
    readings        int         NOT NULL DEFAULT 1,
    peak_heart_rate smallint,
    PRIMARY KEY (customer_id, kind, opened_at)
);
CREATE INDEX alerts_open ON alerts (customer_id, kind) WHERE resolved_at IS NULL;
