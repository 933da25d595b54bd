//! The anomaly detector: per-customer anomalies and alert episodes (SPEC section 5, `anomalies`
//! and `alerts`), as pure functions over a serializable [`CustomerState`].
//!
//! Owns every detection rule that needs memory of a customer: the threshold kinds of the
//! reading's class, `spike` against the previous reading, `deviation` from a moving baseline,
//! `silent`, and the alert episodes that group anomalies. Accepts one [`Reading`] at a time in
//! partition order ([`observe`]) or a silence reported by the caller's timer ([`silence`]); emits
//! the reading's class, its [`Anomaly`] rows and every [`AlertRow`] that changed, for the caller to
//! insert (anomalies) and upsert by (customer_id, kind, opened_at) (alerts). It cannot fail and
//! never panics, whatever the readings, the times or the state it is handed.
//!
//! # Kinds
//! - `critical_low`, `bradycardia`, `tachycardia`, `critical_high`: the reading's class under
//!   `detector.bands` is critical_low, low, high, critical_high; details `{"class"}`.
//! - `spike`: |hr - previous| >= `detector.spike_bpm`, the previous being the customer's previous
//!   observed reading, taken only when 0 <= t - t_previous <= `detector.spike_window_ms` (a
//!   previous reading recorded later than this one is not compared); details
//!   `{"previous", "delta"}` with `delta` = hr - previous, signed.
//! - `deviation`: the customer's n-th reading, n > `detector.warmup_readings`, with
//!   |hr - mean| >= `detector.z_threshold` * max(stddev, `detector.min_stddev_bpm`), mean and
//!   stddev being the baseline as it was before this reading; details `{"baseline"}` (the mean,
//!   1 decimal), `{"stddev"}` (the floored stddev used, 2 decimals), `{"z"}` ((hr - mean) / that
//!   stddev, signed, 2 decimals).
//! - `silent`: reported by [`silence`]; `recorded_at` is the customer's last reading's time.
//!
//! # Baseline
//! One formula for every reading x, with k the number of readings in the baseline including x:
//!
//! ```text
//! w = max(1/k, ALPHA)      d = x - mean
//! mean     <- mean + w*d
//! variance <- (1 - w) * (variance + w*d^2)
//! ```
//!
//! With w = 1/k this is Welford's update of the exact mean and population variance; once
//! 1/k < [`ALPHA`] (after the 20th reading) it is the exponentially weighted mean and variance,
//! so the baseline follows a customer whose resting rate drifts, with a memory of about 1/ALPHA
//! readings. The first reading gives mean = x, variance = 0 whatever the state held before.
//!
//! After warm-up, x is first clipped to mean ± z_threshold * stddev (the floored stddev used for
//! the judgement): a deviating reading still updates the baseline, but only as much as a reading
//! right at the threshold would. Why: not updating at all would flag a lasting change of level
//! for ever; updating with the raw value would let one outlier of 40 bpm triple the stddev and
//! hide the next real deviations. Clipped, one outlier widens the stddev by at most ~31 % (the
//! variance by (1 - ALPHA)(1 + ALPHA * z^2) = 1.71 with the defaults), and a lasting shift is
//! absorbed within a handful of readings because each clipped step widens it again.
//!
//! # Alert episodes
//! At most one open episode per (customer, kind). The first reading raising a kind opens one
//! (`opened_at` = `last_seen_at` = its time, `readings` = 1, `peak_heart_rate` = its hr); each
//! further reading raising the kind adds to it (`readings` + 1, `last_seen_at` = the newest time
//! seen, `peak_heart_rate` = the peak below). An episode resolves after
//! `detector.resolve_after_readings` consecutive readings without its kind, `resolved_at` being
//! the time of the reading that completes the streak; a reading with the kind in between restarts
//! the streak, so a customer flapping around a band edge keeps one episode open instead of
//! opening many. A resolved episode is returned once, then forgotten. `silent` resolves at the
//! next reading. `resolved_at` is never before `last_seen_at`: a late, out-of-order reading
//! resolves an episode at its `last_seen_at`, so every row has opened <= last seen <= resolved.
//!
//! The peak is the reading farthest from normal in the kind's own measure: the lowest heart rate
//! for `critical_low` and `bradycardia`, the highest for `tachycardia` and `critical_high`, the
//! one with the largest |delta| for `spike`, the one farthest from the baseline mean (as it was
//! when that reading was judged) for `deviation`; null for `silent`. On a tie the earlier reading
//! stays. A `silent` episode has `readings` = 0: no reading raised it.
//!
//! # Determinism
//! No clock, no randomness, no hash-ordered collections: the same readings in the same order from
//! the same state give the same anomalies, alert rows and state, so a replay reproduces the rows
//! already stored instead of changing them. The state round-trips through JSON exactly (floats
//! are stored as their shortest round-trip decimal text, see [`exact_f64`]), so a restart resumes
//! exactly where the saved state left off.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{BandSettings, DetectorSettings};
use crate::domain::classification::{classify, AnomalyKind, HeartRateClass};
use crate::domain::reading::Reading;
use crate::domain::record::Anomaly;

/// Weight of the newest reading in the exponentially weighted baseline. 0.05 remembers about the
/// last 20 readings (half-life ~14): long enough that one reading cannot move the baseline much,
/// short enough to follow a customer whose resting rate drifts over minutes, not hours.
pub const ALPHA: f64 = 0.05;

/// The detector's settings, converted once from `detector.*`.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    pub bands: BandSettings,
    pub spike_bpm: i64,
    pub spike_window_ms: i64,
    pub warmup_readings: u64,
    pub z_threshold: f64,
    pub min_stddev_bpm: f64,
    pub resolve_after_readings: u32,
}

