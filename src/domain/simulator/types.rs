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

/// The number of the simulated customer `id` (the inverse of [`customer_id`]): 42 for
/// `CUST-00042`; None for an id the simulator does not make.
pub fn customer_number(id: &str) -> Option<usize> {
    id.strip_prefix("CUST-")?.parse().ok()
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

/// How often each kind of episode is injected: the expected number of episodes of that kind per
/// customer and hour of simulated time, whatever the sampling interval. Threshold and deviation
/// episodes start at rest: one that falls due while its customer does something else waits for
/// the next resting reading. One that falls due while the customer's last episode is still
/// going, or while another waits, is dropped, so slightly fewer start than configured. Values are
/// clamped to 0..=3600 (NaN = 0).
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
    /// Rare, as in life, and together at most 2 % of customer-time (about 1 % at 1 s and 10 s
    /// sampling, 1.2 % at 60 s, where ramps take more readings): per customer-day about 0.14
    /// bradycardia, tachycardia and deviation episodes each, 0.06 critical ones of each side, 0.5
    /// spikes and 0.3 silences. A fleet of 1000 shows about six of each of the first three an
    /// hour, a critical one every ten minutes, a spike every three minutes.
    fn default() -> Self {
        InjectionRates {
            bradycardia: 0.006,
            tachycardia: 0.006,
            critical_low: 0.0025,
            critical_high: 0.0025,
            spike: 0.02,
            deviation: 0.006,
            silent: 0.0125,
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

    /// The rates as used, episodes per customer-hour in [`AnomalyKind::ALL`] order: clamped to
    /// 0..=3600 (NaN = 0).
    pub(super) fn effective(&self) -> [f64; 7] {
        AnomalyKind::ALL.map(|kind| {
            let r = self.rate(kind);
            if r.is_nan() {
                0.0
            } else {
                r.clamp(0.0, MAX_RATE_PER_HOUR)
            }
        })
    }
}

/// The highest rate used, episodes per customer-hour: one a second.
const MAX_RATE_PER_HOUR: f64 = 3600.0;

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
    /// `detector.bands`: to place injected levels inside the bands of their kinds.
    pub bands: Bands,
    /// `detector.spike_bpm`: the smallest jump between two readings that is a spike (natural
    /// steps and the ramps of episodes stay below it, an injected spike above).
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
        /// Ground truth: the alert kinds the injected episode this reading belongs to should
        /// activate (page for), the same for every reading of the episode, in
        /// [`AnomalyKind::ALL`] order; empty for a natural reading, whatever its band. A
        /// bradycardia or tachycardia episode lists its kind and `deviation`, a critical one its
        /// kind and `deviation` when it lasts long enough, a deviation `deviation`, a spike
        /// `spike` and a silence `silent` (docs/GENERATOR.md says why).
        injected: Vec<AnomalyKind>,
        /// The injected episode this reading is part of, None for a natural reading. Ids count
        /// up from 1 within one simulator, in the order of the episodes' first readings: the
        /// first time an id appears it is larger than every id before it. A silence has no
        /// readings of its own: the first reading after it carries its id and `[silent]`.
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
