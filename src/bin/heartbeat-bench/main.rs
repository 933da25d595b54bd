//! `heartbeat-bench`: throughput figures you can rerun, against the real services.
//!
//! `heartbeat-bench poison [--records N] [--poison-percent P] [--rounds R]` preloads two fresh
//! topics with N records each, one clean and one with P% poison records (every reject reason in
//! turn), then runs the real `heartbeat-pipeline run` (processor only, a fresh database each
//! time) over each topic in alternation and prints records per second and the ratio
//! poisoned/clean. Timing runs from the first stored row to the last, so the consumer group's
//! join time does not count.
//!
//! `heartbeat-bench throughput [--records N] [--replicas R]` preloads N clean readings (default
//! 1,000,000; 10,000 customers, about a third anomalous by the bands) into a fresh topic, runs R
//! processors in one consumer group from the start until every row is stored, and reports
//! readings/s and each processor's peak RSS. It then copies the same rows out of `readings` and
//! times PostgreSQL's own binary `COPY ... FROM` of them into the `readings` table of a second,
//! freshly migrated database (identical schema, empty), and prints the ratio pipeline / COPY.
//!
//! `heartbeat-bench latency [--rate R] [--seconds S]` starts a processor, publishes readings at
//! a steady R per second (default 10,000, 10,000 customers) for S seconds, each stamped with the
//! time it is published, and reports publish-to-commit latency percentiles: the commit time of
//! each row's transaction (`pg_xact_commit_timestamp`, which `scripts/services.sh` turns on)
//! minus the reading's timestamp.
//!
//! `heartbeat-bench quality [--records N] [--customers C] [--rate R] [--seed S]` runs the
//! processor while `heartbeat-pipeline generate` publishes a seeded stream in real time, then
//! scores the stored anomalies against the generator's ground truth (the `x-injected` header of
//! every record): precision and recall per kind.
//!
//! Needs the local services (`scripts/services.sh up`) or `HEARTBEAT_BENCH_DATABASE_URL` (an
//! admin URL) and `HEARTBEAT_BENCH_BROKERS`. Use the release build (`scripts/bench.sh`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;

/// Partitions of the benchmark topics: the default of `kafka.topics.partitions`.
const PARTITIONS: i32 = 6;
/// How long one pass may take before the benchmark gives up.
const PASS_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Parser)]
#[command(
    name = "heartbeat-bench",
    about = "Rerunnable throughput figures for heartbeat-pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Throughput of a stream with poison records against a clean one.
    Poison {
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        #[arg(long, default_value_t = 10)]
        poison_percent: u64,
        /// Passes over each topic, alternating; the best of each is compared.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
    },
    /// Readings per second end to end against PostgreSQL's own COPY of the same rows.
    Throughput {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Processors in one consumer group.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Also time the Python consumer built like the best peers (scripts/peer-consumer.py)
        /// over the same topic into a fresh database.
        #[arg(long)]
        peer: bool,
    },
    /// Publish-to-commit latency at a steady rate.
    Latency {
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The publishing producer's `linger.ms`. Its wait counts in the latency (readings are
        /// stamped before it). Below 10 ms, at 10,000 readings/s, the local broker (tansu's
        /// memory engine, whose every fetch lists every batch stored in the partition) falls
        /// behind: docs/PERFORMANCE.md.
        #[arg(long, default_value_t = 20)]
        linger_ms: u64,
    },
    /// Precision and recall of each anomaly kind against the generator's ground truth.
    Quality {
        #[arg(long, default_value_t = 60_000)]
        records: u64,
        #[arg(long, default_value_t = 500)]
        customers: u64,
        /// Readings per second; with the customers, how often each customer reports.
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// `detector.silence_after_ms` for the run.
        #[arg(long, default_value_t = 10_000)]
        silence_after_ms: u64,
    },
}

