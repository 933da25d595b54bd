//! `heartbeat-bench quality`: event-level precision, recall, false-alert burden and detection
//! delay of the alerts that page a person, against the generator's ground truth.
//!
//! Ground truth is the injected episodes: each injected reading names its episode (the
//! simulator's `episode`, the Kafka header `x-episode`) and the kinds that episode should page
//! for (`injected`, the header `x-injected`); natural readings name none. An episode starts at
//! its first reading (a silence: at the last reading before it) and ends at its last (a silence:
//! the first reading after it). What is scored are the *activated* alerts (`alerts.activated_at`
//! not null), matched to the episodes by `score.rs`.
//!
//! Two modes score the same way. The default runs the real binaries: `heartbeat-pipeline run` (a
//! processor) while `heartbeat-pipeline generate` publishes the seeded stream in real time, then
//! reads the `alerts` table and the headers back from the topic (`kafka.rs`). `--offline` runs
//! the simulator and the detector in-process (`offline.rs`), fast enough for a grid of seeds,
//! intervals and populations. `--compare` runs both on the same seeds and checks that they saw
//! the same episodes and activated the same alerts (`compare.rs`).
//!
//! Both also print the per-reading *findings* (the `anomalies` rows, every reading that raised a
//! kind), scored against the kinds of the episode the reading belongs to.
//!
//! # Parts
//! - `score.rs`: the matching and the statistics, pure, with their tests.
//! - `offline.rs`, `kafka.rs`: the two modes, each producing one [`Run`] per seed.
//! - `report.rs`: the tables, per seed and pooled over the seeds.
//! - `compare.rs`: the two modes side by side.

mod compare;
mod kafka;
mod offline;
mod report;
mod score;

use std::path::PathBuf;

use anyhow::{bail, Context};
use heartbeat_pipeline::config::Settings;
use heartbeat_pipeline::domain::detector::DetectorConfig;

use score::{Alert, Episode, KINDS};

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) seeds: Vec<u64>,
    pub(crate) customers: usize,
    /// Simulated seconds between two readings of a customer.
    pub(crate) interval_s: f64,
    /// Simulated (offline) or real (Kafka) seconds of stream.
    pub(crate) duration_s: f64,
    /// Whether readings carry their activity (`generator.activity`).
    pub(crate) activity: bool,
    pub(crate) config: Option<PathBuf>,
    /// `detector.silence_after_ms` for the run, when given.
    pub(crate) silence_after_ms: Option<u64>,
    pub(crate) threads: usize,
}

impl Params {
    /// Readings per second over the fleet: customers / interval.
    pub(crate) fn rate(&self) -> f64 {
        self.customers as f64 / self.interval_s
    }

    /// Readings in one run: the same count in both modes, so both see the same stream.
    pub(crate) fn records(&self) -> u64 {
        (self.duration_s * self.rate()).round() as u64
    }

    /// How long after an episode's last reading its alert may still activate:
    /// `detector.resolve_after_readings` reading intervals.
    pub(crate) fn resolve_window_us(&self, cfg: &DetectorConfig) -> i64 {
        (f64::from(cfg.resolve_after_readings) * self.interval_s * 1e6) as i64
    }

    /// The configuration both modes run with: the normal loader (defaults, `--config`, the
    /// environment), then `--silence-after-ms`.
    pub(crate) fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = Settings::load(self.config.as_deref())?;
        if let Some(ms) = self.silence_after_ms {
            s.detector.silence_after_ms = std::time::Duration::from_millis(ms);
        }
        Ok(s)
    }
}

/// Per kind, the per-reading findings against the kinds of the reading's episode.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Findings {
    /// Readings of an episode that should page for the kind.
    pub(crate) labelled: [u64; KINDS],
    /// Readings that raised the kind.
    pub(crate) raised: [u64; KINDS],
    /// Readings that raised it and belong to such an episode.
    pub(crate) correct: [u64; KINDS],
}

impl Findings {
    /// Notes one reading of an episode of `kinds` (mask) that raised `raised` (kind indexes).
    pub(crate) fn reading(&mut self, kinds: u8, raised: impl Iterator<Item = usize>) {
        for k in 0..KINDS {
            if kinds & 1 << k != 0 {
                self.labelled[k] += 1;
            }
        }
        for k in raised {
            self.raised[k] += 1;
            if kinds & 1 << k != 0 {
                self.correct[k] += 1;
            }
        }
    }

