//! Delivery through the real broker: every record ends as exactly one row, a replay adds none,
//! and no offset is committed before its rows are.

use std::time::Duration;

use rdkafka::Message;

use crate::helpers::*;

/// Long enough for a tansu group join (seconds) plus the work, short enough to fail usefully.
const STORE_DEADLINE: Duration = Duration::from_secs(90);

/// Rows in readings + rejected_readings; 0 before `run` has created the tables.
fn stored(db: &TestDb) -> i64 {
    db.try_count(
        "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM rejected_readings) AS n",
    )
    .unwrap_or(0)
}

#[test]
fn five_thousand_generated_readings_are_stored_once_and_a_replay_adds_none() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    assert!(setup.generate(5_000, 7).success());

    let mut daemon = setup.spawn_run();
    wait_for("5,000 rows", STORE_DEADLINE, || {
        (stored(&db) == 5_000).then_some(())
    });
    wait_for("the group to commit 5,000 records", STORE_DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == 5_000).then_some(())
    });
    assert_eq!(daemon.stop(), 0, "a SIGTERM stop exits 0");
    assert_eq!(db.count("SELECT count(*) AS n FROM readings"), 5_000);
    assert_eq!(
        db.count("SELECT count(DISTINCT event_id) AS n FROM readings"),
        5_000
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM rejected_readings"), 0);

    // The same topic read again by a new consumer group: every record is a duplicate.
    let replay = Setup {
        group: unique("hb_replay"),
        ..setup.clone()
    };
    let mut daemon = replay.spawn_run();
    wait_for(
        "the replay group to commit 5,000 records",
        STORE_DEADLINE,
        || (committed_total(&replay.group, &replay.topic) == 5_000).then_some(()),
    );
    let (status, metrics) = daemon.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("heartbeat_duplicates_total 5000"),
        "{metrics}"
    );
    assert_eq!(daemon.stop(), 0);
    assert_eq!(stored(&db), 5_000, "a replay adds no row");
}

#[test]
fn no_offset_is_committed_while_the_database_write_fails() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__SHUTDOWN__TIMEOUT_MS", "2000");
    setup.migrate();
    // Every insert into readings fails, as a broken database would make it.
    db.execute(
        "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
    );
    db.execute(
        "CREATE TRIGGER fail_insert BEFORE INSERT ON readings FOR EACH ROW EXECUTE FUNCTION fail_insert()",
    );
    assert!(setup.generate(300, 11).success());

    let mut daemon = setup.spawn_run();
    // Five failed attempts span 1.5 s of backoff: more than the 1 s auto-commit interval, so a
    // premature commit would have happened by then.
    wait_for("five failed write attempts", STORE_DEADLINE, || {
        daemon
            .records("batch write failed, will retry")
            .iter()
            .any(|r| r["attempt"].as_u64() >= Some(5))
            .then_some(())
    });
    let (status, body) = daemon.get("/readyz");
    assert_eq!(status, 503, "not ready while writes fail: {body}");
    // `db_writer`, or `db_writer#N` with several writers (`writer.parallelism`).
    assert!(
        body.contains("db_writer") && body.contains("is backing off"),
        "{body}"
    );
    assert!(
        committed_offsets(&setup.group, &setup.topic).is_empty(),
        "nothing committed"
    );
    // The drain cannot finish while the batch cannot be stored: exit 1 after the timeout.
    assert_eq!(daemon.stop(), 1);
    assert!(
        committed_offsets(&setup.group, &setup.topic).is_empty(),
        "still nothing committed"
    );
    assert_eq!(stored(&db), 0);

    // The database heals; the same group reads the records again and stores every one.
    db.execute("DROP TRIGGER fail_insert ON readings");
    let mut daemon = setup.spawn_run();
    wait_for("300 rows after the restart", STORE_DEADLINE, || {
        (stored(&db) == 300).then_some(())
    });
    wait_for("the group to commit 300 records", STORE_DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == 300).then_some(())
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn retention_drops_whole_expired_days_keeps_the_rest_and_creates_the_next_ones() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__STORAGE__RETENTION_DAYS", "30");
    setup.migrate();
    let partition_count = |name: &str| {
        db.count(&format!(
            "SELECT count(*) AS n FROM pg_class WHERE relname = '{name}'"
        ))
    };
    db.execute("SELECT heartbeat_ensure_day_partition('2020-01-01T12:00:00Z')");
    db.execute("SELECT heartbeat_ensure_day_partition(now() - interval '29 days')");
    db.execute(
        "INSERT INTO readings (event_id, customer_id, recorded_at, heart_rate, class, \
         kafka_partition, kafka_offset) VALUES \
         (gen_random_uuid(), 'OLD', '2020-01-01T12:00:00Z', 70, 'normal', 0, 0), \
         (gen_random_uuid(), 'KEPT', now() - interval '29 days', 70, 'normal', 0, 1)",
    );
    assert_eq!(partition_count("readings_20200101"), 1);

    let mut daemon = setup.spawn_run();
    wait_for("the expired day to be dropped", STORE_DEADLINE, || {
        (partition_count("readings_20200101") == 0).then_some(())
    });
    // The coming days' partitions are created ahead of their first reading.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("readings_%Y%m%d")
        .to_string();
    wait_for("the partition two days ahead", STORE_DEADLINE, || {
        (partition_count(&ahead) == 1).then_some(())
    });
    assert_eq!(daemon.stop(), 0);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM readings WHERE customer_id = 'OLD'"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM readings WHERE customer_id = 'KEPT'"),
        1,
        "a day inside the retention window stays"
    );
}

