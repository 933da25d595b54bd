//! `heartbeat-bench throughput`: readings per second end to end, against PostgreSQL's own
//! `COPY` of the same rows (and, with `--peer`, the Python peer consumer).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use diesel::prelude::*;

use crate::load::generate_seeded;
use crate::processors::{postgres_cpu_seconds, run_processors};
use crate::services::{
    brokers, count, create_topics, fresh_database, migrate, psql, unique, PARTITIONS,
};

/// Runs scripts/peer-consumer.py over `topic` into a freshly migrated database and returns
/// its rows per second.
pub(super) fn peer_consumer(topic: &str, records: u64) -> anyhow::Result<f64> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join(".local/venv/bin/python");
    let python = if venv.exists() {
        venv
    } else {
        std::path::PathBuf::from("python3")
    };
    let (db, url, mut admin) = fresh_database("hb_peer")?;
    let result = (|| {
        migrate(&url)?;
        let out = Command::new(&python)
            .arg(root.join("scripts/peer-consumer.py"))
            .args(["--brokers", &brokers(), "--topic", topic])
            .args(["--group", &unique("hb_peer"), "--dsn", &url])
            .args(["--records", &records.to_string()])
            .output()
            .with_context(|| format!("run {}", python.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "peer-consumer.py: {stdout}{} (scripts/bench.sh installs confluent-kafka and psycopg)",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = stdout.lines().last().unwrap_or_default();
        println!("{line}");
        line.rsplit(": ")
            .next()
            .and_then(|r| r.trim_end_matches(" rows/s").parse::<f64>().ok())
            .with_context(|| format!("no rate in {line:?}"))
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

/// Deletes a file when dropped.
pub(super) struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// PostgreSQL's own binary COPY of every row of `readings` at `source_url` into the empty
/// `readings` of a freshly migrated database: (rows, seconds of the COPY FROM alone, the server's
/// CPU seconds in it).
pub(super) fn copy_baseline(source_url: &str) -> anyhow::Result<(i64, f64, f64)> {
    let file = std::env::temp_dir().join(format!("{}.bin", unique("hb_copy")));
    let _remove = RemoveOnDrop(file.clone());
    psql(
        source_url,
        &format!(
            "\\copy (SELECT * FROM readings) TO '{}' (FORMAT binary)",
            file.display()
        ),
    )?;
    let (db, url, mut admin) = fresh_database("hb_copy")?;
    let result = (|| {
        migrate(&url)?;
        // The day partitions the rows need, as the pipeline had them.
        let mut source = PgConnection::establish(source_url)?;
        #[derive(QueryableByName)]
        struct Day {
            #[diesel(sql_type = diesel::sql_types::Timestamptz)]
            day: chrono::DateTime<chrono::Utc>,
        }
        let days: Vec<Day> = diesel::sql_query(
            "SELECT DISTINCT date_trunc('day', recorded_at, 'UTC') AS day FROM readings",
        )
        .load(&mut source)?;
        let rows = count(&mut source);
        let mut target = PgConnection::establish(&url)?;
        for d in &days {
            diesel::sql_query("SELECT heartbeat_ensure_day_partition($1)")
                .bind::<diesel::sql_types::Timestamptz, _>(d.day)
                .execute(&mut target)?;
        }
        let cpu0 = postgres_cpu_seconds();
        let started = Instant::now();
        psql(
            &url,
            &format!("\\copy readings FROM '{}' (FORMAT binary)", file.display()),
        )?;
        let seconds = started.elapsed().as_secs_f64();
        Ok((rows, seconds, postgres_cpu_seconds() - cpu0))
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

/// How many detector states the processors wrote into the database at `url` (inserts and updates
/// of `detector_state`, from PostgreSQL's statistics once their sessions have ended) and the
/// mean size of a stored state in bytes (`pg_column_size`, after PostgreSQL's compression).
pub(super) fn state_writes(url: &str) -> anyhow::Result<(i64, f64)> {
    #[derive(QueryableByName)]
    struct MeanBytes {
        #[diesel(sql_type = diesel::sql_types::Double)]
        mean_bytes: f64,
    }
    let mut conn = PgConnection::establish(url)?;
    // The processors' sessions report their counts as they end; wait until every one has.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while Instant::now() < deadline {
        #[derive(QueryableByName)]
        struct Others {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let others: Others = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .get_result(&mut conn)?;
        if others.n == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    // Partitions of a table count as the table.
    let tables: Vec<Table> = diesel::sql_query(
        "SELECT coalesce(p.relname, s.relname)::text AS name, \
                sum(s.n_tup_ins + s.n_tup_upd)::bigint AS rows \
         FROM pg_stat_user_tables s \
         LEFT JOIN pg_inherits i ON i.inhrelid = s.relid \
         LEFT JOIN pg_class p ON p.oid = i.inhparent \
         GROUP BY 1 HAVING sum(s.n_tup_ins + s.n_tup_upd) > 0 ORDER BY 2 DESC",
    )
    .load(&mut conn)?;
    let written: Vec<String> = tables
        .iter()
        .map(|t| format!("{} {}", t.name, t.rows))
        .collect();
    println!("rows inserted or updated, by table: {}", written.join(", "));
    let writes = tables
        .iter()
        .find(|t| t.name == "detector_state")
        .map_or(0, |t| t.rows);
    let m: MeanBytes = diesel::sql_query(
        "SELECT coalesce(avg(pg_column_size(state)), 0)::float8 AS mean_bytes FROM detector_state",
    )
    .get_result(&mut conn)?;
    Ok((writes, m.mean_bytes))
}

/// The server's WAL position (bytes) and checkpoints so far: what a pass wrote to the WAL, and
/// how many checkpoints (each followed by full-page images of every page first touched) ran.
fn wal_and_checkpoints(conn: &mut PgConnection) -> anyhow::Result<(f64, i64)> {
    #[derive(QueryableByName)]
    struct Wal {
        #[diesel(sql_type = diesel::sql_types::Double)]
        lsn: f64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        checkpoints: i64,
    }
    let w: Wal = diesel::sql_query(
        "SELECT (pg_current_wal_lsn() - '0/0')::float8 AS lsn, \
                (checkpoints_timed + checkpoints_req)::bigint AS checkpoints FROM pg_stat_bgwriter",
    )
    .get_result(conn)?;
    Ok((w.lsn, w.checkpoints))
}

pub(super) fn throughput(
    records: u64,
    replicas: u32,
    customers: u64,
    peer: bool,
    rounds: u32,
) -> anyhow::Result<()> {
    let topic = unique("bench_throughput");
    create_topics(&[&topic])?;
    println!(
        "preloading {records} simulated readings of {customers} customers into {topic} \
         ({PARTITIONS} partitions) ..."
    );
    let t = Instant::now();
    generate_seeded(&topic, records, customers, 1)?;
    println!("preloaded in {:.1} s", t.elapsed().as_secs_f64());
    // Each round: the pipeline into a fresh database, then COPY of its rows, so each ratio is of
    // two passes a minute apart; the median of several says more than any one on a noisy machine.
    let mut passes: Vec<(f64, f64)> = Vec::new();
    for round in 1..=rounds {
        if rounds > 1 {
            println!("round {round} of {rounds}");
        }
        passes.push(throughput_round(&topic, records, replicas)?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rates: Vec<f64> = passes.iter().map(|(rate, _)| *rate).collect();
    if rounds > 1 {
        let ratios: Vec<f64> = passes.iter().map(|(rate, copy)| rate / copy).collect();
        let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        println!(
            "ratio pipeline / COPY over {rounds} rounds: {}; median {:.3}; pipeline median {:.0} \
             readings/s",
            listed.join(", "),
            median(ratios.clone()),
            median(rates.clone())
        );
    }
    if peer {
        let peer_rate = peer_consumer(&topic, records)?;
        println!(
            "ratio pipeline / Python peer: {:.2} (target >= 3{})",
            median(rates) / peer_rate,
            if rounds > 1 {
                "; the pipeline's median"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// One pass of the processors over `topic` into a fresh database and COPY of the rows it stored,
/// printed: (pipeline readings/s, COPY rows/s).
fn throughput_round(topic: &str, records: u64, replicas: u32) -> anyhow::Result<(f64, f64)> {
    let (db, url, mut admin) = fresh_database("hb_bench")?;
    let result = (|| {
        let (wal0, checkpoints0) = wal_and_checkpoints(&mut admin)?;
        let p = run_processors(topic, records, &url, replicas)?;
        let (wal1, checkpoints1) = wal_and_checkpoints(&mut admin)?;
        println!(
            "pipeline ({replicas} processor{}): {:.0} readings/s ({records} in {:.2} s from the \
             first row; {:.2} s from start, group join included)",
            if replicas == 1 { "" } else { "s" },
            p.rate,
            p.seconds,
            p.wall_seconds
        );
        let rss: Vec<String> = p
            .peak_rss_kib
            .iter()
            .map(|k| format!("{:.0} MiB", *k as f64 / 1024.0))
            .collect();
        println!(
            "peak RSS per processor: {} (target <= 256 MiB)",
            rss.join(", ")
        );
        println!(
            "WAL written during the pass: {:.0} MB ({:.0} bytes per reading); server \
             checkpoints during it: {}",
            (wal1 - wal0) / 1e6,
            (wal1 - wal0) / records as f64,
            checkpoints1 - checkpoints0
        );
        let (writes, mean_bytes) = state_writes(&url)?;
        println!(
            "detector states written: {writes} ({:.3} per reading, about {:.0} bytes each: \
             {:.1} state bytes per reading)",
            writes as f64 / records as f64,
            mean_bytes,
            writes as f64 * mean_bytes / records as f64
        );
        let (rows, seconds, copy_cpu) = copy_baseline(&url)?;
        let copy_rate = rows as f64 / seconds;
        println!("COPY baseline: {copy_rate:.0} rows/s ({rows} rows in {seconds:.2} s)");
        // Wall-clock rates swing with whatever else shares the machine; CPU per row much less.
        let us_per = |cpu: f64, n: f64| cpu * 1e6 / n.max(1.0);
        let (processors_cpu, postgres_cpu) = p.cpu_in_pass;
        let in_pass = p.rate * p.seconds;
        println!(
            "CPU per reading, first row to last: processor{} {:.1} us, PostgreSQL {:.1} us; \
             COPY baseline: PostgreSQL {:.1} us per row",
            if replicas == 1 { "" } else { "s" },
            us_per(processors_cpu, in_pass),
            us_per(postgres_cpu, in_pass),
            us_per(copy_cpu, rows as f64)
        );
        println!(
            "ratio pipeline / COPY: {:.3} (target >= 0.6)",
            p.rate / copy_rate
        );
        Ok((p.rate, copy_rate))
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}
