//! `heartbeat-bench formats`: the same readings in the native format alone and as a mix of the
//! three formats of SPEC section 4 (a third each native, FHIR R4, Open mHealth).
//!
//! Both topics hold the same simulated readings; only their encoding differs (a FHIR
//! Observation takes about three times the bytes of the native reading, an OMH data point
//! twice). The processor runs over each in alternation, a fresh database each time, for
//! `rounds` rounds; each round's pair gives a ratio, and the median of those is the figure, so
//! one pass slowed (or sped) by a noisy neighbour does not decide it (issue 19's target: mixed
//! at least 0.9 of native). The best pass of each is printed too.

use std::time::Instant;

use chrono::{TimeDelta, Utc};
use heartbeat_pipeline::domain::reading::{derive_event_id, Activity, Reading};
use heartbeat_pipeline::domain::validation::{validate, ValidationRules};

use crate::load::preload_formats;
use crate::processors::pass;
use crate::services::{create_topics, unique};

pub(super) fn formats(records: u64, rounds: u32) -> anyhow::Result<()> {
    let native = unique("bench_native");
    let mixed = unique("bench_mixed");
    create_topics(&[&native, &mixed])?;
    println!(
        "preloading {records} simulated readings twice: native only, and a third each native, \
         FHIR and OMH ..."
    );
    preload_formats(&native, &mixed, records)?;
    validator_cost(records.min(200_000));
    let (mut best_native, mut best_mixed) = (0f64, 0f64);
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let mut rates = [0f64; 2];
        for (i, (name, topic)) in [("native", &native), ("mixed", &mixed)]
            .into_iter()
            .enumerate()
        {
            let p = pass(topic, records)?;
            println!(
                "round {round} {name:<6} {:>10.0} readings/s ({:.2} s)",
                p.rate, p.seconds
            );
            rates[i] = p.rate;
        }
        best_native = best_native.max(rates[0]);
        best_mixed = best_mixed.max(rates[1]);
        println!("round {round} ratio  {:.3}", rates[1] / rates[0]);
        ratios.push(rates[1] / rates[0]);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "best: native {best_native:.0} readings/s, mixed formats {best_mixed:.0} readings/s, \
         ratio of the bests {:.3}",
        best_mixed / best_native
    );
    println!(
        "median of the {} rounds' ratios mixed/native: {median:.3} (target >= 0.90)",
        ratios.len()
    );
    Ok(())
}

/// The validator alone, in this process: nanoseconds per record of each format, over `n`
/// readings encoded each way (the part of a pass that the format changes; the rest is the same
/// readings through the same detector and writer).
fn validator_cost(n: u64) {
    let now = Utc::now();
    let readings: Vec<Reading> = (0..n)
        .map(|i| {
            let customer_id = format!("CUST-{:05}", i % 10_000);
            let recorded_at = now - TimeDelta::milliseconds(i as i64);
            Reading {
                event_id: derive_event_id(&customer_id, &recorded_at),
                customer_id,
                recorded_at,
                heart_rate: 60 + (i % 40) as i16,
                activity: Some(Activity::ALL[i as usize % Activity::ALL.len()]),
                device_id: Some(format!("DEV-{:05}", i % 10_000)),
            }
        })
        .collect();
    let rules = ValidationRules::default();
    let mut line = String::from("validator alone, ns/record:");
    for (name, encode) in [
        ("native", Reading::to_json as fn(&Reading) -> String),
        ("fhir", Reading::to_fhir_json),
        ("omh", Reading::to_omh_json),
    ] {
        let values: Vec<String> = readings.iter().map(encode).collect();
        let started = Instant::now();
        let accepted = values
            .iter()
            .filter(|v| validate(Some(v.as_bytes()), Some(now), &rules).is_ok())
            .count();
        let ns = started.elapsed().as_nanos() as f64 / values.len().max(1) as f64;
        let bytes = values.iter().map(String::len).sum::<usize>() / values.len().max(1);
        line.push_str(&format!(
            " {name} {ns:.0} ({bytes} bytes, {accepted} accepted)"
        ));
    }
    println!("{line}");
}
