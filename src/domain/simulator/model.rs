//! The heart-rate simulator behind the Generator: a seeded fleet of customers with realistic
//! profiles, a daily rhythm of activities, smooth heart-rate dynamics and sensor noise, plus
//! injected anomaly episodes and malformed records, each reading labelled with its ground truth.
//!
//! Owns the customer profiles (resting rate, age and maximum rate, time zone, sleep window,
//! fitness), the virtual clock, the activity schedule, the heart-rate model, the injection of
//! episodes (`bradycardia`, `tachycardia`, `critical_low`, `critical_high`, `spike`, `deviation`,
//! `silent`) and of faults (malformed values, one per reject reason in turn), and the labels of
//! every anomaly kind a reading raises by construction (sent as the `x-injected` Kafka header,
//! see [`injected_header`]). Accepts a [`SimulatorConfig`]; emits one [`SimRecord`] per
//! [`Simulator::next_record`]. It cannot fail and never panics: configuration values out of
//! range are mapped to the nearest usable one.
//!
//! Pure and deterministic: no wall clock, no thread rng. Simulated time starts at the fixed
//! instant [`SIM_START_UNIX_SECS`] (2026-01-01T00:00:00Z) and advances by the schedule alone, so
//! the same seed and configuration give the same sequence of (customer, heart rate) pairs
//! whenever and however fast the generator runs. Faults come from a separate random stream and
//! take no customer's turn, so the readings are the same whatever `fault_rate` is. The wall-clock
//! `now` handed to `next_record` only goes into fault values.
//!
//! docs/GENERATOR.md explains the model, every parameter, and the sources of the physiological
//! numbers used here.

use std::f64::consts::TAU;
use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use crate::config::BandSettings;
use crate::domain::classification::{classify, AnomalyKind};
use crate::domain::reading::canonical_timestamp;
use crate::domain::validation::RejectReason;

// ---------------------------------------------------------------------------------------------
// Parameters (docs/GENERATOR.md lists each with its source)

/// Start of simulated time, 2026-01-01T00:00:00Z. Fixed, so the daily rhythm, and with it the
/// (customer, heart rate) sequence, does not depend on when the generator runs.
pub const SIM_START_UNIX_SECS: i64 = 1_767_225_600;

/// The shortest simulated time between two readings of one customer, seconds.
const MIN_READING_INTERVAL_S: f64 = 1e-6;

/// Mean resting heart rate of the simulated adults, bpm: between the ~70 of clinical norms and
/// the ~65 measured by wearables over a large cohort (Quer et al. 2020).
const REST_MEAN_BPM: f64 = 68.0;
/// Spread of resting heart rate between people, bpm (Quer et al. 2020: roughly 8).
const REST_SD_BPM: f64 = 8.0;
/// Lowest resting rate drawn: trained people go lower, but then a night's sleep would sit in the
/// critical band every night and drown the injected criticals.
const REST_MIN_BPM: f64 = 50.0;
/// Highest resting rate drawn: just under tachycardia, which resting rates above 100 are.
const REST_MAX_BPM: f64 = 95.0;
/// Youngest and oldest simulated adult, years (uniform).
const AGE_YEARS: (u8, u8) = (20, 79);
/// Maximum heart rate = `TANAKA_INTERCEPT_BPM - TANAKA_SLOPE * age` (Tanaka et al. 2001).
const TANAKA_INTERCEPT_BPM: f32 = 208.0;
/// See [`TANAKA_INTERCEPT_BPM`].
const TANAKA_SLOPE: f32 = 0.7;
/// The smallest heart-rate reserve (max - rest) used, bpm, so an odd profile still has room to
/// exercise.
const MIN_RESERVE_BPM: f32 = 20.0;

/// UTC offsets of the customers, in quarter hours, drawn uniformly: the Americas, Europe, Africa,
/// Asia and Oceania, so at any instant some customers sleep while others are active.
const TIME_ZONES_QH: [i8; 14] = [-32, -28, -24, -20, -12, 0, 4, 8, 12, 22, 28, 32, 36, 40];
/// Earliest wake-up, local minutes after midnight (05:30), and the spread after it (to 08:30).
const WAKE_MIN: (u16, u16) = (330, 180);
/// Shortest night, minutes (6.5 h), and the spread above it (to 8.5 h).
const SLEEP_LENGTH_MIN: (u16, u16) = (390, 120);

/// Heart rate asleep is at least this share below resting ...
const SLEEP_DIP: f32 = 0.10;
/// ... and up to this much more below it at the circadian nadir ...
const SLEEP_NADIR_EXTRA_DIP: f32 = 0.06;
/// ... which falls at this local hour (early morning).
const NADIR_HOUR: f64 = 4.0;
/// Amplitude of the circadian swing of the heart rate at rest while awake, bpm ...
const REST_CIRCADIAN_BPM: f32 = 2.5;
/// ... peaking at this local hour (afternoon).
const REST_PEAK_HOUR: f64 = 15.0;
/// Light activity: share of the heart-rate reserve above resting, drawn per bout (ACSM very
/// light to light: below 40 % of the reserve).
const LIGHT_RESERVE: (f32, f32) = (0.10, 0.30);
/// Exercise: share of the heart-rate reserve above resting, drawn per bout (ACSM moderate to
/// vigorous: 40-89 % of the reserve).
const EXERCISE_RESERVE: (f32, f32) = (0.50, 0.80);
/// How long one bout lasts, minutes, by activity (rest, light, exercise), drawn uniformly.
const DWELL_MIN: [(u32, u32); 3] = [(15, 90), (5, 40), (20, 60)];
/// Relative weight of (rest, light, exercise) at the next change of activity, by part of the
/// waking day; the exercise weight is scaled by the customer's fitness (0..1, mean 0.5), which
/// gives about half an hour of exercise a day on average.
const AWAKE_WEIGHTS: [(u32, f64, f64, f64); 4] = [
    // (until local hour, rest, light, exercise)
    (10, 0.55, 0.40, 0.08),
    (17, 0.50, 0.48, 0.04),
    (21, 0.55, 0.38, 0.10),
    (24, 0.80, 0.20, 0.00),
];

/// Time constant of the heart rate's approach to a new activity level, seconds (on- and
/// off-kinetics of roughly half a minute to a minute).
const APPROACH_TAU_S: f64 = 45.0;
/// Fastest natural change, bpm per second between readings of a customer ...
const NATURAL_SLOPE_BPM_PER_S: f64 = 0.75;
/// ... and the bounds on the natural change per reading whatever the interval, bpm: at sparse
/// sampling (minutes between readings) the level lags the activity instead of jumping.
const NATURAL_STEP_BPM: (f64, f64) = (2.0, 20.0);
/// Time constant of the slow random wander around the activity level, seconds ...
const DRIFT_TAU_S: f64 = 300.0;
/// ... and its standard deviation, bpm.
const DRIFT_SD_BPM: f64 = 3.0;
/// Sensor noise, standard deviation in bpm, by activity (sleep, rest, light, exercise): wrist
/// optical sensors are accurate to a few bpm at rest and worse in motion.
const NOISE_SD_BPM: [f32; 4] = [1.0, 1.5, 2.0, 3.0];
/// The range of a non-injected reading, bpm.
const NATURAL_BPM: (i16, i16) = (30, 220);
/// The range of any reading, bpm: the validation defaults, so every reading is valid.
const VALID_BPM: (i16, i16) = (20, 250);
/// Largest step between two non-injected readings of a customer, bpm (below the default
/// `detector.spike_bpm` of 30, or below `spike_bpm` when that is smaller): natural readings
/// never raise a spike, so every spike the detector finds outside an injected one is a false
/// positive.
const MAX_NATURAL_STEP_BPM: i64 = 29;

