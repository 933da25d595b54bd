//! `heartbeat-bench delivery`: alert delivery (SPEC section 8) measured against a real
//! Alertmanager routing to a webhook recorder.
//!
//! - latency (the default): a processor takes `rate` readings a second of steady, normal traffic;
//!   meanwhile, `triggers` times a second, a customer of its own sends a normal reading and half a
//!   second later one 48 bpm higher, a spike, which activates at once (`alerts.sustain_ms.spike`
//!   is 0). The latency is from the moment that reading is published to the moment the webhook
//!   receives its firing notification: processor, outbox, delivery and Alertmanager together.
//! - `--throughput`: the throughput pass of `heartbeat-bench throughput` (preloaded simulator
//!   readings, one processor, fresh database) run in alternation with Alertmanager delivery off
//!   (`alerts.alertmanager.urls` empty) and on, and the ratio. Two workloads: the simulator with
//!   episodes of every kind injected at [`STORM_RATE`] per customer-hour (a few dozen activate
//!   in a million readings: what a fleet sends), and with `--storm` the preload of `heartbeat-bench
//!   poison` without poison, whose readings jump by 20 to 40 bpm from one to the next, so every
//!   customer's spike episodes activate and resolve again and again (tens of thousands of
//!   events: the outbox and the delivery at their busiest).

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use diesel::prelude::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;

use crate::alertmanager::{Alertmanager, Route, Webhook};
use crate::load::{generate, preload, queue};
use crate::processors::{finished_records, run_processors, PASS_DEADLINE};
use crate::services::{brokers, create_topics, free_port, fresh_database, pipeline_binary};
use crate::services::{pipeline_env, unique};

/// The variable that turns Alertmanager delivery on for the processors the benchmark starts.
const URLS: &str = "HEARTBEAT__ALERTS__ALERTMANAGER__URLS";

/// Injected episodes per customer-hour of every kind for `--throughput` (the defaults are 0.0025
/// to 0.02).
const STORM_RATE: &str = "1";

/// The injection keys the storm raises.
const INJECT: [&str; 7] = [
    "BRADYCARDIA",
    "TACHYCARDIA",
    "CRITICAL_LOW",
    "CRITICAL_HIGH",
    "SPIKE",
    "DEVIATION",
    "SILENT",
];

/// Customers of the steady traffic.
const STEADY_CUSTOMERS: u64 = 1_000;

