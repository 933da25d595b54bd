//! `heartbeat-bench`: throughput figures you can rerun, against the real services.
//!
//! `heartbeat-bench poison [--records N] [--poison-percent P] [--rounds R]` preloads two fresh
//! topics with N records each, one clean and one with P% poison records (every reject reason in
//! turn), then runs the real `heartbeat-pipeline run` (processor only, a fresh database each
//! time) over each topic in alternation and prints records per second and the ratio
//! poisoned/clean. Timing runs from the first stored row to the last, so the consumer group's
//! join time does not count.
//!
//! `heartbeat-bench throughput [--records N] [--replicas R]` preloads N clean readings (default
//! 1,000,000; 10,000 customers, about a third anomalous by the bands) into a fresh topic, runs R
//! processors in one consumer group from the start until every row is stored, and reports
//! readings/s and each processor's peak RSS. It then copies the same rows out of `readings` and
//! times PostgreSQL's own binary `COPY ... FROM` of them into the `readings` table of a second,
//! freshly migrated database (identical schema, empty), and prints the ratio pipeline / COPY.
//!
//! `heartbeat-bench latency [--rate R] [--seconds S]` starts a processor, publishes readings at
//! a steady R per second (default 10,000, 10,000 customers) for S seconds, each stamped with the
//! time it is published, and reports publish-to-commit latency percentiles: the commit time of
//! each row's transaction (`pg_xact_commit_timestamp`, which `scripts/services.sh` turns on)
//! minus the reading's timestamp.
//!
//! `heartbeat-bench quality [--records N] [--customers C] [--rate R] [--seed S]` runs the
//! processor while `heartbeat-pipeline generate` publishes a seeded stream in real time, then
//! scores the stored anomalies against the generator's ground truth (the `x-injected` header of
//! every record): precision and recall per kind.
//!
//! Needs the local services (`scripts/services.sh up`) or `HEARTBEAT_BENCH_DATABASE_URL` (an
//! admin URL) and `HEARTBEAT_BENCH_BROKERS`. Use the release build (`scripts/bench.sh`).
//!
//! # Parts
//! - `poison.rs`, `throughput.rs`, `latency.rs`, `quality.rs`: one subcommand each.
//! - `load.rs`: what goes into the topics.
//! - `processors.rs`: runs of the real processor, timed.
//! - `services.rs`: databases, topics and the environment of the binary under test.

mod latency;
mod load;
mod poison;
mod processors;
mod quality;
mod services;
mod throughput;

use clap::{Parser, Subcommand};

use crate::latency::latency;
use crate::poison::poison;
use crate::quality::quality;
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
    /// Readings per second end to end against PostgreSQL's own COPY of the same rows.
    Throughput {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Processors in one consumer group.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Also time the Python consumer built like the best peers (scripts/peer-consumer.py)
        /// over the same topic into a fresh database.
        #[arg(long)]
        peer: bool,
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
    /// Precision and recall of each anomaly kind against the generator's ground truth.
    Quality {
        #[arg(long, default_value_t = 60_000)]
        records: u64,
        #[arg(long, default_value_t = 500)]
        customers: u64,
        /// Readings per second; with the customers, how often each customer reports.
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// `detector.silence_after_ms` for the run.
        #[arg(long, default_value_t = 10_000)]
        silence_after_ms: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Quality {
            records,
            customers,
            rate,
            seed,
            silence_after_ms,
        } => quality(records, customers, rate, seed, silence_after_ms),
        Bench::Poison {
            records,
            poison_percent,
            rounds,
        } => poison(records, poison_percent.min(100), rounds),
        Bench::Throughput {
            records,
            replicas,
            peer,
        } => throughput(records, replicas.max(1), peer),
        Bench::Latency {
            rate,
            seconds,
            linger_ms,
        } => latency(rate.max(1), seconds.max(1), linger_ms),
    }
}
