//! The alert burden where people look, through the real binary: the alert metrics of SPEC
//! section 6 on `/metrics`, the lines `inspect` prints, and the fleet dashboard's burden and open
//! activated alerts panels, over episodes made with readings of chosen times (synthetic minutes
//! apart, so no test waits real minutes for a sustain). And the open alerts gauge after
//! partitions move between two processors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Double, Nullable};
use rdkafka::producer::Producer;
use rdkafka::util::Timeout;

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(120);

/// Long enough that no customer falls silent while a test runs: a silence activates at once and
/// would add to the counts.
const NO_SILENCE_MS: &str = "3600000";

/// One reading at rest: customer, seconds after the base time, heart rate.
type Sent = (String, i64, i16);

/// A whole hour a day ago, so that every reading is in the past.
fn base() -> DateTime<Utc> {
    (Utc::now() - TimeDelta::days(1))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
}

/// `count` readings of `customer` at `hr`, every `step` seconds from `from`.
fn series(customer: &str, (from, step, count): (i64, i64, i64), hr: i16) -> Vec<Sent> {
    (0..count)
        .map(|i| (customer.to_owned(), from + step * i, hr))
        .collect()
}

/// Sends `readings` in order, keyed by customer, and waits until every one is committed.
fn send(setup: &Setup, base: DateTime<Utc>, readings: &[Sent]) {
    let p = producer();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (customer, secs, hr) in readings {
        let at =
            (base + TimeDelta::seconds(*secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let value = format!(
            r#"{{"customer_id":"{customer}","timestamp":"{at}","heart_rate":{hr},"activity":"rest"}}"#
        );
        queue_keyed(&p, &setup.topic, customer, &value, now_ms);
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    wait_for("every record committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == readings.len() as i64).then_some(())
    });
}

/// The value of the series `name{labels}` (labels as rendered, e.g. `kind="spike"`).
fn series_value(daemon: &Daemon, name: &str, labels: &str) -> f64 {
    let (status, body) = daemon.get("/metrics");
    assert_eq!(status, 200);
    let prefix = format!("{name}{{{labels}}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {prefix} in\n{body}"))
}

/// The lines of the block of `text` whose title line starts with `title`, up to a blank line.
fn block<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(title));
    assert!(lines.next().is_some(), "no block {title:?} in:\n{text}");
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect()
}

/// Whether `lines` hold `label`, then only `value` (whatever the padding).
fn has(lines: &[&str], label: &str, value: &str) -> bool {
    lines.iter().any(|l| {
        l.strip_prefix(label)
            .is_some_and(|rest| rest.trim() == value)
    })
}

/// The rawSql of the panel titled `title` of a dashboard of deploy/grafana/dashboards/.
fn panel_sql(dashboard: &str, title: &str) -> String {
    let path = format!(
        "{}/deploy/grafana/dashboards/{dashboard}",
        env!("CARGO_MANIFEST_DIR")
    );
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard"))
            .expect("a dashboard is JSON");
    d["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["title"] == title)
        .and_then(|p| p["targets"][0]["rawSql"].as_str())
        .unwrap_or_else(|| panic!("no panel {title:?} in {dashboard}"))
        .to_owned()
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Nullable<Double>)]
    v: Option<f64>,
}

