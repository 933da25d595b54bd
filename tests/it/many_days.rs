//! A producer whose clock is wrong (SPEC sections 4 and 5, issue 19): 3,000 readings of one
//! customer on 3,000 distinct days ending about 3,100 days ago, each with a Kafka timestamp of
//! now. With the default `validation.max_age_days` (30) every one is `stale_timestamp` and no day
//! partition is made for them; with 0 (no bound) every one is stored, in a partition of its own
//! UTC day, made on demand in bulk (300 of them here: each costs two index builds). Both print how long they took (the figure to compare is
//! `heartbeat-bench many-days`; before the bulk creation the stored case took 66 s).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{SecondsFormat, TimeDelta, Utc};
use rdkafka::producer::Producer;
use rdkafka::util::Timeout;

use crate::helpers::*;

/// Readings, one per day, in the stale case (the issue's 3,000).
const DAYS: i64 = 3_000;
/// Readings, one per day, in the stored case: each day costs a partition (two index builds,
/// each an fsync, 10-40 ms here), so the suite stores 300; `heartbeat-bench many-days` times
/// the 3,000.
const STORED_DAYS: i64 = 300;
/// The newest reading is this many days old.
const NEWEST_DAYS_AGO: i64 = 3_100;
/// All stale: the writer only stores rejects, done in seconds; generous for a loaded machine.
const STALE_DEADLINE: Duration = Duration::from_secs(120);
/// All stored: 300 partitions made, at 10-40 ms each here.
const STORED_DEADLINE: Duration = Duration::from_secs(120);

/// Children of `readings` for days before today (the processor makes today's and the next days'
/// ahead at start).
const OLD_PARTITIONS: &str = "SELECT count(*) AS n FROM pg_inherits i \
     JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
     WHERE p.relname = 'readings' AND c.relname ~ '^readings_[0-9]{8}$' \
     AND to_date(substr(c.relname, 10), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date";

/// Sends the 3,000 readings, oldest first, stamped now by Kafka; returns when the group has
/// committed them all, and how long that took from the first send.
fn send_and_wait(setup: &Setup, days: i64, deadline: Duration) -> Duration {
    let now = Utc::now();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let p = producer();
    let started = Instant::now();
    for k in 0..days {
        let day = now - TimeDelta::days(NEWEST_DAYS_AGO + days - 1 - k);
        let at = day
            .date_naive()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let value = format!(r#"{{"customer_id":"SKEWED","timestamp":"{at}","heart_rate":72}}"#);
        queue_keyed(&p, &setup.topic, "SKEWED", &value, now_ms);
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    wait_for("every record committed", deadline, || {
        (committed_total(&setup.group, &setup.topic) == days).then_some(())
    });
    started.elapsed()
}

#[test]
fn readings_thousands_of_days_old_are_stale_and_make_no_partition() {
    let db = TestDb::new();
    // The default bound (the suite's own default is ten years: tests/it/helpers/daemon.rs).
    let setup = Setup::new(&db).with("HEARTBEAT__VALIDATION__MAX_AGE_DAYS", "30");
    let mut daemon = setup.spawn_run_started();
    let took = send_and_wait(&setup, DAYS, STALE_DEADLINE);
    eprintln!(
        "{DAYS} stale readings over {DAYS} days: {:.1} s, {:.0} readings/s",
        took.as_secs_f64(),
        DAYS as f64 / took.as_secs_f64()
    );

    assert_eq!(
        db.count("SELECT count(*) AS n FROM rejected_readings WHERE reason = 'stale_timestamp'"),
        DAYS
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM rejected_readings"),
        DAYS
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM readings"), 0);
    assert_eq!(db.count(OLD_PARTITIONS), 0, "no partition for a stale day");
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn with_no_age_bound_readings_on_hundreds_of_old_days_are_stored_one_partition_per_day() {
    let db = TestDb::new();
    // No retention either: an archive replayed on purpose is kept, and the drop at start cannot
    // race the partitions the writer makes.
    let setup = Setup::new(&db)
        .with("HEARTBEAT__VALIDATION__MAX_AGE_DAYS", "0")
        .with("HEARTBEAT__STORAGE__RETENTION_DAYS", "0");
    let mut daemon = setup.spawn_run_started();
    let took = send_and_wait(&setup, STORED_DAYS, STORED_DEADLINE);
    eprintln!(
        "{STORED_DAYS} readings stored over {STORED_DAYS} days: {:.1} s, {:.0} readings/s",
        took.as_secs_f64(),
        STORED_DAYS as f64 / took.as_secs_f64()
    );

    assert_eq!(db.count("SELECT count(*) AS n FROM rejected_readings"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM readings"), STORED_DAYS);
    assert_eq!(
        db.count(OLD_PARTITIONS),
        STORED_DAYS,
        "one partition per day"
    );
    // Each reading lies in the partition named after its own UTC day.
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM readings WHERE tableoid::regclass::text \
             <> 'readings_' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYYMMDD')"
        ),
        0
    );
    assert_eq!(
        db.count("SELECT count(DISTINCT tableoid) AS n FROM readings"),
        STORED_DAYS
    );
    // Made without a TOAST table (and its index build): the text columns are STORAGE PLAIN.
    assert_eq!(
        db.count(&OLD_PARTITIONS.replace("WHERE", "WHERE c.reltoastrelid <> 0 AND")),
        0
    );
    assert_eq!(daemon.stop(), 0);
}
