//! What goes into the topics: preloaded records (clean or with poison), the same simulated
//! readings in one format and in three, the generator's stream, and readings published at a
//! steady rate.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;

use heartbeat_pipeline::config::Settings;
use heartbeat_pipeline::domain::reading::{derive_event_id, Reading};
use heartbeat_pipeline::domain::simulator::{SimRecord, Simulator};

use crate::services::{brokers, pipeline_binary, pipeline_env};

/// Queues `record`, waiting while librdkafka's queue is full: deliveries are served, then it
/// queues again.
pub(super) fn queue<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    while let Err((_, r)) = producer.send(record) {
        producer.poll(Duration::from_millis(1));
        record = r;
    }
}

/// One poison record per reject reason, in turn (`None` is a null value).
pub(super) fn poison_value(i: u64) -> Option<Vec<u8>> {
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

/// The producer the preloads use: lz4 batches of up to 10,000 records.
fn preload_producer() -> anyhow::Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

/// Fills `topic` with `records` records, `poison_percent` of them poison, spread evenly.
pub(super) fn preload(topic: &str, records: u64, poison_percent: u64) -> anyhow::Result<()> {
    let producer = preload_producer()?;
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

/// Fills `native` and `mixed` with the same `records` readings of the project's simulator
/// (seed 1, [`BENCH_CUSTOMERS`] customers, each with its activity and a device): in `native`
/// all in the native format, in `mixed` a third each native, FHIR and OMH, in turn (SPEC
/// section 4, `Reading::to_json`, `to_fhir_json`, `to_omh_json`). Stamped like `preload`'s: from
/// an hour ago a microsecond apart, so no time bound rejects them.
pub(super) fn preload_formats(native: &str, mixed: &str, records: u64) -> anyhow::Result<()> {
    let producer = preload_producer()?;
    let mut sim_cfg = Settings::load(None)?.simulator_config(1);
    sim_cfg.customers = BENCH_CUSTOMERS as usize;
    sim_cfg.fault_rate = 0.0;
    let mut sim = Simulator::new(sim_cfg);
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut i = 0u64;
    while i < records {
        let at = base + chrono::Duration::microseconds(i as i64);
        // With no faults the simulator only makes readings.
        let SimRecord::Reading {
            customer_id,
            heart_rate,
            activity,
            ..
        } = sim.next_record(at)
        else {
            continue;
        };
        let reading = Reading {
            event_id: derive_event_id(&customer_id, &at),
            device_id: Some(format!("{customer_id}-watch")),
            customer_id,
            recorded_at: at,
            heart_rate,
            activity: Some(activity),
        };
        // FHIR carries no activity and Open mHealth no device: the native copy leaves out what
        // its mixed twin cannot carry, so both topics decode to the same readings and the
        // detector and the writer do the same work for each; only the encoding differs.
        let (decoded, mixed_value) = match i % 3 {
            0 => (reading.clone(), reading.to_json()),
            1 => (
                Reading {
                    activity: None,
                    ..reading.clone()
                },
                reading.to_fhir_json(),
            ),
            _ => (
                Reading {
                    device_id: None,
                    ..reading.clone()
                },
                reading.to_omh_json(),
            ),
        };
        let native_value = decoded.to_json();
        let key = reading.customer_id.as_str();
        queue(
            &producer,
            BaseRecord::to(native)
                .key(key)
                .payload(native_value.as_str()),
        );
        queue(
            &producer,
            BaseRecord::to(mixed).key(key).payload(mixed_value.as_str()),
        );
        i += 1;
    }
    producer.flush(Timeout::After(Duration::from_secs(120)))?;
    Ok(())
}

/// Customers of the simulated readings the throughput benchmark preloads.
pub(super) const BENCH_CUSTOMERS: u64 = 10_000;

/// Publishes `records` readings of the project's own simulator (`heartbeat-pipeline generate`,
/// seed 1, as fast as the broker takes them) to `topic`.
pub(super) fn generate(topic: &str, records: u64) -> anyhow::Result<()> {
    generate_seeded(topic, records, BENCH_CUSTOMERS, 1)
}

/// [`generate`] with `customers` distinct customers and the simulator seeded with `seed`.
pub(super) fn generate_seeded(
    topic: &str,
    records: u64,
    customers: u64,
    seed: u64,
) -> anyhow::Result<()> {
    let mut cmd = Command::new(pipeline_binary()?);
    pipeline_env(&mut cmd, topic, "postgres://unused", "unused");
    let status = cmd
        .args(["generate", "--count", &records.to_string(), "--rate", "0"])
        .args([
            "--customers",
            &customers.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .status()?;
    if !status.success() {
        bail!("heartbeat-pipeline generate failed: {status}");
    }
    Ok(())
}

/// Publishes `rate` readings a second for `seconds`, each stamped with the time it is sent;
/// heart rates wander within the normal band. Returns how many were sent.
pub(super) fn publish_steady(
    topic: &str,
    rate: u64,
    seconds: u64,
    linger_ms: u64,
) -> anyhow::Result<u64> {
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
