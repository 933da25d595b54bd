//! `heartbeat-bench formats`: the same readings in the native format alone and as a mix of the
//! three formats of SPEC section 4 (a third each native, FHIR R4, Open mHealth).
//!
//! Both topics hold the same simulated readings; only their encoding differs (a FHIR
//! Observation takes about three times the bytes of the native reading, an OMH data point
//! twice). The processor runs over each in alternation, a fresh database each time, for
//! `rounds` rounds; the best pass of each is compared, so a noisy neighbour in one pass does not
//! decide the ratio (issue 19's target: mixed at least 0.9 of native).

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
    let (mut best_native, mut best_mixed) = (0f64, 0f64);
    for round in 1..=rounds {
        for (name, topic, best) in [
            ("native", &native, &mut best_native),
            ("mixed", &mixed, &mut best_mixed),
        ] {
            let p = pass(topic, records)?;
            println!(
                "round {round} {name:<6} {:>10.0} readings/s ({:.2} s)",
                p.rate, p.seconds
            );
            *best = best.max(p.rate);
        }
    }
    println!(
        "best: native {best_native:.0} readings/s, mixed formats {best_mixed:.0} readings/s, \
         ratio {:.3} (target >= 0.90)",
        best_mixed / best_native
    );
    Ok(())
}
