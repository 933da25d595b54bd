//! The command line of SPEC section 2.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "heartbeat-pipeline",
    version,
    about = "Real-time heart-rate monitoring: Kafka in, validation and anomaly detection, PostgreSQL out"
)]
pub struct Cli {
    /// Configuration file layered over the built-in defaults (config/default.toml).
    #[arg(long, global = true, env = "HEARTBEAT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the actors enabled in config, and HTTP (/healthz, /readyz, /metrics).
    Run,
    /// Publish simulated readings to the readings topic, then exit once all are acknowledged.
    Generate {
        /// How many readings; forever when absent.
        #[arg(long)]
        count: Option<u64>,
        /// Readings per second; 0 = as fast as the broker takes them. Default: generator.rate.
        #[arg(long)]
        rate: Option<u64>,
        /// Simulated customers (1 to 10000000, as generator.customers). Default:
        /// generator.customers.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        customers: Option<u64>,
        /// Seed for a reproducible stream. Default: generator.seed, else random.
        #[arg(long)]
        seed: Option<u64>,
        /// Print a profile of the first N records of the stream (no Kafka needed) and exit.
        #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "100000")]
        profile: Option<u64>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the effective configuration and print it, secrets redacted.
    CheckConfig,
    /// Summarize the database: counts, classes, anomalies, open alerts, rejects, top customers.
    Inspect,
    /// Print the records of a topic as they arrive.
    Tail {
        /// Topic to follow. Default: kafka.topics.readings.
        #[arg(long)]
        topic: Option<String>,
        /// Start from the oldest record instead of new ones only.
        #[arg(long)]
        from_beginning: bool,
    },
}
