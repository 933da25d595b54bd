//! The command line of SPEC section 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "heartbeat-pipeline",
    version,
    // SPEC section 2: every subcommand takes --version too.
    propagate_version = true,
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
    /// Publish each line of FILE (standard input when absent or `-`) as one record, as it is,
    /// keyed by the customer id it names; exit once all are acknowledged.
    Produce {
        /// Topic to send to. Default: kafka.topics.readings.
        #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
        topic: Option<String>,
        /// JSON lines to send, one record per line; `-` or absent = standard input.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
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
    /// Per-customer alert rules (table alert_rules): thresholds of a customer's own, mutes, notes.
    Rules {
        #[command(subcommand)]
        action: RulesCommand,
    },
}

/// `heartbeat-pipeline rules ...` (SPEC section 2; docs/OPERATIONS.md, "Per-customer rules").
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Every customer with rules of its own.
    List,
    /// One customer's effective rules (its own, else the fleet bands), mute and note.
    Show {
        /// Customer id, as in readings.
        customer: String,
    },
    /// Set thresholds (bpm) and a note; unset flags keep their value, `fleet` resets one.
    Set(SetArgs),
    /// Mute a customer's alerts: episodes still open and resolve but do not activate.
    Mute(MuteArgs),
    /// End a customer's mute.
    Unmute {
        /// Customer id, as in readings.
        customer: String,
    },
    /// Remove all of a customer's rules (thresholds, mute, note): back to the fleet bands.
    Clear {
        /// Customer id, as in readings.
        customer: String,
    },
}

/// `rules set C [--critical-low-below N] [--low-below N] [--high-above N]
/// [--critical-high-above N] [--note TEXT]`: at least one of them.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("values").required(true).multiple(true)))]
pub struct SetArgs {
    /// Customer id, as in readings.
    pub customer: String,
    /// Below this a reading is critical_low for this customer (bpm, or `fleet`).
    #[arg(long, value_name = "N", group = "values")]
    pub critical_low_below: Option<String>,
    /// Below this a reading is low (bradycardia) for this customer (bpm, or `fleet`).
    #[arg(long, value_name = "N", group = "values")]
    pub low_below: Option<String>,
    /// Above this a reading is high (tachycardia) for this customer (bpm, or `fleet`).
    #[arg(long, value_name = "N", group = "values")]
    pub high_above: Option<String>,
    /// Above this a reading is critical_high for this customer (bpm, or `fleet`).
    #[arg(long, value_name = "N", group = "values")]
    pub critical_high_above: Option<String>,
    /// Why these rules (shown by list and show); empty removes the note.
    #[arg(long, value_name = "TEXT", group = "values")]
    pub note: Option<String>,
}

/// `rules mute C --for DURATION | --until RFC3339`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("end").required(true).multiple(false)))]
pub struct MuteArgs {
    /// Customer id, as in readings.
    pub customer: String,
    /// How long: whole numbers with a unit s, m, h or d (90m, 2h, 1h30m, 1d), up to 365d.
    #[arg(long = "for", value_name = "DURATION", group = "end")]
    pub duration: Option<String>,
    /// Until when: an RFC 3339 time (2026-12-24T08:00:00Z), within a year.
    #[arg(long, value_name = "RFC3339", group = "end")]
    pub until: Option<String>,
}
