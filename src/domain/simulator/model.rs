//! The simulator: a seeded fleet of customers visited in turn on a virtual clock, each with a
//! daily schedule of activities, a smooth heart-rate model with drift and sensor noise, and the
//! injected anomaly episodes.

use std::f64::consts::TAU;

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::faults::fault_value;
use super::params::*;
use super::types::{activity_index, customer_id, sim_start, unit, SimRecord, SimulatorConfig};
use crate::domain::classification::{AnomalyKind, Bands};
use crate::domain::reading::Activity;
use crate::domain::validation::RejectReason;

/// One simulated customer: 48 bytes, so 100 000 customers take under 5 MB.
#[derive(Debug, Clone)]
pub(super) struct Customer {
    /// Resting heart rate while awake, bpm.
    rest: f32,
    /// The natural level: where the heart rate is, moving toward the activity's target.
    level: f32,
    /// Slow random wander around the level, bpm.
    drift: f32,
    /// Threshold and deviation episodes: the offset from the natural value currently applied.
    ep_offset: f32,
    /// Threshold episodes: the target heart rate; spike: the signed jump; deviation: the signed
    /// shift.
    ep_target: f32,
    /// Simulated seconds since the start when the current activity ends.
    activity_until: u32,
    /// Simulated seconds since the start until which the device is silent.
    silent_until: u32,
    /// Threshold and deviation episodes: simulated seconds since the start when the hold at the
    /// injected level (or shift) ends and the way back begins.
    ep_until: u32,
    /// The last heart rate sent; 0 before the first reading.
    prev_hr: i16,
    /// Local wake-up and bedtime, minutes after midnight.
    wake_min: u16,
    bed_min: u16,
    /// UTC offset, quarter hours.
    pub(super) tz_qh: i8,
    age: u8,
    /// Inclination to exercise, 0..=255.
    fitness: u8,
    /// Share of the heart-rate reserve of the current light or exercise bout, in 255ths.
    bout: u8,
    /// Readings at rest so far, saturating: no episode starts before [`WARM_REST_READINGS`].
    rest_seen: u8,
    /// The activity of the schedule (what a reading says may differ while the heart settles).
    activity: Activity,
    /// The episode in progress; `Silent` while the device is silent and until the reading after.
    ep_kind: Option<AnomalyKind>,
    /// A threshold or deviation episode due, waiting for the customer to rest.
    pending: Option<AnomalyKind>,
    /// The labels of the episode in progress, a bit set over `AnomalyKind::ALL`.
    ep_labels: u8,
}

/// What happened inside one call, for tests and the profile.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Trace {
    /// The episode whose first reading this is (for a silence: the reading after it).
    pub(super) started: Option<AnomalyKind>,
    /// The reading is part of an injected episode (including its way in and back).
    pub(super) in_episode: bool,
    /// Turns of silent devices skipped before this reading (each one reading interval of
    /// customer-time inside a silence).
    pub(super) skipped: u64,
    /// The episode that fell due with this reading (it may wait for rest, or be dropped).
    pub(super) due: Option<AnomalyKind>,
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
    /// Cumulative per-reading probabilities that an episode falls due, in `AnomalyKind::ALL`
    /// order.
    due_cdf: [f64; 7],
    /// Target ranges of critical_low, bradycardia, tachycardia, critical_high, bpm.
    targets: [(f32, f32); 4],
    bands: Bands,
    fault_rate: f64,
}

/// A seeded fleet of customers visited in turn on a virtual clock.
pub struct Simulator {
    model: Model,
    rng: ChaCha8Rng,
    fault_rng: ChaCha8Rng,
    pub(super) customers: Vec<Customer>,
    /// The next slot of the round robin: customer `slot % customers`, at `slot * slot_ns`.
    slot: u64,
    /// Faults made so far: picks the reason (in turn) and the variant.
    faults: u64,
    /// Episodes started so far: the id of the latest.
    episodes: u32,
    /// Per customer, the id of its latest episode (0 before the first); beside `customers`
    /// rather than in [`Customer`], whose size bounds the fleet's memory.
    episode_of: Vec<u32>,
}

