//! `heartbeat-bench quality` through the real binaries: a processor (`heartbeat-pipeline run`)
//! consumes while `heartbeat-pipeline generate` publishes the seeded stream in real time; then
//! the activated alerts come from the `alerts` table, the findings from `anomalies`, and the
//! ground truth from the records read back from the topic with their headers (`x-injected`,
//! `x-episode`).
//!
//! A generator that sends no `x-episode` (before episodes had ids) still scores: each run of a
//! customer's consecutive injected readings is taken as one episode. When the stream ends every
//! customer falls quiet and the processor rightly reports them silent; no episode was injected
//! for those silences, so they are left out and counted apart.
//!
//! With `HEARTBEAT_BENCH_KEEP` set, the run's database is kept (its URL is printed) for a look.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use heartbeat_pipeline::config::Settings;
use heartbeat_pipeline::domain::classification::AnomalyKind;
use heartbeat_pipeline::domain::detector::DetectorConfig;
use heartbeat_pipeline::domain::simulator::customer_number;
use heartbeat_pipeline::domain::validation::{validate, Validated, ValidationRules};
use rdkafka::config::ClientConfig;

use super::score::{Alert, Episodes, SILENT};
use super::{Findings, Params, Run};
use crate::processors::PASS_DEADLINE;
use crate::services::{
    brokers, count, create_topics, fresh_database, pipeline_binary, pipeline_env, unique,
    PARTITIONS,
};

/// An alert episode; activated when `activated_at` is not null.
#[derive(QueryableByName)]
struct Activated {
    #[diesel(sql_type = diesel::sql_types::Text)]
    customer_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    opened_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    activated_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(QueryableByName)]
struct Finding {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
}

/// One record read back from the topic: a valid reading with its ground truth.
struct Truth {
    customer: u32,
    t_us: i64,
    event_id: uuid::Uuid,
    episode: Option<u64>,
    kinds: u8,
}

/// Every valid reading of `topic` with its ground truth.
fn ground_truth(topic: &str, expected: u64) -> anyhow::Result<Vec<Truth>> {
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
    let rules = ValidationRules::default();
    let mut truth = Vec::new();
    let mut seen = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < expected && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        seen += 1;
        let header = |key: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == key))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let kinds = header("x-injected").map_or(0, |v| {
            v.split(',')
                .filter_map(AnomalyKind::from_name)
                .map(AnomalyKind::index)
                .fold(0u8, |m, k| m | 1 << k)
        });
        let episode = header("x-episode").and_then(|v| v.parse().ok());
        // The record's own Kafka timestamp, as the processor judges it (none: no time bound).
        let reference = m
            .timestamp()
            .to_millis()
            .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis);
        if let Ok(Validated { reading: r, .. }) = validate(m.payload(), reference, &rules) {
            let Some(customer) = customer_number(&r.customer_id) else {
                continue;
            };
            truth.push(Truth {
                customer: customer as u32,
                t_us: r.recorded_at.timestamp_micros(),
                event_id: r.event_id,
                episode,
                kinds,
            });
        }
    }
    if seen < expected {
        bail!("read back {seen} of {expected} records from {topic}");
    }
    Ok(truth)
}

/// One seed through the real binaries.
pub(super) fn run_seed(
    p: &Params,
    settings: &Settings,
    cfg: &DetectorConfig,
    seed: u64,
) -> anyhow::Result<Run> {
    let rate = p.rate();
    if rate < 1.0 || (rate - rate.round()).abs() > 1e-9 {
        bail!(
            "the Kafka mode publishes a whole number of readings per second: --customers / \
             --interval-s is {rate}"
        );
    }
    let records = p.records();
    let started = Instant::now();
    let topic = unique("bench_quality");
    create_topics(&[&topic])?;
    let (db, url, mut admin) = fresh_database("hb_quality")?;
    let bin = pipeline_binary()?;
    let with_run_config = |cmd: &mut Command| {
        if let Some(file) = &p.config {
            cmd.env("HEARTBEAT_CONFIG", file);
        }
        if let Some(ms) = p.silence_after_ms {
            cmd.env("HEARTBEAT__DETECTOR__SILENCE_AFTER_MS", ms.to_string());
        }
        cmd.env("HEARTBEAT__GENERATOR__ACTIVITY", p.activity.to_string())
            // Readings only, as offline: faults take no customer's turn, so the readings stay
            // the same, but they would take records from the count.
            .env("HEARTBEAT__GENERATOR__FAULT_RATE", "0");
    };

    let mut processor = Command::new(&bin);
    pipeline_env(&mut processor, &topic, &url, &unique("hb_quality"));
    with_run_config(&mut processor);
    let mut processor = processor
        .arg("run")
        .spawn()
        .context("start the processor")?;
    println!(
        "seed {seed}: generating {records} records for {} customers at {rate}/s ...",
        p.customers
    );
    let mut generate = Command::new(&bin);
    pipeline_env(&mut generate, &topic, &url, "unused");
    with_run_config(&mut generate);
    let status = generate
        .args(["generate", "--count", &records.to_string()])
        .args(["--rate", &(rate.round() as u64).to_string()])
        .args(["--customers", &p.customers.to_string()])
        .args(["--seed", &seed.to_string()])
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
    std::thread::sleep(settings.detector.silence_after_ms + Duration::from_secs(5));
    let _ = Command::new("kill")
        .args(["-TERM", &processor.id().to_string()])
        .status();
    let _ = processor.wait();

    let mut truth = ground_truth(&topic, records)?;
    truth.sort_by_key(|t| (t.customer, t.t_us));
    let activated: Vec<Activated> =
        diesel::sql_query("SELECT customer_id, kind, opened_at, activated_at FROM alerts")
            .load(&mut conn)?;
    let found: Vec<Finding> = diesel::sql_query(
        "SELECT event_id, kind FROM anomalies WHERE kind <> 'silent' AND event_id IS NOT NULL",
    )
    .load(&mut conn)?;
    drop(conn);
    if std::env::var_os("HEARTBEAT_BENCH_KEEP").is_some() {
        println!("kept for a look: database {url}, topic {topic}");
    } else {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&mut admin);
    }
    let mut run = score_stored(p, cfg, seed, &truth, &activated, &found);
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

