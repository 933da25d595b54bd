//! Prometheus metrics of SPEC section 6, in one registry that `/metrics` renders.
//!
//! One `Metrics` value is built at start and shared (`Arc`) by every actor; the series survive
//! actor restarts, so counters never go back.
//!
//! The alert counters (`heartbeat_alerts_activated_total{kind}`,
//! `heartbeat_alerts_suppressed_total{kind,reason}`) count the transitions of alert episodes this
//! process observed: [`Metrics::count_transition`] counts each (customer, kind, `opened_at`,
//! transition) once per process, so a reading observed again after the processor group restarted
//! (its batch never committed, and the new group reads it again) does not count an activation
//! twice. A new process starts every counter at 0, as Prometheus counters do.

use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::domain::classification::AnomalyKind;
use crate::domain::detector::Suppressed;
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

/// Why an episode resolved unactivated, for `heartbeat_alerts_suppressed_total{reason}`.
pub const SUPPRESSED: [Suppressed; 2] = [Suppressed::Short, Suppressed::Muted];

/// Alert transitions remembered so that none is counted twice: more than can be observed between
/// a batch's first observation and its second (a group restart re-reads at most the batches in
/// flight, seconds of them); 8 bytes each, so at most half a MiB.
const TRANSITIONS_REMEMBERED: usize = 65_536;

/// What happened to an alert episode, for the alert counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It activated (`activated_at` was set).
    Activated,
    /// It resolved without activating, for this reason (`suppressed`).
    Suppressed(Suppressed),
}

