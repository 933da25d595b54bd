//! Retention bounds every table (SPEC section 5, "Retention"): with `storage.retention_days` = N
//! the processor's storage upkeep drops the expired days of `readings` (tests in delivery.rs) and
//! deletes the expired rows of every other table, keeping what an open episode or a pending
//! delivery still needs.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::helpers::*;

#[derive(QueryableByName)]
struct Customer {
    #[diesel(sql_type = Text)]
    customer_id: String,
}

const DEADLINE: Duration = Duration::from_secs(90);

/// One row of each kind a table can hold, expired, kept for being recent, or kept for what it
/// is still needed for, and 25,000 expired anomalies (more than one round deletes). After the
/// processor's first upkeep run exactly the expired rows are gone.
#[test]
fn retention_deletes_the_expired_rows_of_every_table_and_keeps_what_is_still_needed() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__STORAGE__RETENTION_DAYS", "30");
    setup.migrate();
    let (old, recent) = ("now() - interval '40 days'", "now() - interval '29 days'");

    db.execute(&format!(
        "INSERT INTO rejected_readings (raw, reason, detail, kafka_topic, kafka_partition, \
         kafka_offset, rejected_at) VALUES \
         ('x', 'malformed_json', 'd', 't', 0, 1, {old}), \
         ('y', 'malformed_json', 'd', 't', 0, 2, {recent})"
    ));

    let anomaly = |customer: &str, at: &str| {
        format!(
            "INSERT INTO anomalies (event_id, customer_id, kind, heart_rate, recorded_at) \
             VALUES (gen_random_uuid(), '{customer}', 'tachycardia', 150, {at}) RETURNING id"
        )
    };
    db.execute(&anomaly("EXPIRED", old));
    db.execute(&anomaly("RECENT", recent));
    db.execute(&format!(
        "INSERT INTO anomalies (event_id, customer_id, kind, heart_rate, recorded_at) \
         SELECT gen_random_uuid(), 'MANY', 'spike', 150, {old} FROM generate_series(1, 25000)"
    ));

    // Episodes: resolved long ago, open since long ago, resolved recently.
    let episode = |customer: &str, opened: &str, resolved: &str| {
        format!(
            "INSERT INTO alerts (customer_id, kind, opened_at, last_seen_at, resolved_at, \
             readings, peak_heart_rate, activated_at) \
             VALUES ('{customer}', 'tachycardia', {opened}, {opened}, {resolved}, 3, 150, {opened})"
        )
    };
    db.execute(&episode("GONE", "now() - interval '50 days'", old));
    db.execute(&episode("OPEN", "now() - interval '50 days'", "NULL"));
    db.execute(&episode("LATE", "now() - interval '50 days'", recent));

    // Delivered (done) events of those episodes. (A pending one would be delivered by the running
    // processor before or after its upkeep: the case is tested by hand below.)
    let event = |customer: &str, event: &str, done: &str| {
        let resolved = if event == "resolved" { old } else { "NULL" };
        format!(
            "INSERT INTO alert_events (customer_id, kind, opened_at, event, activated_at, \
             resolved_at, last_seen_at, readings, peak_heart_rate, created_at, done_at) \
             SELECT customer_id, kind, opened_at, '{event}', opened_at, {resolved}, last_seen_at, \
             readings, peak_heart_rate, {old}, {done} FROM alerts WHERE customer_id = '{customer}'"
        )
    };
    db.execute(&event("GONE", "activated", old));
    db.execute(&event("GONE", "resolved", old));
    db.execute(&event("OPEN", "activated", old));
    db.execute(
        "INSERT INTO alert_deliveries (event_id, receiver) SELECT id, 'kafka' FROM alert_events",
    );

    // Saved states: long silent, long silent with an open episode, recent.
    for (customer, at) in [("GONE", old), ("OPEN", old), ("RECENT", recent)] {
        db.execute(&format!(
            "INSERT INTO detector_state (customer_id, kafka_partition, state, updated_at) \
             VALUES ('{customer}', 0, '{{}}', {at})"
        ));
    }

    let mut daemon = setup.spawn_run();
    let rows = |sql: &str| db.count(&format!("SELECT count(*) AS n FROM {sql}"));
    wait_for("the expired anomalies to be deleted", DEADLINE, || {
        (rows("anomalies WHERE customer_id = 'MANY'") == 0).then_some(())
    });
    // One upkeep run deletes every table's expired rows before it logs.
    wait_for("the upkeep run to finish", DEADLINE, || {
        (!daemon.records("retention deleted expired rows").is_empty()).then_some(())
    });
    assert_eq!(daemon.stop(), 0);

    assert_eq!(
        rows("rejected_readings WHERE kafka_offset = 2"),
        1,
        "the reject of 29 days ago stays"
    );
    assert_eq!(rows("rejected_readings"), 1, "the one of 40 days ago goes");
    let customers = |table: &str| -> Vec<String> {
        diesel::sql_query(format!(
            "SELECT DISTINCT customer_id FROM {table} ORDER BY 1"
        ))
        .load::<Customer>(&mut db.conn())
        .unwrap()
        .into_iter()
        .map(|c| c.customer_id)
        .collect()
    };
    assert_eq!(customers("anomalies"), ["RECENT"], "expired anomalies go");
    assert_eq!(
        customers("alerts"),
        ["LATE", "OPEN"],
        "open episodes stay however old"
    );
    assert_eq!(
        customers("alert_events"),
        ["OPEN"],
        "a delivered event of a closed episode goes; one of an open episode stays"
    );
    assert_eq!(
        rows("alert_deliveries"),
        1,
        "the deliveries of the deleted events went with them"
    );
    assert_eq!(
        customers("detector_state"),
        ["OPEN", "RECENT"],
        "a state silent for 40 days goes unless it holds an open episode"
    );
}

