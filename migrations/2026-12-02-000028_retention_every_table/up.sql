-- Retention bounds every table (SPEC section 5, issue 21): storage.retention_days used to drop
-- days of readings only, while rejected_readings, anomalies, alerts, alert_events (with
-- alert_deliveries) and detector_state grew without limit.
--
-- readings keeps its day partitions, dropped whole (heartbeat_drop_expired_partitions). The other
-- tables lose their expired rows here, a bounded number per table and call, so each call is a
-- short transaction and the caller (the processor's storage upkeep, or the compose `retention`
-- job) repeats it until nothing is left to delete. What expires, with cutoff = 00:00 UTC of the
-- day N days before today (the day readings are dropped from):
--   rejected_readings  rejected before the cutoff;
--   anomalies          recorded before the cutoff, unless a pending alert_outbox entry still
--                      names it (the publisher reads it by id to put it on the topic);
--   alerts             resolved before the cutoff (open episodes stay, however old);
--   alert_events       done (every receiver has it) and created before the cutoff, of an episode
--                      that is no longer open: the event of an open episode is what keeps a
--                      replay from delivering its activation twice (alert_events_once); its
--                      alert_deliveries go with it (ON DELETE CASCADE);
--   detector_state     last saved before the cutoff (a customer silent for N days, long
--                      forgotten by the detector, detector.forget_after_ms), unless it has an
--                      open episode: that state is what resolves it when the customer returns.
-- Serialized with partition maintenance by the same advisory lock, so it never runs beside the
-- creation or the drop of a day partition, nor beside itself on another processor.
--
-- The anomalies table is about a third the size of readings; its rows are found through the BRIN
-- index on recorded_at (migration 000009), so a call reads only the expired block ranges.
-- rejected_readings gets the same kind of index for rejected_at; the alert tables get partial
-- indexes of their resolved and done rows.
CREATE INDEX rejected_readings_rejected_at_brin ON rejected_readings USING brin (rejected_at);
CREATE INDEX alerts_resolved_at ON alerts (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX alert_events_done_created ON alert_events (created_at) WHERE done_at IS NOT NULL;

CREATE FUNCTION heartbeat_expire_rows(keep_days int, max_rows int)
RETURNS TABLE (table_name text, deleted bigint)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz;
    n      bigint;
BEGIN
    IF keep_days IS NULL OR keep_days <= 0 OR max_rows IS NULL OR max_rows <= 0 THEN
        RETURN;
    END IF;
    cutoff := (((now() AT TIME ZONE 'UTC')::date - keep_days)::timestamp AT TIME ZONE 'UTC');
    PERFORM pg_advisory_xact_lock(hashtext('heartbeat_partitions'));

    DELETE FROM rejected_readings WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM rejected_readings WHERE rejected_at < cutoff LIMIT max_rows));
    GET DIAGNOSTICS n = ROW_COUNT;
    table_name := 'rejected_readings'; deleted := n; RETURN NEXT;

    DELETE FROM anomalies WHERE ctid = ANY (ARRAY(
        SELECT a.ctid FROM anomalies a
        WHERE a.recorded_at < cutoff
          AND NOT EXISTS (SELECT 1 FROM alert_outbox o WHERE a.id = ANY (o.anomaly_ids))
        LIMIT max_rows));
    GET DIAGNOSTICS n = ROW_COUNT;
    table_name := 'anomalies'; deleted := n; RETURN NEXT;

    DELETE FROM alerts WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM alerts WHERE resolved_at < cutoff LIMIT max_rows));
    GET DIAGNOSTICS n = ROW_COUNT;
    table_name := 'alerts'; deleted := n; RETURN NEXT;

    DELETE FROM alert_events WHERE id = ANY (ARRAY(
        SELECT e.id FROM alert_events e
        WHERE e.done_at IS NOT NULL AND e.created_at < cutoff
          AND NOT EXISTS (
              SELECT 1 FROM alerts a
              WHERE a.customer_id = e.customer_id AND a.kind = e.kind
                AND a.opened_at = e.opened_at AND a.resolved_at IS NULL)
        LIMIT max_rows));
    GET DIAGNOSTICS n = ROW_COUNT;
    table_name := 'alert_events'; deleted := n; RETURN NEXT;

    DELETE FROM detector_state WHERE customer_id = ANY (ARRAY(
        SELECT s.customer_id FROM detector_state s
        WHERE s.updated_at < cutoff
          AND NOT EXISTS (
              SELECT 1 FROM alerts a
              WHERE a.customer_id = s.customer_id AND a.resolved_at IS NULL)
        LIMIT max_rows));
    GET DIAGNOSTICS n = ROW_COUNT;
    table_name := 'detector_state'; deleted := n; RETURN NEXT;
END $$;
-- As for the partition functions (migration 000007): an owner's job, run by the owner (the
-- compose `retention` service, or a processor whose login owns the schema); no grant to the
-- writer role, whose processors skip retention with a warning.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION heartbeat_expire_rows(int, int) SET search_path = %I, pg_temp',
                   current_schema());
END $$;
REVOKE EXECUTE ON FUNCTION heartbeat_expire_rows(int, int) FROM PUBLIC;
