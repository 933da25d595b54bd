//! `produce` as a user meets it: lines of a file or a pipe become records, as they are, keyed by
//! the customer each names; the processor turns them into rows and rejects. Its own bad input
//! (no file, a directory, a broker that is down or goes away, a bad flag) gets a clear error and
//! exit 1 or 2, with the counts of what was and was not acknowledged.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text};
use rdkafka::message::Message;

use crate::broker::PrivateBroker;
use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(90);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn file_of(bytes: &[u8]) -> tempfile::TempPath {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.into_temp_path()
}

/// A setup of its own topics for tests without a processor: `produce` needs no database, but
/// the configuration must be valid all the same.
fn without_db() -> Setup {
    Setup {
        db_url: "postgres://postgres@127.0.0.1:1/unused".to_owned(),
        ..Setup::new_without_db()
    }
}

/// `produce` with `args` and the setup's environment, to completion.
fn produce(setup: &Setup, args: &[&str]) -> Output {
    let mut all = vec!["produce"];
    all.extend_from_slice(args);
    let out = setup.command(&all).output().expect("run produce");
    if log_enabled() {
        eprintln!("produce: {}\n{}", stdout(&out), stderr(&out));
    }
    out
}

/// A time `seconds_ago` before now, as the native timestamp form.
fn ago(seconds_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(seconds_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Every record on `topic` at `brokers` as (key, value), from the beginning, once `expected`
/// have arrived (and a little longer, so an extra one would show).
fn records_at(brokers: &str, topic: &str, expected: usize) -> Vec<(Option<String>, Vec<u8>)> {
    let consumer = reader_at(brokers, topic);
    let mut out = Vec::new();
    let take = |out: &mut Vec<_>, wait: Duration| {
        while let Some(Ok(m)) = consumer.poll(wait) {
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            out.push((key, m.payload().unwrap_or_default().to_vec()));
        }
    };
    wait_for(&format!("{expected} records on {topic}"), DEADLINE, || {
        take(&mut out, Duration::from_millis(100));
        (out.len() >= expected).then_some(())
    });
    take(&mut out, Duration::from_millis(1000));
    out
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Stored {
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Integer)]
    heart_rate: i32,
    /// Null when unknown, and while `readings` has no such column yet (read through jsonb).
    #[diesel(sql_type = Nullable<Text>)]
    device_id: Option<String>,
}

/// The stored reading of `customer`, if any.
fn stored(db: &TestDb, customer: &str) -> Option<Stored> {
    diesel::sql_query(
        "SELECT event_id::text AS event_id, customer_id, heart_rate::int AS heart_rate, \
         to_jsonb(r) ->> 'device_id' AS device_id FROM readings r WHERE customer_id = $1",
    )
    .bind::<Text, _>(customer)
    .get_results::<Stored>(&mut db.conn())
    .unwrap()
    .pop()
}

#[derive(QueryableByName)]
struct Reject {
    #[diesel(sql_type = diesel::sql_types::Binary)]
    raw: Vec<u8>,
    #[diesel(sql_type = Text)]
    reason: String,
}

#[test]
fn a_file_of_mixed_formats_and_broken_lines_lands_as_rows_and_rejects_keyed_by_customer() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let native = format!(
        r#"{{"event_id":"{}","customer_id":"CUST-P1","timestamp":"{}","heart_rate":72,"device_id":"watch-1","activity":"rest"}}"#,
        ids[0],
        ago(30)
    );
    // No event_id (derived), an integer customer id, a fractional rate (rounded: 73).
    let native_derived = format!(
        r#"{{"customer_id":42,"timestamp":"{}","heart_rate":72.5}}"#,
        ago(29)
    );
    let fhir = format!(
        r#"{{"resourceType":"Observation","id":"{}","status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}}]}}],"code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}}]}},"subject":{{"reference":"Patient/CUST-P3"}},"device":{{"reference":"Device/watch-7"}},"effectiveDateTime":"{}","valueQuantity":{{"value":64,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}}}"#,
        ids[1],
        ago(28)
    );
    let omh = format!(
        r#"{{"header":{{"id":"{}","creation_date_time":"{}","schema_id":{{"namespace":"omh","name":"heart-rate","version":"2.0"}},"user_id":"CUST-P4"}},"body":{{"heart_rate":{{"value":88,"unit":"beats/min"}},"effective_time_frame":{{"date_time":"{}"}},"temporal_relationship_to_physical_activity":"at rest"}}}}"#,
        ids[2],
        ago(26),
        ago(27)
    );
    let no_rate = format!(r#"{{"customer_id":"CUST-P7","timestamp":"{}"}}"#, ago(25));
    // Over validation.max_message_bytes (64 KiB), under librdkafka's message.max.bytes: sent,
    // and rejected by the processor.
    let too_large = format!(
        r#"{{"customer_id":"CUST-P9","timestamp":"{}","heart_rate":70,"pad":"{}"}}"#,
        ago(24),
        "x".repeat(70_000)
    );
    // "not json" ends in \r\n: the terminator is not part of the value. The empty line is sent
    // as an empty value. The last line has no terminator at all.
    let input = format!(
        "{native}\n{native_derived}\n{fhir}\n{omh}\nnot json\r\n[1]\n\n{no_rate}\n{too_large}"
    );
    let file = file_of(input.as_bytes());
    let lines = 9;

    let out = produce(&setup, &[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "sent {lines} records to {}: {lines} acknowledged, 0 not acknowledged",
            setup.topic
        )),
        "{}",
        stdout(&out)
    );

    // On the topic: each line as it is, keyed by the customer it names, unkeyed when none.
    let keys: BTreeMap<Vec<u8>, Option<String>> = records_at(&brokers(), &setup.topic, lines)
        .into_iter()
        .map(|(k, v)| (v, k))
        .collect();
    assert_eq!(keys.len(), lines, "one record per line, none twice");
    let key = |line: &str| keys.get(line.as_bytes()).cloned();
    assert_eq!(key(&native), Some(Some("CUST-P1".to_owned())));
    assert_eq!(key(&native_derived), Some(Some("42".to_owned())));
    assert_eq!(key("not json"), Some(None));
    assert_eq!(key("[1]"), Some(None));
    assert_eq!(key(""), Some(None));
    assert_eq!(key(&no_rate), Some(Some("CUST-P7".to_owned())));
    assert_eq!(key(&too_large), Some(Some("CUST-P9".to_owned())));

    // The processor's verdicts.
    let mut daemon = setup.spawn_run_started();
    wait_for("every record committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == lines as i64).then_some(())
    });
    let first = stored(&db, "CUST-P1").expect("the native reading");
    assert_eq!(
        (first.event_id.as_str(), first.heart_rate),
        (ids[0].as_str(), 72)
    );
    let derived = stored(&db, "42").expect("the integer customer's reading");
    assert_eq!((derived.heart_rate, derived.device_id), (73, None));
    let rejects: BTreeMap<Vec<u8>, String> =
        diesel::sql_query("SELECT raw, reason FROM rejected_readings")
            .get_results::<Reject>(&mut db.conn())
            .unwrap()
            .into_iter()
            .map(|r| (r.raw, r.reason))
            .collect();
    let reason = |line: &str| rejects.get(line.as_bytes()).map(String::as_str);
    assert_eq!(reason("not json"), Some("malformed_json"), "{rejects:?}");
    assert_eq!(reason("[1]"), Some("not_an_object"));
    assert_eq!(reason(""), Some("malformed_json"));
    assert_eq!(reason(&no_rate), Some("missing_field"));
    assert_eq!(reason(&too_large), Some("too_large"));

    // The device is stored once readings.device_id exists (issue 19).
    assert_eq!(
        first.device_id.as_deref(),
        Some("watch-1"),
        "native device_id"
    );
    // FHIR and OMH: their keys and rows need the validator of the formats (issue 19).
    assert_eq!(key(&fhir), Some(Some("CUST-P3".to_owned())), "FHIR key");
    assert_eq!(key(&omh), Some(Some("CUST-P4".to_owned())), "OMH key");
    assert_eq!(reason(&fhir), None, "FHIR rejected");
    assert_eq!(reason(&omh), None, "OMH rejected");
    assert_eq!(
        stored(&db, "CUST-P3"),
        Some(Stored {
            event_id: ids[1].clone(),
            customer_id: "CUST-P3".to_owned(),
            heart_rate: 64,
            device_id: Some("watch-7".to_owned()),
        })
    );
    assert_eq!(
        stored(&db, "CUST-P4"),
        Some(Stored {
            event_id: ids[2].clone(),
            customer_id: "CUST-P4".to_owned(),
            heart_rate: 88,
            device_id: None,
        })
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM readings"), 4);
    assert_eq!(db.count("SELECT count(*) AS n FROM rejected_readings"), 5);
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn produce_reads_standard_input_from_a_pipe() {
    let setup = without_db();
    let lines: Vec<String> = (0..3)
        .map(|i| {
            format!(
                r#"{{"customer_id":"PIPE-{i}","timestamp":"{}","heart_rate":{}}}"#,
                ago(10),
                60 + i
            )
        })
        .collect();
    // `-` is standard input too; here FILE is absent.
    let mut child = setup
        .command(&["produce"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in &lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("sent 3 records to") && stdout(&out).contains("3 acknowledged"),
        "{}",
        stdout(&out)
    );
    let mut got = records_at(&brokers(), &setup.topic, 3);
    got.sort();
    let mut want: Vec<(Option<String>, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (Some(format!("PIPE-{i}")), l.as_bytes().to_vec()))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_missing_file_or_a_directory_exits_1_naming_it_and_sends_nothing() {
    let setup = without_db();
    let out = produce(&setup, &["/nonexistent/readings.jsonl"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot open /nonexistent/readings.jsonl")
            && stderr(&out).contains("nothing was sent"),
        "{}",
        stderr(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = produce(&setup, &[dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "cannot read {}: it is a directory",
            dir.path().display()
        )),
        "{}",
        stderr(&out)
    );
    // Then one good line: it is the only record on the topic.
    let file = file_of(b"{\"customer_id\":\"ONLY\"}\n");
    let out = produce(&setup, &[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(records_at(&brokers(), &setup.topic, 1).len(), 1);
}

#[test]
fn a_broker_that_is_down_exits_1_in_bounded_time_saying_nothing_was_sent() {
    let setup = without_db().with("HEARTBEAT__KAFKA__BROKERS", "127.0.0.1:1");
    // The delivery timeout bounds the wait; 3 s here instead of the default 30 s.
    let config = file_of(b"[kafka.librdkafka]\n\"message.timeout.ms\" = \"3000\"\n");
    let file = file_of(b"{\"customer_id\":\"C1\"}\n{\"customer_id\":\"C2\"}\n");
    let started = Instant::now();
    let out = produce(
        &setup,
        &["--config", config.to_str().unwrap(), file.to_str().unwrap()],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        stdout(&out).contains("sent 0 records to")
            && stdout(&out).contains("0 acknowledged, 0 not acknowledged"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("no answer from the kafka brokers at 127.0.0.1:1")
            && stderr(&out).contains("nothing was read from"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_broker_that_goes_away_midway_stops_the_reading_and_counts_what_was_not_acknowledged() {
    let broker = PrivateBroker::start();
    let setup = without_db().with("HEARTBEAT__KAFKA__BROKERS", &broker.brokers());
    let config = file_of(b"[kafka.librdkafka]\n\"message.timeout.ms\" = \"3000\"\n");
    let mut child = setup
        .command(&["produce", "--config", config.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let line = |i: usize| format!(r#"{{"customer_id":"MID-{i}","heart_rate":70}}"#);
    for i in 1..=3 {
        writeln!(stdin, "{}", line(i)).unwrap();
    }
    stdin.flush().unwrap();
    assert_eq!(records_at(&broker.brokers(), &setup.topic, 3).len(), 3);
    broker.proxy.cut();
    // Lines keep coming; once a record times out, produce stops reading and exits.
    let mut i = 4;
    let status = wait_for("produce to give up", DEADLINE, || {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        // A write after produce stopped reading may fail (closed pipe): that is the point.
        let _ = writeln!(stdin, "{}", line(i)).and_then(|()| stdin.flush());
        i += 1;
        None
    });
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    assert_eq!(status.code(), Some(1), "{stderr}");
    // "sent N records to T: 3 acknowledged, N-3 not acknowledged"
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    let sent: u64 = summary.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(sent >= 4 && sent < i as u64, "{summary}");
    assert!(
        summary.ends_with(&format!(": 3 acknowledged, {} not acknowledged", sent - 3)),
        "{summary}"
    );
    assert!(
        stderr.contains(&format!(
            "{} of {sent} records were not acknowledged; the first was line 4:",
            sent - 3
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "stopped reading standard input after line {sent}: the rest was not sent"
        )),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_the_reading_and_exits_0_once_what_was_sent_is_acknowledged() {
    let setup = without_db();
    let mut child = setup
        .command(&["produce", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The pipe stays open: produce waits for a third line when the signal comes.
    let mut stdin = child.stdin.take().unwrap();
    for i in 1..=2 {
        writeln!(stdin, r#"{{"customer_id":"SIG-{i}"}}"#).unwrap();
    }
    stdin.flush().unwrap();
    assert_eq!(records_at(&brokers(), &setup.topic, 2).len(), 2);
    // SAFETY: a signal to the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = wait_for("produce to stop", DEADLINE, || child.try_wait().unwrap());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(": 2 acknowledged, 0 not acknowledged"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("stopped by a signal after line 2 of standard input"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_line_too_large_for_the_producer_is_counted_and_the_others_still_go() {
    let setup = without_db();
    // librdkafka's message.max.bytes is 1,000,000 by default.
    let huge = format!(
        r#"{{"customer_id":"BIG","pad":"{}"}}"#,
        "x".repeat(2_000_000)
    );
    let input = format!("{{\"customer_id\":\"A\"}}\n{huge}\n{{\"customer_id\":\"B\"}}\n");
    let file = file_of(input.as_bytes());
    let out = produce(&setup, &[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("sent 3 records to")
            && stdout(&out).contains(": 2 acknowledged, 1 not acknowledged"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("1 of 3 records were not acknowledged; the first was line 2"),
        "{}",
        stderr(&out)
    );
    let mut keys: Vec<Option<String>> = records_at(&brokers(), &setup.topic, 2)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    assert_eq!(keys, vec![Some("A".to_owned()), Some("B".to_owned())]);
}

#[test]
fn a_bad_flag_an_empty_topic_or_an_invalid_config_exits_2() {
    for args in [&["produce", "--bogus"][..], &["produce", "--topic", ""][..]] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    // An invalid configuration is exit 2 too, before anything is read or sent.
    let out = without_db()
        .with("HEARTBEAT__KAFKA__TOPICS__PARTITIONS", "0")
        .command(&["produce", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kafka.topics.partitions"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(BIN)
        .args(["produce", "--version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}
