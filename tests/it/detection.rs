//! Anomaly detection through the real broker and database: baselines survive a restart (and a
//! crash between two saves of the state), a replay changes no anomaly or alert, and a silent
//! customer is reported once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(90);

/// Sends readings of `customer` (keyed by it, so they share a partition), one second apart
/// starting at `start_s` seconds after a fixed instant.
fn send_series(p: &FutureProducer, topic: &str, customer: &str, start_s: i64, rates: &[i64]) {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-29T08:00:00Z").unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (i, hr) in rates.iter().enumerate() {
        let ts = (base + chrono::Duration::seconds(start_s + i as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let value =
            format!(r#"{{"customer_id":"{customer}","timestamp":"{ts}","heart_rate":{hr}}}"#);
        queue_keyed(p, topic, customer, &value, now_ms);
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
}

/// 40 readings around 70 bpm: a steady baseline past the warm-up of 30.
fn steady(n: usize) -> Vec<i64> {
    (0..n).map(|i| 70 + [0, 1, -1, 2, -2][i % 5]).collect()
}

fn wait_rows(db: &TestDb, n: i64) {
    wait_for(&format!("{n} readings"), DEADLINE, || {
        (db.try_count("SELECT count(*) AS n FROM readings")
            .unwrap_or(0)
            == n)
            .then_some(())
    });
}

#[test]
fn a_baseline_continues_after_a_restart() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    let mut daemon = setup.spawn_run_started();
    let p = producer();
    send_series(&p, &setup.topic, "CUST-BASE", 0, &steady(40));
    wait_rows(&db, 40);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM anomalies WHERE kind = 'deviation'"),
        0
    );
    assert_eq!(daemon.stop(), 0);

    // A new process: without the saved state, the customer would be in warm-up again.
    let mut daemon = setup.spawn_run();
    send_series(&p, &setup.topic, "CUST-BASE", 40, &[95]);
    wait_rows(&db, 41);
    wait_for("a deviation right after the restart", DEADLINE, || {
        (db.count(
            "SELECT count(*) AS n FROM anomalies WHERE kind = 'deviation' AND heart_rate = 95",
        ) == 1)
            .then_some(())
    });
    assert_eq!(daemon.stop(), 0);
}

/// The customer's saved state as the detector left it: (readings it holds, readings saved).
fn saved_readings(db: &TestDb, customer: &str) -> i64 {
    db.try_count(&format!(
        "SELECT (state->>'readings')::bigint AS n FROM detector_state WHERE customer_id = '{customer}'"
    ))
    .unwrap_or(-1)
}

#[test]
fn a_state_saved_before_a_crash_is_rebuilt_from_the_readings_stored_since() {
    let db = TestDb::new();
    // Checkpoints every second, so the first readings are soon saved.
    let setup = Setup::new(&db).with("HEARTBEAT__DETECTOR__CHECKPOINT_INTERVAL_MS", "1000");
    let mut daemon = setup.spawn_run_started();
    let p = producer();
    let series = steady(35);
    send_series(&p, &setup.topic, "CUST-TAIL", 0, &series[..20]);
    wait_rows(&db, 20);
    wait_for("the first 20 readings checkpointed", DEADLINE, || {
        (saved_readings(&db, "CUST-TAIL") == 20
            && db.count("SELECT count(*) AS n FROM detector_checkpoints") > 0)
            .then_some(())
    });
    // What the database holds at this checkpoint: a crash right after the next 15 readings were
    // stored, before their state was saved, leaves exactly this behind.
    db.execute("CREATE TABLE kept_state AS SELECT * FROM detector_state");
    db.execute("CREATE TABLE kept_checkpoints AS SELECT * FROM detector_checkpoints");
    send_series(&p, &setup.topic, "CUST-TAIL", 20, &series[20..]);
    wait_rows(&db, 35);
    wait_for("everything committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == 35).then_some(())
    });
    daemon.signal(9);
    daemon.wait_exit(DEADLINE);
    db.execute(
        "UPDATE detector_state s SET state = k.state, updated_at = k.updated_at \
         FROM kept_state k WHERE s.customer_id = k.customer_id",
    );
    db.execute("DELETE FROM detector_checkpoints");
    db.execute("INSERT INTO detector_checkpoints SELECT * FROM kept_checkpoints");
    assert_eq!(saved_readings(&db, "CUST-TAIL"), 20);

    // With only the saved state, reading 36 would be in warm-up and raise nothing; rebuilt from
    // the stored readings, the baseline has 35 readings and 95 bpm deviates from it.
    let mut daemon = setup.spawn_run();
    send_series(&p, &setup.topic, "CUST-TAIL", 35, &[95]);
    wait_rows(&db, 36);
    wait_for("a deviation after the crash", DEADLINE, || {
        (db.count(
            "SELECT count(*) AS n FROM anomalies WHERE kind = 'deviation' AND heart_rate = 95",
        ) == 1)
            .then_some(())
    });
    let record = daemon.records("partitions claimed, detector state loaded");
    assert!(
        record
            .iter()
            .any(|r| r["readings_replayed"].as_u64() == Some(15)),
        "the log says what was replayed: {record:?}"
    );
    // The rebuilt state is saved at its partition's next checkpoint, with every reading.
    wait_for("the rebuilt state saved", DEADLINE, || {
        (saved_readings(&db, "CUST-TAIL") == 36).then_some(())
    });
    assert_eq!(db.count("SELECT count(*) AS n FROM readings"), 36);
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_replay_in_a_new_group_adds_no_anomaly_and_no_alert() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    let mut daemon = setup.spawn_run_started();
    let p = producer();
    // Lows, highs, a critical value and spikes over a steady baseline, for a few customers.
    let mut series = steady(35);
    series.extend([
        55, 52, 50, 72, 71, 70, 70, 140, 150, 70, 70, 70, 35, 70, 70, 70, 200, 70,
    ]);
    for c in 0..4 {
        send_series(&p, &setup.topic, &format!("CUST-R{c}"), 0, &series);
    }
    let total = 4 * series.len() as i64;
    wait_for("every record committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == total).then_some(())
    });
    let anomalies = db.count("SELECT count(*) AS n FROM anomalies");
    // Every anomaly also went to the anomalies topic, keyed by customer, as its row in JSON.
    let anomalies_topic = format!("{}-anomalies", setup.topic);
    wait_for("the alert outbox to empty", DEADLINE, || {
        (db.count("SELECT count(*) AS n FROM alert_outbox") == 0).then_some(())
    });
    let published = read_topic(&anomalies_topic, anomalies as usize);
    assert_eq!(published.len() as i64, anomalies);
    for m in &published {
        let row: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let customer = row["customer_id"].as_str().unwrap();
        assert_eq!(m.key(), Some(customer.as_bytes()));
        assert!(row["recorded_at"].as_str().unwrap().ends_with('Z'), "{row}");
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM anomalies WHERE id = {} AND kind = '{}' AND customer_id = '{customer}'",
                row["id"], row["kind"].as_str().unwrap()
            )),
            1
        );
    }
    assert_eq!(daemon.stop(), 0);
    let alerts = db.count("SELECT count(*) AS n FROM alerts");
    assert!(
        anomalies >= 4 * 6,
        "the series raises anomalies: {anomalies}"
    );
    assert!(alerts >= 4 * 3, "and alert episodes: {alerts}");
    let fingerprint = |db: &TestDb| {
        db.count(
            "SELECT coalesce(sum(hashtext(a::text)), 0)::bigint AS n FROM \
             (SELECT customer_id, kind, opened_at, last_seen_at, resolved_at, readings, peak_heart_rate \
              FROM alerts) a",
        ) ^ db.count(
            "SELECT coalesce(sum(hashtext(a::text)), 0)::bigint AS n FROM \
             (SELECT id, event_id, customer_id, kind, heart_rate, recorded_at, detected_at, details \
              FROM anomalies) a",
        )
    };
    let before = fingerprint(&db);

    replay_in_a_new_group(&setup, total, DEADLINE);
    assert_eq!(db.count("SELECT count(*) AS n FROM anomalies"), anomalies);
    assert_eq!(db.count("SELECT count(*) AS n FROM alerts"), alerts);
    assert_eq!(
        fingerprint(&db),
        before,
        "no column of anomalies or alerts changed"
    );
    assert_eq!(
        read_topic(&anomalies_topic, anomalies as usize).len() as i64,
        anomalies,
        "no alert published twice"
    );
}

