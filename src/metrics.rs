//! Prometheus metrics of SPEC section 6, in one registry that `/metrics` renders.
//!
//! One `Metrics` value is built at start and shared (`Arc`) by every actor; the series survive
//! actor restarts, so counters never go back.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::domain::classification::AnomalyKind;
use crate::domain::validation::{IgnoredField, RejectReason};

/// Bucket bounds of the batch write duration, seconds: from a small batch on an idle database to
/// a large one under load.
const DB_BATCH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of a record's delay from its Kafka timestamp to the processor, seconds: from a
/// record read at once to one read after a long outage or from a backlog.
const RECORD_DELAY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// The actors that have a mailbox on the data path, for `heartbeat_mailbox_depth{actor}`.
pub const ACTORS: &[&str] = &[
    "generator",
    "kafka_publisher",
    "kafka_subscriber",
    "validator",
    "anomaly_detector",
    "db_writer",
    "output_publisher",
];

pub struct Metrics {
    registry: Registry,
    pub records_consumed: IntCounter,
    pub readings_stored: IntCounter,
    pub rejects: IntCounterVec,
    pub ignored_values: IntCounterVec,
    pub duplicates: IntCounter,
    pub anomalies: IntCounterVec,
    pub actor_restarts: IntCounterVec,
    pub mailbox_depth: IntGaugeVec,
    pub db_batch_duration: Histogram,
    pub record_delay: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub records_published: IntCounter,
    pub publish_failures: IntCounter,
    pub build_info: IntGaugeVec,
    pub ready: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // The names and labels are constants, so registration cannot fail.
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .unwrap_or_else(|e| unreachable!("metric registration: {e}"));
            c
        }
        fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
            reg(
                r,
                IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("{e}")),
            )
        }
        fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
            reg(
                r,
                IntCounterVec::new(Opts::new(name, help), labels)
                    .unwrap_or_else(|e| unreachable!("{e}")),
            )
        }
        fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
            reg(
                r,
                IntGaugeVec::new(Opts::new(name, help), labels)
                    .unwrap_or_else(|e| unreachable!("{e}")),
            )
        }

        let m = Metrics {
            records_consumed: counter(
                &registry,
                "heartbeat_records_consumed_total",
                "Records read from the readings topic and handed to the validator.",
            ),
            readings_stored: counter(
                &registry,
                "heartbeat_readings_stored_total",
                "Readings committed to the readings table (duplicates excluded).",
            ),
            rejects: counter_vec(
                &registry,
                "heartbeat_rejects_total",
                "Records rejected by the validator, by reason.",
                &["reason"],
            ),
            ignored_values: counter_vec(
                &registry,
                "heartbeat_ignored_values_total",
                "Readings kept whose optional field held a value that is not one of its own \
                 (taken as unknown), by field.",
                &["field"],
            ),
            duplicates: counter(
                &registry,
                "heartbeat_duplicates_total",
                "Valid readings whose identity was already stored.",
            ),
            anomalies: counter_vec(
                &registry,
                "heartbeat_anomalies_total",
                "Anomalies stored, by kind.",
                &["kind"],
            ),
            actor_restarts: counter_vec(
                &registry,
                "heartbeat_actor_restarts_total",
                "Restarts of an actor by the supervisor.",
                &["actor"],
            ),
            mailbox_depth: gauge_vec(
                &registry,
                "heartbeat_mailbox_depth",
                "Messages sent to an actor and not yet handled.",
                &["actor"],
            ),
            db_batch_duration: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "heartbeat_db_batch_duration_seconds",
                        "Time to store one batch in PostgreSQL, transaction included.",
                    )
                    .buckets(DB_BATCH_BUCKETS.to_vec()),
                )
                .unwrap_or_else(|e| unreachable!("{e}")),
            ),
            record_delay: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "heartbeat_record_delay_seconds",
                        "Time from a record's Kafka timestamp (producer or broker clock) until \
                         the processor read it: producer, broker and backlog together.",
                    )
                    .buckets(RECORD_DELAY_BUCKETS.to_vec()),
                )
                .unwrap_or_else(|e| unreachable!("{e}")),
            ),
            consumer_lag: gauge_vec(
                &registry,
                "heartbeat_consumer_lag",
                "High watermark minus the consumer's position, per partition.",
                &["topic", "partition"],
            ),
            records_published: counter(
                &registry,
                "heartbeat_records_published_total",
                "Records the publisher got acknowledged by the broker.",
            ),
            publish_failures: counter(
                &registry,
                "heartbeat_publish_failures_total",
                "Records the broker did not acknowledge.",
            ),
            build_info: gauge_vec(
                &registry,
                "heartbeat_build_info",
                "Always 1; the version label says which build runs.",
                &["version"],
            ),
            ready: reg(
                &registry,
                IntGauge::new("heartbeat_ready", "1 while /readyz answers 200.")
                    .unwrap_or_else(|e| unreachable!("{e}")),
            ),
            registry,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Pre-create the labelled series so dashboards see zeros instead of gaps.
        for reason in RejectReason::ALL {
            m.rejects.with_label_values(&[reason.as_str()]);
        }
        for field in IgnoredField::ALL {
            m.ignored_values.with_label_values(&[field.as_str()]);
        }
        for kind in AnomalyKind::ALL {
            m.anomalies.with_label_values(&[kind.as_str()]);
        }
        for actor in ACTORS {
            m.actor_restarts.with_label_values(&[actor]);
            m.mailbox_depth.with_label_values(&[actor]);
        }
        m
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return format!("# encoding metrics failed: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// A message was sent to `actor`'s mailbox.
    pub fn mailbox_in(&self, actor: &str) {
        self.mailbox_depth.with_label_values(&[actor]).inc();
    }

    /// `actor` took a message out of its mailbox.
    pub fn mailbox_out(&self, actor: &str) {
        self.mailbox_depth.with_label_values(&[actor]).dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_the_spec_names_is_rendered() {
        let m = Metrics::new();
        m.db_batch_duration.observe(0.01);
        m.consumer_lag
            .with_label_values(&["heartbeats", "0"])
            .set(0);
        let text = m.render();
        for name in [
            "heartbeat_records_consumed_total",
            "heartbeat_readings_stored_total",
            "heartbeat_rejects_total{reason=\"too_large\"}",
            "heartbeat_ignored_values_total{field=\"activity\"} 0",
            "heartbeat_duplicates_total",
            "heartbeat_anomalies_total{kind=\"spike\"}",
            "heartbeat_actor_restarts_total{actor=\"db_writer\"}",
            "heartbeat_mailbox_depth{actor=\"validator\"}",
            "heartbeat_db_batch_duration_seconds_bucket",
            "heartbeat_record_delay_seconds_bucket{le=\"0.1\"}",
            "heartbeat_consumer_lag{partition=\"0\",topic=\"heartbeats\"}",
            "heartbeat_build_info{version=",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
