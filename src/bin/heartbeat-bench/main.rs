//! `heartbeat-bench`: throughput figures you can rerun, against the real services.
//!
//! `heartbeat-bench poison [--records N] [--poison-percent P] [--rounds R]` preloads two fresh
//! topics with N records each, one clean and one with P% poison records (every reject reason in
//! turn), then runs the real `heartbeat-pipeline run` (processor only, a fresh database each
//! time) over each topic in alternation and prints records per second and the ratio
//! poisoned/clean. Timing runs from the first stored row to the last, so the consumer group's
//! join time does not count.
//!
//! `heartbeat-bench formats [--records N] [--rounds R]` preloads two fresh topics with the same
//! N simulated readings, one all native and one a third each native, FHIR and Open mHealth, runs
//! the processor over each in alternation like `poison` and prints readings per second and the
//! ratio mixed/native.
//!
//! `heartbeat-bench throughput [--records N] [--replicas R] [--customers C] [--peer] [--rounds K]`
//! preloads N
//! clean readings (default 1,000,000; C customers, default 10,000, about a third anomalous by
//! the bands) into a fresh topic, runs R processors in one consumer group from the start until
//! every row is stored, and reports readings/s, each processor's peak RSS, the WAL written, the
//! rows written per table and the detector states written per reading. It then copies the same rows out of `readings` and
//! times PostgreSQL's own binary `COPY ... FROM` of them into the `readings` table of a second,
//! freshly migrated database (identical schema, empty), and prints the ratio pipeline / COPY.
//!
//! `heartbeat-bench restart [--records N] [--customers C]`: processor A stores N/2 readings of C
//! customers (default 100,000) and saves their states, is stopped, and processor B takes over
//! with N/2 more: time to B's partitions, first commit and full speed (restart.rs).
//!
//! `heartbeat-bench latency [--rate R] [--seconds S]` starts a processor, publishes readings at
//! a steady R per second (default 10,000, 10,000 customers) for S seconds, each stamped with the
//! time it is published, and reports publish-to-commit latency percentiles: the commit time of
//! each row's transaction (`pg_xact_commit_timestamp`, which `scripts/services.sh` turns on)
//! minus the reading's timestamp.
//!
//! `heartbeat-bench quality [--offline | --compare] [--seeds 1-10] [--customers C]
//! [--interval-s S] [--days D | --minutes M] [--activity on|off] [--config FILE]` scores the
//! alerts that page a person against the generator's injected episodes: per kind, event-level
//! recall, precision and detection delay, and the false activated alerts per customer-day, per
//! seed and pooled with 95% confidence intervals. The default runs the real processor while
//! `heartbeat-pipeline generate` publishes each seed's stream in real time; `--offline` runs the
//! simulator and the detector in-process (no Kafka, no database) for grids of seeds;
//! `--compare` runs both and checks they agree (docs/PERFORMANCE.md, "Detection quality").
//!
//! `heartbeat-bench delivery [--rate R] [--seconds S] [--triggers T]` measures alert delivery
//! against a real Alertmanager (a private one, `group_wait: 0s`) routing to a webhook recorder:
//! from the reading that activates an episode to the webhook's firing notification, p50 and p99,
//! under R readings/s of normal traffic. `--throughput [--records N] [--rounds K]` runs the
//! throughput pass with Alertmanager delivery off and on in alternation, and the ratio
//! (`--storm`: readings that activate spike episodes all the time).
//!
//! `heartbeat-bench many-days [--days D]` preloads one customer's readings on D distinct past
//! days (default 3,000, the newest 3,100 days old, stamped now by Kafka) and runs the processor
//! over them twice: with the default configuration (all `stale_timestamp`, no partition made) and
//! with `validation.max_age_days = 0` (all stored, a day partition each), printing the seconds
//! and readings/s of each.
//!
//! Needs the local services (`scripts/services.sh up`) or `HEARTBEAT_BENCH_DATABASE_URL` (an
//! admin URL) and `HEARTBEAT_BENCH_BROKERS`. Use the release build (`scripts/bench.sh`).
//!
//! # Parts
//! - `poison.rs`, `formats.rs`, `throughput.rs`, `latency.rs`, `delivery.rs`, `quality/`,
//!   `many_days.rs`, `retention.rs`, `restart.rs`: one subcommand each.
//! - `alertmanager.rs`: a private Alertmanager and the webhook recorder it notifies.
//! - `load.rs`: what goes into the topics.
//! - `processors.rs`: runs of the real processor, timed.
//! - `services.rs`: databases, topics and the environment of the binary under test.