/// The transitions counted lately, as hashes, oldest first.
#[derive(Default)]
struct Counted {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Counted {
    /// Whether `key` is new; remembers it, forgetting the oldest beyond the bound.
    fn first_time(&mut self, key: u64) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > TRANSITIONS_REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

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
    pub alerts_activated: IntCounterVec,
    pub alerts_suppressed: IntCounterVec,
    /// Set by the detector from its state (activated, unresolved episodes of the customers of the
    /// partitions it holds), after each change of assignment and once a second.
    pub alerts_open: IntGaugeVec,
    counted: Mutex<Counted>,
    /// Episode events and re-sends offered to a receiver, by outcome (SPEC section 8).
    pub alert_notifications: IntCounterVec,
    /// Episode events not yet acknowledged by every receiver (the delivery outbox), as the
    /// processor that delivers last counted them; any processor reads it every few seconds.
    pub alert_notification_pending: IntGauge,
    pub actor_restarts: IntCounterVec,
    pub mailbox_depth: IntGaugeVec,
    pub db_batch_duration: Histogram,
    pub record_delay: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub records_published: IntCounter,
    pub publish_failures: IntCounter,
    pub build_info: IntGaugeVec,
    pub ready: IntGauge,
    /// Customers whose detector state is in memory (SPEC section 5; `detector.max_resident_customers`).
    pub detector_customers: IntGauge,
    /// Customers' states dropped from memory for the budget (saved first), to be loaded again at
    /// their next reading.
    pub detector_evictions: IntCounter,
    /// Detector states handed to the writers to save, and their JSON bytes.
    pub detector_states_saved: IntCounter,
    pub detector_state_bytes_saved: IntCounter,
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
            alerts_activated: counter_vec(
                &registry,
                "heartbeat_alerts_activated_total",
                "Alert episodes activated (paging a person) by this process's detector, by kind.",
                &["kind"],
            ),
            alerts_suppressed: counter_vec(
                &registry,
                "heartbeat_alerts_suppressed_total",
                "Alert episodes resolved without activating, by kind and reason (short: it never \
                 lasted its sustain time; muted: it did, while the customer was muted).",
                &["kind", "reason"],
            ),
            alerts_open: gauge_vec(
                &registry,
                "heartbeat_alerts_open",
                "Activated, unresolved alert episodes of the customers this processor owns, by \
                 kind.",
                &["kind"],
            ),
            counted: Mutex::new(Counted::default()),
            alert_notifications: counter_vec(
                &registry,
                "heartbeat_alert_notifications_total",
                "Alert episode events (activated, resolved) and re-sends of open episodes offered \
                 to a receiver (kafka, or an Alertmanager's URL), by result (ok, error).",
                &["receiver", "event", "result"],
            ),
            alert_notification_pending: reg(
                &registry,
                IntGauge::new(
                    "heartbeat_alert_notification_pending",
                    "Alert episode events not yet acknowledged by every receiver.",
                )
                .unwrap_or_else(|e| unreachable!("{e}")),
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
            detector_customers: reg(
                &registry,
                IntGauge::new(
                    "heartbeat_detector_customers",
                    "Customers whose detector state this process holds in memory.",
                )
                .unwrap_or_else(|e| unreachable!("{e}")),
            ),
            detector_evictions: counter(
                &registry,
                "heartbeat_detector_evictions_total",
                "Customers' detector states saved and dropped from memory to stay within \
                 detector.max_resident_customers; loaded again at their next reading.",
            ),
            detector_states_saved: counter(
                &registry,
                "heartbeat_detector_states_saved_total",
                "Detector states handed to the writers to save (checkpoints, silences, evictions).",
            ),
            detector_state_bytes_saved: counter(
                &registry,
                "heartbeat_detector_state_bytes_saved_total",
                "JSON bytes of the detector states handed to the writers to save.",
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
            m.alerts_activated.with_label_values(&[kind.as_str()]);
            m.alerts_open.with_label_values(&[kind.as_str()]);
            for reason in SUPPRESSED {
                m.alerts_suppressed
                    .with_label_values(&[kind.as_str(), reason.as_str()]);
            }
        }
        for actor in ACTORS {
            m.actor_restarts.with_label_values(&[actor]);
            m.mailbox_depth.with_label_values(&[actor]);
        }
        // The alert delivery restarts like any actor but has no data-path mailbox.
        m.actor_restarts.with_label_values(&["alert_delivery"]);
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

    /// Counts `transition` of the episode (`customer_id`, `kind`, `opened_at`), unless this
    /// process has counted it already (see the module doc).
    pub fn count_transition(
        &self,
        customer_id: &str,
        kind: AnomalyKind,
        opened_at: DateTime<Utc>,
        transition: Transition,
    ) {
        // SipHash with fixed keys: the same episode gives the same hash for the process's life.
        let mut h = DefaultHasher::new();
        let what = match transition {
            Transition::Activated => "activated",
            Transition::Suppressed(reason) => reason.as_str(),
        };
        (customer_id, kind.as_str(), opened_at, what).hash(&mut h);
        // A poisoned lock only means a panic elsewhere mid-insert; the set is still usable.
        let first = self
            .counted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_time(h.finish());
        if !first {
            return;
        }
        match transition {
            Transition::Activated => self
                .alerts_activated
                .with_label_values(&[kind.as_str()])
                .inc(),
            Transition::Suppressed(reason) => self
                .alerts_suppressed
                .with_label_values(&[kind.as_str(), reason.as_str()])
                .inc(),
        }
    }

    /// Sets `heartbeat_alerts_open`: `open[i]` episodes of kind `AnomalyKind::ALL[i]`.
    pub fn set_alerts_open(&self, open: &[i64; AnomalyKind::ALL.len()]) {
        for (kind, n) in AnomalyKind::ALL.iter().zip(open) {
            self.alerts_open.with_label_values(&[kind.as_str()]).set(*n);
        }
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
            "heartbeat_alerts_activated_total{kind=\"silent\"} 0",
            "heartbeat_alerts_suppressed_total{kind=\"critical_low\",reason=\"muted\"} 0",
            "heartbeat_alerts_open{kind=\"deviation\"} 0",
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

    #[test]
    fn a_transition_is_counted_once_per_process() {
        let m = Metrics::new();
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let kind = AnomalyKind::Tachycardia;
        for _ in 0..3 {
            m.count_transition("C-1", kind, at, Transition::Activated);
        }
        m.count_transition("C-2", kind, at, Transition::Activated);
        let short = Transition::Suppressed(Suppressed::Short);
        m.count_transition("C-1", kind, at + chrono::TimeDelta::seconds(1), short);
        m.count_transition("C-1", kind, at + chrono::TimeDelta::seconds(1), short);
        assert_eq!(
            m.alerts_activated.with_label_values(&["tachycardia"]).get(),
            2
        );
        assert_eq!(
            m.alerts_suppressed
                .with_label_values(&["tachycardia", "short"])
                .get(),
            1
        );
        assert_eq!(
            m.alerts_suppressed
                .with_label_values(&["tachycardia", "muted"])
                .get(),
            0
        );
    }

    #[test]
    fn the_memory_of_counted_transitions_is_bounded() {
        let mut c = Counted::default();
        for k in 0..(TRANSITIONS_REMEMBERED as u64 + 10) {
            assert!(c.first_time(k));
        }
        assert_eq!(c.set.len(), TRANSITIONS_REMEMBERED);
        assert!(!c.first_time(TRANSITIONS_REMEMBERED as u64 + 9));
        // The oldest are forgotten.
        assert!(c.first_time(0));
    }
}