impl DetectorConfig {
    /// From validated settings. Values validation would have refused are mapped to the nearest
    /// usable one (a non-positive or non-finite float to its default), so a hand-built
    /// `DetectorSettings` cannot make the detector misbehave either.
    pub fn from_settings(s: &DetectorSettings) -> Self {
        let defaults = DetectorConfig::default();
        DetectorConfig {
            bands: s.bands,
            spike_bpm: s.spike_bpm,
            spike_window_ms: s.spike_window_ms,
            warmup_readings: u64::try_from(s.warmup_readings).unwrap_or(0),
            z_threshold: positive_or(s.z_threshold, defaults.z_threshold),
            min_stddev_bpm: positive_or(s.min_stddev_bpm, defaults.min_stddev_bpm),
            resolve_after_readings: u32::try_from(
                s.resolve_after_readings.clamp(1, i64::from(u32::MAX)),
            )
            .unwrap_or(u32::MAX),
        }
    }
}

impl Default for DetectorConfig {
    /// The defaults of SPEC section 3.
    fn default() -> Self {
        DetectorConfig {
            bands: BandSettings {
                critical_low_below: 40,
                low_below: 60,
                high_above: 100,
                critical_high_above: 180,
            },
            spike_bpm: 30,
            spike_window_ms: 60_000,
            warmup_readings: 30,
            z_threshold: 4.0,
            min_stddev_bpm: 3.0,
            resolve_after_readings: 3,
        }
    }
}

fn positive_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        fallback
    }
}

/// A customer's moving baseline of heart rate (see the module doc for the update rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Baseline {
    /// Readings folded in so far.
    pub count: u64,
    /// Mean heart rate, bpm.
    #[serde(with = "exact_f64")]
    pub mean: f64,
    /// Population variance, bpm².
    #[serde(with = "exact_f64")]
    pub variance: f64,
}

impl Baseline {
    /// The standard deviation, bpm; 0 for an empty baseline.
    pub fn stddev(&self) -> f64 {
        // `max` also maps a NaN to 0, so the result is never NaN for a sane baseline.
        self.variance.max(0.0).sqrt()
    }

    /// Whether the numbers can be used. Only a hand-edited or corrupted saved state can fail this;
    /// such a baseline is started afresh rather than poisoning every later judgement with NaN.
    fn is_sane(&self) -> bool {
        self.mean.is_finite() && self.variance.is_finite() && self.variance >= 0.0
    }

    fn update(&mut self, x: f64) {
        self.count = self.count.saturating_add(1);
        let w = (1.0 / self.count as f64).max(ALPHA);
        let d = x - self.mean;
        self.mean += w * d;
        self.variance = (1.0 - w) * (self.variance + w * d * d);
    }
}

/// One open alert episode of a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub kind: AnomalyKind,
    /// Time of the reading that opened it (with customer and kind, the row's identity).
    pub opened_at: DateTime<Utc>,
    /// The newest time of a reading that raised the kind.
    pub last_seen_at: DateTime<Utc>,
    /// Readings that raised the kind (0 for `silent`).
    pub readings: i32,
    pub peak_heart_rate: Option<i16>,
    /// How far the peak reading is from normal, in the kind's own measure (module doc, "peak");
    /// larger is farther. Kept so that later readings can be compared with the peak.
    #[serde(with = "exact_f64")]
    pub peak_severity: f64,
    /// Consecutive readings since the kind was last raised.
    pub quiet_streak: u32,
}

impl Episode {
    fn open(kind: AnomalyKind, at: DateTime<Utc>, hr: Option<i16>, severity: f64) -> Self {
        Episode {
            kind,
            opened_at: at,
            last_seen_at: at,
            readings: i32::from(hr.is_some()),
            peak_heart_rate: hr,
            peak_severity: severity,
            quiet_streak: 0,
        }
    }

    fn add(&mut self, at: DateTime<Utc>, hr: i16, severity: f64) {
        self.readings = self.readings.saturating_add(1);
        self.last_seen_at = self.last_seen_at.max(at);
        // Strictly greater: on a tie the earlier reading stays the peak.
        if severity > self.peak_severity {
            self.peak_severity = severity;
            self.peak_heart_rate = Some(hr);
        }
        self.quiet_streak = 0;
    }

    fn row(&self, customer_id: &str, resolved_at: Option<DateTime<Utc>>) -> AlertRow {
        AlertRow {
            customer_id: customer_id.to_owned(),
            kind: self.kind,
            opened_at: self.opened_at,
            last_seen_at: self.last_seen_at,
            resolved_at,
            readings: self.readings,
            peak_heart_rate: self.peak_heart_rate,
        }
    }

    /// The row of this episode resolved by a reading at `at`; never before `last_seen_at`.
    fn resolved_row(&self, customer_id: &str, at: DateTime<Utc>) -> AlertRow {
        self.row(customer_id, Some(at.max(self.last_seen_at)))
    }
}

/// Everything the detector remembers about one customer; saved as JSON every few seconds and loaded
/// after a restart. Fields missing from an older saved state take their default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CustomerState {
    /// Readings observed so far (n).
    pub readings: u64,
    /// The previous reading in partition order.
    pub last_heart_rate: Option<i16>,
    pub last_recorded_at: Option<DateTime<Utc>>,
    /// The newest `recorded_at` ever observed.
    pub max_recorded_at: Option<DateTime<Utc>>,
    pub baseline: Baseline,
    /// Open episodes only, at most one per kind, in the order of [`AnomalyKind::ALL`]. A small
    /// Vec rather than a map: at most seven entries, and `AnomalyKind` has no `Ord`.
    pub episodes: Vec<Episode>,
    /// Per Kafka partition, the offset of the last reading this state holds. Not used by
    /// [`observe`]: the caller keeps it, so that on load it can replay the stored readings a saved
    /// state does not hold yet (states are saved every few seconds, not with every reading).
    /// `None` in states saved before that, which were saved with every batch and miss nothing.
    pub positions: Option<BTreeMap<i32, i64>>,
}