mod alertmanager;
mod delivery;
mod formats;
mod latency;
mod load;
mod many_days;
mod poison;
mod processors;
mod quality;
mod restart;
mod retention;
mod services;
mod throughput;

use clap::{Parser, Subcommand};

use crate::delivery::{delivery_latency, delivery_throughput};
use crate::formats::formats;
use crate::latency::latency;
use crate::load::BENCH_CUSTOMERS;
use crate::many_days::many_days;
use crate::poison::poison;
use crate::quality::{parse_seeds, quality, Mode, Params};
use crate::restart::restart;
use crate::retention::retention;
use crate::throughput::throughput;

#[derive(Parser)]
#[command(
    name = "heartbeat-bench",
    about = "Rerunnable throughput figures for heartbeat-pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Throughput of a stream with poison records against a clean one.
    Poison {
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        #[arg(long, default_value_t = 10)]
        poison_percent: u64,
        /// Passes over each topic, alternating; the best of each is compared.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
    },
    /// Throughput of the same readings in the three formats (a third each) against native only.
    Formats {
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Passes over each topic, alternating; the best of each is compared.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Readings per second end to end against PostgreSQL's own COPY of the same rows.
    Throughput {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Processors in one consumer group.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Distinct customers among the readings (the simulator's `--customers`).
        #[arg(long, default_value_t = BENCH_CUSTOMERS)]
        customers: u64,
        /// Also time the Python consumer built like the best peers (scripts/peer-consumer.py)
        /// over the same topic into a fresh database.
        #[arg(long)]
        peer: bool,
        /// Passes, each the pipeline into a fresh database then COPY of its rows; with more than
        /// one, the ratios and their median (the peer runs once, against the median).
        #[arg(long, default_value_t = 1)]
        rounds: u32,
    },
    /// A processor taking over a fleet's saved detector state: time to its first commit and to
    /// full speed.
    Restart {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        #[arg(long, default_value_t = 100_000)]
        customers: u64,
    },
    /// Publish-to-commit latency at a steady rate.
    Latency {
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The publishing producer's `linger.ms`. Its wait counts in the latency (readings are
        /// stamped before it). Below 10 ms, at 10,000 readings/s, the local broker (tansu's
        /// memory engine, whose every fetch lists every batch stored in the partition) falls
        /// behind: docs/PERFORMANCE.md.
        #[arg(long, default_value_t = 20)]
        linger_ms: u64,
    },
    /// Alert delivery through a real Alertmanager: activation-to-notification latency, or with
    /// `--throughput` readings/s with delivery off and on.
    Delivery {
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Episodes activated per second.
        #[arg(long, default_value_t = 2)]
        triggers: u64,
        #[arg(long)]
        throughput: bool,
        /// With --throughput: readings preloaded.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// With --throughput: pairs of passes (off, on).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// With --throughput: readings that raise spike episodes all the time, instead of the
        /// simulator's.
        #[arg(long)]
        storm: bool,
    },
    /// Readings on many distinct past days (a producer's clock gone wrong): all stale by
    /// default, all stored with `validation.max_age_days = 0`.
    ManyDays {
        #[arg(long, default_value_t = 3_000)]
        days: u64,
    },
    /// One retention pass: an expired day of readings dropped, the other tables' expired rows
    /// deleted; the time of each.
    Retention {
        /// Readings per day (a third as many anomalies, a tenth as many rejects).
        #[arg(long, default_value_t = 3_000_000)]
        rows: u64,
    },
    /// Event-level precision, recall, false-alert burden and delay of the activated alerts.
    Quality {
        /// Simulator and detector in-process: no Kafka, no database.
        #[arg(long, conflicts_with = "compare")]
        offline: bool,
        /// Both modes on the same seeds; exit 1 unless they see the same episodes and activate
        /// the same alerts.
        #[arg(long)]
        compare: bool,
        /// Seeds, a list of numbers and ranges: `1-10` (the tuning seeds), `1000-1019` (held
        /// out). Default 1-10 offline, 1 otherwise.
        #[arg(long, alias = "seed")]
        seeds: Option<String>,
        #[arg(long, default_value_t = 500)]
        customers: usize,
        /// Seconds between two readings of a customer (the rate is customers / interval).
        #[arg(long, default_value_t = 10.0)]
        interval_s: f64,
        /// Days of stream per seed (simulated offline, real otherwise); default 2 offline.
        #[arg(long)]
        days: Option<f64>,
        /// Minutes of stream per seed, instead of days; default 10 in the Kafka mode.
        #[arg(long, conflicts_with = "days")]
        minutes: Option<f64>,
        /// Whether readings carry their activity (`generator.activity`).
        #[arg(long, default_value = "on", value_parser = ["on", "off"])]
        activity: String,
        /// A configuration file over config/default.toml (then the environment), as for
        /// `heartbeat-pipeline --config`: the detector and the generator's injection rates.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// `detector.silence_after_ms` for the run, over the configuration.
        #[arg(long)]
        silence_after_ms: Option<u64>,
        /// Seeds run at once offline; default: the cores.
        #[arg(long)]
        threads: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Quality {
            offline,
            compare,
            seeds,
            customers,
            interval_s,
            days,
            minutes,
            activity,
            config,
            silence_after_ms,
            threads,
        } => {
            let mode = match (offline, compare) {
                (true, _) => Mode::Offline,
                (_, true) => Mode::Compare,
                _ => Mode::Kafka,
            };
            let default_seeds = if mode == Mode::Offline { "1-10" } else { "1" };
            let duration_s = match (minutes, days) {
                (Some(m), _) => m * 60.0,
                (_, Some(d)) => d * 86_400.0,
                _ if mode == Mode::Offline => 2.0 * 86_400.0,
                _ => 600.0,
            };
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let params = Params {
                seeds: parse_seeds(seeds.as_deref().unwrap_or(default_seeds))?,
                customers: customers.max(1),
                interval_s,
                duration_s,
                activity: activity == "on",
                config,
                silence_after_ms,
                threads: threads.unwrap_or(cores).max(1),
            };
            quality(mode, &params)
        }
        Bench::Poison {
            records,
            poison_percent,
            rounds,
        } => poison(records, poison_percent.min(100), rounds),
        Bench::Formats { records, rounds } => formats(records.max(1), rounds.max(1)),
        Bench::Throughput {
            records,
            replicas,
            customers,
            peer,
            rounds,
        } => throughput(
            records,
            replicas.max(1),
            customers.max(1),
            peer,
            rounds.max(1),
        ),
        Bench::Latency {
            rate,
            seconds,
            linger_ms,
        } => latency(rate.max(1), seconds.max(1), linger_ms),
        Bench::Delivery {
            throughput: true,
            records,
            rounds,
            storm,
            ..
        } => delivery_throughput(records.max(1), rounds.max(1), storm),
        Bench::Delivery {
            rate,
            seconds,
            triggers,
            ..
        } => delivery_latency(rate.max(1), seconds.max(1), triggers.max(1)),
        Bench::ManyDays { days } => many_days(days.max(1)),
        Bench::Retention { rows } => retention(rows.max(1)),
        Bench::Restart { records, customers } => restart(records.max(2), customers.max(1)),
    }
}
