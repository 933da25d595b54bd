//! The message contract end to end: records from an independent producer (raw bytes, every
//! compression codec, every kind of reject, duplicates) are each accounted for exactly once
//! across `readings` and `rejected_readings`, and the dead-letter topic holds exactly the rejects
//! with the headers of SPEC section 5.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(90);

fn producer(codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("compression.type", codec)
        .set("linger.ms", "20")
        .set("message.max.bytes", "2000000")
        .create()
        .expect("create test producer")
}

/// Sends `value` (None = a null value) keyed by `key`, with the record timestamp `ts_ms`.
fn send(p: &FutureProducer, topic: &str, key: &str, value: Option<&[u8]>, ts_ms: i64) {
    let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key).timestamp(ts_ms);
    if let Some(v) = value {
        record = record.payload(v);
    }
    p.send_result(record)
        .map_err(|(e, _)| e)
        .expect("queue test record");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn reading(customer: &str, ts: &str, hr: i64) -> Vec<u8> {
    format!(r#"{{"customer_id":"{customer}","timestamp":"{ts}","heart_rate":{hr}}}"#).into_bytes()
}

/// One record per reason of SPEC section 4, and the reason expected.
fn poison(now: i64) -> Vec<(&'static str, Option<Vec<u8>>)> {
    let future = chrono::DateTime::from_timestamp_millis(now + 3_600_000)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut too_large =
        br#"{"customer_id":"C1","timestamp":"2026-11-29T13:00:00Z","heart_rate":72,"pad":""#
            .to_vec();
    too_large.extend(vec![b'x'; 70_000]);
    too_large.extend(br#""}"#);
    vec![
        ("too_large", Some(too_large)),
        ("invalid_utf8", Some(b"{\"customer_id\":\"\xff\xfe\"}".to_vec())),
        ("malformed_json", Some(b"{\"customer_id\":".to_vec())),
        ("malformed_json", Some(Vec::new())),
        ("malformed_json", None),
        ("not_an_object", Some(b"[1,2,3]".to_vec())),
        ("missing_field", Some(br#"{"customer_id":"C1","heart_rate":72}"#.to_vec())),
        ("wrong_type", Some(br#"{"customer_id":"C1","timestamp":"2026-11-29T13:00:00Z","heart_rate":"72"}"#.to_vec())),
        ("invalid_customer_id", Some(br#"{"customer_id":"no spaces!","timestamp":"2026-11-29T13:00:00Z","heart_rate":72}"#.to_vec())),
        ("invalid_event_id", Some(br#"{"event_id":"not-a-uuid","customer_id":"C1","timestamp":"2026-11-29T13:00:00Z","heart_rate":72}"#.to_vec())),
        ("invalid_timestamp", Some(br#"{"customer_id":"C1","timestamp":"2026-13-01T00:00:00Z","heart_rate":72}"#.to_vec())),
        ("future_timestamp", Some(reading("C1", &future, 72))),
        // Over the tests' ten-year age bound (tests/it/helpers/daemon.rs).
        ("stale_timestamp", Some(reading("C1", "2000-01-01T00:00:00Z", 72))),
        ("unsupported_observation", Some(br#"{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]},"subject":{"reference":"Patient/C1"},"effectiveDateTime":"2026-11-29T13:00:00Z","valueQuantity":{"value":16,"unit":"/min"}}"#.to_vec())),
        ("implausible_heart_rate", Some(reading("C1", "2026-11-29T13:00:00Z", 251))),
    ]
}

#[test]
fn every_record_is_stored_or_rejected_once_and_rejects_reach_the_dead_letter_topic() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    // `run` creates the topics; start it first so the producers find them.
    let mut daemon = setup.spawn_run_started();

    let now = now_ms();
    let mut valid = 0;
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let p = producer(codec);
        for j in 0..50 {
            let customer = format!("CUST-{:05}", i * 50 + j);
            let ts = format!("2026-11-29T12:{:02}:{:02}.123456789+01:00", i, j);
            send(
                &p,
                &setup.topic,
                &customer,
                Some(&reading(&customer, &ts, 60 + j as i64)),
                now,
            );
            valid += 1;
        }
        p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    }
    // Integer customer id, explicit event id in upper case.
    let p = producer("none");
    send(&p, &setup.topic, "42", Some(br#"{"event_id":"1B4E28BA-2FA1-4D3B-A3F5-EF19B5A7633B","customer_id":42,"timestamp":"2026-11-29T13:00:00.250Z","heart_rate":72,"extra":[1,2]}"#), now);
    valid += 1;
    // Duplicates: 20 valid records sent again, byte for byte.
    for j in 0..20 {
        let customer = format!("CUST-{:05}", j);
        let ts = format!("2026-11-29T12:00:{:02}.123456789+01:00", j);
        send(
            &p,
            &setup.topic,
            &customer,
            Some(&reading(&customer, &ts, 60 + j as i64)),
            now,
        );
    }
    let poison = poison(now);
    for (_, value) in &poison {
        send(&p, &setup.topic, "poison", value.as_deref(), now);
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    let produced = valid + 20 + poison.len() as i64;

    wait_for("every record committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == produced).then_some(())
    });
    assert_eq!(db.count("SELECT count(*) AS n FROM readings"), valid);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM rejected_readings"),
        poison.len() as i64
    );
    // No offset in both tables, and every offset in one of them (duplicates aside).
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM readings r JOIN rejected_readings j \
             ON r.kafka_partition = j.kafka_partition AND r.kafka_offset = j.kafka_offset"
        ),
        0
    );
    let mut expected_reasons: BTreeMap<&str, i64> = BTreeMap::new();
    for (reason, _) in &poison {
        *expected_reasons.entry(reason).or_default() += 1;
    }
    for (reason, n) in &expected_reasons {
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM rejected_readings WHERE reason = '{reason}'"
            )),
            *n,
            "rejects with reason {reason}"
        );
    }
    // Raw bytes are kept exactly, a null value as empty.
    assert_eq!(db.count("SELECT count(*) AS n FROM rejected_readings WHERE reason = 'too_large' AND length(raw) > 70000"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM rejected_readings WHERE raw = '\\x7b22637573746f6d65725f6964223a22fffe227d'::bytea"), 1);
    // The integer id is stored as its decimal string; offsets become UTC, truncated to micros.
    assert_eq!(db.count("SELECT count(*) AS n FROM readings WHERE customer_id = '42' AND event_id = '1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b' AND recorded_at = '2026-11-29T13:00:00.25Z'"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM readings WHERE customer_id = 'CUST-00000' AND recorded_at = '2026-11-29T11:00:00.123456Z'"), 1);

    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("heartbeat_duplicates_total 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("heartbeat_rejects_total{reason=\"malformed_json\"} 3"),
        "{metrics}"
    );

    let dlq = read_topic(&format!("{}-dlq", setup.topic), poison.len());
    assert_eq!(
        dlq.len(),
        poison.len(),
        "exactly the rejects are dead-lettered"
    );
    let mut reasons: BTreeMap<String, i64> = BTreeMap::new();
    for m in &dlq {
        *reasons
            .entry(header(m, "error.reason").unwrap())
            .or_default() += 1;
        assert_eq!(m.key(), Some(&b"poison"[..]));
        assert_eq!(
            header(m, "source.topic").as_deref(),
            Some(setup.topic.as_str())
        );
        let partition: i32 = header(m, "source.partition").unwrap().parse().unwrap();
        let offset: i64 = header(m, "source.offset").unwrap().parse().unwrap();
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM rejected_readings WHERE kafka_partition = {partition} \
                 AND kafka_offset = {offset} AND reason = '{}'",
                header(m, "error.reason").unwrap()
            )),
            1,
            "the dead letter matches its reject row"
        );
        assert!(header(m, "error.detail").is_some_and(|d| !d.is_empty()));
        if header(m, "error.reason").as_deref() == Some("too_large") {
            assert_eq!(m.payload().map(<[u8]>::len), Some(65_536));
            assert_eq!(header(m, "error.truncated").as_deref(), Some("true"));
        } else {
            assert_eq!(header(m, "error.truncated"), None);
        }
    }
    let expected: BTreeMap<String, i64> = expected_reasons
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(reasons, expected);
    assert_eq!(daemon.stop(), 0);

    // Read again by a new group: no new reading, no second reject.
    let replay = Setup {
        group: unique("hb_replay"),
        ..setup.clone()
    };
    let mut daemon = replay.spawn_run();
    wait_for("the replay to commit", DEADLINE, || {
        (committed_total(&replay.group, &replay.topic) == produced).then_some(())
    });
    assert_eq!(daemon.stop(), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM readings"), valid);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM rejected_readings"),
        poison.len() as i64
    );
}

#[test]
fn generated_faults_cover_every_reject_reason_and_carry_their_ground_truth() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__GENERATOR__FAULT_RATE", "0.1");
    assert!(setup.generate(2_000, 3).success());
    let mut daemon = setup.spawn_run();
    wait_for("every record committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == 2_000).then_some(())
    });
    assert_eq!(daemon.stop(), 0);
    let readings = db.count("SELECT count(*) AS n FROM readings");
    let rejected = db.count("SELECT count(*) AS n FROM rejected_readings");
    assert_eq!(readings + rejected, 2_000);
    assert!(
        (120..=280).contains(&rejected),
        "about 10% faults: {rejected}"
    );
    assert_eq!(
        db.count("SELECT count(DISTINCT reason) AS n FROM rejected_readings"),
        heartbeat_pipeline::domain::validation::RejectReason::ALL.len() as i64,
        "every reject reason is exercised"
    );
    // Each fault's header names the reason it was rejected for.
    let records = read_topic(&setup.topic, 2_000);
    let mut faults = 0;
    for m in &records {
        if let Some(truth) =
            header(m, "x-injected").and_then(|h| h.strip_prefix("fault:").map(str::to_owned))
        {
            faults += 1;
            assert_eq!(
                db.count(&format!(
                    "SELECT count(*) AS n FROM rejected_readings WHERE kafka_partition = {} \
                     AND kafka_offset = {} AND reason = '{truth}'",
                    m.partition(),
                    m.offset()
                )),
                1,
                "the fault at {}/{} was rejected as {truth}",
                m.partition(),
                m.offset()
            );
        }
    }
    assert_eq!(faults, rejected);
}
