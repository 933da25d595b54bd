-- The identity indexes with the time first: (recorded_at, event_id) instead of
-- (event_id, recorded_at). Same uniqueness. Readings arrive in roughly time order, so new keys
-- land near the right edge of the b-tree, on pages already in memory, instead of at random
-- places (event ids are random UUIDs). Measured on the project's machine, 400,000 rows with a
-- (customer_id, recorded_at) index beside it: 5.0 s -> 3.5 s. Look-ups by identity give both
-- columns, so they use the index as before.
--
-- On a database that already holds readings this rebuilds the index of every day partition and
-- locks `readings` meanwhile: run it in a maintenance window.
ALTER TABLE readings DROP CONSTRAINT readings_pkey;
ALTER TABLE readings ADD PRIMARY KEY (recorded_at, event_id);

DROP INDEX anomalies_event_kind;
CREATE UNIQUE INDEX anomalies_event_kind ON anomalies (recorded_at, event_id, kind)
    WHERE event_id IS NOT NULL;