/// Readings at the injected level, (min, max), for bradycardia and tachycardia episodes ...
const BRADY_TACHY_HOLD: (u16, u16) = (5, 20);
/// ... for critical episodes ...
const CRITICAL_HOLD: (u16, u16) = (3, 10);
/// ... and shifted readings of a deviation.
const DEVIATION_HOLD: (u16, u16) = (3, 8);
/// Threshold episodes move toward and away from their level by at most this share of
/// `spike_bpm` per reading: fast, yet never a spike.
const EPISODE_STEP_SHARE: f32 = 0.7;
/// A spike jumps by `spike_bpm` plus this many bpm (uniform), so the jump is a spike for sure.
const SPIKE_EXTRA_BPM: (i64, i64) = (5, 30);
/// A deviation shifts a customer's readings by this many bpm (uniform), at most `spike_bpm - 6`.
const DEVIATION_BPM: (f32, f32) = (20.0, 25.0);
/// A silent device skips its turns for this long, simulated seconds (uniform) ...
const SILENT_S: (u32, u32) = (120, 600);
/// ... and for at least this many reading intervals, so a gap shows whatever the schedule.
const SILENT_MIN_INTERVALS: f64 = 2.5;
/// Bounds on the simulated seconds between two readings of a customer: a million readings a
/// second per customer, or one in 30 years; beyond them the clock arithmetic loses meaning.
const MIN_INTERVAL_S: f64 = 1e-6;
/// See [`MIN_INTERVAL_S`].
const MAX_INTERVAL_S: f64 = 1e9;
/// A `too_large` fault is this big: just over the default `validation.max_message_bytes`.
const TOO_LARGE_BYTES: usize = 66_000;

// ---------------------------------------------------------------------------------------------
// Public types

/// The customer id of customer number `n`: `CUST-00042`.
pub fn customer_id(n: usize) -> String {
    format!("CUST-{n:05}")
}

/// The first instant of simulated time, 2026-01-01T00:00:00Z.
pub fn sim_start() -> DateTime<Utc> {
    DateTime::from_timestamp(SIM_START_UNIX_SECS, 0).unwrap_or_default()
}

/// What a customer is doing; sets the level the heart rate moves toward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    Sleep,
    Rest,
    Light,
    Exercise,
}