fn admin_url() -> String {
    std::env::var("HEARTBEAT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

fn brokers() -> String {
    std::env::var("HEARTBEAT_BENCH_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// One poison record per reject reason, in turn (`None` is a null value).
fn poison_value(i: u64) -> Option<Vec<u8>> {
    let v: &[u8] = match i % 10 {
        0 => b"{\"customer_id\":",
        1 => b"\xff\xfe\xfd",
        2 => b"[1,2,3]",
        3 => br#"{"customer_id":"C1","heart_rate":72}"#,
        4 => br#"{"customer_id":"C1","timestamp":"2026-11-29T13:00:00Z","heart_rate":"72"}"#,
        5 => br#"{"customer_id":"bad id","timestamp":"2026-11-29T13:00:00Z","heart_rate":72}"#,
        6 => {
            br#"{"event_id":"nope","customer_id":"C1","timestamp":"2026-11-29T13:00:00Z","heart_rate":72}"#
        }
        7 => br#"{"customer_id":"C1","timestamp":"2026-02-30T13:00:00Z","heart_rate":72}"#,
        8 => br#"{"customer_id":"C1","timestamp":"2026-11-29T13:00:00Z","heart_rate":400}"#,
        _ => return None,
    };
    Some(v.to_vec())
}

/// Fills `topic` with `records` records, `poison_percent` of them poison, spread evenly.
fn preload(topic: &str, records: u64, poison_percent: u64) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut poison_sent = 0u64;
    for i in 0..records {
        let customer = format!("CUST-{:05}", i % 10_000);
        let value = if (i + 1) * poison_percent / 100 > poison_sent {
            poison_sent += 1;
            poison_value(poison_sent)
        } else {
            let ts = base + chrono::Duration::microseconds(i as i64);
            Some(
                format!(
                    r#"{{"customer_id":"{customer}","timestamp":"{}","heart_rate":{}}}"#,
                    ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    55 + i % 60
                )
                .into_bytes(),
            )
        };
        let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).key(&customer);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        queue(&producer, record);
    }
    producer.flush(Timeout::After(Duration::from_secs(120)))?;
    Ok(())
}

/// Queues `record`, waiting while librdkafka's queue is full: deliveries are served, then it
/// queues again.
fn queue<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    while let Err((_, r)) = producer.send(record) {
        producer.poll(Duration::from_millis(1));
        record = r;
    }
}

fn count(conn: &mut PgConnection) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM rejected_readings) AS n",
    )
    .get_result::<N>(conn)
    .map(|n| n.n)
    .unwrap_or(0)
}

struct Pass {
    /// Rows per second from the first stored row to the last.
    rate: f64,
    seconds: f64,
    /// From the processors' start to the last row (group join included).
    wall_seconds: f64,
    /// Peak resident set size of each processor, in KiB (`VmHWM`).
    peak_rss_kib: Vec<u64>,
}