impl CustomerState {
    /// Records that the reading at `offset` of `partition` has been observed.
    pub fn absorbed(&mut self, partition: i32, offset: i64) {
        let positions = self.positions.get_or_insert_with(BTreeMap::new);
        let at = positions.entry(partition).or_insert(offset);
        *at = (*at).max(offset);
    }

    /// Whether the stored reading at `offset` of `partition` is missing from this state and must
    /// be replayed. A new state misses everything; a state saved before positions were kept
    /// (they were saved with every batch then) misses nothing.
    pub fn misses(&self, partition: i32, offset: i64) -> bool {
        match &self.positions {
            None => self.readings == 0,
            Some(p) => p.get(&partition).map_or(true, |&last| offset > last),
        }
    }

    /// Whether this state has already reached `offset` of `partition` (it observed that record
    /// or a later one of the partition): a record read again, which must not be observed twice.
    pub fn holds(&self, partition: i32, offset: i64) -> bool {
        self.positions
            .as_ref()
            .and_then(|p| p.get(&partition))
            .is_some_and(|&last| offset <= last)
    }

    /// Whether a silence has been reported and no reading has ended it yet.
    pub fn is_silent(&self) -> bool {
        self.episode(AnomalyKind::Silent).is_some()
    }

    /// The open episode of `kind`, if any.
    pub fn episode(&self, kind: AnomalyKind) -> Option<&Episode> {
        self.episodes.iter().find(|e| e.kind == kind)
    }
}

/// One alert episode as the `alerts` table stores it (SPEC section 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub customer_id: String,
    pub kind: AnomalyKind,
    pub opened_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub readings: i32,
    pub peak_heart_rate: Option<i16>,
}

/// What one reading gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub class: HeartRateClass,
    /// In the order threshold kind, `spike`, `deviation`.
    pub anomalies: Vec<Anomaly>,
    /// Every alert row this reading opened, updated or resolved, in the order of
    /// [`AnomalyKind::ALL`].
    pub alerts: Vec<AlertRow>,
}

/// A kind raised by the reading being observed.
struct Raised {
    kind: AnomalyKind,
    severity: f64,
    details: serde_json::Value,
}

/// Observes the next reading of `reading.customer_id` in partition order: returns its class, the
/// anomalies it raises, and every alert row that changed, and updates `state`.
pub fn observe(cfg: &DetectorConfig, state: &mut CustomerState, reading: &Reading) -> Observation {
    let hr = reading.heart_rate;
    let at = reading.recorded_at;
    let class = classify(hr, &cfg.bands);
    let mut raised = Vec::new();

    if let Some(kind) = class.threshold_anomaly() {
        let severity = match kind {
            AnomalyKind::CriticalLow | AnomalyKind::Bradycardia => -f64::from(hr),
            _ => f64::from(hr),
        };
        raised.push(Raised {
            kind,
            severity,
            details: json!({ "class": class.as_str() }),
        });
    }

    if let Some(spike) = spike(cfg, state, hr, at) {
        raised.push(spike);
    }

    if !state.baseline.is_sane() {
        state.baseline = Baseline::default();
    }
    let n = state.readings.saturating_add(1);
    let mut folded = f64::from(hr);
    if n > cfg.warmup_readings && state.baseline.count > 0 {
        let mean = state.baseline.mean;
        // `max` ignores a NaN floor, so a bad config cannot make `sd` NaN.
        let sd = state.baseline.stddev().max(cfg.min_stddev_bpm);
        let diff = f64::from(hr) - mean;
        let z = diff / sd;
        if z.abs() >= cfg.z_threshold {
            raised.push(Raised {
                kind: AnomalyKind::Deviation,
                severity: diff.abs(),
                details: json!({
                    "baseline": round_to(mean, 1),
                    "stddev": round_to(sd, 2),
                    "z": round_to(z, 2),
                }),
            });
        }
        // min/max, not `clamp`: `clamp` panics on NaN bounds.
        let reach = cfg.z_threshold * sd;
        folded = folded.max(mean - reach).min(mean + reach);
    }
    if folded.is_finite() {
        state.baseline.update(folded);
    }

    state.readings = n;
    state.last_heart_rate = Some(hr);
    state.last_recorded_at = Some(at);
    state.max_recorded_at = Some(state.max_recorded_at.map_or(at, |m| m.max(at)));

    let alerts = update_episodes(cfg, state, &reading.customer_id, hr, at, &raised);
    let anomalies = raised
        .into_iter()
        .map(|r| Anomaly {
            event_id: Some(reading.event_id),
            customer_id: reading.customer_id.clone(),
            kind: r.kind,
            heart_rate: Some(hr),
            recorded_at: at,
            details: r.details,
        })
        .collect();
    Observation {
        class,
        anomalies,
        alerts,
    }
}

/// The spike of a reading against the customer's previous one, if any.
fn spike(
    cfg: &DetectorConfig,
    state: &CustomerState,
    hr: i16,
    at: DateTime<Utc>,
) -> Option<Raised> {
    let previous = state.last_heart_rate?;
    let elapsed = at.signed_duration_since(state.last_recorded_at?);
    let window = TimeDelta::try_milliseconds(cfg.spike_window_ms)?;
    if elapsed < TimeDelta::zero() || elapsed > window {
        return None;
    }
    // i32: the difference of two i16 need not fit an i16.
    let delta = i32::from(hr) - i32::from(previous);
    if i64::from(delta.abs()) < cfg.spike_bpm {
        return None;
    }
    Some(Raised {
        kind: AnomalyKind::Spike,
        severity: f64::from(delta.abs()),
        details: json!({ "previous": previous, "delta": delta }),
    })
}

