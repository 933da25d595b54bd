//! Test helpers: a fresh database per test, unique topics and groups, the real binary as a child
//! process, deadline-bounded polling, and the views a user has (rows, committed offsets, HTTP).
//!
//! The services come from `scripts/services.sh up` (the test command starts them):
//! `HEARTBEAT_TEST_DATABASE_URL` (an admin URL, default the local `postgres` database) and
//! `HEARTBEAT_TEST_BROKERS` (default 127.0.0.1:9092). Child logs are kept in memory and printed
//! when a test fails or with `TEST_LOG=1`.
//!
//! # Parts
//! - `db.rs`: [`TestDb`] (a fresh database per test), row counts, [`PrivatePostgres`].
//! - `daemon.rs`: [`Setup`] and the real binary as a [`Daemon`], its HTTP.
//! - `kafka.rs`: the broker's view: committed offsets, group state, topic contents.

use std::thread;
use std::time::{Duration, Instant};

mod alertmanager;
mod daemon;
mod db;
mod kafka;

pub use alertmanager::{http_post, Alertmanager, NotifiedAlert, Routing, WebhookRecorder};
pub use daemon::{replay_in_a_new_group, Daemon, Setup};
pub use db::{accounted, count_at, persist_readings, writer_db, PrivatePostgres, TestDb};
pub use kafka::{
    committed_offsets, committed_offsets_at, committed_total, group_members, group_state, header,
    producer, producer_at, queue_keyed, read_topic, reader_at,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_heartbeat-pipeline");

/// Partitions of every test topic: more than one, so ordering per partition matters, few enough
/// that the group joins quickly.
pub const PARTITIONS: i32 = 3;

pub fn admin_url() -> String {
    std::env::var("HEARTBEAT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn brokers() -> String {
    std::env::var("HEARTBEAT_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

pub fn log_enabled() -> bool {
    std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0")
}
