//! `heartbeat-bench poison`: a stream with poison records against a clean one.

use crate::load::preload;
use crate::processors::pass;
use crate::services::{create_topics, unique};

pub(super) fn poison(records: u64, poison_percent: u64, rounds: u32) -> anyhow::Result<()> {
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