impl Activity {
    pub const ALL: [Activity; 4] = [
        Activity::Sleep,
        Activity::Rest,
        Activity::Light,
        Activity::Exercise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Sleep => "sleep",
            Activity::Rest => "rest",
            Activity::Light => "light",
            Activity::Exercise => "exercise",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How often each kind of episode is injected: the probability, per reading of a customer that
/// is not its first and not part of an episode already, that an episode of that kind starts for
/// that customer with this reading. Values are clamped to 0..=1; when they add up to more than
/// 1 they are scaled down to add up to 1.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
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
    fn effective(&self) -> [f64; 7] {
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
    pub bands: BandSettings,
    /// `detector.spike_bpm`: the smallest jump between two readings that is a spike.
    pub spike_bpm: i64,
}

impl SimulatorConfig {
    /// A configuration with the default injection rates and no faults.
    pub fn new(
        customers: usize,
        seed: u64,
        rate: f64,
        bands: BandSettings,
        spike_bpm: i64,
    ) -> Self {
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
        activity: Activity,
        /// every anomaly kind this reading should raise by construction, empty if none, in
        /// [`AnomalyKind::ALL`] order
        injected: Vec<AnomalyKind>,
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

// ---------------------------------------------------------------------------------------------
// The simulator

/// One simulated customer: 48 bytes, so 100 000 customers take under 5 MB.
#[derive(Debug, Clone)]
struct Customer {
    /// Resting heart rate while awake, bpm.
    rest: f32,
    /// The natural level: where the heart rate is, moving toward the activity's target.
    level: f32,
    /// Slow random wander around the level, bpm.
    drift: f32,
    /// Share of the heart-rate reserve of the current light or exercise bout.
    bout: f32,
    /// Threshold episodes: the offset from the natural value currently applied.
    ep_offset: f32,
    /// Threshold episodes: the target heart rate; spike: the signed jump; deviation: the signed
    /// shift.
    ep_target: f32,
    /// Simulated seconds since the start when the current activity ends.
    activity_until: u32,
    /// Simulated seconds since the start until which the device is silent.
    silent_until: u32,
    /// The last heart rate sent; 0 before the first reading.
    prev_hr: i16,
    /// Readings left at the injected level (or shifted, or spiking) in the current episode.
    ep_left: u16,
    /// Local wake-up and bedtime, minutes after midnight.
    wake_min: u16,
    bed_min: u16,
    /// UTC offset, quarter hours.
    tz_qh: i8,
    age: u8,
    /// Inclination to exercise, 0..=255.
    fitness: u8,
    activity: Activity,
    /// The episode in progress (never `Silent`: a silence is `silent_until`).
    ep_kind: Option<AnomalyKind>,
}

/// What happened inside one call, for tests and the profile.
#[derive(Debug, Clone, Copy, Default)]
struct Trace {
    /// The reading could start an episode (not the customer's first, no episode in progress).
    eligible: bool,
    /// The episode that started with this reading.
    started: Option<AnomalyKind>,
    /// The reading is part of an injected episode (including its way back to normal).
    in_episode: bool,
}

/// Per-reading constants derived once from the configuration.
#[derive(Debug, Clone)]
struct Model {
    /// Simulated nanoseconds between two slots of the round robin.
    slot_ns: f64,
    /// Simulated seconds between two readings of one customer.
    interval_s: f64,
    /// Share of the distance to the activity target covered per reading.
    approach: f32,
    /// Largest natural change of the level per reading, bpm.
    natural_step: f32,
    /// Drift AR(1): weight kept per reading and standard deviation of its innovation.
    drift_keep: f32,
    drift_sd: f32,
    /// Largest change per reading of a threshold episode's offset, bpm.
    episode_step: f32,
    /// Largest step between two readings outside a spike episode, bpm.
    guard: i16,
    spike_bpm: i64,
    /// Cumulative start probabilities in `AnomalyKind::ALL` order.
    start_cdf: [f64; 7],
    /// Target ranges of critical_low, bradycardia, tachycardia, critical_high, bpm.
    targets: [(f32, f32); 4],
    bands: BandSettings,
    fault_rate: f64,
}

/// A seeded fleet of customers visited in turn on a virtual clock.
pub struct Simulator {
    model: Model,
    rng: ChaCha8Rng,
    fault_rng: ChaCha8Rng,
    customers: Vec<Customer>,
    /// The next slot of the round robin: customer `slot % customers`, at `slot * slot_ns`.
    slot: u64,
    /// Faults made so far: picks the reason (in turn) and the variant.
    faults: u64,
}

impl Simulator {
    /// A fleet of `cfg.customers` customers (at least one) drawn with `cfg.seed`. Values out of
    /// range are mapped to usable ones: a rate that is not a positive number counts as 0, rates
    /// and `fault_rate` are clamped to 0..=1 (NaN = 0), `spike_bpm` to 1..=1000.
    pub fn new(cfg: SimulatorConfig) -> Self {
        let count = cfg.customers.max(1);
        // Bounded so that the clock arithmetic stays finite whatever the rate.
        let interval_s = cfg
            .reading_interval_s()
            .clamp(MIN_INTERVAL_S, MAX_INTERVAL_S);
        let spike_bpm = cfg.spike_bpm.clamp(1, 1_000);
        let guard = MAX_NATURAL_STEP_BPM.min(spike_bpm - 1).max(1);
        let drift_keep = (-interval_s / DRIFT_TAU_S).exp();
        let mut cumulative = 0.0;
        let start_cdf = cfg.inject.effective().map(|rate| {
            cumulative += rate;
            cumulative
        });
        let model = Model {
            slot_ns: interval_s * 1e9 / count as f64,
            interval_s,
            approach: (1.0 - (-interval_s / APPROACH_TAU_S).exp()) as f32,
            natural_step: (interval_s * NATURAL_SLOPE_BPM_PER_S)
                .clamp(NATURAL_STEP_BPM.0, NATURAL_STEP_BPM.1) as f32,
            drift_keep: drift_keep as f32,
            drift_sd: (DRIFT_SD_BPM * (1.0 - drift_keep * drift_keep).sqrt()) as f32,
            episode_step: (EPISODE_STEP_SHARE * (guard + 1) as f32).max(1.0),
            guard: guard as i16,
            spike_bpm,
            start_cdf,
            targets: [
                AnomalyKind::CriticalLow,
                AnomalyKind::Bradycardia,
                AnomalyKind::Tachycardia,
                AnomalyKind::CriticalHigh,
            ]
            .map(|kind| target_range(kind, &cfg.bands)),
            bands: cfg.bands,
            fault_rate: unit(cfg.fault_rate),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut fault_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        fault_rng.set_stream(1);
        let customers = (0..count).map(|_| new_customer(&mut rng)).collect();
        Simulator {
            model,
            rng,
            fault_rng,
            customers,
            slot: 0,
            faults: 0,
        }
    }

    pub fn customers(&self) -> usize {
        self.customers.len()
    }

    /// Simulated seconds between two readings of one customer.
    pub fn reading_interval_s(&self) -> f64 {
        self.model.interval_s
    }

    /// The next record. `now` is the wall-clock time the caller will stamp on the Kafka record;
    /// it is used only inside fault values (a `future_timestamp` fault is an hour after it, the
    /// others carry it as their timestamp) and never influences the readings.
    pub fn next_record(&mut self, now: DateTime<Utc>) -> SimRecord {
        self.next_traced(now).0
    }

    fn next_traced(&mut self, now: DateTime<Utc>) -> (SimRecord, Trace) {
        if self.model.fault_rate > 0.0 && self.fault_rng.gen::<f64>() < self.model.fault_rate {
            return (self.fault(now), Trace::default());
        }
        let count = self.customers.len() as u64;
        let mut skipped = 0u64;
        loop {
            if skipped >= count {
                // Every device is silent: jump the clock to the first one that wakes up rather
                // than walk the turns in between (there can be billions at a high rate).
                let wake_s = self
                    .customers
                    .iter()
                    .map(|c| c.silent_until)
                    .min()
                    .unwrap_or(0);
                let wake_slot = (f64::from(wake_s) * 1e9 / self.model.slot_ns).ceil();
                let wake_slot = if wake_slot.is_finite() && wake_slot < u64::MAX as f64 {
                    wake_slot as u64
                } else {
                    u64::MAX / 2
                };
                self.slot = self.slot.max(wake_slot);
                skipped = 0;
            }
            let slot = self.slot;
            self.slot = self.slot.wrapping_add(1);
            // `count` is at least 1 and the remainder is below it, so it fits a usize.
            let index = (slot % count) as usize;
            let t_ns = (slot as f64 * self.model.slot_ns).round();
            let t_s = t_ns / 1e9;
            // Terminates: a silence lasts a bounded simulated time, and when every device is
            // silent the clock jumps to the first wake-up.
            if f64::from(self.customers[index].silent_until) > t_s {
                skipped += 1;
                continue;
            }
            let (hr, activity, labels, trace) =
                step(&self.model, &mut self.rng, &mut self.customers[index], t_s);
            let sim_time = sim_start()
                .checked_add_signed(TimeDelta::nanoseconds(t_ns as i64))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let record = SimRecord::Reading {
                customer_id: customer_id(index),
                heart_rate: hr,
                sim_time,
                activity,
                injected: kinds_of(labels),
            };
            return (record, trace);
        }
    }

    /// The next malformed record: reasons in `RejectReason::ALL` order, in turn; within a reason
    /// the variants in turn. Keyed by the customer whose turn is next; takes no turn.
    fn fault(&mut self, now: DateTime<Utc>) -> SimRecord {
        let reasons = RejectReason::ALL.len() as u64;
        // The remainder is below 11.
        let reason = RejectReason::ALL[(self.faults % reasons) as usize];
        let variant = self.faults / reasons;
        self.faults = self.faults.wrapping_add(1);
        let index = (self.slot % self.customers.len() as u64) as usize;
        let id = customer_id(index);
        let value = fault_value(reason, variant, &id, now);
        SimRecord::Fault {
            customer_id: id,
            reason,
            value,
        }
    }
}

/// A customer drawn from the population.
fn new_customer(rng: &mut ChaCha8Rng) -> Customer {
    let z: f64 = StandardNormal.sample(rng);
    let rest = (REST_MEAN_BPM + REST_SD_BPM * z).clamp(REST_MIN_BPM, REST_MAX_BPM) as f32;
    let age = rng.gen_range(AGE_YEARS.0..=AGE_YEARS.1);
    let tz_qh = TIME_ZONES_QH[rng.gen_range(0..TIME_ZONES_QH.len())];
    let wake_min = WAKE_MIN.0 + rng.gen_range(0..=WAKE_MIN.1);
    let sleep_len = SLEEP_LENGTH_MIN.0 + rng.gen_range(0..=SLEEP_LENGTH_MIN.1);
    let bed_min = (wake_min + 1440 - sleep_len) % 1440;
    Customer {
        rest,
        level: rest,
        drift: 0.0,
        bout: 0.0,
        ep_offset: 0.0,
        ep_target: 0.0,
        activity_until: 0,
        silent_until: 0,
        prev_hr: 0,
        ep_left: 0,
        wake_min,
        bed_min,
        tz_qh,
        age,
        fitness: rng.gen(),
        activity: Activity::Rest,
        ep_kind: None,
    }
}

/// One reading of customer `c` at `t_s` simulated seconds: the heart rate, the activity, the
/// labels as a bit set over `AnomalyKind::ALL`, and the trace.
fn step(m: &Model, rng: &mut ChaCha8Rng, c: &mut Customer, t_s: f64) -> (i16, Activity, u8, Trace) {
    let first = c.prev_hr == 0;
    let prev = c.prev_hr;
    if t_s >= f64::from(c.activity_until) {
        choose_activity(c, t_s, rng);
    }
    let tod = local_time_of_day_s(c, t_s);
    let target = natural_target(c, tod);
    if first {
        c.level = target;
    } else {
        c.level += ((target - c.level) * m.approach).clamp(-m.natural_step, m.natural_step);
    }
    let z: f32 = StandardNormal.sample(rng);
    c.drift = m.drift_keep * c.drift + m.drift_sd * z;
    let base = c.level + c.drift;

    let eligible = !first && c.ep_kind.is_none();
    let mut started = None;
    if eligible {
        let u: f64 = rng.gen();
        if let Some(i) = m.start_cdf.iter().position(|&p| u < p) {
            let kind = AnomalyKind::ALL[i];
            start_episode(m, rng, c, kind, base, t_s);
            started = Some(kind);
        }
    }

    let z: f32 = StandardNormal.sample(rng);
    let mut value = base + NOISE_SD_BPM[c.activity.index()] * z;
    let episode = c.ep_kind;
    let mut shifted = false;
    match episode {
        None => {}
        Some(AnomalyKind::Spike) => {
            if c.ep_left > 0 {
                // The spike itself is exact, so its jump is at least spike_bpm for sure; the
                // reading after it is natural again (the way back).
                c.ep_left -= 1;
                value = f32::from(prev) + c.ep_target;
            } else {
                c.ep_kind = None;
            }
        }
        Some(AnomalyKind::Deviation) => {
            if c.ep_left > 0 {
                c.ep_left -= 1;
                shifted = true;
                value += c.ep_target;
            } else {
                c.ep_kind = None;
            }
        }
        Some(_) => {
            let desired = if c.ep_left > 0 {
                c.ep_target - base
            } else {
                0.0
            };
            c.ep_offset += (desired - c.ep_offset).clamp(-m.episode_step, m.episode_step);
            value += c.ep_offset;
            if c.ep_left > 0 {
                c.ep_left -= 1;
            } else if c.ep_offset.abs() < 0.5 {
                c.ep_offset = 0.0;
                c.ep_kind = None;
            }
        }
    }

    // `as` saturates and maps NaN to 0; the clamps below bring any value into range.
    let mut hr = value.round() as i16;
    if !first && episode != Some(AnomalyKind::Spike) {
        hr = hr.clamp(prev - m.guard, prev + m.guard);
    }
    let (lo, hi) = if episode.is_some() {
        VALID_BPM
    } else {
        NATURAL_BPM
    };
    hr = hr.clamp(lo, hi);
    c.prev_hr = hr;

    let mut labels = 0u8;
    if let Some(kind) = classify(hr, &m.bands).threshold_anomaly() {
        labels |= bit(kind);
    }
    if !first && (i64::from(hr) - i64::from(prev)).abs() >= m.spike_bpm {
        labels |= bit(AnomalyKind::Spike);
    }
    if shifted {
        labels |= bit(AnomalyKind::Deviation);
    }
    if started == Some(AnomalyKind::Silent) {
        labels |= bit(AnomalyKind::Silent);
    }
    let trace = Trace {
        eligible,
        started,
        in_episode: episode.is_some(),
    };
    (hr, c.activity, labels, trace)
}

/// Starts an episode of `kind` for `c`, whose natural value is `base`, at `t_s`.
fn start_episode(
    m: &Model,
    rng: &mut ChaCha8Rng,
    c: &mut Customer,
    kind: AnomalyKind,
    base: f32,
    t_s: f64,
) {
    use AnomalyKind::*;
    match kind {
        Silent => {
            let quiet = f64::from(rng.gen_range(SILENT_S.0..=SILENT_S.1))
                .max(SILENT_MIN_INTERVALS * m.interval_s);
            c.silent_until = seconds_u32((t_s + quiet).ceil());
        }
        Spike => {
            let jump = m.spike_bpm + rng.gen_range(SPIKE_EXTRA_BPM.0..=SPIKE_EXTRA_BPM.1);
            let prev = i64::from(c.prev_hr);
            let up = prev + jump <= i64::from(VALID_BPM.1) - 10;
            let down = prev - jump >= i64::from(VALID_BPM.0) + 5;
            let sign = match (up, down) {
                (true, true) => {
                    if rng.gen_bool(0.5) {
                        1.0
                    } else {
                        -1.0
                    }
                }
                (false, true) => -1.0,
                (true, false) => 1.0,
                // A spike_bpm too large for the range: as far as the range allows.
                (false, false) if prev < 135 => 1.0,
                (false, false) => -1.0,
            };
            c.ep_kind = Some(Spike);
            c.ep_left = 1;
            c.ep_target = sign * jump as f32;
        }
        Deviation => {
            let most = (f32::from(m.guard) - 4.0).max(1.0);
            let shift = rng.gen_range(DEVIATION_BPM.0..=DEVIATION_BPM.1).min(most);
            let up = base + shift <= m.bands.high_above as f32;
            let down = base - shift >= m.bands.low_below as f32;
            let sign = match (up, down) {
                (true, true) => {
                    if rng.gen_bool(0.5) {
                        1.0
                    } else {
                        -1.0
                    }
                }
                (true, false) => 1.0,
                (false, true) => -1.0,
                // No room inside the normal band: shift toward it.
                (false, false) => {
                    // In f32: the sum of two i64 bands could overflow.
                    let middle = (m.bands.low_below as f32 + m.bands.high_above as f32) / 2.0;
                    if base < middle {
                        1.0
                    } else {
                        -1.0
                    }
                }
            };
            c.ep_kind = Some(Deviation);
            c.ep_left = rng.gen_range(DEVIATION_HOLD.0..=DEVIATION_HOLD.1);
            c.ep_target = sign * shift;
        }
        CriticalLow | Bradycardia | Tachycardia | CriticalHigh => {
            let (lo, hi) = m.targets[threshold_index(kind)];
            let target = rng.gen_range(lo..=hi);
            let hold = if matches!(kind, CriticalLow | CriticalHigh) {
                CRITICAL_HOLD
            } else {
                BRADY_TACHY_HOLD
            };
            let ramp = ((target - base).abs() / m.episode_step).ceil();
            let hold = rng.gen_range(hold.0..=hold.1);
            c.ep_kind = Some(kind);
            c.ep_left = hold.saturating_add(ramp.min(1_000.0) as u16);
            c.ep_target = target;
            c.ep_offset = 0.0;
        }
    }
}

/// Picks the activity of `c` from `t_s` on, and until when it lasts: asleep between bedtime and
/// wake-up (local time), otherwise a bout of rest, light activity or exercise drawn with the
/// weights of the time of day, ending at bedtime at the latest.
fn choose_activity(c: &mut Customer, t_s: f64, rng: &mut ChaCha8Rng) {
    let tod = local_time_of_day_s(c, t_s);
    let wake = f64::from(c.wake_min) * 60.0;
    let bed = f64::from(c.bed_min) * 60.0;
    let asleep = if bed <= wake {
        (bed..wake).contains(&tod)
    } else {
        tod >= bed || tod < wake
    };
    let until = if asleep {
        c.activity = Activity::Sleep;
        t_s + seconds_until(tod, wake)
    } else {
        let hour = (tod / 3600.0) as u32;
        let (_, rest, light, exercise) = AWAKE_WEIGHTS
            .iter()
            .copied()
            .find(|(until, ..)| hour < *until)
            .unwrap_or(AWAKE_WEIGHTS[AWAKE_WEIGHTS.len() - 1]);
        let exercise = exercise * f64::from(c.fitness) / 255.0;
        let u = rng.gen::<f64>() * (rest + light + exercise);
        let activity = if u < rest {
            Activity::Rest
        } else if u < rest + light {
            Activity::Light
        } else {
            Activity::Exercise
        };
        let (lo, hi) = DWELL_MIN[activity.index() - 1];
        let dwell = f64::from(rng.gen_range(lo..=hi)) * 60.0;
        match activity {
            Activity::Light => c.bout = rng.gen_range(LIGHT_RESERVE.0..=LIGHT_RESERVE.1),
            Activity::Exercise => c.bout = rng.gen_range(EXERCISE_RESERVE.0..=EXERCISE_RESERVE.1),
            _ => {}
        }
        c.activity = activity;
        t_s + dwell.min(seconds_until(tod, bed))
    };
    c.activity_until = seconds_u32(until.max(t_s + 1.0).ceil());
}

/// The level the heart rate of `c` moves toward at local time of day `tod` (seconds).
fn natural_target(c: &Customer, tod: f64) -> f32 {
    let hour = tod / 3600.0;
    match c.activity {
        Activity::Sleep => {
            let nadir = (TAU * (hour - NADIR_HOUR) / 24.0).cos().max(0.0) as f32;
            c.rest * (1.0 - SLEEP_DIP - SLEEP_NADIR_EXTRA_DIP * nadir)
        }
        Activity::Rest => {
            c.rest + REST_CIRCADIAN_BPM * (TAU * (hour - REST_PEAK_HOUR) / 24.0).cos() as f32
        }
        Activity::Light | Activity::Exercise => {
            let max = TANAKA_INTERCEPT_BPM - TANAKA_SLOPE * f32::from(c.age);
            c.rest + c.bout * (max - c.rest).max(MIN_RESERVE_BPM)
        }
    }
}

/// Seconds after local midnight for customer `c` at `t_s` simulated seconds.
fn local_time_of_day_s(c: &Customer, t_s: f64) -> f64 {
    (SIM_START_UNIX_SECS as f64 + t_s + f64::from(c.tz_qh) * 900.0).rem_euclid(86_400.0)
}

/// Seconds from time of day `from` to the next time of day `to` (a full day when equal).
fn seconds_until(from: f64, to: f64) -> f64 {
    match (to - from).rem_euclid(86_400.0) {
        d if d > 0.0 => d,
        _ => 86_400.0,
    }
}

fn seconds_u32(s: f64) -> u32 {
    // `as` saturates: a schedule beyond 136 years of simulated time stays at the end.
    s as u32
}

/// A probability: clamped to 0..=1, NaN = 0.
fn unit(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// The target heart rates of an injected threshold episode under `bands`: well inside the band
/// of its kind, and inside 22..=240 so noise keeps it a valid reading.
fn target_range(kind: AnomalyKind, b: &BandSettings) -> (f32, f32) {
    let (lo, hi) = match kind {
        AnomalyKind::CriticalLow => (
            b.critical_low_below.saturating_sub(15),
            b.critical_low_below.saturating_sub(3),
        ),
        AnomalyKind::Bradycardia => (
            b.critical_low_below.saturating_add(3),
            b.low_below.saturating_sub(4),
        ),
        AnomalyKind::Tachycardia => (
            b.high_above.saturating_add(10),
            b.critical_high_above.saturating_sub(15),
        ),
        _ => (
            b.critical_high_above.saturating_add(8),
            b.critical_high_above.saturating_add(50),
        ),
    };
    let (lo, hi) = (lo.clamp(22, 240) as f32, hi.clamp(22, 240) as f32);
    (lo.min(hi), lo.max(hi))
}

fn threshold_index(kind: AnomalyKind) -> usize {
    match kind {
        AnomalyKind::CriticalLow => 0,
        AnomalyKind::Bradycardia => 1,
        AnomalyKind::Tachycardia => 2,
        _ => 3,
    }
}

fn kind_index(kind: AnomalyKind) -> usize {
    match kind {
        AnomalyKind::CriticalLow => 0,
        AnomalyKind::Bradycardia => 1,
        AnomalyKind::Tachycardia => 2,
        AnomalyKind::CriticalHigh => 3,
        AnomalyKind::Spike => 4,
        AnomalyKind::Deviation => 5,
        AnomalyKind::Silent => 6,
    }
}

fn bit(kind: AnomalyKind) -> u8 {
    1 << kind_index(kind)
}

/// The kinds of a label bit set, in `AnomalyKind::ALL` order; allocates only when there are any.
fn kinds_of(labels: u8) -> Vec<AnomalyKind> {
    if labels == 0 {
        return Vec::new();
    }
    AnomalyKind::ALL
        .into_iter()
        .filter(|kind| labels & bit(*kind) != 0)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Faults

/// A malformed value that validation (with the default rules) rejects with exactly `reason`.
/// `variant` picks one of a few forms of the reason, so the demo exercises more than one path.
fn fault_value(
    reason: RejectReason,
    variant: u64,
    id: &str,
    now: DateTime<Utc>,
) -> Option<Vec<u8>> {
    use RejectReason::*;
    let ts = canonical_timestamp(&now);
    let object = |customer: &str, timestamp: &str, heart_rate: &str, extra: &str| {
        format!(
            r#"{{"customer_id":{customer},"timestamp":{timestamp},"heart_rate":{heart_rate}{extra}}}"#
        )
    };
    let id_json = format!("\"{id}\"");
    let ts_json = format!("\"{ts}\"");
    let text = match reason {
        TooLarge => {
            let padding = "x".repeat(TOO_LARGE_BYTES);
            object(
                &id_json,
                &ts_json,
                "72",
                &format!(r#","padding":"{padding}""#),
            )
        }
        InvalidUtf8 => {
            let mut bytes = object(&id_json, &ts_json, "72", "").into_bytes();
            // 0xFF never occurs in UTF-8: put it inside the customer id string.
            bytes.insert(r#"{"customer_id":"CUST"#.len(), 0xFF);
            return Some(bytes);
        }
        MalformedJson => match variant % 3 {
            0 => {
                let mut text = object(&id_json, &ts_json, "72", "");
                text.truncate(text.len() - 2);
                text
            }
            1 => return None,
            _ => object(&id_json, &ts_json, "72", r#","heart_rate":73"#),
        },
        NotAnObject => match variant % 2 {
            0 => format!("[{}]", object(&id_json, &ts_json, "72", "")),
            _ => "72".to_owned(),
        },
        MissingField => match variant % 2 {
            0 => format!(r#"{{"customer_id":{id_json},"timestamp":{ts_json}}}"#),
            _ => object(&id_json, &ts_json, "null", ""),
        },
        WrongType => match variant % 2 {
            0 => object(&id_json, &ts_json, "\"72\"", ""),
            _ => object(&id_json, &ts_json, "72.5", ""),
        },
        InvalidCustomerId => match variant % 2 {
            0 => object(&format!("\"{id} !\""), &ts_json, "72", ""),
            _ => object("\"\"", &ts_json, "72", ""),
        },
        InvalidEventId => object(&id_json, &ts_json, "72", r#","event_id":"not-a-uuid""#),
        InvalidTimestamp => match variant % 2 {
            0 => object(&id_json, "\"29/11/2026 13:00\"", "72", ""),
            _ => object(&id_json, "\"2026-02-30T12:00:00Z\"", "72", ""),
        },
        FutureTimestamp => {
            let later = now
                .checked_add_signed(TimeDelta::hours(1))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            object(
                &id_json,
                &format!("\"{}\"", canonical_timestamp(&later)),
                "72",
                "",
            )
        }
        ImplausibleHeartRate => match variant % 2 {
            0 => object(&id_json, &ts_json, "0", ""),
            _ => object(&id_json, &ts_json, "300", ""),
        },
    };
    Some(text.into_bytes())
}

// ---------------------------------------------------------------------------------------------
// Profile

/// Running count, mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    fn sd(&self) -> f64 {
        if self.n > 1 {
            (self.m2 / (self.n - 1) as f64).sqrt()
        } else {
            0.0
        }
    }
}

/// A short human-readable profile of the first `records` records of a stream (customers, mean
/// and SD of heart rate per activity, share of each injected kind and of faults by reason); used
/// by a CLI command.
pub fn profile_report(cfg: &SimulatorConfig, records: u64) -> String {
    let mut sim = Simulator::new(cfg.clone());
    let now = sim_start();
    let mut by_activity = [Moments::default(); 4];
    let mut per_customer = vec![Moments::default(); sim.customers()];
    let mut labelled = [0u64; 7];
    let mut started = [0u64; 7];
    let mut eligible = 0u64;
    let mut faults = [0u64; 11];
    let mut readings = 0u64;
    let mut in_episodes = 0u64;
    let mut first_time = None;
    let mut last_time = None;
    for _ in 0..records {
        let (record, trace) = sim.next_traced(now);
        match record {
            SimRecord::Reading {
                customer_id,
                heart_rate,
                sim_time,
                activity,
                injected,
            } => {
                readings += 1;
                let hr = f64::from(heart_rate);
                if trace.in_episode {
                    in_episodes += 1;
                } else {
                    by_activity[activity.index()].add(hr);
                }
                if let Some(n) = customer_id
                    .strip_prefix("CUST-")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| per_customer.get_mut(n))
                {
                    n.add(hr);
                }
                for kind in injected {
                    labelled[kind_index(kind)] += 1;
                }
                eligible += u64::from(trace.eligible);
                if let Some(kind) = trace.started {
                    started[kind_index(kind)] += 1;
                }
                first_time.get_or_insert(sim_time);
                last_time = Some(sim_time);
            }
            SimRecord::Fault { reason, .. } => {
                if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason) {
                    faults[i] += 1;
                }
            }
        }
    }
    let share = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    let mut spread = Moments::default();
    per_customer
        .iter()
        .filter(|m| m.n > 0)
        .for_each(|m| spread.add(m.mean));
    let fault_total: u64 = faults.iter().sum();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "simulated stream: {records} records, seed {}, {} customers ({} with readings), \
         one reading per customer every {:.1} s of simulated time",
        cfg.seed,
        sim.customers(),
        spread.n,
        sim.reading_interval_s()
    );
    if let (Some(first), Some(last)) = (first_time, last_time) {
        let _ = writeln!(
            out,
            "simulated time: {} to {}",
            canonical_timestamp(&first),
            canonical_timestamp(&last)
        );
    }
    let _ = writeln!(
        out,
        "readings: {readings}; faults: {fault_total} ({:.2} %); per-customer mean heart rate: \
         mean {:.1}, sd {:.1} bpm",
        share(fault_total, records),
        spread.mean,
        spread.sd()
    );
    let _ = writeln!(
        out,
        "\nnatural readings by activity ({in_episodes} readings of injected episodes left out):"
    );
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>8} {:>9} {:>7}",
        "activity", "readings", "share", "mean bpm", "sd bpm"
    );
    for activity in Activity::ALL {
        let m = by_activity[activity.index()];
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>6.1} % {:>9.1} {:>7.1}",
            activity.as_str(),
            m.n,
            share(m.n, readings),
            m.mean,
            m.sd()
        );
    }
    let _ = writeln!(
        out,
        "\nground truth: readings labelled with each kind (natural or injected), and episodes \
         injected per eligible reading:"
    );
    let _ = writeln!(
        out,
        "{:<14} {:>10} {:>8} {:>9} {:>12} {:>12}",
        "x-injected", "readings", "share", "episodes", "start rate", "configured"
    );
    let rates = cfg.inject.effective();
    for kind in AnomalyKind::ALL {
        let i = kind_index(kind);
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>6.2} % {:>9} {:>12.5} {:>12.5}",
            kind.as_str(),
            labelled[i],
            share(labelled[i], readings),
            started[i],
            if eligible == 0 {
                0.0
            } else {
                started[i] as f64 / eligible as f64
            },
            rates[i]
        );
    }
    if fault_total > 0 {
        let _ = writeln!(
            out,
            "\n{:<24} {:>8} {:>8}",
            "fault reason", "records", "share"
        );
        for (reason, n) in RejectReason::ALL.iter().zip(faults) {
            let _ = writeln!(
                out,
                "{:<24} {:>8} {:>6.2} %",
                reason.as_str(),
                n,
                share(n, records)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::validation::{validate, ValidationRules};

    const BANDS: BandSettings = BandSettings {
        critical_low_below: 40,
        low_below: 60,
        high_above: 100,
        critical_high_above: 180,
    };

    fn config(customers: usize, seed: u64, rate: f64) -> SimulatorConfig {
        SimulatorConfig::new(customers, seed, rate, BANDS, 30)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()
    }

    /// A reading with its trace, flattened for tests.
    #[derive(Debug, Clone)]
    struct Seen {
        customer: usize,
        hr: i16,
        time: DateTime<Utc>,
        activity: Activity,
        injected: Vec<AnomalyKind>,
        trace: Trace,
    }

    fn readings(cfg: SimulatorConfig, records: usize) -> Vec<Seen> {
        let mut sim = Simulator::new(cfg);
        (0..records)
            .filter_map(|_| match sim.next_traced(now()) {
                (
                    SimRecord::Reading {
                        customer_id,
                        heart_rate,
                        sim_time,
                        activity,
                        injected,
                    },
                    trace,
                ) => Some(Seen {
                    customer: customer_id[5..].parse().unwrap(),
                    hr: heart_rate,
                    time: sim_time,
                    activity,
                    injected,
                    trace,
                }),
                _ => None,
            })
            .collect()
    }

    fn pairs(cfg: SimulatorConfig, records: usize) -> Vec<(String, i16)> {
        let mut sim = Simulator::new(cfg);
        (0..records)
            .filter_map(|i| {
                // A different wall clock each call: it must not matter.
                match sim.next_record(now() + TimeDelta::seconds(i as i64)) {
                    SimRecord::Reading {
                        customer_id,
                        heart_rate,
                        ..
                    } => Some((customer_id, heart_rate)),
                    SimRecord::Fault { .. } => None,
                }
            })
            .collect()
    }

    /// Each customer's readings, in order.
    fn by_customer(seen: &[Seen]) -> HashMap<usize, Vec<&Seen>> {
        let mut map: HashMap<usize, Vec<&Seen>> = HashMap::new();
        for s in seen {
            map.entry(s.customer).or_default().push(s);
        }
        map
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_another_seed_another() {
        let a = pairs(config(50, 42, 100.0), 20_000);
        assert_eq!(a, pairs(config(50, 42, 100.0), 20_000));
        assert_ne!(a, pairs(config(50, 43, 100.0), 20_000));
    }

    #[test]
    fn faults_take_no_turn_and_leave_the_readings_unchanged() {
        let clean = pairs(config(50, 7, 100.0), 20_000);
        let faulty = pairs(
            SimulatorConfig {
                fault_rate: 0.2,
                ..config(50, 7, 100.0)
            },
            25_000,
        );
        let n = faulty.len().min(clean.len());
        assert!(faulty.len() < 25_000 && n > 15_000);
        assert_eq!(faulty[..n], clean[..n]);
    }

    #[test]
    fn customers_take_turns_on_the_virtual_clock() {
        let seen = readings(
            SimulatorConfig {
                inject: InjectionRates::none(),
                ..config(3, 1, 100.0)
            },
            7,
        );
        let ids: Vec<usize> = seen.iter().map(|s| s.customer).collect();
        assert_eq!(ids, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(seen[0].time, sim_start());
        assert_eq!(
            seen[0].time.to_rfc3339(),
            "2026-01-01T00:00:00+00:00",
            "the documented start"
        );
        // 3 customers at 100 readings/s: one slot every 10 ms, each customer every 30 ms.
        assert_eq!(seen[1].time - seen[0].time, TimeDelta::milliseconds(10));
        assert_eq!(seen[3].time - seen[0].time, TimeDelta::milliseconds(30));
        assert_eq!(customer_id(42), "CUST-00042");
    }

    #[test]
    fn rate_zero_gives_each_customer_a_reading_a_second() {
        let cfg = config(4, 1, 0.0);
        assert_eq!(cfg.reading_interval_s(), 1.0);
        let seen = readings(cfg, 9);
        assert_eq!(seen[8].time - seen[0].time, TimeDelta::seconds(2));
        assert_eq!(config(1000, 1, 100.0).reading_interval_s(), 10.0);
    }

    #[test]
    fn every_reading_is_valid_and_natural_ones_are_plausible() {
        // 200 customers, one reading each every 30 s, for 8 simulated hours: every activity.
        let cfg = SimulatorConfig {
            inject: InjectionRates::all(0.002),
            ..config(200, 3, 200.0 / 30.0)
        };
        let seen = readings(cfg, 200 * 960);
        let mut activities = std::collections::HashSet::new();
        for s in &seen {
            assert!((20..=250).contains(&s.hr), "{s:?}");
            if !s.trace.in_episode {
                assert!((30..=220).contains(&s.hr), "{s:?}");
            }
            activities.insert(s.activity);
        }
        assert_eq!(activities.len(), 4, "{activities:?}");
    }

    #[test]
    fn customers_have_different_baselines() {
        let seen = readings(
            SimulatorConfig {
                inject: InjectionRates::none(),
                ..config(1000, 5, 100.0)
            },
            100_000,
        );
        let mut spread = Moments::default();
        for (_, rs) in by_customer(&seen) {
            spread.add(rs.iter().map(|s| f64::from(s.hr)).sum::<f64>() / rs.len() as f64);
        }
        assert_eq!(spread.n, 1000);
        assert!(spread.sd() > 5.0, "sd of customer means {}", spread.sd());
        assert!((60.0..80.0).contains(&spread.mean), "{}", spread.mean);
    }

    #[test]
    fn consecutive_readings_move_smoothly() {
        // Readings of a customer every second, every 10 s and every 1000 s.
        for (customers, rate) in [(20, 20.0), (100, 10.0), (100, 0.1)] {
            let cfg = SimulatorConfig {
                inject: InjectionRates::default(),
                ..config(customers, 11, rate)
            };
            let seen = readings(cfg, 100_000);
            let mut steps = Vec::new();
            for (_, rs) in by_customer(&seen) {
                for w in rs.windows(2) {
                    let step = (w[1].hr - w[0].hr).abs();
                    steps.push(step);
                    if !w[1].trace.in_episode {
                        assert!(step < 30, "{:?} -> {:?}", w[0], w[1]);
                    }
                }
            }
            steps.sort_unstable();
            let median = steps[steps.len() / 2];
            assert!(median <= 5, "median step {median} at rate {rate}");
            assert!(
                median >= 1,
                "median step {median} at rate {rate}: too smooth"
            );
        }
    }

    #[test]
    fn sleep_is_at_local_night_and_slower_than_rest() {
        let cfg = SimulatorConfig {
            inject: InjectionRates::none(),
            ..config(50, 9, 50.0 / 60.0)
        };
        let mut sim = Simulator::new(cfg);
        let mut sleep = Moments::default();
        let mut rest = Moments::default();
        let mut exercise = Moments::default();
        // Two simulated days, a reading per customer a minute.
        for _ in 0..50 * 2 * 1440 {
            let SimRecord::Reading {
                customer_id,
                heart_rate,
                sim_time,
                activity,
                ..
            } = sim.next_record(now())
            else {
                unreachable!("no faults configured")
            };
            let c = &sim.customers[customer_id[5..].parse::<usize>().unwrap()];
            let local_hour =
                (sim_time.timestamp() + i64::from(c.tz_qh) * 900).rem_euclid(86_400) / 3600;
            match local_hour {
                2..=4 => assert_eq!(activity, Activity::Sleep, "{customer_id} at {local_hour}"),
                10..=20 => assert_ne!(activity, Activity::Sleep, "{customer_id} at {local_hour}"),
                _ => {}
            }
            match activity {
                Activity::Sleep => sleep.add(f64::from(heart_rate)),
                Activity::Rest => rest.add(f64::from(heart_rate)),
                Activity::Exercise => exercise.add(f64::from(heart_rate)),
                Activity::Light => {}
            }
        }
        assert!(
            sleep.mean < rest.mean * 0.92,
            "{} {}",
            sleep.mean,
            rest.mean
        );
        assert!(exercise.mean > 110.0, "{}", exercise.mean);
    }

    /// `observed` is within 5 standard deviations of `n` draws at probability `p`.
    fn within_binomial(observed: u64, n: u64, p: f64) -> bool {
        let expected = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (observed as f64 - expected).abs() <= 5.0 * sd + 1.0
    }

    #[test]
    fn injected_kinds_start_at_their_configured_rates_and_are_labelled() {
        let inject = InjectionRates {
            bradycardia: 0.004,
            tachycardia: 0.003,
            critical_low: 0.002,
            critical_high: 0.002,
            spike: 0.005,
            deviation: 0.004,
            silent: 0.001,
        };
        let cfg = SimulatorConfig {
            inject: inject.clone(),
            ..config(300, 13, 30.0)
        };
        let seen = readings(cfg, 300_000);
        let eligible = seen.iter().filter(|s| s.trace.eligible).count() as u64;
        assert!(eligible > 200_000, "{eligible}");
        for kind in AnomalyKind::ALL {
            let started = seen
                .iter()
                .filter(|s| s.trace.started == Some(kind))
                .count() as u64;
            assert!(
                within_binomial(started, eligible, inject.rate(kind)),
                "{kind:?}: {started} starts in {eligible} eligible readings at {}",
                inject.rate(kind)
            );
        }

        // Each episode's readings carry the kind it was injected as.
        for (_, rs) in by_customer(&seen) {
            let mut i = 0;
            while i < rs.len() {
                let Some(kind) = rs[i].trace.started else {
                    i += 1;
                    continue;
                };
                let mut end = i + 1;
                while end < rs.len() && rs[end].trace.in_episode && rs[end].trace.started.is_none()
                {
                    end += 1;
                }
                if end == rs.len() {
                    // Cut off by the end of the run: not a whole episode.
                    break;
                }
                let episode = &rs[i..end];
                let has = |s: &&Seen, k| s.injected.contains(&k);
                match kind {
                    AnomalyKind::Silent => {
                        assert!(has(&rs[i], AnomalyKind::Silent));
                        // 300 customers at 30/s: one reading every 10 s; a gap of >= 120 s.
                        assert!(rs[i + 1].time - rs[i].time >= TimeDelta::seconds(120));
                    }
                    AnomalyKind::Spike => {
                        assert!(has(&rs[i], AnomalyKind::Spike), "{:?}", rs[i]);
                        assert_eq!(episode.len(), 2, "a spike and its way back");
                    }
                    AnomalyKind::Deviation => {
                        let shifted = episode
                            .iter()
                            .filter(|s| has(s, AnomalyKind::Deviation))
                            .count();
                        assert!((3..=8).contains(&shifted), "{episode:?}");
                        assert!(episode.iter().all(|s| !has(s, AnomalyKind::Spike)));
                    }
                    _ => {
                        assert!(
                            episode.iter().any(|s| has(s, kind)),
                            "{kind:?} episode without its label: {episode:?}"
                        );
                        assert!(episode.iter().all(|s| !has(s, AnomalyKind::Spike)));
                    }
                }
                i = end;
            }
        }

        // Spike labels come from injected spikes only, and a silence is labelled once.
        for s in &seen {
            if s.injected.contains(&AnomalyKind::Spike) {
                assert!(s.trace.in_episode, "{s:?}");
            }
            assert_eq!(
                s.injected.contains(&AnomalyKind::Silent),
                s.trace.started == Some(AnomalyKind::Silent)
            );
        }
    }

    #[test]
    fn labels_are_exactly_what_the_reading_raises() {
        let cfg = SimulatorConfig {
            inject: InjectionRates::all(0.003),
            ..config(100, 17, 10.0)
        };
        let seen = readings(cfg, 100_000);
        for (_, rs) in by_customer(&seen) {
            for (i, s) in rs.iter().enumerate() {
                let threshold = classify(s.hr, &BANDS).threshold_anomaly();
                for kind in [
                    AnomalyKind::CriticalLow,
                    AnomalyKind::Bradycardia,
                    AnomalyKind::Tachycardia,
                    AnomalyKind::CriticalHigh,
                ] {
                    assert_eq!(s.injected.contains(&kind), threshold == Some(kind), "{s:?}");
                }
                let spike = i > 0 && (s.hr - rs[i - 1].hr).abs() >= 30;
                assert_eq!(s.injected.contains(&AnomalyKind::Spike), spike, "{s:?}");
                let mut sorted = s.injected.clone();
                sorted.sort_by_key(|k| kind_index(*k));
                sorted.dedup();
                assert_eq!(sorted, s.injected);
            }
        }
    }

    #[test]
    fn faults_cover_every_reason_and_each_is_rejected_with_it() {
        let mut sim = Simulator::new(SimulatorConfig {
            fault_rate: 1.0,
            ..config(10, 1, 100.0)
        });
        let mut seen = HashMap::new();
        // Six rounds: every variant of every reason.
        for i in 0..RejectReason::ALL.len() * 6 {
            let at = now() + TimeDelta::milliseconds(i as i64 * 250);
            let SimRecord::Fault {
                customer_id,
                reason,
                value,
            } = sim.next_record(at)
            else {
                panic!("fault_rate 1 gives only faults")
            };
            assert_eq!(reason, RejectReason::ALL[i % RejectReason::ALL.len()]);
            assert!(customer_id.starts_with("CUST-"));
            let verdict = validate(value.as_deref(), Some(at), &ValidationRules::default());
            assert_eq!(
                verdict.as_ref().map_err(|r| r.reason),
                Err(reason),
                "{reason}: {:?}",
                value
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(&v[..v.len().min(200)]))
            );
            *seen.entry(reason).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), RejectReason::ALL.len());
    }

    #[test]
    fn faults_appear_at_their_rate() {
        let mut sim = Simulator::new(SimulatorConfig {
            fault_rate: 0.05,
            ..config(100, 2, 100.0)
        });
        let n = 50_000;
        let mut reasons = HashMap::new();
        for _ in 0..n {
            if let SimRecord::Fault { reason, .. } = sim.next_record(now()) {
                *reasons.entry(reason).or_insert(0u64) += 1;
            }
        }
        let faults: u64 = reasons.values().sum();
        assert!(within_binomial(faults, n, 0.05), "{faults}");
        assert_eq!(reasons.len(), RejectReason::ALL.len());
    }

    #[test]
    fn injected_header_lists_kinds_in_canonical_order() {
        use AnomalyKind::*;
        assert_eq!(injected_header(&[]), None);
        assert_eq!(injected_header(&[Silent]).as_deref(), Some("silent"));
        assert_eq!(
            injected_header(&[Spike, CriticalHigh]).as_deref(),
            Some("critical_high,spike")
        );
        assert_eq!(
            injected_header(&AnomalyKind::ALL).as_deref(),
            Some("critical_low,bradycardia,tachycardia,critical_high,spike,deviation,silent")
        );
    }

    #[test]
    fn profile_report_shows_activities_kinds_and_faults() {
        let cfg = SimulatorConfig {
            fault_rate: 0.01,
            inject: InjectionRates::all(0.002),
            ..config(200, 4, 100.0)
        };
        let report = profile_report(&cfg, 20_000);
        for activity in Activity::ALL {
            assert!(report.contains(activity.as_str()), "{report}");
        }
        for kind in AnomalyKind::ALL {
            assert!(report.contains(kind.as_str()), "{report}");
        }
        assert!(report.contains("too_large"), "{report}");
        assert!(report.contains("200 customers"), "{report}");
    }

    #[test]
    fn a_hundred_thousand_customers_fit_well_under_100_mib() {
        assert!(std::mem::size_of::<Customer>() <= 48);
        let mut sim = Simulator::new(config(100_000, 1, 100_000.0));
        let bytes = sim.customers.capacity() * std::mem::size_of::<Customer>();
        assert!(bytes < 10 * 1024 * 1024, "{bytes} bytes");
        for _ in 0..200_000 {
            sim.next_record(now());
        }
    }

    #[test]
    fn odd_configurations_still_give_valid_readings() {
        let odd = [
            SimulatorConfig {
                customers: 0,
                rate: f64::NAN,
                fault_rate: f64::NAN,
                inject: InjectionRates::all(0.9),
                ..config(0, 1, 0.0)
            },
            SimulatorConfig {
                spike_bpm: 1,
                rate: -5.0,
                fault_rate: 0.5,
                inject: InjectionRates::all(f64::INFINITY),
                ..config(3, 1, 0.0)
            },
            SimulatorConfig {
                spike_bpm: 1_000_000,
                bands: BandSettings {
                    critical_low_below: i64::MAX,
                    low_below: i64::MIN,
                    high_above: 0,
                    critical_high_above: -7,
                },
                ..config(5, 1, 1e-9)
            },
        ];
        for cfg in odd {
            let mut sim = Simulator::new(cfg);
            for _ in 0..20_000 {
                if let SimRecord::Reading { heart_rate, .. } = sim.next_record(now()) {
                    assert!((20..=250).contains(&heart_rate));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_configuration_gives_valid_readings_without_panicking(
            customers in 0usize..50,
            seed in any::<u64>(),
            rate in prop_oneof![Just(0.0), 0.001f64..1e6, any::<f64>()],
            inject in prop_oneof![Just(0.0), 0.0f64..0.2, any::<f64>()],
            fault_rate in prop_oneof![Just(0.0), 0.0f64..=1.0, any::<f64>()],
            spike_bpm in prop_oneof![Just(30i64), any::<i64>()],
        ) {
            let cfg = SimulatorConfig {
                inject: InjectionRates::all(inject),
                fault_rate,
                ..SimulatorConfig::new(customers, seed, rate, BANDS, spike_bpm)
            };
            let mut sim = Simulator::new(cfg);
            for _ in 0..2_000 {
                if let SimRecord::Reading { heart_rate, .. } = sim.next_record(now()) {
                    prop_assert!((20..=250).contains(&heart_rate));
                }
            }
        }
    }
}