#[test]
fn a_silent_customer_is_reported_once_and_the_next_reading_ends_it() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__DETECTOR__SILENCE_AFTER_MS", "3000");
    let mut daemon = setup.spawn_run_started();
    let p = producer();
    send_series(&p, &setup.topic, "CUST-QUIET", 0, &[70, 71, 72]);
    wait_rows(&db, 3);
    wait_for("a silence", DEADLINE, || {
        (db.count("SELECT count(*) AS n FROM anomalies WHERE kind = 'silent' AND customer_id = 'CUST-QUIET'") == 1)
            .then_some(())
    });
    assert_eq!(
        db.count("SELECT count(*) AS n FROM anomalies WHERE kind = 'silent' AND recorded_at = '2026-11-29T08:00:02Z' AND event_id IS NULL AND heart_rate IS NULL"),
        1,
        "the silence is dated at the last reading"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM alerts WHERE kind = 'silent' AND resolved_at IS NULL"),
        1
    );
    // Three more silence periods pass: still one silence.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM anomalies WHERE kind = 'silent'"),
        1
    );

    send_series(&p, &setup.topic, "CUST-QUIET", 600, &[70]);
    wait_for("the silence to end", DEADLINE, || {
        (db.count("SELECT count(*) AS n FROM alerts WHERE kind = 'silent' AND resolved_at = '2026-11-29T08:10:00Z'") == 1)
            .then_some(())
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn an_anomaly_kept_after_its_reading_was_dropped_is_neither_stored_nor_published_again() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    let mut daemon = setup.spawn_run_started();
    // Retention drops whole days of readings but keeps their anomalies: replaying such a day
    // stores its readings again, while their anomalies are there already. New anomalies go in by
    // COPY, which fails on the first conflict; the batch must then be redone without it.
    let kept = "5b0c8f0e-7d2a-4c53-9a51-0c3c2f6f1a01";
    db.execute(&format!(
        "INSERT INTO anomalies (event_id, customer_id, kind, heart_rate, recorded_at, detected_at, details) \
         VALUES ('{kept}', 'CUST-KEPT', 'critical_high', 200, '2026-11-29T08:00:00Z', \
         '2026-11-29T09:00:00Z', '{{\"class\":\"critical_high\"}}')"
    ));
    let p = producer();
    for (customer, event_id, hr) in [
        ("CUST-KEPT", kept, 200),
        ("CUST-NEW", "5b0c8f0e-7d2a-4c53-9a51-0c3c2f6f1a02", 35),
    ] {
        let value = format!(
            r#"{{"event_id":"{event_id}","customer_id":"{customer}","timestamp":"2026-11-29T08:00:00Z","heart_rate":{hr}}}"#
        );
        p.send_result(FutureRecord::to(&setup.topic).key(customer).payload(&value))
            .map_err(|(e, _)| e)
            .expect("queue reading");
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    wait_for("both records committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == 2).then_some(())
    });
    assert_eq!(db.count("SELECT count(*) AS n FROM readings"), 2);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM anomalies WHERE event_id = '{kept}' \
             AND detected_at = '2026-11-29T09:00:00Z'"
        )),
        1,
        "the kept anomaly is unchanged"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM anomalies"), 2);
    wait_for("the alert outbox to empty", DEADLINE, || {
        (db.count("SELECT count(*) AS n FROM alert_outbox") == 0).then_some(())
    });
    // Only the new anomaly is an alert.
    let published = read_topic(&format!("{}-anomalies", setup.topic), 1);
    assert_eq!(published.len(), 1);
    let row: serde_json::Value = serde_json::from_slice(published[0].payload().unwrap()).unwrap();
    assert_eq!(row["customer_id"], "CUST-NEW");
    assert_eq!(row["kind"], "critical_low");
    assert_eq!(daemon.metric_sum("heartbeat_anomalies_total"), 1.0);
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn alerts_stored_but_never_acknowledged_are_published_at_the_next_start() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    // What a processor killed between a batch's commit and its alerts' acknowledgement leaves:
    // the batch's anomalies, noted in the outbox.
    db.execute(
        "WITH stored AS (INSERT INTO anomalies (event_id, customer_id, kind, heart_rate, recorded_at, details) \
         VALUES (gen_random_uuid(), 'CUST-A', 'bradycardia', 50, '2026-11-29T08:00:00Z', '{\"class\":\"low\"}'), \
                (gen_random_uuid(), 'CUST-B', 'tachycardia', 150, '2026-11-29T08:00:01Z', '{\"class\":\"high\"}') \
         RETURNING id) \
         INSERT INTO alert_outbox (anomaly_ids) SELECT array_agg(id ORDER BY id) FROM stored",
    );
    let mut daemon = setup.spawn_run_started();
    wait_for("the alert outbox to empty", DEADLINE, || {
        (db.count("SELECT count(*) AS n FROM alert_outbox") == 0).then_some(())
    });
    let published = read_topic(&format!("{}-anomalies", setup.topic), 2);
    let mut kinds: Vec<String> = published
        .iter()
        .map(|m| {
            let row: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            row["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["bradycardia", "tachycardia"]);
    assert_eq!(daemon.stop(), 0);
}