/// The run from what was read back: `truth` sorted by customer and time.
fn score_stored(
    p: &Params,
    cfg: &DetectorConfig,
    seed: u64,
    truth: &[Truth],
    activated: &[Activated],
    found: &[Finding],
) -> Run {
    // Per customer, its readings' times in order: a time's position is its reading number.
    let mut times: HashMap<u32, Vec<i64>> = HashMap::new();
    let mut episodes = Episodes::default();
    let mut findings = Findings::default();
    let mut kinds_of: HashMap<uuid::Uuid, u8> = HashMap::new();
    let mut previous: Option<(&Truth, Option<u64>)> = None;
    for t in truth {
        let own = times.entry(t.customer).or_default();
        let before = previous.filter(|(b, _)| b.customer == t.customer);
        let episode = match (t.episode, t.kinds) {
            (Some(id), _) => Some(id),
            (None, 0) => None,
            // No `x-episode`: consecutive injected readings are one episode.
            (None, _) => Some(episodes.synthetic(before.and_then(|(_, e)| e))),
        };
        episodes.reading(
            t.customer,
            own.len() as u32,
            t.t_us,
            before.map(|(b, _)| b.t_us),
            episode,
            t.kinds,
        );
        own.push(t.t_us);
        // Only an injected episode's readings are ground truth: the kinds are the episode's.
        let kinds = if episode.is_some() { t.kinds } else { 0 };
        findings.reading(kinds, std::iter::empty());
        kinds_of.insert(t.event_id, kinds);
        previous = Some((t, episode));
    }
    for f in found {
        let Some(k) = AnomalyKind::from_name(&f.kind).map(AnomalyKind::index) else {
            continue;
        };
        findings.raised[k] += 1;
        if kinds_of.get(&f.event_id).is_some_and(|m| m & 1 << k != 0) {
            findings.correct[k] += 1;
        }
    }
    let mut alerts = Vec::new();
    let mut unactivated = Vec::new();
    let mut left_out = 0;
    for a in activated {
        let (Some(customer), Some(kind)) = (
            customer_number(&a.customer_id),
            AnomalyKind::from_name(&a.kind).map(AnomalyKind::index),
        ) else {
            continue;
        };
        let customer = customer as u32;
        let own = times.get(&customer).map_or(&[][..], Vec::as_slice);
        let opened_us = a.opened_at.timestamp_micros();
        let opened = own.partition_point(|&x| x < opened_us);
        let Some(activated_at) = a.activated_at else {
            unactivated.push((customer, kind as u8, opened as u32));
            continue;
        };
        let t_us = activated_at.timestamp_micros();
        let reading = own.partition_point(|&x| x < t_us);
        if kind == SILENT && reading + 1 == own.len() {
            left_out += 1;
            continue;
        }
        alerts.push(Alert {
            customer,
            kind: kind as u8,
            activated_us: t_us,
            opened: opened as u32,
            reading: reading as u32,
        });
    }
    let (first, last) = (
        truth.iter().map(|t| t.t_us).min().unwrap_or(0),
        truth.iter().map(|t| t.t_us).max().unwrap_or(0),
    );
    Run {
        seed,
        readings: truth.len() as u64,
        customer_days: times.len() as f64 * ((last - first) as f64 / 1e6 + p.interval_s) / 86_400.0,
        episodes: episodes.all,
        alerts,
        findings,
        resolve_window_us: p.resolve_window_us(cfg),
        seconds: 0.0,
        left_out,
        episode_ids: truth.iter().any(|t| t.episode.is_some()),
        unactivated,
    }
}