/// Applies one reading to the open episodes; returns the rows that changed.
fn update_episodes(
    cfg: &DetectorConfig,
    state: &mut CustomerState,
    customer_id: &str,
    hr: i16,
    at: DateTime<Utc>,
    raised: &[Raised],
) -> Vec<AlertRow> {
    // A config built by hand could say 0; resolving on the very reading that misses the kind is
    // the closest meaning.
    let resolve_after = cfg.resolve_after_readings.max(1);
    let mut alerts = Vec::new();
    let mut open = Vec::with_capacity(state.episodes.len() + raised.len());
    for mut episode in state.episodes.drain(..) {
        if episode.kind == AnomalyKind::Silent {
            // Any reading ends a silence.
            alerts.push(episode.resolved_row(customer_id, at));
        } else if let Some(r) = raised.iter().find(|r| r.kind == episode.kind) {
            episode.add(at, hr, r.severity);
            alerts.push(episode.row(customer_id, None));
            open.push(episode);
        } else {
            episode.quiet_streak = episode.quiet_streak.saturating_add(1);
            if episode.quiet_streak >= resolve_after {
                alerts.push(episode.resolved_row(customer_id, at));
            } else {
                open.push(episode);
            }
        }
    }
    for r in raised {
        if !open.iter().any(|e| e.kind == r.kind) {
            let episode = Episode::open(r.kind, at, Some(hr), r.severity);
            alerts.push(episode.row(customer_id, None));
            open.push(episode);
        }
    }
    open.sort_by_key(|e| kind_rank(e.kind));
    alerts.sort_by_key(|a| kind_rank(a.kind));
    state.episodes = open;
    alerts
}

/// Called when the customer has been quiet for `detector.silence_after_ms` while its partition is
/// caught up (the caller's clock decides that). Returns the `silent` anomaly and its opened alert
/// row, or `None` when the customer is already in a silence (one row per silence) or has no
/// reading yet.
pub fn silence(state: &mut CustomerState, customer_id: &str) -> Option<(Anomaly, AlertRow)> {
    let last_at = state.last_recorded_at?;
    if state.is_silent() {
        return None;
    }
    let episode = Episode::open(AnomalyKind::Silent, last_at, None, 0.0);
    let row = episode.row(customer_id, None);
    state.episodes.push(episode);
    state.episodes.sort_by_key(|e| kind_rank(e.kind));
    let anomaly = Anomaly {
        event_id: None,
        customer_id: customer_id.to_owned(),
        kind: AnomalyKind::Silent,
        heart_rate: None,
        recorded_at: last_at,
        details: json!({ "last_heart_rate": state.last_heart_rate }),
    };
    Some((anomaly, row))
}

/// The position of `kind` in [`AnomalyKind::ALL`]: the one order episodes and rows are kept in.
fn kind_rank(kind: AnomalyKind) -> usize {
    AnomalyKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(AnomalyKind::ALL.len())
}