#[test]
fn an_activated_a_short_and_a_pending_episode_show_in_metrics_inspect_and_the_dashboard() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__DETECTOR__SILENCE_AFTER_MS", NO_SILENCE_MS);
    let mut daemon = setup.spawn_run_started();
    let base = base();
    let mut readings = Vec::new();
    // Fifteen minutes at rest at 125: tachycardia, activated after ten, still open.
    readings.extend(series("PAGED", (0, 60, 16), 125));
    // A three-minute burst, then normal (more than the spike window later, so no spike):
    // resolved `short`.
    readings.extend(series("BURST", (0, 10, 18), 125));
    readings.extend(series("BURST", (300, 10, 3), 80));
    // Four minutes at 125: open, not activated yet.
    readings.extend(series("PENDING", (0, 60, 5), 125));
    // Fifteen calm minutes.
    readings.extend(series("CALM", (0, 60, 16), 70));
    send(&setup, base, &readings);

    // The gauge is counted once a second.
    wait_for("the open alerts gauge", DEADLINE, || {
        (daemon.metric_sum("heartbeat_alerts_open") == 1.0).then_some(())
    });
    let tachycardia = r#"kind="tachycardia""#;
    assert_eq!(
        series_value(&daemon, "heartbeat_alerts_activated_total", tachycardia),
        1.0
    );
    assert_eq!(daemon.metric_sum("heartbeat_alerts_activated_total"), 1.0);
    assert_eq!(
        series_value(
            &daemon,
            "heartbeat_alerts_suppressed_total",
            r#"kind="tachycardia",reason="short""#
        ),
        1.0
    );
    assert_eq!(daemon.metric_sum("heartbeat_alerts_suppressed_total"), 1.0);
    assert_eq!(
        series_value(&daemon, "heartbeat_alerts_open", tachycardia),
        1.0
    );
    // Every kind and reason has its series from the start.
    assert_eq!(
        series_value(
            &daemon,
            "heartbeat_alerts_suppressed_total",
            r#"kind="silent",reason="muted""#
        ),
        0.0
    );
    assert_eq!(daemon.stop(), 0);

    let out = setup.command(&["inspect"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // One of the four customers is paged now.
    assert!(
        text.lines().any(|l| {
            let l = l.trim();
            l.starts_with("customers paged")
                && l.ends_with("1  (25.0% of customers: an activated open alert)")
        }),
        "{text}"
    );
    let activated = block(&text, "activated open alerts by kind");
    assert!(
        has(&activated, "tachycardia", "1") && activated.len() == 1,
        "{text}"
    );
    let pending = block(&text, "pending open alerts by kind");
    assert!(
        has(&pending, "tachycardia", "1") && pending.len() == 1,
        "{text}"
    );
    // 1 activated episode / (4 customers * 15 minutes of readings) = 24 per customer-day.
    let burden = block(&text, "alert burden");
    for (label, value) in [
        ("activated episodes", "1"),
        ("customers with readings", "4"),
        ("hours covered", "0.25"),
        ("customer-days", "0.042"),
        ("per customer-day", "24.000"),
    ] {
        assert!(
            has(&burden, label, value),
            "no `{label} {value}` in:\n{text}"
        );
    }

    // The dashboard's burden is the same figure, and its table lists the one paging episode.
    let sql = panel_sql("fleet.json", "Alert burden (activated per customer-day)");
    let v: Value = diesel::sql_query(format!(
        r#"SELECT "activated per customer-day"::float8 AS v FROM ({sql}) p"#
    ))
    .get_result(&mut db.conn())
    .expect("run the burden panel's query");
    assert!(v.v.is_some_and(|v| (v - 24.0).abs() < 1e-9), "{:?}", v.v);
    let sql = panel_sql("fleet.json", "Open activated alerts");
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM ({sql}) p WHERE customer = 'PAGED' AND kind = 'tachycardia' \
             AND activated = opened + interval '10 minutes' AND readings = 16 AND \"peak bpm\" = 125"
        )),
        1
    );
    assert_eq!(db.count(&format!("SELECT count(*) AS n FROM ({sql}) p")), 1);
}

/// The partitions `daemon` holds, by `detector_epochs` (its owner is `host:pid`).
fn held(db: &TestDb, daemon: &Daemon) -> Vec<i64> {
    let rows: Vec<Partition> = diesel::sql_query(format!(
        "SELECT kafka_partition::bigint AS n FROM detector_epochs WHERE owner LIKE '%:{}' \
         ORDER BY 1",
        daemon.pid()
    ))
    .load(&mut db.conn())
    .expect("read detector_epochs");
    rows.into_iter().map(|r| r.n).collect()
}

