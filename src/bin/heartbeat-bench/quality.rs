//! `heartbeat-bench quality`: precision and recall of each anomaly kind against the
//! generator's ground truth.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use rdkafka::config::ClientConfig;

use crate::processors::PASS_DEADLINE;
use crate::services::{
    brokers, count, create_topics, fresh_database, pipeline_binary, pipeline_env, unique,
    PARTITIONS,
};

#[derive(QueryableByName)]
pub(super) struct Found {
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
pub(super) struct Truth {
    customer_id: String,
    recorded_at: chrono::DateTime<chrono::Utc>,
    kinds: Vec<String>,
}

/// Every record of `topic` with its ground truth, by event id.
pub(super) fn ground_truth(
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
        if let Ok(heartbeat_pipeline::domain::validation::Validated { reading: r, .. }) =
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

pub(super) fn quality(
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
