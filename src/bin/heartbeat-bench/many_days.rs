//! `heartbeat-bench many-days`: a producer whose clock is wrong (issue 19). One customer's readings,
//! one per UTC day on `days` distinct days ending [`NEWEST_DAYS_AGO`] days ago, all stamped now by
//! Kafka, run through the real processor twice, each into a fresh database: with the default
//! configuration (`validation.max_age_days` 30: every one `stale_timestamp`, no partition made)
//! and with `validation.max_age_days = 0` (no bound: every one stored, one day partition each,
//! made on demand). Before the bulk creation of partitions the second took 66 s for 3,000 days
//! (45 readings/s).

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{SecondsFormat, TimeDelta, Utc};
use diesel::prelude::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;

use crate::load::queue;
use crate::processors::{run_processors_with, Pass};
use crate::services::{brokers, create_topics, fresh_database, scalar, unique};

/// The newest reading is this many days old: far beyond the default bound of 30 days.
const NEWEST_DAYS_AGO: i64 = 3_100;

/// The customer of every reading: one customer, so one Kafka partition and one writer's batches
/// carry all the days.
const CUSTOMER: &str = "SKEWED";

pub(super) fn many_days(days: u64) -> anyhow::Result<()> {
    let now = Utc::now();
    let oldest = now - TimeDelta::days(NEWEST_DAYS_AGO + days as i64 - 1);
    if oldest.date_naive() <= chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default() {
        bail!("--days {days} reaches before 1970, where timestamps are invalid");
    }
    let topic = unique("bench_many_days");
    create_topics(&[&topic])?;
    println!("preloading {days} readings of one customer, one per day, the newest {NEWEST_DAYS_AGO} days old ...");
    preload_days(&topic, days)?;
    for (name, env) in [
        ("default config, all stale", &[][..]),
        (
            "max_age_days = 0, all stored",
            &[
                ("HEARTBEAT__VALIDATION__MAX_AGE_DAYS", "0"),
                // Kept: an archive replayed on purpose is not dropped at start.
                ("HEARTBEAT__STORAGE__RETENTION_DAYS", "0"),
            ][..],
        ),
    ] {
        let (db, url, mut admin) = fresh_database("hb_bench")?;
        let result = run_processors_with(&topic, days, &url, 1, env).and_then(|p| {
            let mut conn = PgConnection::establish(&url)?;
            Ok((p, old_partitions(&mut conn)?))
        });
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&mut admin);
        let (p, partitions): (Pass, i64) = result?;
        println!(
            "{name:<30} {:>7.2} s first to last record, {:>8.0} readings/s; {:>7.2} s from start \
             (group join included), {:>8.0} readings/s; {partitions} past day partitions",
            p.seconds,
            p.rate,
            p.wall_seconds,
            days as f64 / p.wall_seconds.max(1e-3)
        );
    }
    Ok(())
}

/// Fills `topic` with one reading per day, oldest first, without a timestamp of their own: the
/// producer stamps them now (CreateTime), as a producer whose clock is wrong only in the payload.
fn preload_days(topic: &str, days: u64) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let today = Utc::now().date_naive();
    for k in 0..days as i64 {
        let day = today - TimeDelta::days(NEWEST_DAYS_AGO + days as i64 - 1 - k);
        let at = day
            .and_hms_opt(12, 0, 0)
            .context("noon of a day")?
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let value = format!(r#"{{"customer_id":"{CUSTOMER}","timestamp":"{at}","heart_rate":72}}"#);
        queue(
            &producer,
            BaseRecord::to(topic).key(CUSTOMER).payload(value.as_str()),
        );
    }
    producer.flush(Timeout::After(Duration::from_secs(60)))?;
    Ok(())
}

/// Partitions of `readings` for days before today (a processor makes today's and the next ones
/// ahead at start).
fn old_partitions(conn: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(scalar(
        conn,
        "SELECT count(*) AS n FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
         WHERE p.relname = 'readings' AND c.relname ~ '^readings_[0-9]{8}$' \
         AND to_date(substr(c.relname, 10), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date",
    )?)
}