/// 0 days keeps everything, also when the function is called by hand; an expired anomaly that a
/// pending `alert_outbox` entry names (stored, not yet on the anomalies topic: the publisher
/// reads it by id) stays until it is published, and so does an old event not yet delivered.
/// (Called by hand: a running processor publishes and delivers pending entries at once.)
#[test]
fn expiring_rows_with_zero_or_fewer_days_deletes_nothing_nor_an_anomaly_still_to_publish() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    db.execute(
        "INSERT INTO rejected_readings (raw, reason, detail, kafka_topic, kafka_partition, \
         kafka_offset, rejected_at) VALUES ('x', 'malformed_json', 'd', 't', 0, 1, '2000-01-01')",
    );
    db.execute(
        "WITH a AS (INSERT INTO anomalies (event_id, customer_id, kind, heart_rate, recorded_at) \
         VALUES (gen_random_uuid(), 'PENDING', 'spike', 150, '2000-01-01'), \
                (gen_random_uuid(), 'PUBLISHED', 'spike', 150, '2000-01-01') RETURNING id, \
                customer_id) \
         INSERT INTO alert_outbox (anomaly_ids) \
         SELECT array_agg(id) FROM a WHERE customer_id = 'PENDING'",
    );
    // An episode resolved long ago whose resolution is not yet delivered.
    db.execute(
        "INSERT INTO alerts (customer_id, kind, opened_at, last_seen_at, resolved_at, readings, \
         peak_heart_rate, activated_at) VALUES ('UNSENT', 'tachycardia', '2000-01-01', \
         '2000-01-01', '2000-01-01 00:10', 3, 150, '2000-01-01')",
    );
    db.execute(
        "INSERT INTO alert_events (customer_id, kind, opened_at, event, activated_at, \
         resolved_at, last_seen_at, readings, peak_heart_rate, created_at) VALUES \
         ('UNSENT', 'tachycardia', '2000-01-01', 'resolved', '2000-01-01', '2000-01-01 00:10', \
         '2000-01-01', 3, 150, '2000-01-01 00:10')",
    );
    for days in [0, -1] {
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM heartbeat_expire_rows({days}, 1000)"
            )),
            0
        );
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM rejected_readings"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM anomalies"), 2);
    assert_eq!(
        db.count(
            "SELECT sum(deleted)::bigint AS n FROM heartbeat_expire_rows(30, 1000) \
             WHERE table_name IN ('rejected_readings', 'anomalies', 'alert_events')"
        ),
        2,
        "the reject and the published anomaly, not the event still to deliver"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM alert_events WHERE customer_id = 'UNSENT'"),
        1,
        "the event still to deliver stays"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM anomalies WHERE customer_id = 'PENDING'"),
        1,
        "the anomaly still to publish stays"
    );
}
