//! A customer's resting baseline of heart rate, against which `deviation` is judged (SPEC
//! section 5 leaves how it moves to us; the module doc of `detector` states the rule, this file
//! holds it and the reasons for its constants).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::exact_f64;

/// Time constant of the baseline's memory, in reading time. A memory in time, not in readings,
/// so the baseline means the same at 1 s and at 60 s sampling (a memory of 20 readings, as
/// before, was 20 seconds at 1 s sampling: a resting-rate shift of half an hour was absorbed
/// within a minute and never lasted its two-minute sustain). Half an hour follows the slow
/// circadian swing of the resting rate while awake, yet stays long against the few-minute wander
/// of the rate around its level, which is what the variance measures.
pub const BASELINE_TAU_S: f64 = 1_800.0;

/// The most one reading may weigh in the baseline, however long since the previous judged
/// reading (a night asleep, an hour of exercise, a device off for a day): a first reading after
/// a gap moves the baseline a fifth of the way, so one odd reading cannot replace it.
pub const MAX_WEIGHT: f64 = 0.2;

/// How long a customer's judged readings may deviate without a break before the baseline takes
/// their level as the new normal, seconds of reading time. Longer than the longest resting-rate
/// episode worth an alert (an hour, docs/GENERATOR.md), so such an episode is found for its
/// whole length; short enough that a lasting change (a new medication, a new training level)
/// pages once and is then the customer's normal, instead of deviating for ever.
pub const ABSORB_AFTER_S: i64 = 2 * 3_600;

/// Standard deviation from the median absolute deviation, for normally distributed readings.
const MAD_TO_SD: f64 = 1.4826;

/// A customer's baseline (see the module doc of `detector` for the rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Baseline {
    /// Judged readings seen so far (the warm-up counts them; a flagged one counts too).
    pub count: u64,
    /// Mean heart rate, bpm.
    #[serde(with = "exact_f64")]
    pub mean: f64,
    /// Variance, bpm².
    #[serde(with = "exact_f64")]
    pub variance: f64,
    /// The warm-up's readings, until the warm-up ends; then empty (and not saved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warmup: Vec<i16>,
    /// The time of the newest judged reading: the next one weighs by the time since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged_at: Option<DateTime<Utc>>,
    /// Since when the judged readings have deviated without a break: the absorption clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviating_since: Option<DateTime<Utc>>,
}

/// A judged reading that lies at least `z_threshold` floored standard deviations from the
/// baseline as it was before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    pub mean: f64,
    /// The floored standard deviation used.
    pub stddev: f64,
    pub z: f64,
}

impl Baseline {
    /// The standard deviation, bpm; 0 for an empty baseline.
    pub fn stddev(&self) -> f64 {
        // `max` also maps a NaN to 0, so the result is never NaN for a sane baseline.
        self.variance.max(0.0).sqrt()
    }

    /// Whether the numbers can be used. Only a hand-edited or corrupted saved state can fail this;
    /// such a baseline is started afresh rather than poisoning every later judgement with NaN.
    pub(super) fn is_sane(&self) -> bool {
        self.mean.is_finite() && self.variance.is_finite() && self.variance >= 0.0
    }

    /// Judges the judged reading `hr` recorded at `at` (the customer's `count + 1`-th) and folds
    /// it in: a [`Deviation`] when it is past the warm-up of `warmup` readings and lies at least
    /// `z_threshold` times the stddev (floored at `min_stddev`) from the mean.
    pub(super) fn judge(
        &mut self,
        hr: i16,
        at: DateTime<Utc>,
        warmup: u64,
        z_threshold: f64,
        min_stddev: f64,
    ) -> Option<Deviation> {
        let x = f64::from(hr);
        let since = self.judged_at.map_or(0.0, |prev| {
            (at - prev).num_milliseconds().max(0) as f64 / 1_000.0
        });
        self.judged_at = Some(self.judged_at.map_or(at, |prev| prev.max(at)));
        if self.count < warmup.max(1) {
            self.warm_up(x, hr, warmup);
            return None;
        }
        self.count = self.count.saturating_add(1);
        // `max` ignores a NaN floor, so a bad config cannot make `sd` NaN.
        let sd = self.stddev().max(min_stddev);
        let z = (x - self.mean) / sd;
        if z.abs() < z_threshold {
            self.deviating_since = None;
            let w = (1.0 - (-since / BASELINE_TAU_S).exp()).min(MAX_WEIGHT);
            self.fold(x, w);
            return None;
        }
        let deviation = Deviation {
            mean: self.mean,
            stddev: sd,
            z,
        };
        // A flagged reading does not move the baseline (an outlier, or a real episode, would
        // otherwise pull it toward itself and hide the rest of the episode), unless the
        // deviation has lasted [`ABSORB_AFTER_S`]: then its level is the new normal.
        let since_start = *self.deviating_since.get_or_insert(at);
        if (at - since_start).num_seconds() >= ABSORB_AFTER_S {
            self.mean = x;
            self.deviating_since = None;
        }
        Some(deviation)
    }

    /// One more warm-up reading: the exact running mean and variance (Welford), and at the last
    /// one a robust start, the median and the MAD-scaled spread of the warm-up, so that one odd
    /// reading among them does not set a wrong level or a wide spread for the next half hour.
    fn warm_up(&mut self, x: f64, hr: i16, warmup: u64) {
        self.count = self.count.saturating_add(1);
        self.fold(x, 1.0 / self.count as f64);
        if warmup < 3 {
            return;
        }
        self.warmup.push(hr);
        if self.count >= warmup {
            let mut values: Vec<f64> = std::mem::take(&mut self.warmup)
                .into_iter()
                .map(f64::from)
                .collect();
            let mid = median(&mut values);
            let mut spread: Vec<f64> = values.iter().map(|v| (v - mid).abs()).collect();
            let mad = median(&mut spread);
            self.mean = mid;
            self.variance = (MAD_TO_SD * mad).powi(2);
        }
    }

    /// Moves the baseline toward `x` with weight `w`: w = 1/k gives Welford's exact mean and
    /// population variance of k readings, a constant w the exponentially weighted ones.
    fn fold(&mut self, x: f64, w: f64) {
        let d = x - self.mean;
        self.mean += w * d;
        self.variance = (1.0 - w) * (self.variance + w * d * d);
    }
}

/// The median of `values` (sorted in place); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
