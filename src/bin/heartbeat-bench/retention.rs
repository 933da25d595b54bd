//! `heartbeat-bench retention`: what one retention pass costs (SPEC section 5, "Retention"). A
//! fresh database holds `rows` readings on an expired day and as many on a day kept, a third as
//! many anomalies on each (the pipeline's proportion at 100,000 customers), and a tenth as many
//! rejects on each; then one pass as the processor's storage upkeep runs it: the expired day of
//! readings dropped whole (`heartbeat_drop_expired_partitions`), then the other tables' expired
//! rows deleted in rounds (`heartbeat_expire_rows`, [`ROWS_PER_ROUND`] per table and round).
//! Prints the time of each step, the rows per second of the deletes, and what is left.

use std::time::Instant;

use diesel::prelude::*;
use heartbeat_pipeline::db::queries::{drop_expired_partitions, expire_rows, ROWS_PER_ROUND};

use crate::services::{fresh_database, scalar};

/// Days kept: the expired rows are 40 days old, the kept ones 1 day.
const KEEP_DAYS: i32 = 30;

pub(super) fn retention(rows: u64) -> anyhow::Result<()> {
    let (db, url, mut admin) = fresh_database("hb_bench_retention")?;
    let result = measure(&url, rows as i64);
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

fn measure(url: &str, rows: i64) -> anyhow::Result<()> {
    let mut c = PgConnection::establish(url)?;
    heartbeat_pipeline::db::migrate(&mut c)?;
    let (anomalies, rejects) = (rows / 3, rows / 10);
    println!(
        "filling: {rows} readings, {anomalies} anomalies and {rejects} rejects on an expired day, \
         as many on a kept day ..."
    );
    for (day, age) in ["40 days", "1 day"].into_iter().enumerate() {
        let at = format!("date_trunc('day', now() - interval '{age}') + interval '12 hours'");
        diesel::sql_query(format!("SELECT heartbeat_ensure_day_partition({at})"))
            .execute(&mut c)?;
        diesel::sql_query(format!(
            "INSERT INTO readings (event_id, customer_id, recorded_at, heart_rate, class, \
             kafka_partition, kafka_offset) SELECT gen_random_uuid(), 'CUST-' || (i % 100000), \
             {at} + (i % 36000) * interval '1 second', 72, 'normal', i % 6, i \
             FROM generate_series(1, {rows}) i"
        ))
        .execute(&mut c)?;
        diesel::sql_query(format!(
            "INSERT INTO anomalies (event_id, customer_id, kind, heart_rate, recorded_at, details) \
             SELECT gen_random_uuid(), 'CUST-' || (i % 100000), 'spike', 150, \
             {at} + (i % 36000) * interval '1 second', '{{\"class\":\"high\"}}' \
             FROM generate_series(1, {anomalies}) i"
        ))
        .execute(&mut c)?;
        diesel::sql_query(format!(
            "INSERT INTO rejected_readings (raw, reason, detail, kafka_topic, kafka_partition, \
             kafka_offset, rejected_at) SELECT convert_to('{{\"heart_rate\": \"x' || i || '\"}}', \
             'UTF8'), 'wrong_type', 'heart_rate: expected a JSON number', 'heartbeats', i % 6, \
             i + {day} * {rejects}, {at} FROM generate_series(1, {rejects}) i"
        ))
        .execute(&mut c)?;
    }
    diesel::sql_query("VACUUM ANALYZE").execute(&mut c)?;

    let started = Instant::now();
    let dropped = drop_expired_partitions(&mut c, KEEP_DAYS)?;
    let drop_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let deleted = expire_rows(&mut c, KEEP_DAYS, ROWS_PER_ROUND)?;
    let delete_s = started.elapsed().as_secs_f64();
    let deleted_rows: i64 = deleted.values().sum();
    println!(
        "readings: {rows} rows of the expired day dropped as {} partition(s) in {:.3} s",
        dropped.len(),
        drop_s
    );
    println!(
        "other tables: {deleted_rows} expired rows deleted in {delete_s:.2} s \
         ({:.0} rows/s, {ROWS_PER_ROUND} per table and round): {}",
        deleted_rows as f64 / delete_s.max(1e-6),
        deleted
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "left: readings {}, anomalies {}, rejected_readings {}",
        scalar(&mut c, "SELECT count(*) AS n FROM readings")?,
        scalar(&mut c, "SELECT count(*) AS n FROM anomalies")?,
        scalar(&mut c, "SELECT count(*) AS n FROM rejected_readings")?,
    );
    Ok(())
}