impl Simulator {
    /// A fleet of `cfg.customers` customers (at least one) drawn with `cfg.seed`. Values out of
    /// range are mapped to usable ones: a rate that is not a positive number counts as 0,
    /// injection rates are clamped to 0..=3600 an hour and `fault_rate` to 0..=1 (NaN = 0),
    /// `spike_bpm` to 1..=1000.
    pub fn new(cfg: SimulatorConfig) -> Self {
        let count = cfg.customers.max(1);
        // Bounded so that the clock arithmetic stays finite whatever the rate.
        let interval_s = cfg
            .reading_interval_s()
            .clamp(MIN_INTERVAL_S, MAX_INTERVAL_S);
        let spike_bpm = cfg.spike_bpm.clamp(1, 1_000);
        let guard = MAX_NATURAL_STEP_BPM.min(spike_bpm - 1).max(1);
        let drift_keep = (-interval_s / DRIFT_TAU_S).exp();
        // Episodes fall due as a Poisson process in customer-time: per reading, with probability
        // 1 - exp(-total rate x interval), of each kind in proportion to its rate.
        let rates = cfg.inject.effective();
        let total: f64 = rates.iter().sum();
        let due = 1.0 - (-total * interval_s / 3600.0).exp();
        let mut cumulative = 0.0;
        let due_cdf = rates.map(|rate| {
            cumulative += if total > 0.0 { due * rate / total } else { 0.0 };
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
            due_cdf,
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
            episodes: 0,
            episode_of: vec![0; count],
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

    pub(super) fn next_traced(&mut self, now: DateTime<Utc>) -> (SimRecord, Trace) {
        if self.model.fault_rate > 0.0 && self.fault_rng.gen::<f64>() < self.model.fault_rate {
            return (self.fault(now), Trace::default());
        }
        let count = self.customers.len() as u64;
        // Turns skipped in a row (to notice that every device is silent) and in all.
        let mut in_a_row = 0u64;
        let mut skipped = 0u64;
        loop {
            if in_a_row >= count {
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
                // Every turn jumped over is a silent one.
                skipped = skipped.saturating_add(wake_slot.saturating_sub(self.slot));
                self.slot = self.slot.max(wake_slot);
                in_a_row = 0;
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
                in_a_row += 1;
                skipped += 1;
                continue;
            }
            let out = step(&self.model, &mut self.rng, &mut self.customers[index], t_s);
            if out.started.is_some() {
                // Kept in 32 bits per customer (the fleet's memory bound); 4 billion episodes
                // are far beyond any run.
                self.episodes = self.episodes.saturating_add(1);
                self.episode_of[index] = self.episodes;
            }
            let episode = out.in_episode.then_some(u64::from(self.episode_of[index]));
            let sim_time = sim_start()
                .checked_add_signed(TimeDelta::nanoseconds(t_ns as i64))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let record = SimRecord::Reading {
                customer_id: customer_id(index),
                heart_rate: out.hr,
                sim_time,
                activity: out.activity,
                injected: kinds_of(out.labels),
                episode,
            };
            let trace = Trace {
                started: out.started,
                in_episode: out.in_episode,
                skipped,
                due: out.due,
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
        ep_offset: 0.0,
        ep_target: 0.0,
        activity_until: 0,
        silent_until: 0,
        ep_until: 0,
        prev_hr: 0,
        wake_min,
        bed_min,
        tz_qh,
        age,
        fitness: rng.gen(),
        bout: 0,
        rest_seen: 0,
        activity: Activity::Rest,
        ep_kind: None,
        pending: None,
        ep_labels: 0,
    }
}

/// One reading's outcome, for [`Simulator::next_traced`].
struct Step {
    hr: i16,
    /// What the reading says the customer is doing.
    activity: Activity,
    /// The labels, a bit set over `AnomalyKind::ALL`.
    labels: u8,
    started: Option<AnomalyKind>,
    in_episode: bool,
    due: Option<AnomalyKind>,
}

/// Whether `kind` is injected at rest (and moves the resting level) rather than at any time.
fn at_rest(kind: AnomalyKind) -> bool {
    !matches!(kind, AnomalyKind::Spike | AnomalyKind::Silent)
}

/// One reading of customer `c` at `t_s` simulated seconds.
fn step(m: &Model, rng: &mut ChaCha8Rng, c: &mut Customer, t_s: f64) -> Step {
    use AnomalyKind::*;
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
    c.drift = (m.drift_keep * c.drift + m.drift_sd * z).clamp(-DRIFT_BOUND_BPM, DRIFT_BOUND_BPM);
    // What the reading says: `rest` only once the heart has settled near its resting level.
    let mut activity = match c.activity {
        Activity::Rest if c.level > target + SETTLE_BPM => Activity::Active,
        Activity::Rest if c.level < target - SETTLE_BPM => Activity::Sleep,
        other => other,
    };
    if c.ep_kind.is_some_and(at_rest) {
        activity = Activity::Rest;
    }
    let mut base = c.level + c.drift;
    match activity {
        Activity::Rest => base = base.clamp(REST_SLOW_BPM.0, REST_SLOW_BPM.1),
        Activity::Active | Activity::Exercise => base = base.min(ACTIVE_SLOW_MAX_BPM),
        Activity::Sleep => {}
    }

    let mut started = None;
    let mut in_episode = false;
    let mut labels = 0u8;
    // The reading after a silence carries it.
    if c.ep_kind == Some(Silent) {
        c.ep_kind = None;
        started = Some(Silent);
        in_episode = true;
        labels = c.ep_labels;
    }
    // Episodes fall due, once the detector has a baseline for the customer.
    let mut spike_now = false;
    let mut due = None;
    if !first && c.rest_seen >= WARM_REST_READINGS {
        let u: f64 = rng.gen();
        if let Some(i) = m.due_cdf.iter().position(|&p| u < p) {
            let kind = AnomalyKind::ALL[i];
            due = Some(kind);
            match kind {
                _ if c.ep_kind.is_some() || started.is_some() => {}
                Spike => {
                    start_spike(m, rng, c);
                    started = Some(Spike);
                    spike_now = true;
                }
                Silent => {
                    // This reading is the last before the silence, and natural.
                    let quiet = rng
                        .gen_range(SILENT_S.0..=SILENT_S.1)
                        .max(SILENT_MIN_INTERVALS * m.interval_s);
                    c.silent_until = seconds_u32((t_s + quiet).ceil());
                    c.ep_kind = Some(Silent);
                    c.ep_labels = bit(Silent);
                }
                _ => {
                    if c.pending.is_none() {
                        c.pending = Some(kind);
                    }
                }
            }
        }
    }
    // A threshold or deviation episode starts at a settled resting reading.
    if c.ep_kind.is_none() && started.is_none() && activity == Activity::Rest {
        if let Some(kind) = c.pending.take() {
            start_at_rest(m, rng, c, kind, base, t_s);
            started = Some(kind);
        }
    }

    let z: f32 = StandardNormal.sample(rng);
    let noise = NOISE_SD_BPM[activity_index(activity)] * z.clamp(-NOISE_BOUND_SD, NOISE_BOUND_SD);
    let mut value = base + noise;
    let episode = c.ep_kind;
    let mut back_from_spike = false;
    match episode {
        None | Some(Silent) => {}
        Some(Spike) => {
            in_episode = true;
            labels = c.ep_labels;
            if spike_now {
                // The spike itself is exact, so its jump is at least spike_bpm for sure.
                value = f32::from(prev) + c.ep_target;
            } else {
                // The way back: natural again.
                back_from_spike = true;
                c.ep_kind = None;
            }
        }
        Some(kind) => {
            in_episode = true;
            labels = c.ep_labels;
            let holding = t_s < f64::from(c.ep_until);
            // Held at the level, or (a deviation) at the natural level shifted, without the
            // drift: steady, so it stays in its band.
            let desired = match (holding, kind) {
                (false, _) => 0.0,
                (true, Deviation) => {
                    (c.level + c.ep_target).clamp(REST_SLOW_BPM.0, REST_SLOW_BPM.1) - base
                }
                (true, _) => c.ep_target - base,
            };
            c.ep_offset += (desired - c.ep_offset).clamp(-m.episode_step, m.episode_step);
            value = base + c.ep_offset + noise;
            if !holding && c.ep_offset.abs() < 0.5 {
                c.ep_offset = 0.0;
                c.ep_kind = None;
            }
        }
    }

    // `as` saturates and maps NaN to 0; the clamps below bring any value into range.
    let mut hr = value.round() as i16;
    if !first && !spike_now && !back_from_spike {
        hr = hr.clamp(prev - m.guard, prev + m.guard);
    }
    let (lo, hi) = if in_episode { VALID_BPM } else { NATURAL_BPM };
    hr = hr.clamp(lo, hi);
    c.prev_hr = hr;
    if activity == Activity::Rest && !in_episode {
        c.rest_seen = c.rest_seen.saturating_add(1);
    }
    Step {
        hr,
        activity,
        labels,
        started,
        in_episode,
        due,
    }
}

/// Starts a spike for `c`: this reading jumps by `spike_bpm` plus a little, toward the side
/// that keeps it out of the critical bands (which would page too).
fn start_spike(m: &Model, rng: &mut ChaCha8Rng, c: &mut Customer) {
    let jump = m.spike_bpm + rng.gen_range(SPIKE_EXTRA_BPM.0..=SPIKE_EXTRA_BPM.1);
    let prev = i64::from(c.prev_hr);
    let top = m.bands.critical_high_above.min(i64::from(VALID_BPM.1) - 10);
    let bottom = m.bands.critical_low_below.max(i64::from(VALID_BPM.0) + 5);
    let up = prev.saturating_add(jump) <= top;
    let down = prev.saturating_sub(jump) >= bottom;
    // No side with room (a spike_bpm too large for the bands): as far as the range allows.
    let sign = direction_with_room(up, down, rng).unwrap_or(if prev < 135 { 1.0 } else { -1.0 });
    c.ep_kind = Some(AnomalyKind::Spike);
    c.ep_target = sign * jump as f32;
    c.ep_labels = bit(AnomalyKind::Spike);
}

/// Starts a threshold or deviation episode of `kind` for `c`, at rest with natural value `base`
/// at `t_s`: draws its level (or shift) and how long it holds, plans its way in and out, keeps
/// the customer at rest until it is over, and labels it with the alert kinds it should page.
fn start_at_rest(
    m: &Model,
    rng: &mut ChaCha8Rng,
    c: &mut Customer,
    kind: AnomalyKind,
    base: f32,
    t_s: f64,
) {
    use AnomalyKind::*;
    let (distance, hold) = if kind == Deviation {
        // Room for the shift inside the resting band (the level moves by a bpm or so an hour).
        let up_room = REST_SLOW_BPM.1 - 1.0 - c.level;
        let down_room = c.level - 1.0 - REST_SLOW_BPM.0;
        let wanted = rng.gen_range(DEVIATION_BPM.0..=DEVIATION_BPM.1);
        let sign = direction_with_room(
            up_room >= DEVIATION_BPM.0,
            down_room >= DEVIATION_BPM.0,
            rng,
        )
        .unwrap_or(if up_room >= down_room { 1.0 } else { -1.0 });
        let room = if sign > 0.0 { up_room } else { down_room };
        let shift = wanted.min(room.max(1.0));
        c.ep_target = sign * shift;
        (
            shift,
            rng.gen_range(DEVIATION_HOLD_S.0..=DEVIATION_HOLD_S.1),
        )
    } else {
        let (mut lo, mut hi) = m.targets[threshold_index(kind)];
        // Far enough from the resting level to be a deviation for sure.
        match kind {
            Tachycardia => lo = lo.max(c.rest + DEVIATION_SURE_BPM).min(hi),
            Bradycardia => hi = hi.min(c.rest - DEVIATION_SURE_BPM).max(lo),
            _ => {}
        }
        let target = rng.gen_range(lo.min(hi)..=hi.max(lo));
        c.ep_target = target;
        let hold = if matches!(kind, CriticalLow | CriticalHigh) {
            rng.gen_range(CRITICAL_HOLD_S.0..=CRITICAL_HOLD_S.1)
                .max(CRITICAL_MIN_HOLD_READINGS * m.interval_s)
        } else {
            rng.gen_range(BRADY_TACHY_HOLD_S.0..=BRADY_TACHY_HOLD_S.1)
        };
        ((target - base).abs(), hold)
    };
    let (mut hold, labels) = labels_at_rest(m, kind, distance, (c.ep_target - c.rest).abs(), hold);
    hold = hold.max(0.0);
    // Readings on the way to the level (the first of them this one).
    let ramp = (distance / m.episode_step).ceil().max(1.0) as f64;
    let until = t_s + (ramp - 1.0) * m.interval_s + hold;
    c.ep_kind = Some(kind);
    c.ep_offset = 0.0;
    c.ep_until = seconds_u32(until.ceil());
    c.ep_labels = labels;
    // Resting until the way back is over and a while after.
    let end = until + (ramp + 1.0) * m.interval_s + REST_AFTER_EPISODE_S;
    c.activity_until = c.activity_until.max(seconds_u32(end.ceil()));
}

/// The labels of a threshold or deviation episode that moves the reading `distance` bpm from
/// its natural value (`shift` from the customer's resting rate) and holds for `hold` seconds,
/// and the hold, lengthened where needed so that whether it pages `deviation` is clear.
///
/// Its own kind always: it lasts longer than its sustain time (10 min for brady- and
/// tachycardia, 30 s for critical, 2 min for deviation). `deviation` too when the readings are
/// a deviation for sure ([`DEVIATION_SURE_BPM`]) for at least [`DEVIATION_SUSTAIN_S`]: from the
/// first reading of the way in to the last of the way back that is that far away.
fn labels_at_rest(m: &Model, kind: AnomalyKind, distance: f32, shift: f32, hold: f64) -> (f64, u8) {
    let own = bit(kind);
    if kind == AnomalyKind::Deviation {
        return (hold, own);
    }
    if shift < DEVIATION_SURE_BPM {
        return (hold, own);
    }
    // Readings of the way in and out (offsets step, 2 step, ... on the way in and back from
    // the level) at least `far` bpm away.
    let step = m.episode_step;
    let ramp_readings = |far: f32| -> (f64, f64) {
        let ramp = (distance / step).ceil().max(1.0);
        let before = (far / step).ceil().max(1.0).min(ramp) - 1.0;
        let after = ((distance - far) / step).floor().max(0.0);
        (f64::from(ramp - 1.0 - before), f64::from(after))
    };
    let span = |far: f32, hold: f64| {
        let (into, out) = ramp_readings(far);
        (into + out) * m.interval_s + hold
    };
    let margin = LABEL_MARGIN_S + 2.0 * m.interval_s;
    let sure = span(DEVIATION_SURE_BPM, hold);
    if sure >= DEVIATION_SUSTAIN_S + margin {
        return (hold, own | bit(AnomalyKind::Deviation));
    }
    if span(DEVIATION_NEVER_BPM, hold) + 2.0 * m.interval_s < DEVIATION_SUSTAIN_S - margin {
        return (hold, own);
    }
    // Too close to call: hold longer, so it pages deviation for sure.
    (
        hold + (DEVIATION_SUSTAIN_S + margin - sure),
        own | bit(AnomalyKind::Deviation),
    )
}

/// The direction of an injected jump: +1 when only up has room, -1 when only down, either at
/// random (one draw) when both do, `None` when neither does.
fn direction_with_room(up: bool, down: bool, rng: &mut ChaCha8Rng) -> Option<f32> {
    match (up, down) {
        (true, true) => Some(if rng.gen_bool(0.5) { 1.0 } else { -1.0 }),
        (true, false) => Some(1.0),
        (false, true) => Some(-1.0),
        (false, false) => None,
    }
}

/// Picks the activity of `c` from `t_s` on, and until when it lasts: asleep between bedtime and
/// wake-up (local time), otherwise a bout of rest, light activity (`active`) or exercise drawn
/// with the weights of the time of day, ending at bedtime at the latest.
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
            Activity::Active
        } else {
            Activity::Exercise
        };
        let (lo, hi) = DWELL_MIN[activity_index(activity) - 1];
        let dwell = f64::from(rng.gen_range(lo..=hi)) * 60.0;
        let share = match activity {
            Activity::Active => rng.gen_range(LIGHT_RESERVE.0..=LIGHT_RESERVE.1),
            Activity::Exercise => rng.gen_range(EXERCISE_RESERVE.0..=EXERCISE_RESERVE.1),
            _ => 0.0,
        };
        // In 255ths: the share is within 0..=1.
        c.bout = (share * 255.0).round() as u8;
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
        Activity::Active | Activity::Exercise => {
            let max = TANAKA_INTERCEPT_BPM - TANAKA_SLOPE * f32::from(c.age);
            c.rest + f32::from(c.bout) / 255.0 * (max - c.rest).max(MIN_RESERVE_BPM)
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

/// The target heart rates of an injected threshold episode under `bands`: inside the band of
/// its kind with a margin wider than the bounded noise (3 x 1.5 bpm at rest), so every reading
/// at the level is in the band, and inside 25..=240 so it is a valid reading. Resting
/// tachycardia: 10-50 bpm above the normal band (110-150 by default), below the critical band by
/// 30 at least; resting bradycardia: 5 above the critical band to 6 below normal (45-54).
fn target_range(kind: AnomalyKind, b: &Bands) -> (f32, f32) {
    let (lo, hi) = match kind {
        AnomalyKind::CriticalLow => (
            b.critical_low_below.saturating_sub(15),
            b.critical_low_below.saturating_sub(5),
        ),
        AnomalyKind::Bradycardia => (
            b.critical_low_below.saturating_add(5),
            b.low_below.saturating_sub(6),
        ),
        AnomalyKind::Tachycardia => (
            b.high_above.saturating_add(10),
            b.high_above
                .saturating_add(50)
                .min(b.critical_high_above.saturating_sub(30)),
        ),
        _ => (
            b.critical_high_above.saturating_add(6),
            b.critical_high_above.saturating_add(40),
        ),
    };
    let (lo, hi) = (lo.clamp(25, 240) as f32, hi.clamp(25, 240) as f32);
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

fn bit(kind: AnomalyKind) -> u8 {
    1 << kind.index()
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