/// Anomalies of one customer and their `alert_outbox` row, as a writer's transaction commits
/// them, with `detected_at` (the writer's transaction time) `age` before now.
fn commit_outbox_batch(db: &TestDb, customer: &str, age: &str) {
    db.execute(&format!(
        "WITH stored AS (INSERT INTO anomalies \
         (event_id, customer_id, kind, heart_rate, recorded_at, detected_at, details) VALUES \
         (gen_random_uuid(), '{customer}', 'tachycardia', 150, '2026-11-29T08:00:00Z', \
          now() - interval '{age}', '{{\"class\":\"high\"}}'), \
         (gen_random_uuid(), '{customer}', 'spike', 150, '2026-11-29T08:00:00Z', \
          now() - interval '{age}', '{{\"class\":\"high\"}}') \
         RETURNING id) \
         INSERT INTO alert_outbox (anomaly_ids) SELECT array_agg(id ORDER BY id) FROM stored"
    ));
}

/// Outbox rows that name an anomaly of `customer`.
fn outbox_rows_of(db: &TestDb, customer: &str) -> i64 {
    db.count(&format!(
        "SELECT count(*) AS n FROM alert_outbox o JOIN anomalies a ON a.id = o.anomaly_ids[1] \
         WHERE a.customer_id = '{customer}'"
    ))
}

#[test]
fn an_outbox_row_committed_after_the_start_is_published_without_a_restart() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    // Left by a previous run: the start-up sweep publishes it.
    commit_outbox_batch(&db, "CUST-LEFT", "1 hour");
    let mut daemon = setup.spawn_run_started();
    wait_for(
        "the start-up sweep to empty the outbox",
        STORE_DEADLINE,
        || (db.count("SELECT count(*) AS n FROM alert_outbox") == 0).then_some(()),
    );

    // Committed after that sweep by someone else: a writer of a previous incarnation whose
    // blocking call completed late, or a replica that died after committing. Nobody hands these
    // to this publisher; the periodic sweep must find the old one, and leave the young one
    // (maybe a writer's batch on its way to its publisher) until it is old enough.
    commit_outbox_batch(&db, "CUST-LATE", "10 minutes");
    commit_outbox_batch(&db, "CUST-YOUNG", "0 seconds");
    wait_for(
        "the late batch to be published and leave the outbox",
        Duration::from_secs(60),
        || (outbox_rows_of(&db, "CUST-LATE") == 0).then_some(()),
    );
    assert_eq!(
        outbox_rows_of(&db, "CUST-YOUNG"),
        1,
        "a batch committed seconds ago is left to its own publisher for now"
    );
    wait_for(
        "the young batch to be published once old enough",
        STORE_DEADLINE,
        || (outbox_rows_of(&db, "CUST-YOUNG") == 0).then_some(()),
    );

    let published = read_topic(&format!("{}-anomalies", setup.topic), 6);
    let mut customers: Vec<String> = published
        .iter()
        .map(|m| {
            let row: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            row["customer_id"].as_str().unwrap().to_owned()
        })
        .collect();
    customers.sort();
    assert_eq!(
        customers,
        [
            "CUST-LATE",
            "CUST-LATE",
            "CUST-LEFT",
            "CUST-LEFT",
            "CUST-YOUNG",
            "CUST-YOUNG"
        ],
        "every alert once, without a restart"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM alert_outbox"), 0);
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn retention_of_zero_or_fewer_days_drops_nothing() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    let partitions = || {
        db.count(
            "SELECT count(*) AS n FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'readings'",
        )
    };
    db.execute("SELECT heartbeat_ensure_day_partition('2020-01-01T12:00:00Z')");
    db.execute("SELECT heartbeat_ensure_day_partition(now() - interval '40 days')");
    db.execute("SELECT heartbeat_ensure_day_partition(now() - interval '1 day')");
    db.execute("SELECT heartbeat_ensure_day_partition(now())");
    let before = partitions();
    assert!(before >= 4, "{before} partitions");

    // 0 keeps everything (SPEC section 3 and 5), wherever it is set, so the function itself
    // refuses to drop anything for it; a negative count of days is no bound either.
    for days in [0, -1, -30] {
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM heartbeat_drop_expired_partitions({days})"
            )),
            0,
            "heartbeat_drop_expired_partitions({days}) dropped something"
        );
        assert_eq!(
            partitions(),
            before,
            "after heartbeat_drop_expired_partitions({days})"
        );
    }
    // A positive count still drops the days before it.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM heartbeat_drop_expired_partitions(30)"),
        2
    );
    assert_eq!(partitions(), before - 2);
}