/// The peak resident set size of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the processor over `topic` into a fresh database until all `records` are stored.
fn pass(topic: &str, records: u64) -> anyhow::Result<Pass> {
    let (db, url, mut admin) = fresh_database("hb_bench")?;
    let result = run_processors(topic, records, &url, 1);
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

/// Runs `replicas` processors in one group over `topic` into the database at `url` until all
/// `records` are stored, then stops them.
fn run_processors(topic: &str, records: u64, url: &str, replicas: u32) -> anyhow::Result<Pass> {
    let bin = pipeline_binary()?;
    let group = unique("hb_bench");
    let mut children: Vec<Child> = Vec::new();
    let mut http: Vec<String> = Vec::new();
    for _ in 0..replicas {
        let mut cmd = Command::new(&bin);
        pipeline_env(&mut cmd, topic, url, &group);
        let addr = format!("127.0.0.1:{}", free_port()?);
        cmd.env("HEARTBEAT__HTTP__BIND", &addr);
        http.push(addr);
        children.push(
            cmd.arg("run")
                .spawn()
                .with_context(|| format!("start {}", bin.display()))?,
        );
    }
    let started = Instant::now();
    let result = (|| {
        // Progress from the processors' own counters: a count(*) every few milliseconds would
        // take a core of PostgreSQL from the pipeline it measures.
        let mut first: Option<(Instant, i64)> = None;
        loop {
            let n: i64 = http.iter().map(|a| finished_records(a)).sum();
            let now = Instant::now();
            if n > 0 && first.is_none() {
                first = Some((now, n));
            }
            if n >= records as i64 {
                let mut conn = PgConnection::establish(url)?;
                let rows = count(&mut conn);
                if rows != records as i64 {
                    bail!("the processors report {n} records done but the tables hold {rows} rows");
                }
                let (t0, n0) = first.unwrap_or((now, 0));
                let seconds = now.duration_since(t0).as_secs_f64().max(1e-3);
                return Ok(Pass {
                    rate: (n - n0) as f64 / seconds,
                    seconds,
                    wall_seconds: now.duration_since(started).as_secs_f64(),
                    peak_rss_kib: children.iter().map(|c| peak_rss_kib(c.id())).collect(),
                });
            }
            if started.elapsed() > PASS_DEADLINE {
                bail!("only {n} of {records} rows after {PASS_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })();
    for child in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    result
}

/// A free TCP port on the loopback interface.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Records a processor has finished (stored, rejected or found duplicate) by its `/metrics`;
/// 0 while it does not answer yet.
fn finished_records(addr: &str) -> i64 {
    scrape(addr)
        .lines()
        .filter(|l| {
            [
                "heartbeat_readings_stored_total",
                "heartbeat_rejects_total{",
                "heartbeat_duplicates_total",
            ]
            .iter()
            .any(|m| l.starts_with(m))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as i64
}

/// A processor's `/metrics` text; empty while it does not answer.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut body).is_err() {
        return String::new();
    }
    body
}

/// The cumulative buckets (upper bound, count) of histogram `name` in a `/metrics` text.
fn buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The `q` quantile of the observations between two scrapes of the same histogram, by linear
/// interpolation within the bucket it falls in (as Prometheus's `histogram_quantile`).
fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let earlier = before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
            (le, n - earlier)
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, n) in &counts {
        if n >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let share = if n > below {
                (rank - below) / (n - below)
            } else {
                0.0
            };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, n);
    }
    None
}

/// Publishes `rate` readings a second for `seconds`, each stamped with the time it is sent;
/// heart rates wander within the normal band. Returns how many were sent.
fn publish_steady(topic: &str, rate: u64, seconds: u64, linger_ms: u64) -> anyhow::Result<u64> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let started = Instant::now();
    let total = rate * seconds;
    let mut sent = 0u64;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let customer = format!("LAT-{:05}", sent % BENCH_CUSTOMERS);
            let now = chrono::Utc::now();
            let heart_rate = 62 + (sent / BENCH_CUSTOMERS + sent % 7) % 30;
            let value = format!(
                r#"{{"customer_id":"{customer}","timestamp":"{}","heart_rate":{heart_rate}}}"#,
                now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            );
            let record = BaseRecord::to(topic)
                .key(customer.as_str())
                .payload(value.as_str());
            queue(&producer, record);
            sent += 1;
        }
        // Serve delivery reports without waiting, then sleep: rdkafka's `poll` with a timeout
        // spins on the clock, and took 40% of the machine from the pipeline it measures.
        producer.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.flush(Timeout::After(Duration::from_secs(60)))?;
    Ok(sent)
}

fn latency(rate: u64, seconds: u64, linger_ms: u64) -> anyhow::Result<()> {
    let topic = unique("bench_latency");
    create_topics(&[&topic])?;
    let (db, url, mut admin) = fresh_database("hb_latency")?;
    let result = (|| {
        let bin = pipeline_binary()?;
        let mut cmd = Command::new(&bin);
        pipeline_env(&mut cmd, &topic, &url, &unique("hb_latency"));
        let addr = format!("127.0.0.1:{}", free_port()?);
        cmd.env("HEARTBEAT__HTTP__BIND", &addr);
        let mut child = cmd.arg("run").spawn()?;
        let outcome = (|| {
            // Warm up: the group has joined and a first batch is stored.
            publish_steady(&topic, 1_000, 1, linger_ms)?;
            let deadline = Instant::now() + PASS_DEADLINE;
            while finished_records(&addr) < 1_000 {
                if Instant::now() > deadline {
                    bail!("the processor did not store the warm-up readings");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            println!(
                "publishing {rate} readings/s for {seconds} s (producer linger.ms {linger_ms}) ..."
            );
            const DELAY: &str = "heartbeat_record_delay_seconds";
            let delays_before = buckets(&scrape(&addr), DELAY);
            let steady_from = chrono::Utc::now();
            let sent = publish_steady(&topic, rate, seconds, linger_ms)? + 1_000;
            while finished_records(&addr) < sent as i64 {
                if Instant::now() > deadline {
                    bail!("not every reading was stored");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // The part before the processor: producer, broker, fetch.
            let delays = buckets(&scrape(&addr), DELAY);
            if let (Some(p50), Some(p99)) = (
                quantile_between(&delays_before, &delays, 0.5),
                quantile_between(&delays_before, &delays, 0.99),
            ) {
                println!(
                    "publish to read by the processor ({DELAY}, interpolated in its buckets): \
                     p50 {:.0} ms, p99 {:.0} ms",
                    p50 * 1e3,
                    p99 * 1e3
                );
            }
            let mut conn = PgConnection::establish(&url)?;
            #[derive(QueryableByName)]
            struct On {
                #[diesel(sql_type = diesel::sql_types::Text)]
                track_commit_timestamp: String,
            }
            let exact = diesel::sql_query("SHOW track_commit_timestamp")
                .get_result::<On>(&mut conn)
                .is_ok_and(|o| o.track_commit_timestamp == "on");
            // Commit time of each row's transaction; without it, the time the transaction began
            // (a lower bound).
            let stored_at = if exact {
                "pg_xact_commit_timestamp(xmin)"
            } else {
                "ingested_at"
            };
            #[derive(QueryableByName)]
            struct P {
                #[diesel(sql_type = diesel::sql_types::Double)]
                p50: f64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                p99: f64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                max: f64,
            }
            let p: P = diesel::sql_query(format!(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, \
                 percentile_cont(0.99) WITHIN GROUP (ORDER BY l) AS p99, max(l) AS max \
                 FROM (SELECT 1000 * extract(epoch FROM {stored_at} - recorded_at)::float8 AS l \
                 FROM readings WHERE recorded_at >= $1) t"
            ))
            .bind::<diesel::sql_types::Timestamptz, _>(steady_from)
            .get_result(&mut conn)?;
            if exact {
                #[derive(QueryableByName)]
                struct Split {
                    #[diesel(sql_type = diesel::sql_types::Double)]
                    to_start: f64,
                    #[diesel(sql_type = diesel::sql_types::Double)]
                    in_tx: f64,
                }
                let split: Split = diesel::sql_query(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) AS to_start, \
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY b) AS in_tx FROM \
                     (SELECT 1000 * extract(epoch FROM ingested_at - recorded_at)::float8 AS a, \
                     1000 * extract(epoch FROM pg_xact_commit_timestamp(xmin) - ingested_at)::float8 AS b \
                     FROM readings WHERE recorded_at >= $1) t",
                )
                .bind::<diesel::sql_types::Timestamptz, _>(steady_from)
                .get_result(&mut conn)?;
                println!(
                    "median split: {:.0} ms from publish to the start of the transaction, \
                     {:.0} ms in it",
                    split.to_start, split.in_tx
                );
            }
            // Where the tail comes from: the slowest seconds, with their median.
            #[derive(QueryableByName)]
            struct Second {
                #[diesel(sql_type = diesel::sql_types::Double)]
                at: f64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                p50: f64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                max: f64,
            }
            let worst: Vec<Second> = diesel::sql_query(format!(
                "SELECT extract(epoch FROM date_trunc('second', recorded_at) - $1)::float8 AS at, \
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, max(l) AS max FROM \
                 (SELECT recorded_at, 1000 * extract(epoch FROM {stored_at} - recorded_at)::float8 \
                 AS l FROM readings WHERE recorded_at >= $1) t GROUP BY 1 ORDER BY max DESC LIMIT 5"
            ))
            .bind::<diesel::sql_types::Timestamptz, _>(steady_from)
            .load(&mut conn)?;
            let worst: Vec<String> = worst
                .iter()
                .map(|w| format!("{:.0} s: p50 {:.0} ms, max {:.0} ms", w.at, w.p50, w.max))
                .collect();
            println!("slowest seconds: {}", worst.join("; "));
            println!(
                "publish-to-commit latency at {rate} readings/s over {seconds} s: p50 {:.0} ms, \
                 p99 {:.0} ms, max {:.0} ms (target p99 <= 500 ms){}",
                p.p50,
                p.p99,
                p.max,
                if exact {
                    ""
                } else {
                    "; track_commit_timestamp is off, so these are to the start of the \
                     transaction, a lower bound"
                }
            );
            Ok(())
        })();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        outcome
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

/// Customers of the simulated readings the throughput benchmark preloads.
const BENCH_CUSTOMERS: u64 = 10_000;

/// Publishes `records` readings of the project's own simulator (`heartbeat-pipeline generate`,
/// seed 1, as fast as the broker takes them) to `topic`.
fn generate(topic: &str, records: u64) -> anyhow::Result<()> {
    let mut cmd = Command::new(pipeline_binary()?);
    pipeline_env(&mut cmd, topic, "postgres://unused", "unused");
    let status = cmd
        .args(["generate", "--count", &records.to_string(), "--rate", "0"])
        .args(["--customers", &BENCH_CUSTOMERS.to_string(), "--seed", "1"])
        .status()?;
    if !status.success() {
        bail!("heartbeat-pipeline generate failed: {status}");
    }
    Ok(())
}

/// Runs `psql` on `url` with `command`; fails with its stderr.
fn psql(url: &str, command: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", command])
        .output()
        .context("run psql (postgresql-client)")?;
    if !out.status.success() {
        bail!("psql {command}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Runs scripts/peer-consumer.py over `topic` into a freshly migrated database and returns
/// its rows per second.
fn peer_consumer(topic: &str, records: u64) -> anyhow::Result<f64> {
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

/// Applies the migrations to the database at `url` with `heartbeat-pipeline migrate`.
fn migrate(url: &str) -> anyhow::Result<()> {
    let out = Command::new(pipeline_binary()?)
        .arg("migrate")
        .env("HEARTBEAT__DATABASE__URL", url)
        .env("HEARTBEAT__LOG__LEVEL", "error")
        .output()?;
    if !out.status.success() {
        bail!("migrate: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Deletes a file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// PostgreSQL's own binary COPY of every row of `readings` at `source_url` into the empty
/// `readings` of a freshly migrated database: (rows, seconds of the COPY FROM alone).
fn copy_baseline(source_url: &str) -> anyhow::Result<(i64, f64)> {
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
        let started = Instant::now();
        psql(
            &url,
            &format!("\\copy readings FROM '{}' (FORMAT binary)", file.display()),
        )?;
        Ok((rows, started.elapsed().as_secs_f64()))
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

fn throughput(records: u64, replicas: u32, peer: bool) -> anyhow::Result<()> {
    let topic = unique("bench_throughput");
    create_topics(&[&topic])?;
    println!(
        "preloading {records} simulated readings of {BENCH_CUSTOMERS} customers into {topic} \
         ({PARTITIONS} partitions) ..."
    );
    let t = Instant::now();
    generate(&topic, records)?;
    println!("preloaded in {:.1} s", t.elapsed().as_secs_f64());
    let (db, url, mut admin) = fresh_database("hb_bench")?;
    let result = (|| {
        let p = run_processors(&topic, records, &url, replicas)?;
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
        let (rows, seconds) = copy_baseline(&url)?;
        let copy_rate = rows as f64 / seconds;
        println!("COPY baseline: {copy_rate:.0} rows/s ({rows} rows in {seconds:.2} s)");
        println!(
            "ratio pipeline / COPY: {:.3} (target >= 0.6)",
            p.rate / copy_rate
        );
        if peer {
            let peer_rate = peer_consumer(&topic, records)?;
            println!(
                "ratio pipeline / Python peer: {:.2} (target >= 3)",
                p.rate / peer_rate
            );
        }
        Ok(())
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

fn create_topics(topics: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for r in rt.block_on(admin.create_topics(new.iter(), &AdminOptions::new()))? {
        if let Err((t, e)) = r {
            bail!("cannot create topic {t}: {e}");
        }
    }
    Ok(())
}

fn poison(records: u64, poison_percent: u64, rounds: u32) -> anyhow::Result<()> {
    let clean = unique("bench_clean");
    let poisoned = unique("bench_poison");
    create_topics(&[&clean, &poisoned])?;
    println!("preloading {records} clean records and {records} with {poison_percent}% poison ...");
    preload(&clean, records, 0)?;
    preload(&poisoned, records, poison_percent)?;
    let (mut best_clean, mut best_poison) = (0f64, 0f64);
    for round in 1..=rounds {
        for (name, topic, best) in [
            ("clean", &clean, &mut best_clean),
            ("poison", &poisoned, &mut best_poison),
        ] {
            let p = pass(topic, records)?;
            println!(
                "round {round} {name:<6} {:>10.0} records/s ({:.2} s)",
                p.rate, p.seconds
            );
            *best = best.max(p.rate);
        }
    }
    println!(
        "best: clean {best_clean:.0} records/s, {poison_percent}% poison {best_poison:.0} records/s, \
         ratio {:.3} (target >= 0.90)",
        best_poison / best_clean
    );
    Ok(())
}

/// A new, empty database: its name, URL, and an admin connection to drop it with afterwards.
fn fresh_database(prefix: &str) -> anyhow::Result<(String, String, PgConnection)> {
    let db = unique(prefix);
    let mut admin = PgConnection::establish(&admin_url()).context("connect to PostgreSQL")?;
    diesel::sql_query(format!("CREATE DATABASE {db}")).execute(&mut admin)?;
    let server = admin_url()
        .rsplit_once('/')
        .map(|(s, _)| s.to_owned())
        .unwrap_or_default();
    let url = format!("{server}/{db}");
    Ok((db, url, admin))
}

/// The `heartbeat-pipeline` binary built beside this one.
fn pipeline_binary() -> anyhow::Result<std::path::PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("heartbeat-pipeline"))
}

/// The environment of a processor or generator run on `topic` into database `url`.
fn pipeline_env(cmd: &mut Command, topic: &str, url: &str, group: &str) {
    cmd.env("HEARTBEAT__DATABASE__URL", url)
        .env("HEARTBEAT__KAFKA__BROKERS", brokers())
        .env("HEARTBEAT__KAFKA__GROUP_ID", group)
        .env("HEARTBEAT__KAFKA__TOPICS__READINGS", topic)
        .env(
            "HEARTBEAT__KAFKA__TOPICS__DEAD_LETTER",
            format!("{topic}-dlq"),
        )
        .env(
            "HEARTBEAT__KAFKA__TOPICS__ALERTS",
            format!("{topic}-alerts"),
        )
        .env("HEARTBEAT__GENERATOR__ENABLED", "false")
        .env("HEARTBEAT__HTTP__BIND", "127.0.0.1:0")
        .env("HEARTBEAT__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    event_id: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    customer_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    recorded_at: chrono::DateTime<chrono::Utc>,
}

/// What the generator says a reading is.
struct Truth {
    customer_id: String,
    recorded_at: chrono::DateTime<chrono::Utc>,
    kinds: Vec<String>,
}

/// Every record of `topic` with its ground truth, by event id.
fn ground_truth(
    topic: &str,
    expected: u64,
) -> anyhow::Result<std::collections::HashMap<uuid::Uuid, Truth>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("hb_truth"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut truth = std::collections::HashMap::new();
    let mut seen = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < expected && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        seen += 1;
        let kinds: Vec<String> = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "x-injected"))
            .and_then(|h| h.value)
            .map(|v| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let rules = heartbeat_pipeline::domain::validation::ValidationRules::default();
        // The record's own Kafka timestamp, as the processor judges it (none: no time bound).
        let reference = m
            .timestamp()
            .to_millis()
            .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis);
        if let Ok(r) =
            heartbeat_pipeline::domain::validation::validate(m.payload(), reference, &rules)
        {
            truth.insert(
                r.event_id,
                Truth {
                    customer_id: r.customer_id,
                    recorded_at: r.recorded_at,
                    kinds,
                },
            );
        }
    }
    Ok(truth)
}

fn quality(
    records: u64,
    customers: u64,
    rate: u64,
    seed: u64,
    silence_after_ms: u64,
) -> anyhow::Result<()> {
    use heartbeat_pipeline::domain::classification::AnomalyKind;
    let topic = unique("bench_quality");
    create_topics(&[&topic])?;
    let (db, url, mut admin) = fresh_database("hb_quality")?;
    let bin = pipeline_binary()?;

    let mut processor = Command::new(&bin);
    pipeline_env(&mut processor, &topic, &url, &unique("hb_quality"));
    processor.arg("run").env(
        "HEARTBEAT__DETECTOR__SILENCE_AFTER_MS",
        silence_after_ms.to_string(),
    );
    let mut processor = processor.spawn().context("start the processor")?;
    println!(
        "generating {records} records for {customers} customers at {rate}/s (seed {seed}) ..."
    );
    let mut generate = Command::new(&bin);
    pipeline_env(&mut generate, &topic, &url, "unused");
    let status = generate
        .args([
            "generate",
            "--count",
            &records.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .args([
            "--customers",
            &customers.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .status()?;
    if !status.success() {
        bail!("generate failed: {status}");
    }
    let mut conn = PgConnection::establish(&url)?;
    let deadline = Instant::now() + PASS_DEADLINE;
    while count(&mut conn) < records as i64 {
        if Instant::now() > deadline {
            bail!("the processor did not store every record in time");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Silences at the end of the stream need their quiet time to pass.
    std::thread::sleep(Duration::from_millis(silence_after_ms + 5_000));
    let _ = Command::new("kill")
        .args(["-TERM", &processor.id().to_string()])
        .status();
    let _ = processor.wait();

    let truth = ground_truth(&topic, records)?;
    let found: Vec<Found> =
        diesel::sql_query("SELECT event_id, customer_id, kind, recorded_at FROM anomalies")
            .load(&mut conn)?;
    // When the stream ends every customer falls quiet: those silences are right, but no episode
    // was injected for them. They are left out of the score and counted apart.
    let mut last_reading: std::collections::HashMap<&str, chrono::DateTime<chrono::Utc>> =
        std::collections::HashMap::new();
    for t in truth.values() {
        let last = last_reading
            .entry(t.customer_id.as_str())
            .or_insert(t.recorded_at);
        *last = (*last).max(t.recorded_at);
    }
    let labelled_silent = |customer: &str, at: &chrono::DateTime<chrono::Utc>| {
        truth.values().any(|t| {
            t.customer_id == customer
                && t.recorded_at == *at
                && t.kinds.iter().any(|k| k == "silent")
        })
    };
    let end_of_stream = |f: &Found| {
        f.kind == "silent"
            && last_reading.get(f.customer_id.as_str()) == Some(&f.recorded_at)
            && !labelled_silent(&f.customer_id, &f.recorded_at)
    };
    let ended = found.iter().filter(|f| end_of_stream(f)).count();
    let found: Vec<&Found> = found.iter().filter(|f| !end_of_stream(f)).collect();
    println!(
        "\n{:<14} {:>8} {:>8} {:>8} {:>10} {:>8}",
        "kind", "truth", "found", "correct", "precision", "recall"
    );
    for kind in AnomalyKind::ALL {
        let k = kind.as_str();
        // Silences are dated at the last reading before the gap, which carries the label.
        let labelled: std::collections::HashSet<(String, chrono::DateTime<chrono::Utc>)> = truth
            .values()
            .filter(|t| t.kinds.iter().any(|x| x == k))
            .map(|t| (t.customer_id.clone(), t.recorded_at))
            .collect();
        let mut detected = std::collections::HashSet::new();
        for f in found.iter().filter(|f| f.kind == k) {
            let key = match f.event_id.and_then(|id| truth.get(&id)) {
                Some(t) => (t.customer_id.clone(), t.recorded_at),
                None => (f.customer_id.clone(), f.recorded_at),
            };
            detected.insert(key);
        }
        let correct = labelled.intersection(&detected).count();
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                "-".to_owned()
            } else {
                format!("{:.3}", a as f64 / b as f64)
            }
        };
        println!(
            "{k:<14} {:>8} {:>8} {:>8} {:>10} {:>8}",
            labelled.len(),
            detected.len(),
            correct,
            ratio(correct, detected.len()),
            ratio(correct, labelled.len())
        );
    }
    println!(
        "({ended} silences at the end of the stream, when every customer falls quiet, left out)"
    );
    drop(conn);
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Quality {
            records,
            customers,
            rate,
            seed,
            silence_after_ms,
        } => quality(records, customers, rate, seed, silence_after_ms),
        Bench::Poison {
            records,
            poison_percent,
            rounds,
        } => poison(records, poison_percent.min(100), rounds),
        Bench::Throughput {
            records,
            replicas,
            peer,
        } => throughput(records, replicas.max(1), peer),
        Bench::Latency {
            rate,
            seconds,
            linger_ms,
        } => latency(rate.max(1), seconds.max(1), linger_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_histogram_are_taken_between_two_scrapes() {
        let text = |counts: [u32; 4]| {
            format!(
                "x_bucket{{le=\"0.1\"}} {}\nx_bucket{{le=\"1\"}} {}\nx_bucket{{le=\"10\"}} {}\n\
                 x_bucket{{le=\"+Inf\"}} {}\nx_sum 0\n",
                counts[0], counts[1], counts[2], counts[3]
            )
        };
        // 1,000 observations before (all fast), then 100 more: 50 under 0.1 s, 50 in (1, 10].
        let before = buckets(&text([1000, 1000, 1000, 1000]), "x");
        let after = buckets(&text([1050, 1050, 1100, 1100]), "x");
        assert_eq!(before.len(), 4);
        let p50 = quantile_between(&before, &after, 0.5).unwrap();
        assert!((p50 - 0.1).abs() < 1e-9, "{p50}");
        let p99 = quantile_between(&before, &after, 0.99).unwrap();
        assert!((p99 - (1.0 + 9.0 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
        assert_eq!(
            quantile_between(&after, &after, 0.5),
            None,
            "nothing observed between"
        );
    }
}