#[derive(QueryableByName)]
struct Partition {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Activated open episodes of the customers whose readings are on `partitions`.
fn open_on(db: &TestDb, partitions: &[i64]) -> f64 {
    if partitions.is_empty() {
        return 0.0;
    }
    let list = partitions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    db.count(&format!(
        "SELECT count(*) AS n FROM alerts a WHERE resolved_at IS NULL AND activated_at IS NOT NULL \
         AND EXISTS (SELECT 1 FROM readings r WHERE r.customer_id = a.customer_id \
                     AND r.kafka_partition IN ({list}))"
    )) as f64
}

#[test]
fn the_open_alerts_gauge_follows_the_partitions_that_move_between_processors() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__DETECTOR__SILENCE_AFTER_MS", NO_SILENCE_MS);
    let mut first = setup.spawn_run_started();
    let base = base();
    // Nine customers paged for tachycardia, on every partition (the keys are fixed, and so is
    // the producer's partitioner, murmur2: one, five and three per partition).
    const PAGED: f64 = 9.0;
    let customers: Vec<String> = (1..=9).map(|i| format!("PAGED-{i}")).collect();
    let readings: Vec<Sent> = customers
        .iter()
        .flat_map(|c| series(c, (0, 60, 16), 125))
        .collect();
    send(&setup, base, &readings);
    assert_eq!(
        db.count("SELECT count(DISTINCT kafka_partition) AS n FROM readings"),
        PARTITIONS as i64,
        "the customers cover every partition"
    );
    wait_for("the first processor's gauge", DEADLINE, || {
        (first.metric_sum("heartbeat_alerts_open") == PAGED).then_some(())
    });

    // A second processor joins and takes some partitions: each gauge counts what its partitions
    // hold, so the first one's drops.
    let mut second = setup.spawn_run();
    let (a, b) = wait_for(
        "each processor's gauge to match its partitions",
        DEADLINE,
        || {
            let (a, b) = (held(&db, &first), held(&db, &second));
            let (ga, gb) = (
                first.metric_sum("heartbeat_alerts_open"),
                second.metric_sum("heartbeat_alerts_open"),
            );
            (!a.is_empty()
                && !b.is_empty()
                && a.len() + b.len() == PARTITIONS as usize
                && ga == open_on(&db, &a)
                && gb == open_on(&db, &b))
            .then_some((ga, gb))
        },
    );
    assert!(a < PAGED && a + b == PAGED, "first {a}, second {b}");
    // Restored states are not counted again: the activations were the first processor's.
    assert_eq!(first.metric_sum("heartbeat_alerts_activated_total"), PAGED);
    assert_eq!(second.metric_sum("heartbeat_alerts_activated_total"), 0.0);

    // The second leaves: the first claims its partitions back, and their restored states count.
    assert_eq!(second.stop(), 0);
    wait_for(
        "the first processor's gauge to count every partition",
        DEADLINE,
        || (first.metric_sum("heartbeat_alerts_open") == PAGED).then_some(()),
    );
    assert_eq!(first.metric_sum("heartbeat_alerts_activated_total"), PAGED);
    assert_eq!(first.stop(), 0);
}

#[test]
fn an_activation_observed_again_after_a_group_restart_counts_once() {
    let db = TestDb::new();
    // The writer panics on its first batch, before the commit: the group restarts and reads the
    // batch again, and the new detector observes the same activation again.
    let setup = Setup::new(&db)
        .with("HEARTBEAT__DETECTOR__SILENCE_AFTER_MS", NO_SILENCE_MS)
        .with("HEARTBEAT__ALERTS__SUSTAIN_MS__TACHYCARDIA", "0")
        .with("HEARTBEAT__WRITER__PARALLELISM", "1")
        .with("HEARTBEAT_TEST_PANIC", "db_writer:1");
    let mut daemon = setup.spawn_run_started();
    // With no sustain, the first reading activates, so the first batch holds the activation.
    send(&setup, base(), &series("AGAIN", (0, 60, 3), 125));
    assert_eq!(
        daemon.metric_sum("heartbeat_actor_restarts_total"),
        1.0,
        "the writer's panic restarted the group once"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM alerts WHERE activated_at IS NOT NULL"),
        1
    );
    wait_for("the open alerts gauge", DEADLINE, || {
        (daemon.metric_sum("heartbeat_alerts_open") == 1.0).then_some(())
    });
    assert_eq!(daemon.metric_sum("heartbeat_alerts_activated_total"), 1.0);
    assert_eq!(daemon.stop(), 0);
}