/// A reading of `customer` stamped now.
fn reading(customer: &str, heart_rate: u64) -> String {
    format!(
        r#"{{"customer_id":"{customer}","timestamp":"{}","heart_rate":{heart_rate}}}"#,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

/// The `q` quantile of sorted `xs` (nearest rank).
fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

pub(super) fn delivery_latency(rate: u64, seconds: u64, triggers: u64) -> anyhow::Result<()> {
    let webhook = Webhook::start()?;
    let am = Alertmanager::start(&webhook.url, Route::Test)?;
    let topic = unique("bench_delivery");
    create_topics(&[&topic])?;
    let (db, url, mut admin) = fresh_database("hb_delivery")?;
    let result = (|| {
        let mut cmd = Command::new(pipeline_binary()?);
        pipeline_env(&mut cmd, &topic, &url, &unique("hb_delivery"));
        let addr = format!("127.0.0.1:{}", free_port()?);
        cmd.env("HEARTBEAT__HTTP__BIND", &addr).env(URLS, &am.url);
        let mut child = cmd.arg("run").spawn()?;
        let outcome = (|| {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", brokers())
                .set("linger.ms", "5")
                .set("queue.buffering.max.messages", "1000000")
                .create()?;
            // Warm up: the group has joined and the readings of every steady customer are stored.
            for i in 0..STEADY_CUSTOMERS {
                let customer = format!("STEADY-{i:05}");
                let value = reading(&customer, 70);
                queue(
                    &producer,
                    BaseRecord::to(&topic).key(&customer).payload(&value),
                );
            }
            producer.flush(Timeout::After(Duration::from_secs(30)))?;
            let deadline = Instant::now() + PASS_DEADLINE;
            while finished_records(&addr) < STEADY_CUSTOMERS as i64 {
                if Instant::now() > deadline {
                    bail!("the processor did not store the warm-up readings");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            println!(
                "{rate} readings/s of {STEADY_CUSTOMERS} customers for {seconds} s, with {triggers} \
                 spike(s) a second that activate at once; Alertmanager group_wait 0s ..."
            );
            let started = Instant::now();
            let total = rate * seconds;
            let every = Duration::from_secs_f64(1.0 / triggers.max(1) as f64);
            let mut sent = 0u64;
            let mut next_trigger = started;
            // Trigger customers whose first reading went out, and when.
            let mut armed: Vec<(String, Instant)> = Vec::new();
            let mut spiked: HashMap<String, Instant> = HashMap::new();
            while sent < total {
                let now = Instant::now();
                let due =
                    ((now.duration_since(started).as_secs_f64() * rate as f64) as u64).min(total);
                while sent < due {
                    let customer = format!("STEADY-{:05}", sent % STEADY_CUSTOMERS);
                    let value = reading(&customer, 68 + sent % 5);
                    queue(
                        &producer,
                        BaseRecord::to(&topic).key(&customer).payload(&value),
                    );
                    sent += 1;
                }
                if now >= next_trigger {
                    let customer = format!("TRIGGER-{:05}", armed.len() + spiked.len());
                    let value = reading(&customer, 72);
                    queue(
                        &producer,
                        BaseRecord::to(&topic).key(&customer).payload(&value),
                    );
                    armed.push((customer, now));
                    next_trigger += every;
                }
                while let Some((customer, at)) = armed.first().cloned() {
                    if now.duration_since(at) < Duration::from_millis(500) {
                        break;
                    }
                    let value = reading(&customer, 120);
                    queue(
                        &producer,
                        BaseRecord::to(&topic).key(&customer).payload(&value),
                    );
                    spiked.insert(customer, Instant::now());
                    armed.remove(0);
                }
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_millis(1));
            }
            producer.flush(Timeout::After(Duration::from_secs(60)))?;
            // Every spike's firing notification, or the deadline.
            let wait_until = Instant::now() + Duration::from_secs(60);
            let firing = |received: &[crate::alertmanager::Received]| {
                let mut first: HashMap<String, Instant> = HashMap::new();
                for r in received
                    .iter()
                    .filter(|r| r.status == "firing" && r.kind == "spike")
                {
                    first.entry(r.customer_id.clone()).or_insert(r.at);
                }
                first
            };
            let mut got = firing(&webhook.received());
            while spiked.keys().any(|c| !got.contains_key(c)) && Instant::now() < wait_until {
                std::thread::sleep(Duration::from_millis(100));
                got = firing(&webhook.received());
            }
            let mut latencies: Vec<f64> = spiked
                .iter()
                .filter_map(|(c, at)| {
                    Some(got.get(c)?.saturating_duration_since(*at).as_secs_f64())
                })
                .collect();
            latencies.sort_by(f64::total_cmp);
            let missing = spiked.len() - latencies.len();
            let unexpected = got.keys().filter(|c| !spiked.contains_key(*c)).count();
            println!(
                "reading that activates an episode to its webhook notification, {} episodes: \
                 p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 <= 2000 ms); {missing} not \
                 notified within 60 s, {unexpected} notified for a customer that had no spike",
                latencies.len(),
                quantile(&latencies, 0.5) * 1e3,
                quantile(&latencies, 0.99) * 1e3,
                latencies.last().copied().unwrap_or(f64::NAN) * 1e3,
            );
            if missing > 0 {
                bail!("{missing} activated episodes never reached the webhook");
            }
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

/// The simulator's readings into `topic`, with every kind injected at [`STORM_RATE`].
fn simulated(topic: &str, records: u64) -> anyhow::Result<()> {
    for kind in INJECT {
        std::env::set_var(format!("HEARTBEAT__GENERATOR__INJECT__{kind}"), STORM_RATE);
    }
    let generated = generate(topic, records);
    for kind in INJECT {
        std::env::remove_var(format!("HEARTBEAT__GENERATOR__INJECT__{kind}"));
    }
    generated
}

#[derive(QueryableByName)]
struct Events {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    a: i64,
}

pub(super) fn delivery_throughput(records: u64, rounds: u32, storm: bool) -> anyhow::Result<()> {
    let topic = unique("bench_delivery_tp");
    create_topics(&[&topic])?;
    if storm {
        println!("preloading {records} readings that jump by 20 to 40 bpm (an alert storm) ...");
        preload(&topic, records, 0)?;
    } else {
        println!(
            "preloading {records} simulator readings, episodes of every kind injected at \
             {STORM_RATE} per customer-hour ..."
        );
        simulated(&topic, records)?;
    }
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 1..=rounds {
        for delivering in [false, true] {
            // A fresh Alertmanager for every pass with delivery: one that holds the alerts from
            // an earlier pass already would notify nobody, and cost nothing.
            let receiver = if delivering {
                let webhook = Webhook::start()?;
                let am = Alertmanager::start(&webhook.url, Route::Deployed)?;
                // The processors the pass starts inherit this process's environment.
                std::env::set_var(URLS, &am.url);
                Some((webhook, am))
            } else {
                std::env::remove_var(URLS);
                None
            };
            let (db, url, mut admin) = fresh_database("hb_delivery_tp")?;
            let p = run_processors(&topic, records, &url, 1);
            let events = PgConnection::establish(&url).ok().and_then(|mut c| {
                diesel::sql_query(
                    "SELECT count(*) AS n, count(*) FILTER (WHERE event = 'activated') AS a \
                     FROM alert_events",
                )
                .get_result::<Events>(&mut c)
                .ok()
            });
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut admin);
            let p = p?;
            let label = if delivering { "on " } else { "off" };
            let cpu: f64 = p.cpu_seconds.iter().sum();
            println!(
                "round {round}, Alertmanager delivery {label}: {:.0} readings/s ({:.1} s; the \
                 processor used {cpu:.1} s of CPU, {:.1} us a reading); {} episode events ({} \
                 activations){}",
                p.rate,
                p.seconds,
                1e6 * cpu / records as f64,
                events.as_ref().map_or(-1, |e| e.n),
                events.as_ref().map_or(-1, |e| e.a),
                match &receiver {
                    Some((webhook, am)) => format!(
                        "; the Alertmanager used {:.1} s of CPU and the webhook had {} \
                         notifications by the end of the pass",
                        am.cpu_seconds(),
                        webhook.received().len()
                    ),
                    None => String::new(),
                }
            );
            if delivering {
                on.push(p.rate);
            } else {
                off.push(p.rate);
            }
        }
    }
    std::env::remove_var(URLS);
    let ratios: Vec<String> = on
        .iter()
        .zip(&off)
        .map(|(a, b)| format!("{:.3}", a / b))
        .collect();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    println!(
        "delivery on / off, per round: {}; of the means: {:.3} (target >= 0.95)",
        ratios.join(", "),
        mean(&on) / mean(&off)
    );
    Ok(())
}
