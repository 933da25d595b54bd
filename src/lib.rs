//! heartbeat-pipeline: real-time heart-rate monitoring. Readings come from Kafka, are validated,
//! classified and checked for anomalies per customer, and stored in PostgreSQL, by actix actors
//! under a supervisor. The external contract is SPEC.md; docs/ARCHITECTURE.md tells the design.
//!
//! # Layout
//! Layers, each importing only from those above it in this list (docs/ARCHITECTURE.md "Layers";
//! `scripts/check-layers.py` fails the tests on a circle):
//! - [`domain`]: pure types and decisions: reading, record, validation, classification, the
//!   detector's rules, the simulator. Imports nothing else of the crate, nor actix, diesel or
//!   rdkafka. Also leaves: [`health`] (what `/healthz` and `/readyz` report), [`progress`]
//!   (assigned partitions, their generations and whether each is caught up), [`faults`]
//!   (test-only fault injection, cargo feature `fault-injection`), [`logfile`] (the rotating log).
//! - [`config`]: the `Settings` tree, layered loading, each key's rules beside it (every problem
//!   at once), and the one conversion of each section into its domain type. [`metrics`]: the
//!   Prometheus registry.
//! - [`db`]: pool, embedded migrations, `schema.rs` (generated), models, queries;
//!   [`telemetry`]: the slog root logger and the `log` bridge; [`http`]: `/healthz`, `/readyz`,
//!   `/metrics`.
//! - [`messages`]: every actix message.
//! - [`offsets`]: batches in flight and the offsets that may be stored, through the
//!   `OffsetStore` trait; [`kafka`]: every librdkafka setting in one place, the consumer type and
//!   its offset store.
//! - [`actors`]: one module per actor, and the supervisor; `Stage` names the stages, and each
//!   actor gets its downstream (`Downstream`) from its constructor, never importing another.
//! - [`pipeline`]: wiring of the actor groups from `Settings`.
//! - [`cli`]: the command line; [`commands`]: one module per command (`run`, `generate`,
//!   `produce`, `migrate`, `inspect`, `tail`, `rules`; `check-config` lives in `main`).

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
