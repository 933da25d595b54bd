//! heartbeat-pipeline: real-time heart-rate monitoring. Readings come from Kafka, are validated,
//! classified and checked for anomalies per customer, and stored in PostgreSQL, by actix actors
//! under a supervisor. The external contract is SPEC.md; docs/ARCHITECTURE.md tells the design.
//!
//! # Layout
//! - [`cli`]: the command line; [`commands`]: one module per command (`run`, `generate`,
//!   `migrate`, `inspect`, `tail`; `check-config` lives in `main`).
//! - [`config`]: the `Settings` tree, layered loading and validation (every problem at once).
//! - [`telemetry`]: the slog root logger and the `log` bridge; [`logfile`]: the rotating log file.
//! - [`domain`]: pure types and decisions (reading, validation, classification, simulator).
//! - [`messages`]: every actix message.
//! - [`actors`]: one file per actor, and the supervisor.
//! - [`pipeline`]: wiring of the actor groups from `Settings`.
//! - [`kafka`]: every librdkafka setting in one place; [`db`]: pool, migrations, schema, queries.
//! - [`http`], [`health`], [`metrics`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`progress`]: assigned partitions and whether each is caught up (for silence detection).
//! - [`offsets`]: batches in flight and the offsets that may be stored.
//! - [`faults`]: test-only fault injection (cargo feature `fault-injection`).

pub mod actors;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod faults;
pub mod health;
pub mod http;
pub mod kafka;
pub mod logfile;
pub mod messages;
pub mod metrics;
pub mod offsets;
pub mod pipeline;
pub mod progress;
pub mod telemetry;
