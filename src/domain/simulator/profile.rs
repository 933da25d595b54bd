//! The profile of a stream: a short human-readable summary of its first records (natural heart
//! rate per activity, natural against injected readings, episodes per kind with their rate and
//! the share of customer-time they cover, faults by reason), for a CLI command.

use std::fmt::Write as _;

use super::model::Simulator;
use super::types::{activity_index, customer_number, sim_start, SimRecord, SimulatorConfig};
use crate::domain::classification::{classify, AnomalyKind, HeartRateClass};
use crate::domain::reading::{canonical_timestamp, Activity};
use crate::domain::validation::RejectReason;

/// Running count, mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Moments {
    pub(super) n: u64,
    pub(super) mean: f64,
    pub(super) m2: f64,
}

impl Moments {
    pub(super) fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    pub(super) fn sd(&self) -> f64 {
        if self.n > 1 {
            (self.m2 / (self.n - 1) as f64).sqrt()
        } else {
            0.0
        }
    }
}

/// A short human-readable profile of the first `records` records of a stream: customers, mean
/// and SD of natural readings per activity and how many lie outside the normal band, natural
/// against injected readings, episodes per kind (with their rate per customer-hour next to the
/// configured one, their readings and the share of customer-time they cover), faults by reason.
/// Used by `generate --profile`.
pub fn profile_report(cfg: &SimulatorConfig, records: u64) -> String {
    let mut sim = Simulator::new(cfg.clone());
    let now = sim_start();
    let bands = cfg.bands;
    let mut by_activity = [Moments::default(); 4];
    // Natural readings outside the normal band, by activity.
    let mut outside = [0u64; 4];
    let mut per_customer = vec![Moments::default(); sim.customers()];
    // Per customer, the kind of its current episode (for the readings after its first).
    let mut current: Vec<Option<AnomalyKind>> = vec![None; sim.customers()];
    let mut episodes = [0u64; 7];
    let mut fell_due = [0u64; 7];
    let mut episode_readings = [0u64; 7];
    let mut silent_turns = 0u64;
    let mut faults = [0u64; RejectReason::ALL.len()];
    let mut readings = 0u64;
    let mut injected = 0u64;
    let mut first_time = None;
    let mut last_time = None;
    for _ in 0..records {
        let (record, trace) = sim.next_traced(now);
        silent_turns += trace.skipped;
        if let Some(kind) = trace.due {
            fell_due[kind.index()] += 1;
        }
        match record {
            SimRecord::Reading {
                customer_id,
                heart_rate,
                sim_time,
                activity,
                ..
            } => {
                readings += 1;
                let hr = f64::from(heart_rate);
                let n = customer_number(&customer_id).filter(|n| *n < per_customer.len());
                if let Some(n) = n {
                    per_customer[n].add(hr);
                    if let Some(kind) = trace.started {
                        current[n] = Some(kind);
                        episodes[kind.index()] += 1;
                    }
                }
                if trace.in_episode {
                    injected += 1;
                    if let Some(kind) = n.and_then(|n| current[n]) {
                        episode_readings[kind.index()] += 1;
                    }
                } else {
                    let a = activity_index(activity);
                    by_activity[a].add(hr);
                    if classify(heart_rate, &bands) != HeartRateClass::Normal {
                        outside[a] += 1;
                    }
                }
                first_time.get_or_insert(sim_time);
                last_time = Some(sim_time);
            }
            SimRecord::Fault { reason, .. } => {
                if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason) {
                    faults[i] += 1;
                }
            }
        }
    }
    let share = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    let mut spread = Moments::default();
    per_customer
        .iter()
        .filter(|m| m.n > 0)
        .for_each(|m| spread.add(m.mean));
    let fault_total: u64 = faults.iter().sum();
    // Customer-time in turns: every reading and every turn skipped by a silent device.
    let turns = readings + silent_turns;
    let customer_hours = turns as f64 * sim.reading_interval_s() / 3600.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "simulated stream: {records} records, seed {}, {} customers ({} with readings), \
         one reading per customer every {:.1} s of simulated time",
        cfg.seed,
        sim.customers(),
        spread.n,
        sim.reading_interval_s()
    );
    if let (Some(first), Some(last)) = (first_time, last_time) {
        let _ = writeln!(
            out,
            "simulated time: {} to {} ({customer_hours:.1} customer-hours)",
            canonical_timestamp(&first),
            canonical_timestamp(&last)
        );
    }
    let _ = writeln!(
        out,
        "readings: {readings} ({} natural, {injected} injected = {:.2} %); faults: {fault_total} \
         ({:.2} %); per-customer mean heart rate: mean {:.1}, sd {:.1} bpm",
        readings - injected,
        share(injected, readings),
        share(fault_total, records),
        spread.mean,
        spread.sd()
    );
    let _ = writeln!(
        out,
        "\nnatural readings by activity (unlabelled; outside = outside the normal band):"
    );
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>8} {:>9} {:>7} {:>9}",
        "activity", "readings", "share", "mean bpm", "sd bpm", "outside"
    );
    for activity in Activity::ALL {
        let a = activity_index(activity);
        let m = by_activity[a];
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>6.1} % {:>9.1} {:>7.1} {:>7.2} %",
            activity.as_str(),
            m.n,
            share(m.n, readings),
            m.mean,
            m.sd(),
            share(outside[a], m.n)
        );
    }
    let _ = writeln!(
        out,
        "\ninjected episodes (x-episode), by kind: fell due, started (the rest dropped: another \
         was going or waiting), per customer-hour (configured), their readings, and the share of \
         customer-time they cover:"
    );
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>9} {:>10} {:>11} {:>10} {:>9}",
        "kind", "due", "episodes", "per hour", "configured", "readings", "covered"
    );
    let rates = cfg.inject.effective();
    let mut covered_total = 0u64;
    for kind in AnomalyKind::ALL {
        let i = kind.index();
        let covered = episode_readings[i]
            + if kind == AnomalyKind::Silent {
                silent_turns
            } else {
                0
            };
        covered_total += covered;
        let _ = writeln!(
            out,
            "{:<14} {:>8} {:>9} {:>10.5} {:>11.5} {:>10} {:>7.3} %",
            kind.as_str(),
            fell_due[i],
            episodes[i],
            if customer_hours > 0.0 {
                episodes[i] as f64 / customer_hours
            } else {
                0.0
            },
            rates[i],
            episode_readings[i],
            share(covered, turns)
        );
    }
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>9} {:>10} {:>11} {:>10} {:>7.3} %",
        "all",
        fell_due.iter().sum::<u64>(),
        episodes.iter().sum::<u64>(),
        "",
        "",
        episode_readings.iter().sum::<u64>(),
        share(covered_total, turns)
    );
    if fault_total > 0 {
        let _ = writeln!(
            out,
            "\n{:<24} {:>8} {:>8}",
            "fault reason", "records", "share"
        );
        for (reason, n) in RejectReason::ALL.iter().zip(faults) {
            let _ = writeln!(
                out,
                "{:<24} {:>8} {:>6.2} %",
                reason.as_str(),
                n,
                share(n, records)
            );
        }
    }
    out
}
