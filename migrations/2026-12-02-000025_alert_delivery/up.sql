-- Alert delivery (SPEC section 8): a durable outbox of alert episode events, written by the
-- writer in the transaction that activated or resolved the episode, and what each receiver
-- (every Alertmanager of alerts.alertmanager.urls, and the Kafka topic kafka.topics.alerts) has
-- acknowledged of it. The delivery actor of one processor at a time (an advisory lock) reads the
-- events not yet done, in id order, sends each to every receiver that lacks it, notes each
-- acknowledgement, and marks an event done once every receiver it delivers to has it.
--
-- An event holds the episode as it was at that moment (readings, peak, last reading), so what
-- the Kafka stream carries is fixed by the readings alone, whoever delivers it and when. One
-- event per (customer_id, kind, opened_at, event): a batch written twice (retried after a
-- failed commit) or an episode observed again cannot add a second one, so a replay delivers
-- nothing new.
CREATE TABLE alert_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id text NOT NULL,
    kind text NOT NULL,
    opened_at timestamptz NOT NULL,
    event text NOT NULL CHECK (event IN ('activated', 'resolved')),
    activated_at timestamptz NOT NULL,
    resolved_at timestamptz,
    last_seen_at timestamptz NOT NULL,
    readings int NOT NULL,
    peak_heart_rate smallint,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set once every receiver has it; the delivery reads only events without it.
    done_at timestamptz,
    CONSTRAINT alert_events_once UNIQUE (customer_id, kind, opened_at, event),
    CHECK ((event = 'resolved') = (resolved_at IS NOT NULL))
);
-- What is still to deliver: small, whatever the size of the history.
CREATE INDEX alert_events_pending ON alert_events (id) WHERE done_at IS NULL;

-- One row per event and receiver that acknowledged it ('kafka', or an Alertmanager's base URL
-- without credentials). Deleted with its event.
CREATE TABLE alert_deliveries (
    event_id bigint NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    receiver text NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, receiver)
);

-- The open activated episodes, which the delivery sends to the Alertmanagers again every
-- alerts.alertmanager.resend_interval_ms: few, on a table of every episode ever opened.
CREATE INDEX alerts_open_activated ON alerts (customer_id, kind, opened_at)
    WHERE activated_at IS NOT NULL AND resolved_at IS NULL;

-- The processor's role writes events with its batches and does the delivery's bookkeeping.
GRANT SELECT, INSERT, UPDATE ON alert_events TO heartbeat_writer;
GRANT SELECT, INSERT ON alert_deliveries TO heartbeat_writer;