    pub(crate) fn add(&mut self, o: &Findings) {
        for k in 0..KINDS {
            self.labelled[k] += o.labelled[k];
            self.raised[k] += o.raised[k];
            self.correct[k] += o.correct[k];
        }
    }
}

/// One seed's run, in either mode.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) seed: u64,
    pub(crate) readings: u64,
    /// Customers × the stream's span, in days of reading time.
    pub(crate) customer_days: f64,
    pub(crate) episodes: Vec<Episode>,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) findings: Findings,
    pub(crate) resolve_window_us: i64,
    /// Wall-clock seconds the run took.
    pub(crate) seconds: f64,
    /// Activated alerts left out of the score (Kafka: the silences of the stream's end).
    pub(crate) left_out: u64,
    /// Whether the readings named their episodes; if not, episodes are runs of injected
    /// readings (`Episodes::synthetic`).
    pub(crate) episode_ids: bool,
    /// Alert episodes that never activated, as (customer, kind, opening reading): kept by the
    /// Kafka mode and by an offline run made to compare with one.
    pub(crate) unactivated: Vec<(u32, u8, u32)>,
}

/// Which modes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Kafka,
    Offline,
    Compare,
}

/// Parses `1-10,1000-1019,42` into the seeds, in order.
pub(crate) fn parse_seeds(text: &str) -> anyhow::Result<Vec<u64>> {
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .with_context(|| format!("--seeds: {s:?} is not a seed (0 to 2^64 - 1)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b || b - a >= 100_000 {
                    bail!(
                        "--seeds: {part:?} is not a range a-b with a <= b and at most 100000 seeds"
                    );
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(number(part)?),
        }
    }
    if seeds.is_empty() {
        bail!("--seeds: no seed given");
    }
    Ok(seeds)
}

pub(crate) fn quality(mode: Mode, p: &Params) -> anyhow::Result<()> {
    if !(p.interval_s.is_finite() && p.interval_s > 0.0) || p.duration_s <= 0.0 {
        bail!("--interval-s and the duration must be positive");
    }
    let settings = p.settings()?;
    let cfg = DetectorConfig::from(&settings);
    println!(
        "quality: {} customers, a reading every {} s, {:.1} h of {} time per seed ({} readings), \
         activity {}, seeds {}",
        p.customers,
        p.interval_s,
        p.duration_s / 3600.0,
        if mode == Mode::Offline {
            "simulated"
        } else {
            "real"
        },
        p.records(),
        if p.activity { "on" } else { "off" },
        report::seed_list(&p.seeds),
    );
    match mode {
        Mode::Offline => {
            let started = std::time::Instant::now();
            let runs = offline::run_all(&settings, p, p.threads);
            report::print(&runs, &cfg, p, "offline");
            let readings: u64 = runs.iter().map(|r| r.readings).sum();
            let cpu: f64 = runs.iter().map(|r| r.seconds).sum();
            println!(
                "\n{readings} readings in {:.1} s on {} thread(s): {:.2} M readings/s per thread",
                started.elapsed().as_secs_f64(),
                p.threads,
                readings as f64 / cpu.max(1e-9) / 1e6
            );
        }
        Mode::Kafka => {
            let runs = p
                .seeds
                .iter()
                .map(|&seed| kafka::run_seed(p, &settings, &cfg, seed))
                .collect::<anyhow::Result<Vec<_>>>()?;
            report::print(&runs, &cfg, p, "kafka");
        }
        Mode::Compare => {
            let mut differ = false;
            for &seed in &p.seeds {
                let online = kafka::run_seed(p, &settings, &cfg, seed)?;
                let offline = offline::run_seed(&settings, p, seed, Some(&online));
                differ |= !compare::compare(&online, &offline);
            }
            if differ {
                bail!("the Kafka and the offline mode disagree (above)");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_lists_and_ranges() {
        assert_eq!(parse_seeds("1-3,1000,7-7").unwrap(), vec![1, 2, 3, 1000, 7]);
        assert!(parse_seeds("3-1").is_err());
        assert!(parse_seeds("x").is_err());
        assert!(parse_seeds("").is_err());
    }

    #[test]
    fn findings_count_each_kind_of_a_reading() {
        let mut f = Findings::default();
        f.reading(0b100, [2, 4].into_iter());
        f.reading(0, [2].into_iter());
        assert_eq!((f.labelled[2], f.raised[2], f.correct[2]), (1, 2, 1));
        assert_eq!((f.labelled[4], f.raised[4], f.correct[4]), (0, 1, 0));
    }
}
