//! Injection strings at the edges (stored or rejected verbatim), and an HTTP surface of health
//! and metrics only.

use std::collections::BTreeSet;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::helpers::*;

use super::STORE_DEADLINE;

/// Publishes each value as one record (keyed by `key`) and waits until all are acknowledged.
fn publish_raw(topic: &str, records: &[(&str, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for (key, value) in records {
        producer
            .send(BaseRecord::to(topic).key(*key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn injection_strings_are_stored_verbatim_or_rejected_verbatim_and_break_nothing() {
    let db = TestDb::new();
    // Config values with quotes and SQL: the group id is free text.
    let mut setup = Setup::new(&db);
    setup.group = format!("{}'); DROP TABLE readings;--\"", setup.group);
    let mut daemon = setup.spawn_run_started();

    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let valid = [
        "x--1",
        "a:b.c",
        "1.0e-3",
        "_:-.",
        "OR-1-1",
        "--",
        "select.from:readings",
    ];
    let invalid = [
        "'); DROP TABLE readings;--",
        "Robert'); DROP TABLE rejected_readings; --",
        "1 OR 1=1",
        "x\\u0000y",
        "$1",
        "a\"b",
    ];
    let mut records: Vec<(&str, Vec<u8>)> = Vec::new();
    for id in valid {
        let value = format!(r#"{{"customer_id":"{id}","timestamp":"{now}","heart_rate":72}}"#);
        records.push((id, value.into_bytes()));
    }
    let mut raws = Vec::new();
    for id in invalid {
        let id = id.replace('"', "\\\"");
        let value = format!(r#"{{"customer_id":"{id}","timestamp":"{now}","heart_rate":72}}"#);
        raws.push(value.clone().into_bytes());
        records.push(("k", value.into_bytes()));
    }
    // Bytes that are no text at all, with a quote and a NUL.
    let junk = b"\xff\x00'; DROP TABLE readings;--\xfe".to_vec();
    raws.push(junk.clone());
    records.push(("k", junk));
    // A customer id as a JSON integer is stored as its decimal string.
    records.push((
        "n",
        format!(r#"{{"customer_id":18446744073709551615,"timestamp":"{now}","heart_rate":72}}"#)
            .into_bytes(),
    ));
    publish_raw(&setup.topic, &records);

    let total = records.len() as i64;
    wait_for("every record stored or rejected", STORE_DEADLINE, || {
        (accounted(&db.url) == total).then_some(())
    });

    #[derive(QueryableByName)]
    struct Customer {
        #[diesel(sql_type = Text)]
        customer_id: String,
    }
    let stored: BTreeSet<String> = diesel::sql_query("SELECT customer_id FROM readings")
        .load::<Customer>(&mut db.conn())
        .unwrap()
        .into_iter()
        .map(|c| c.customer_id)
        .collect();
    let mut expected: BTreeSet<String> = valid.iter().map(|s| s.to_string()).collect();
    expected.insert("18446744073709551615".to_owned());
    assert_eq!(stored, expected);

    #[derive(QueryableByName)]
    struct Rejected {
        #[diesel(sql_type = Bytea)]
        raw: Vec<u8>,
        #[diesel(sql_type = Text)]
        reason: String,
    }
    let rejected = diesel::sql_query("SELECT raw, reason FROM rejected_readings")
        .load::<Rejected>(&mut db.conn())
        .unwrap();
    assert_eq!(rejected.len(), raws.len());
    for raw in &raws {
        let row = rejected
            .iter()
            .find(|r| &r.raw == raw)
            .unwrap_or_else(|| panic!("{:?} not stored verbatim", String::from_utf8_lossy(raw)));
        let want = if raw.starts_with(b"{") {
            "invalid_customer_id"
        } else {
            "invalid_utf8"
        };
        assert_eq!(row.reason, want, "{:?}", String::from_utf8_lossy(raw));
    }
    // Every table is still there.
    for table in [
        "readings",
        "rejected_readings",
        "anomalies",
        "alerts",
        "detector_state",
    ] {
        db.count(&format!("SELECT count(*) AS n FROM {table}"));
    }
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn http_serves_health_and_metrics_only() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    let mut daemon = setup.spawn_run_started();
    for path in [
        "/",
        "/config",
        "/readings",
        "/debug",
        "/metrics/../config",
        "/env",
    ] {
        assert_eq!(daemon.get(path).0, 404, "{path}");
    }
    assert_eq!(daemon.get("/metrics").0, 200);
    assert_eq!(daemon.stop(), 0);
}
