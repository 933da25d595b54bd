ALTER TABLE readings DROP CONSTRAINT readings_pkey;
ALTER TABLE readings ADD PRIMARY KEY (event_id, recorded_at);

DROP INDEX anomalies_event_kind;
CREATE UNIQUE INDEX anomalies_event_kind ON anomalies (event_id, recorded_at, kind)
    WHERE event_id IS NOT NULL;
