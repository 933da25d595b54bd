//! The simulator's public types: its configuration, the records it emits, and the names and
//! header those records carry.

use chrono::{DateTime, Utc};

use super::params::{MIN_READING_INTERVAL_S, SIM_START_UNIX_SECS};
use crate::domain::classification::{AnomalyKind, Bands};
use crate::domain::reading::Activity;
use crate::domain::validation::RejectReason;

/// The customer id of customer number `n`: `CUST-00042`.
pub fn customer_id(n: usize) -> String {
    format!("CUST-{n:05}")
}

/// The first instant of simulated time, 2026-01-01T00:00:00Z.
pub fn sim_start() -> DateTime<Utc> {
    DateTime::from_timestamp(SIM_START_UNIX_SECS, 0).unwrap_or_default()
}

/// Where an [`Activity`] sits in the tables of `params.rs` indexed by activity (sleep, rest,
/// active, exercise). The activity itself is the reading's, so what the simulator does is what
/// its readings say (`generator.activity`).
pub(super) fn activity_index(activity: Activity) -> usize {
    match activity {
        Activity::Sleep => 0,
        Activity::Rest => 1,
        Activity::Active => 2,
        Activity::Exercise => 3,
    }
}

/// How often each kind of episode is injected: the probability, per reading of a customer that
/// is not its first and not part of an episode already, that an episode of that kind starts for
/// that customer with this reading. Values are clamped to 0..=1; when they add up to more than
/// 1 they are scaled down to add up to 1.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InjectionRates {
    pub bradycardia: f64,
    pub tachycardia: f64,
    pub critical_low: f64,
    pub critical_high: f64,
    pub spike: f64,
    pub deviation: f64,
    pub silent: f64,
}

impl Default for InjectionRates {
    /// Small rates, so the demo shows every kind within a minute or two while most readings stay
    /// natural: at 100 readings/s, a bradycardia, tachycardia, spike and deviation episode each
    /// about every 20 s, a critical one of each side about every 50 s, a silence about every
    /// 100 s. Critical episodes are rarer, as in life, and each one pages someone.
    fn default() -> Self {
        InjectionRates {
            bradycardia: 0.0005,
            tachycardia: 0.0005,
            critical_low: 0.0002,
            critical_high: 0.0002,
            spike: 0.0005,
            deviation: 0.0005,
            silent: 0.0001,
        }
    }
}

impl InjectionRates {
    /// No injected episodes at all.
    pub fn none() -> Self {
        InjectionRates {
            bradycardia: 0.0,
            tachycardia: 0.0,
            critical_low: 0.0,
            critical_high: 0.0,
            spike: 0.0,
            deviation: 0.0,
            silent: 0.0,
        }
    }

    /// The same rate for every kind.
    pub fn all(rate: f64) -> Self {
        InjectionRates {
            bradycardia: rate,
            tachycardia: rate,
            critical_low: rate,
            critical_high: rate,
            spike: rate,
            deviation: rate,
            silent: rate,
        }
    }

    /// The configured rate of `kind`.
    pub fn rate(&self, kind: AnomalyKind) -> f64 {
        match kind {
            AnomalyKind::CriticalLow => self.critical_low,
            AnomalyKind::Bradycardia => self.bradycardia,
            AnomalyKind::Tachycardia => self.tachycardia,
            AnomalyKind::CriticalHigh => self.critical_high,
            AnomalyKind::Spike => self.spike,
            AnomalyKind::Deviation => self.deviation,
            AnomalyKind::Silent => self.silent,
        }
    }

    /// The rates as used, in [`AnomalyKind::ALL`] order: clamped to 0..=1 (NaN = 0) and scaled
    /// down when they add up to more than 1.
    pub(super) fn effective(&self) -> [f64; 7] {
        let mut rates = AnomalyKind::ALL.map(|kind| unit(self.rate(kind)));
        let sum: f64 = rates.iter().sum();
        if sum > 1.0 {
            rates.iter_mut().for_each(|r| *r /= sum);
        }
        rates
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Simulated customers, `CUST-00000` on; at least one is simulated.
    pub customers: usize,
    pub seed: u64,
    /// Readings per second over all customers: sets the simulated time between two readings of
    /// one customer (customers / rate seconds). 0 = treat as 1 reading per customer per second.
    pub rate: f64,
    pub inject: InjectionRates,
    /// Fraction of records that are malformed (0..=1), default 0.
    pub fault_rate: f64,
    /// To label ground truth by construction with the same rules the detector uses.
    pub bands: Bands,
    /// `detector.spike_bpm`: the smallest jump between two readings that is a spike.
    pub spike_bpm: i64,
}

impl SimulatorConfig {
    /// A configuration with the default injection rates and no faults.
    pub fn new(customers: usize, seed: u64, rate: f64, bands: Bands, spike_bpm: i64) -> Self {
        SimulatorConfig {
            customers,
            seed,
            rate,
            inject: InjectionRates::default(),
            fault_rate: 0.0,
            bands,
            spike_bpm,
        }
    }

    /// Simulated seconds between two readings of one customer: customers / rate, or 1 s when
    /// the rate is 0 (or not a positive number).
    pub fn reading_interval_s(&self) -> f64 {
        let customers = self.customers.max(1) as f64;
        if self.rate.is_finite() && self.rate > 0.0 {
            // At least a microsecond between two readings of a customer: faster has no meaning
            // and would let the simulated clock stand still.
            (customers / self.rate).max(MIN_READING_INTERVAL_S)
        } else {
            1.0
        }
    }
}

/// One generated record.
#[derive(Debug, Clone, PartialEq)]
pub enum SimRecord {
    /// A valid reading.
    Reading {
        customer_id: String,
        heart_rate: i16,
        /// simulated time of the reading (virtual clock, see the module doc)
        sim_time: DateTime<Utc>,
        /// what the customer is doing, from its daily schedule (sent as the reading's
        /// `activity` when `generator.activity` is on)
        activity: Activity,
        /// every anomaly kind this reading should raise by construction, empty if none, in
        /// [`AnomalyKind::ALL`] order
        injected: Vec<AnomalyKind>,
        /// The injected episode this reading is part of (ids count up from 1 in the order the
        /// episodes start, within one simulator), None for a natural reading.
        episode: Option<u64>,
    },
    /// A malformed record that validation rejects with `reason`.
    Fault {
        customer_id: String,
        reason: RejectReason,
        /// the record value exactly as to be sent (None = null value)
        value: Option<Vec<u8>>,
    },
}

/// The header value for ground truth: kinds comma-separated in [`AnomalyKind::ALL`] order (e.g.
/// "critical_high,spike"), None when empty.
pub fn injected_header(kinds: &[AnomalyKind]) -> Option<String> {
    let names: Vec<&str> = AnomalyKind::ALL
        .iter()
        .filter(|kind| kinds.contains(kind))
        .map(|kind| kind.as_str())
        .collect();
    (!names.is_empty()).then(|| names.join(","))
}

/// A probability: clamped to 0..=1, NaN = 0.
pub(super) fn unit(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}
