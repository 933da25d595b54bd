//! `heartbeat-bench quality --offline`: the simulator and the detector in-process, no Kafka and
//! no database, so a grid of seeds, intervals and populations is cheap.
//!
//! Each seed runs `domain::simulator::Simulator` for the run's readings and hands every reading
//! to `domain::detector::observe` as the processor would (fleet bands, no per-customer rules,
//! `activity` only when `--activity on`). Silences are judged from simulated time: a customer
//! whose next reading comes `detector.silence_after_ms` or more after its previous one was
//! silent, reported with `domain::detector::silence` just before that reading is observed. The
//! processor judges them by its own clock while caught up; for a stream published in real time
//! (the Kafka mode) the two agree, and simulated time is the only clock an offline run has.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::DateTime;
use heartbeat_pipeline::config::Settings;
use heartbeat_pipeline::domain::classification::AnomalyKind;
use heartbeat_pipeline::domain::detector::{observe, silence, CustomerState, DetectorConfig};
use heartbeat_pipeline::domain::reading::Reading;
use heartbeat_pipeline::domain::simulator::{
    customer_id, customer_number, sim_start, SimRecord, Simulator,
};

use super::score::{mask, Alert, Episodes, KINDS, SILENT};
use super::{Findings, Params, Run};

/// What the offline run keeps of one customer.
struct Tracked {
    state: CustomerState,
    /// Handed to `observe`, its fields overwritten for each reading: no allocation per reading.
    reading: Reading,
    readings: u32,
    last_us: Option<i64>,
    /// The episode of its previous reading.
    last_episode: Option<u64>,
    /// Per kind, the number of the reading that opened its open alert episode.
    opened: [u32; KINDS],
}

/// Runs every seed of `p` on `threads` threads; the runs in the order of the seeds.
pub(super) fn run_all(settings: &Settings, p: &Params, threads: usize) -> Vec<Run> {
    let next = AtomicUsize::new(0);
    let runs: Mutex<Vec<Option<Run>>> = Mutex::new(p.seeds.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, p.seeds.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = p.seeds.get(i) else { break };
                let run = run_seed(settings, p, seed, None);
                // A panic in another thread poisons the lock; the scope then panics anyway.
                if let Ok(mut runs) = runs.lock() {
                    runs[i] = Some(run);
                }
            });
        }
    });
    runs.into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// One seed: its episodes, activated alerts and findings. `like`: a Kafka run to compare with;
/// then the run also keeps its alert episodes that never activated, and when that run's
/// generator sent no `x-episode` the episodes are taken as it saw them: runs of injected
/// readings.
pub(super) fn run_seed(settings: &Settings, p: &Params, seed: u64, like: Option<&Run>) -> Run {
    let ids = like.map_or(true, |r| r.episode_ids);
    let mut unactivated = Vec::new();
    let started = Instant::now();
    let cfg = DetectorConfig::from(settings);
    let mut sim_cfg = settings.simulator_config(seed);
    sim_cfg.customers = p.customers;
    sim_cfg.rate = p.rate();
    sim_cfg.fault_rate = 0.0;
    let mut sim = Simulator::new(sim_cfg);
    let silence_after_us =
        i64::try_from(settings.detector.silence_after_ms.as_micros()).unwrap_or(i64::MAX);
    let start = sim_start();
    let mut customers: Vec<Tracked> = (0..sim.customers())
        .map(|n| Tracked {
            state: CustomerState::default(),
            reading: Reading {
                event_id: uuid::Uuid::nil(),
                customer_id: customer_id(n),
                recorded_at: start,
                heart_rate: 0,
                activity: None,
                device_id: None,
            },
            readings: 0,
            last_us: None,
            last_episode: None,
            opened: [0; KINDS],
        })
        .collect();
    let mut episodes = Episodes::default();
    let mut alerts = Vec::new();
    let mut findings = Findings::default();
    let (mut first_us, mut last_us) = (i64::MAX, i64::MIN);
    for _ in 0..p.records() {
        let SimRecord::Reading {
            customer_id,
            heart_rate,
            sim_time,
            activity,
            injected,
            episode,
        } = sim.next_record(start)
        else {
            continue;
        };
        let Some(c) = customer_number(&customer_id).filter(|&c| c < customers.len()) else {
            continue;
        };
        // The validator keeps microseconds.
        let t_us = sim_time.timestamp_micros();
        let Some(at) = DateTime::from_timestamp_micros(t_us) else {
            continue;
        };
        (first_us, last_us) = (first_us.min(t_us), last_us.max(t_us));
        let kinds = mask(&injected);
        let t = &mut customers[c];
        let customer = c as u32;
        if let Some(previous) = t.last_us.filter(|&l| t_us - l >= silence_after_us) {
            if let Some((_, row)) = silence(&cfg, &mut t.state, &t.reading.customer_id, None) {
                if row.activated_at.is_some() {
                    alerts.push(Alert {
                        customer,
                        kind: SILENT as u8,
                        activated_us: previous,
                        opened: t.readings.saturating_sub(1),
                        reading: t.readings.saturating_sub(1),
                    });
                }
            }
        }
        let episode = match episode {
            _ if !ids => (kinds != 0).then(|| episodes.synthetic(t.last_episode)),
            id => id,
        };
        // Only an injected episode's readings are ground truth: the kinds are the episode's.
        let kinds = if episode.is_some() { kinds } else { 0 };
        episodes.reading(customer, t.readings, t_us, t.last_us, episode, kinds);
        t.reading.recorded_at = at;
        t.reading.heart_rate = heart_rate;
        t.reading.activity = p.activity.then_some(activity);
        let seen = observe(&cfg, &mut t.state, &t.reading, None);
        for row in &seen.alerts {
            let k = row.kind.index();
            if row.opened_at == at {
                t.opened[k] = t.readings;
            }
            if like.is_some() && row.resolved_at.is_some() && row.activated_at.is_none() {
                unactivated.push((customer, k as u8, t.opened[k]));
            }
            if row.activated_at == Some(at) && row.kind != AnomalyKind::Silent {
                alerts.push(Alert {
                    customer,
                    kind: k as u8,
                    activated_us: t_us,
                    opened: t.opened[k],
                    reading: t.readings,
                });
            }
        }
        findings.reading(kinds, seen.anomalies.iter().map(|a| a.kind.index()));
        t.last_us = Some(t_us);
        t.last_episode = episode;
        t.readings += 1;
    }
    if like.is_some() {
        // Those still open at the end.
        for (c, t) in customers.iter().enumerate() {
            for e in t.state.episodes.iter().filter(|e| e.activated_at.is_none()) {
                let k = e.kind.index();
                unactivated.push((c as u32, k as u8, t.opened[k]));
            }
        }
    }
    let span_s = if last_us >= first_us {
        (last_us - first_us) as f64 / 1e6 + p.interval_s
    } else {
        0.0
    };
    Run {
        seed,
        readings: customers.iter().map(|c| u64::from(c.readings)).sum(),
        customer_days: customers.len() as f64 * span_s / 86_400.0,
        episodes: episodes.all,
        alerts,
        findings,
        resolve_window_us: p.resolve_window_us(&cfg),
        seconds: started.elapsed().as_secs_f64(),
        left_out: 0,
        episode_ids: ids,
        unactivated,
    }
}