/// `x` rounded to `decimals` places, for details meant to be read by people.
fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Serde for an `f64` that must come back bit for bit: written as a JSON string holding Rust's
/// shortest round-trip decimal text (`"70.35000000000001"`), read back with `str::parse`, which
/// rounds correctly.
///
/// Why not a JSON number: serde_json parses numbers with a fast algorithm that is off by one unit
/// in the last place for a few percent of such values unless its `float_roundtrip` feature is on,
/// and a state loaded from a `jsonb` column through `serde_json::Value` takes that path too. A
/// baseline one ulp off could judge a later reading differently from the run that never restarted.
/// A string also survives NaN and infinity, which a JSON number cannot hold. Numbers are still
/// accepted on input (a hand-written state), at serde_json's precision.
pub mod exact_f64 {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        deserializer.deserialize_any(ExactF64)
    }

    struct ExactF64;

    impl Visitor<'_> for ExactF64 {
        type Value = f64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, or a string holding one")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            v.parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_misses_the_readings_after_its_positions_only() {
        let mut s = CustomerState::default();
        assert!(s.misses(0, 5), "a new state misses everything");
        assert!(!s.holds(0, 5));
        s.absorbed(0, 10);
        s.absorbed(0, 7);
        assert!(!s.misses(0, 10) && !s.misses(0, 3));
        assert!(s.holds(0, 10) && s.holds(0, 3) && !s.holds(0, 11));
        assert!(s.misses(0, 11));
        assert!(s.misses(1, 0), "nothing of another partition is held");
        assert!(!s.holds(1, 0));
        let json = serde_json::to_value(&s).unwrap();
        let back: CustomerState = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        let old: CustomerState = serde_json::from_str(r#"{"readings": 3}"#).unwrap();
        assert_eq!(old.positions, None);
        assert!(
            !old.misses(0, 5) && !old.holds(0, 5),
            "a state saved before positions were kept (with every batch) misses nothing, and \
             says nothing of what it has seen"
        );
    }
    use crate::domain::reading::derive_event_id;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use AnomalyKind::*;

    const CUSTOMER: &str = "CUST-00042";

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()
    }

    /// `secs` seconds after the start.
    fn at(secs: i64) -> DateTime<Utc> {
        start() + TimeDelta::seconds(secs)
    }

    fn reading(hr: i16, recorded_at: DateTime<Utc>) -> Reading {
        Reading {
            event_id: derive_event_id(CUSTOMER, &recorded_at),
            customer_id: CUSTOMER.to_owned(),
            recorded_at,
            heart_rate: hr,
        }
    }

    /// Observes `hrs` one every 10 s from `from_secs`; returns every observation.
    fn feed(
        cfg: &DetectorConfig,
        state: &mut CustomerState,
        from_secs: i64,
        hrs: &[i16],
    ) -> Vec<Observation> {
        hrs.iter()
            .enumerate()
            .map(|(i, &hr)| observe(cfg, state, &reading(hr, at(from_secs + 10 * i as i64))))
            .collect()
    }

    fn kinds(obs: &Observation) -> Vec<AnomalyKind> {
        obs.anomalies.iter().map(|a| a.kind).collect()
    }

    fn find(obs: &Observation, kind: AnomalyKind) -> Option<&Anomaly> {
        obs.anomalies.iter().find(|a| a.kind == kind)
    }

    /// Around 70 with noise of at most 2 bpm.
    fn steady(len: usize) -> Vec<i16> {
        const NOISE: [i16; 8] = [0, 1, -1, 2, -2, 1, 0, -1];
        (0..len).map(|i| 70 + NOISE[i % NOISE.len()]).collect()
    }

    #[test]
    fn defaults_match_the_default_config_file() {
        let settings = crate::config::Settings::load_from(None, Vec::new()).unwrap();
        let from = DetectorConfig::from_settings(&settings.detector);
        let d = DetectorConfig::default();
        let bands = |b: &BandSettings| {
            (
                b.critical_low_below,
                b.low_below,
                b.high_above,
                b.critical_high_above,
            )
        };
        assert_eq!(bands(&from.bands), bands(&d.bands));
        assert_eq!(
            (from.spike_bpm, from.spike_window_ms, from.warmup_readings),
            (d.spike_bpm, d.spike_window_ms, d.warmup_readings)
        );
        assert_eq!(
            (
                from.z_threshold,
                from.min_stddev_bpm,
                from.resolve_after_readings
            ),
            (d.z_threshold, d.min_stddev_bpm, d.resolve_after_readings)
        );
    }

    #[test]
    fn settings_out_of_range_map_to_usable_values() {
        let mut s = crate::config::Settings::load_from(None, Vec::new())
            .unwrap()
            .detector;
        s.warmup_readings = -5;
        s.z_threshold = f64::NAN;
        s.min_stddev_bpm = -1.0;
        s.resolve_after_readings = 0;
        let cfg = DetectorConfig::from_settings(&s);
        assert_eq!(cfg.warmup_readings, 0);
        assert_eq!(cfg.z_threshold, 4.0);
        assert_eq!(cfg.min_stddev_bpm, 3.0);
        assert_eq!(cfg.resolve_after_readings, 1);
        s.resolve_after_readings = i64::MAX;
        assert_eq!(
            DetectorConfig::from_settings(&s).resolve_after_readings,
            u32::MAX
        );
    }

    #[test]
    fn band_edges_raise_the_right_threshold_anomaly() {
        let cfg = DetectorConfig::default();
        let cases = [
            (39, Some((CriticalLow, "critical_low"))),
            (40, Some((Bradycardia, "low"))),
            (59, Some((Bradycardia, "low"))),
            (60, None),
            (100, None),
            (101, Some((Tachycardia, "high"))),
            (180, Some((Tachycardia, "high"))),
            (181, Some((CriticalHigh, "critical_high"))),
        ];
        for (hr, expected) in cases {
            let mut state = CustomerState::default();
            let obs = observe(&cfg, &mut state, &reading(hr, at(0)));
            match expected {
                None => assert!(obs.anomalies.is_empty(), "heart rate {hr}"),
                Some((kind, class)) => {
                    assert_eq!(kinds(&obs), vec![kind], "heart rate {hr}");
                    let a = &obs.anomalies[0];
                    assert_eq!(a.details, json!({ "class": class }), "heart rate {hr}");
                    assert_eq!(a.event_id, Some(derive_event_id(CUSTOMER, &at(0))));
                    assert_eq!(a.customer_id, CUSTOMER);
                    assert_eq!(a.heart_rate, Some(hr));
                    assert_eq!(a.recorded_at, at(0));
                    assert_eq!(obs.class.threshold_anomaly(), Some(kind));
                }
            }
        }
    }

    #[test]
    fn a_jump_of_the_spike_size_within_the_window_is_a_spike_either_way() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        let obs = feed(&cfg, &mut state, 0, &[70, 105, 70]);
        let up = find(&obs[1], Spike).expect("+35 is a spike");
        assert_eq!(up.details, json!({ "previous": 70, "delta": 35 }));
        let down = find(&obs[2], Spike).expect("-35 is a spike");
        assert_eq!(down.details, json!({ "previous": 105, "delta": -35 }));
    }

    #[test]
    fn the_spike_threshold_and_window_are_inclusive() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        let obs = feed(&cfg, &mut state, 0, &[70, 100]);
        assert!(find(&obs[1], Spike).is_some(), "+30 = spike_bpm is a spike");

        let mut state = CustomerState::default();
        observe(&cfg, &mut state, &reading(70, at(0)));
        let obs = observe(&cfg, &mut state, &reading(105, at(60)));
        assert!(find(&obs, Spike).is_some(), "exactly 60 s is within");
    }

    #[test]
    fn small_jumps_late_jumps_and_first_readings_are_not_spikes() {
        let cfg = DetectorConfig::default();

        let mut state = CustomerState::default();
        let obs = feed(&cfg, &mut state, 0, &[70, 99]);
        assert!(find(&obs[1], Spike).is_none(), "+29 is below spike_bpm");

        let mut state = CustomerState::default();
        observe(&cfg, &mut state, &reading(70, at(0)));
        let obs = observe(&cfg, &mut state, &reading(105, at(61)));
        assert!(find(&obs, Spike).is_none(), "61 s is outside the window");

        let mut state = CustomerState::default();
        observe(&cfg, &mut state, &reading(70, at(0)));
        let late = at(60) + TimeDelta::microseconds(1);
        let obs = observe(&cfg, &mut state, &reading(105, late));
        assert!(find(&obs, Spike).is_none(), "60 s and 1 µs is outside");

        let mut state = CustomerState::default();
        let obs = observe(&cfg, &mut state, &reading(200, at(0)));
        assert!(
            find(&obs, Spike).is_none(),
            "the first reading has no previous"
        );
    }

    #[test]
    fn a_previous_reading_recorded_later_is_not_compared() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        observe(&cfg, &mut state, &reading(70, at(30)));
        let obs = observe(&cfg, &mut state, &reading(140, at(20)));
        assert!(find(&obs, Spike).is_none());
        // The late reading is still the previous one for the next reading.
        let obs = observe(&cfg, &mut state, &reading(70, at(40)));
        let spike = find(&obs, Spike).expect("compared with the late reading");
        assert_eq!(spike.details, json!({ "previous": 140, "delta": -70 }));
        assert_eq!(state.max_recorded_at, Some(at(40)));
        assert_eq!(state.last_recorded_at, Some(at(40)));
    }

    #[test]
    fn a_reading_far_from_a_steady_baseline_is_a_deviation() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 0, &steady(40));
        let mean = state.baseline.mean;
        let obs = observe(&cfg, &mut state, &reading(110, at(400)));
        let d = find(&obs, Deviation).expect("110 after a steady 70 is a deviation");
        assert_eq!(d.heart_rate, Some(110));
        // The noise is below the floor, so the floor is the stddev used.
        let z = (110.0 - mean) / 3.0;
        assert_eq!(
            d.details,
            json!({ "baseline": round_to(mean, 1), "stddev": 3.0, "z": round_to(z, 2) })
        );
        assert_eq!(d.details["baseline"], json!(70.0));
        assert!(find(&obs, Tachycardia).is_some());
        assert!(find(&obs, Spike).is_some());
    }

    #[test]
    fn a_deviation_below_the_baseline_has_a_negative_z() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 0, &steady(40));
        let obs = observe(&cfg, &mut state, &reading(50, at(400)));
        let d = find(&obs, Deviation).expect("50 after a steady 70 is a deviation");
        assert!(d.details["z"].as_f64().unwrap() < -4.0);
    }

    #[test]
    fn no_deviation_during_warm_up_even_for_a_big_jump() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        let mut hrs = vec![70; 29];
        hrs.push(150); // the 30th reading: n = warmup_readings
        let obs = feed(&cfg, &mut state, 0, &hrs);
        assert!(obs
            .iter()
            .all(|o| o.anomalies.iter().all(|a| a.kind != Deviation)));
        assert!(find(&obs[29], Tachycardia).is_some());

        // The 31st reading is the first one judged.
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 0, &[70; 30]);
        let obs = observe(&cfg, &mut state, &reading(110, at(300)));
        assert!(find(&obs, Deviation).is_some());
    }

    #[test]
    fn a_steady_series_never_deviates() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        let obs = feed(&cfg, &mut state, 0, &steady(500));
        assert!(obs.iter().all(|o| o.anomalies.is_empty()));
        assert!(state.episodes.is_empty());
    }

    #[test]
    fn the_stddev_floor_spares_a_perfectly_constant_customer() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 0, &[70; 40]);
        assert_eq!((state.baseline.mean, state.baseline.variance), (70.0, 0.0));
        let base = state.clone();

        let obs = observe(&cfg, &mut state, &reading(73, at(400)));
        assert!(obs.anomalies.is_empty(), "|73-70| = 3 < 4 * 3");

        let mut state = base.clone();
        let obs = observe(&cfg, &mut state, &reading(81, at(400)));
        assert!(obs.anomalies.is_empty(), "11 < 12");

        let mut state = base;
        let obs = observe(&cfg, &mut state, &reading(82, at(400)));
        let d = find(&obs, Deviation).expect("12 = 4 * 3 is at least z_threshold");
        assert_eq!(
            d.details,
            json!({ "baseline": 70.0, "stddev": 3.0, "z": 4.0 })
        );
    }

    #[test]
    fn the_baseline_is_the_exact_mean_and_variance_at_first() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 0, &[60, 70, 80, 90]);
        assert_eq!(state.baseline.count, 4);
        assert!((state.baseline.mean - 75.0).abs() < 1e-12);
        assert!((state.baseline.variance - 125.0).abs() < 1e-9);
    }

    #[test]
    fn one_outlier_widens_the_baseline_only_a_little() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 0, &[70; 40]);
        observe(&cfg, &mut state, &reading(150, at(400)));
        // Folded in as 70 + 4 * 3 = 82, not 150.
        assert!((state.baseline.mean - 70.6).abs() < 1e-9);
        assert!(state.baseline.stddev() < 3.0);
    }

    #[test]
    fn a_lasting_shift_is_absorbed_by_the_baseline() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 0, &steady(40));
        let obs = feed(&cfg, &mut state, 400, &[95; 60]);
        let deviations = obs.iter().filter(|o| find(o, Deviation).is_some()).count();
        assert!(
            (1..=10).contains(&deviations),
            "{deviations} deviations before the new level became the baseline"
        );
        assert!(
            obs[50..].iter().all(|o| o.anomalies.is_empty()),
            "the new level is normal now"
        );
        assert!(state.episodes.is_empty(), "the deviation episode resolved");
    }

    #[test]
    fn an_episode_opens_grows_and_resolves_after_three_quiet_readings() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        let obs = feed(&cfg, &mut state, 0, &[95, 102, 120, 115, 98, 90, 85, 105]);
        let row = |customer: &str, opened, last, resolved, readings, peak| AlertRow {
            customer_id: customer.to_owned(),
            kind: Tachycardia,
            opened_at: opened,
            last_seen_at: last,
            resolved_at: resolved,
            readings,
            peak_heart_rate: Some(peak),
        };
        assert!(obs[0].alerts.is_empty());
        assert_eq!(
            obs[1].alerts,
            vec![row(CUSTOMER, at(10), at(10), None, 1, 102)]
        );
        assert_eq!(
            obs[2].alerts,
            vec![row(CUSTOMER, at(10), at(20), None, 2, 120)]
        );
        assert_eq!(
            obs[3].alerts,
            vec![row(CUSTOMER, at(10), at(30), None, 3, 120)]
        );
        assert!(obs[4].alerts.is_empty(), "one quiet reading changes no row");
        assert!(obs[5].alerts.is_empty(), "two quiet readings change no row");
        assert_eq!(
            obs[6].alerts,
            vec![row(CUSTOMER, at(10), at(30), Some(at(60)), 3, 120)]
        );
        // Forgotten once resolved; the next one is a new episode.
        assert_eq!(
            obs[7].alerts,
            vec![row(CUSTOMER, at(70), at(70), None, 1, 105)]
        );
        assert_eq!(state.episodes.len(), 1);
    }

    #[test]
    fn a_reading_with_the_kind_restarts_the_quiet_streak() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        let obs = feed(&cfg, &mut state, 0, &[102, 90, 90, 103, 90, 90, 90]);
        let rows: Vec<&AlertRow> = obs.iter().flat_map(|o| &o.alerts).collect();
        assert!(rows.iter().all(|r| r.opened_at == at(0)));
        assert_eq!(rows.len(), 3, "opened, updated, resolved");
        assert_eq!(rows[2].resolved_at, Some(at(60)));
        assert_eq!((rows[2].readings, rows[2].peak_heart_rate), (2, Some(103)));
    }

    #[test]
    fn flapping_at_a_band_edge_keeps_one_bradycardia_episode() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        let hrs: Vec<i16> = (0..20).map(|i| if i % 2 == 0 { 59 } else { 61 }).collect();
        let obs = feed(&cfg, &mut state, 0, &hrs);
        let rows: Vec<&AlertRow> = obs.iter().flat_map(|o| &o.alerts).collect();
        assert!(rows.iter().all(|r| r.kind == Bradycardia));
        assert!(rows.iter().all(|r| r.opened_at == at(0)));
        assert!(rows.iter().all(|r| r.resolved_at.is_none()));
        let last = rows.last().unwrap();
        assert_eq!((last.readings, last.peak_heart_rate), (10, Some(59)));
        assert_eq!(last.last_seen_at, at(180));
    }

    #[test]
    fn bradycardia_and_critical_low_are_separate_episodes() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        let obs = feed(&cfg, &mut state, 0, &[45, 35, 42, 38]);
        assert_eq!(kinds(&obs[1]), vec![CriticalLow], "35 is critical_low only");
        let opened = |o: &Observation| -> Vec<(AnomalyKind, DateTime<Utc>)> {
            o.alerts.iter().map(|r| (r.kind, r.opened_at)).collect()
        };
        assert_eq!(opened(&obs[0]), vec![(Bradycardia, at(0))]);
        assert_eq!(opened(&obs[1]), vec![(CriticalLow, at(10))]);
        assert_eq!(opened(&obs[2]), vec![(Bradycardia, at(0))]);
        assert_eq!(opened(&obs[3]), vec![(CriticalLow, at(10))]);
        assert_eq!(state.episodes.len(), 2);
        let peak = |k| state.episode(k).and_then(|e| e.peak_heart_rate);
        assert_eq!(peak(Bradycardia), Some(42), "the minimum");
        assert_eq!(peak(CriticalLow), Some(35), "the minimum");
    }

    #[test]
    fn the_spike_peak_is_the_largest_jump_and_the_high_peak_the_maximum() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        // Jumps: +40, -35, +50 (75 to 125, the largest), -45.
        feed(&cfg, &mut state, 0, &[70, 110, 75, 125, 80]);
        let spike = state.episode(Spike).unwrap();
        assert_eq!((spike.readings, spike.peak_heart_rate), (4, Some(125)));
        let high = state.episode(Tachycardia).unwrap();
        assert_eq!(high.peak_heart_rate, Some(125));
    }

    #[test]
    fn silence_is_reported_once_and_the_next_reading_ends_it() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        assert!(silence(&mut state, CUSTOMER).is_none(), "no reading yet");

        feed(&cfg, &mut state, 0, &[70, 72]);
        let (anomaly, row) = silence(&mut state, CUSTOMER).expect("a silence");
        assert_eq!(
            anomaly,
            Anomaly {
                event_id: None,
                customer_id: CUSTOMER.to_owned(),
                kind: Silent,
                heart_rate: None,
                recorded_at: at(10),
                details: json!({ "last_heart_rate": 72 }),
            }
        );
        let open = AlertRow {
            customer_id: CUSTOMER.to_owned(),
            kind: Silent,
            opened_at: at(10),
            last_seen_at: at(10),
            resolved_at: None,
            readings: 0,
            peak_heart_rate: None,
        };
        assert_eq!(row, open);
        assert!(state.is_silent());
        assert!(silence(&mut state, CUSTOMER).is_none(), "once per silence");

        let obs = observe(&cfg, &mut state, &reading(71, at(500)));
        assert!(obs.anomalies.is_empty());
        assert_eq!(
            obs.alerts,
            vec![AlertRow {
                resolved_at: Some(at(500)),
                ..open
            }]
        );
        assert!(!state.is_silent());
        let (again, _) = silence(&mut state, CUSTOMER).expect("a new silence");
        assert_eq!(again.recorded_at, at(500));
    }

    #[test]
    fn a_late_reading_never_resolves_before_last_seen() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 100, &[70]);
        silence(&mut state, CUSTOMER);
        let obs = observe(&cfg, &mut state, &reading(70, at(50)));
        assert_eq!(obs.alerts[0].resolved_at, Some(at(100)));
    }

    #[test]
    fn a_silence_does_not_disturb_other_episodes() {
        let cfg = DetectorConfig::default();
        let mut state = CustomerState::default();
        feed(&cfg, &mut state, 0, &[110]);
        silence(&mut state, CUSTOMER);
        let obs = observe(&cfg, &mut state, &reading(112, at(10)));
        let rows: Vec<(AnomalyKind, Option<DateTime<Utc>>)> =
            obs.alerts.iter().map(|r| (r.kind, r.resolved_at)).collect();
        assert_eq!(rows, vec![(Tachycardia, None), (Silent, Some(at(10)))]);
        assert_eq!(state.episode(Tachycardia).unwrap().readings, 2);
    }

    /// A state with a bit of everything: baseline floats, open episodes, a silence.
    fn busy_state(cfg: &DetectorConfig) -> CustomerState {
        let mut state = CustomerState::default();
        let mut hrs = steady(37);
        hrs.extend([118, 57, 59, 33]);
        feed(cfg, &mut state, 0, &hrs);
        silence(&mut state, CUSTOMER);
        state
    }

    #[test]
    fn the_state_round_trips_through_json_exactly() {
        let cfg = DetectorConfig::default();
        let mut state = busy_state(&cfg);
        assert!(state.episodes.len() >= 3);
        // A value serde_json's default number parser would get one ulp wrong.
        state.baseline.mean = 1040.0000010400001;

        let text = serde_json::to_string(&state).unwrap();
        let back: CustomerState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.baseline.mean.to_bits(), state.baseline.mean.to_bits());
        assert_eq!(serde_json::to_string(&back).unwrap(), text);

        // The path of a jsonb column read into a `serde_json::Value`.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let back: CustomerState = serde_json::from_value(value).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn an_older_or_hand_written_state_still_loads() {
        let state: CustomerState = serde_json::from_str(
            r#"{"readings": 3, "baseline": {"count": 3, "mean": 70.5, "variance": 2}}"#,
        )
        .unwrap();
        assert_eq!(state.readings, 3);
        assert_eq!((state.baseline.mean, state.baseline.variance), (70.5, 2.0));
        assert!(state.episodes.is_empty());
    }

    #[test]
    fn a_corrupted_baseline_starts_afresh_instead_of_poisoning_judgements() {
        let cfg = DetectorConfig::default();
        let mut state = busy_state(&cfg);
        state.baseline.mean = f64::NAN;
        let text = serde_json::to_string(&state).unwrap();
        let mut state: CustomerState = serde_json::from_str(&text).unwrap();
        assert!(state.baseline.mean.is_nan());
        observe(&cfg, &mut state, &reading(70, at(1000)));
        assert_eq!((state.baseline.count, state.baseline.mean), (1, 70.0));
    }

    #[test]
    fn the_same_readings_from_the_same_state_give_the_same_results() {
        let cfg = DetectorConfig::default();
        let state = busy_state(&cfg);
        let restored: CustomerState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        let mut hrs = steady(20);
        hrs.extend([130, 40, 35, 70, 200, 70, 70, 70, 70]);
        let (mut a, mut b) = (state, restored);
        let first = feed(&cfg, &mut a, 1000, &hrs);
        let second = feed(&cfg, &mut b, 1000, &hrs);
        assert_eq!(first, second);
        assert_eq!(a, b);
        assert!(first.iter().any(|o| !o.alerts.is_empty()));
    }

    proptest! {
        #[test]
        fn random_sequences_never_panic_and_keep_one_open_episode_per_kind(
            steps in prop::collection::vec(
                // Mostly a steady customer with jumps, so that baselines form and deviations
                // happen; every value of 0..=300 can come.
                (
                    prop_oneof![3 => 65i16..=75, 1 => 0i16..=300],
                    -120_000i64..=120_000,
                    prop::bool::weighted(0.1),
                ),
                0..200,
            ),
            warmup in 0u64..=5,
            resolve in 1u32..=4,
            spike_bpm in 1i64..=60,
        ) {
            let cfg = DetectorConfig {
                warmup_readings: warmup,
                resolve_after_readings: resolve,
                spike_bpm,
                ..DetectorConfig::default()
            };
            let mut state = CustomerState::default();
            let mut open: HashMap<AnomalyKind, DateTime<Utc>> = HashMap::new();
            let mut t = start();
            let mut check = |rows: &[AlertRow], state: &CustomerState| {
                for r in rows {
                    prop_assert!(r.opened_at <= r.last_seen_at);
                    match r.resolved_at {
                        None => {
                            if let Some(opened) = open.insert(r.kind, r.opened_at) {
                                prop_assert_eq!(opened, r.opened_at, "two open {:?}", r.kind);
                            }
                        }
                        Some(resolved) => {
                            prop_assert!(r.last_seen_at <= resolved);
                            prop_assert_eq!(open.remove(&r.kind), Some(r.opened_at));
                        }
                    }
                }
                let mut kinds: Vec<AnomalyKind> = state.episodes.iter().map(|e| e.kind).collect();
                prop_assert_eq!(kinds.len(), open.len());
                kinds.dedup();
                prop_assert_eq!(kinds.len(), open.len());
                for e in &state.episodes {
                    prop_assert_eq!(open.get(&e.kind), Some(&e.opened_at));
                }
                Ok(())
            };
            for (hr, step_ms, quiet) in steps {
                t += TimeDelta::milliseconds(step_ms);
                let obs = observe(&cfg, &mut state, &reading(hr, t));
                for a in &obs.anomalies {
                    prop_assert_eq!(a.heart_rate, Some(hr));
                    prop_assert_eq!(a.recorded_at, t);
                }
                check(&obs.alerts, &state)?;
                if quiet {
                    let rows: Vec<AlertRow> =
                        silence(&mut state, CUSTOMER).into_iter().map(|(_, r)| r).collect();
                    prop_assert_eq!(rows.len(), 1);
                    check(&rows, &state)?;
                    prop_assert!(silence(&mut state, CUSTOMER).is_none());
                }
            }
            let text = serde_json::to_string(&state).unwrap();
            let back: CustomerState = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, state);
        }
    }
}
