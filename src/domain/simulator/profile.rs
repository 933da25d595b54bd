//! The profile of a stream: a short human-readable summary of its first records (heart rate per
//! activity, share of each injected kind and of faults by reason), for a CLI command.

use std::fmt::Write as _;

use super::model::{kind_index, Simulator};
use super::types::{activity_index, sim_start, SimRecord, SimulatorConfig};
use crate::domain::classification::AnomalyKind;
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

/// A short human-readable profile of the first `records` records of a stream (customers, mean
/// and SD of heart rate per activity, share of each injected kind and of faults by reason); used
/// by a CLI command.
pub fn profile_report(cfg: &SimulatorConfig, records: u64) -> String {
    let mut sim = Simulator::new(cfg.clone());
    let now = sim_start();
    let mut by_activity = [Moments::default(); 4];
    let mut per_customer = vec![Moments::default(); sim.customers()];
    let mut labelled = [0u64; 7];
    let mut started = [0u64; 7];
    let mut eligible = 0u64;
    let mut faults = [0u64; 11];
    let mut readings = 0u64;
    let mut in_episodes = 0u64;
    let mut first_time = None;
    let mut last_time = None;
    for _ in 0..records {
        let (record, trace) = sim.next_traced(now);
        match record {
            SimRecord::Reading {
                customer_id,
                heart_rate,
                sim_time,
                activity,
                injected,
                ..
            } => {
                readings += 1;
                let hr = f64::from(heart_rate);
                if trace.in_episode {
                    in_episodes += 1;
                } else {
                    by_activity[activity_index(activity)].add(hr);
                }
                if let Some(n) = customer_id
                    .strip_prefix("CUST-")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| per_customer.get_mut(n))
                {
                    n.add(hr);
                }
                for kind in injected {
                    labelled[kind_index(kind)] += 1;
                }
                eligible += u64::from(trace.eligible);
                if let Some(kind) = trace.started {
                    started[kind_index(kind)] += 1;
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
            "simulated time: {} to {}",
            canonical_timestamp(&first),
            canonical_timestamp(&last)
        );
    }
    let _ = writeln!(
        out,
        "readings: {readings}; faults: {fault_total} ({:.2} %); per-customer mean heart rate: \
         mean {:.1}, sd {:.1} bpm",
        share(fault_total, records),
        spread.mean,
        spread.sd()
    );
    let _ = writeln!(
        out,
        "\nnatural readings by activity ({in_episodes} readings of injected episodes left out):"
    );
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>8} {:>9} {:>7}",
        "activity", "readings", "share", "mean bpm", "sd bpm"
    );
    for activity in Activity::ALL {
        let m = by_activity[activity_index(activity)];
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>6.1} % {:>9.1} {:>7.1}",
            activity.as_str(),
            m.n,
            share(m.n, readings),
            m.mean,
            m.sd()
        );
    }
    let _ = writeln!(
        out,
        "\nground truth: readings labelled with each kind (natural or injected), and episodes \
         injected per eligible reading:"
    );
    let _ = writeln!(
        out,
        "{:<14} {:>10} {:>8} {:>9} {:>12} {:>12}",
        "x-injected", "readings", "share", "episodes", "start rate", "configured"
    );
    let rates = cfg.inject.effective();
    for kind in AnomalyKind::ALL {
        let i = kind_index(kind);
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>6.2} % {:>9} {:>12.5} {:>12.5}",
            kind.as_str(),
            labelled[i],
            share(labelled[i], readings),
            started[i],
            if eligible == 0 {
                0.0
            } else {
                started[i] as f64 / eligible as f64
            },
            rates[i]
        );
    }
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
