//! The anomaly detector: per-customer anomalies and alert episodes (SPEC section 5, `anomalies`
//! and `alerts`), as pure functions over a serializable [`CustomerState`].
//!
//! Owns every detection rule that needs memory of a customer: the threshold kinds of the
//! reading's class, `spike` against the previous reading, `deviation` from a moving baseline,
//! `silent`, and the alert episodes that page a person. Accepts one [`Reading`] at a time in
//! partition order ([`observe`]) or a silence reported by the caller's timer ([`silence`]), each
//! with the customer's effective [`CustomerRules`] (its `alert_rules` row; `None`: the fleet bands,
//! not muted); emits
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
//! - `deviation`: only for a reading whose activity is `rest` or unknown (the others neither are
//!   judged nor move the baseline): the customer's n-th such reading, n >
//!   `detector.warmup_readings`, with
//!   |hr - mean| >= `detector.z_threshold` * max(stddev, `detector.min_stddev_bpm`), mean and
//!   stddev being the baseline as it was before this reading; details `{"baseline"}` (the mean,
//!   1 decimal), `{"stddev"}` (the floored stddev used, 2 decimals), `{"z"}` ((hr - mean) / that
//!   stddev, signed, 2 decimals).
//! - `silent`: reported by [`silence`]; `recorded_at` is the customer's last reading's time.
//!
//! # Baseline
//! Only judged readings (at rest or of unknown activity) make the baseline ([`Baseline`], in
//! `baseline.rs` with the reasons for its constants). With x the reading and w its weight:
//!
//! ```text
//! d = x - mean      mean <- mean + w*d      variance <- (1 - w) * (variance + w*d^2)
//! ```
//!
//! - **Warm-up.** The first `detector.warmup_readings` judged readings are folded in with
//!   w = 1/k (Welford's exact mean and population variance); at the last of them the baseline
//!   starts afresh from their median and (1.4826 × their median absolute deviation)²: a robust
//!   start, so one odd reading in the warm-up sets neither a wrong level nor a wide spread.
//! - **A memory in time.** After the warm-up, w = min(1 - exp(-dt / [`BASELINE_TAU_S`]),
//!   [`MAX_WEIGHT`]), dt being the reading time since the previous judged reading: half an hour
//!   of memory whatever the sampling interval, and no single reading after a long gap weighs
//!   more than a fifth.
//! - **Flagged readings do not move it.** A reading judged a deviation is left out, so an
//!   episode cannot pull the baseline toward itself and hide its own rest.
//! - **A lasting change is absorbed.** When the judged readings have deviated without a break
//!   for [`ABSORB_AFTER_S`] (two hours) of reading time, the baseline's mean becomes the
//!   current reading: the change has paged once and is the customer's normal from then on.
//!
//! The first reading gives mean = x, variance = 0 whatever the state held before.
//!
//! The findings (the anomalies) are those of the fleet bands, whatever the customer's rules or
//! activity; the episodes follow the readings that *count*, below.
//!
//! # Alert episodes
//! A reading counts toward a kind when it raises that kind by the customer's effective bands (its
//! own thresholds, the fleet bands for the unset ones), except that an `active` or `exercise`
//! reading does not count toward `tachycardia` nor a `sleep` one toward `bradycardia`;
//! `critical_low`, `critical_high`, `spike` (and `deviation`, already judged at rest only) count
//! as raised; `silent` always counts.
//!
//! At most one open episode per (customer, kind). The first counting reading opens one
//! (`opened_at` = `last_seen_at` = its time, `readings` = 1, `peak_heart_rate` = its hr); each
//! further counting reading adds to it (`readings` + 1, `last_seen_at` = the newest time
//! seen, `peak_heart_rate` = the peak below). An episode resolves after
//! `detector.resolve_after_readings` consecutive readings that do not count toward it,
//! `resolved_at` being the time of the reading that completes the streak; a counting reading in
//! between restarts the streak, so a customer flapping around a band edge keeps one episode open
//! instead of opening many. A resolved episode is returned once, then forgotten. `silent` resolves at the
//! next reading. `resolved_at` is never before `last_seen_at`: a late, out-of-order reading
//! resolves an episode at its `last_seen_at`, so every row has opened <= last seen <= resolved.
//!
//! The peak is the reading farthest from normal in the kind's own measure: the lowest heart rate
//! for `critical_low` and `bradycardia`, the highest for `tachycardia` and `critical_high`, the
//! one with the largest |delta| for `spike`, the one farthest from the baseline mean (as it was
//! when that reading was judged) for `deviation`; null for `silent`. On a tie the earlier reading
//! stays. A `silent` episode has `readings` = 0: no reading raised it.
//!
//! # Activation
//! An episode activates (pages) at the first counting reading, the opening one included, whose
//! `recorded_at` >= `opened_at` + the kind's sustain (`alerts.sustain_ms.<kind>`, [`Sustain`])
//! while the customer is not muted (muted: `muted_until` > that reading's `recorded_at`);
//! `activated_at` = that reading's time, and it stays. A counting reading past the sustain while
//! muted marks the episode as having lasted; if the mute ends while it is open, its next counting
//! reading activates it. An episode that resolves unactivated says why in `suppressed`: `muted`
//! when it lasted, else `short`. A silence is judged at its opening, with the last reading's
//! time. Only reading times decide, never the clock, so a replay activates at the same reading.
//!
//! # Determinism
//! No clock, no randomness, no hash-ordered collections: the same readings in the same order from
//! the same state give the same anomalies, alert rows and state, so a replay reproduces the rows
//! already stored instead of changing them. The state round-trips through JSON exactly (floats
//! are stored as their shortest round-trip decimal text, see [`exact_f64`]), so a restart resumes
//! exactly where the saved state left off.
//!
//! # Parts
//! - `config.rs`: [`DetectorConfig`] with its [`Sustain`], the settings the rules read, and a
//!   customer's [`CustomerRules`].
//! - `baseline.rs`: the [`Baseline`] and its constants.
//! - `state.rs`: [`CustomerState`] with its open [`Episode`]s, and what a reading gives
//!   ([`Observation`], [`AlertRow`]).
//! - `observe.rs`: the rules: [`observe`] and [`silence`].
//! - `exact_f64.rs`: [`exact_f64`], the serde of floats that round-trip exactly.
//! - `tests/`: the state and determinism tests (`mod.rs`), the kinds (`kinds.rs`), the
//!   episodes (`episodes.rs`) and their activation (`activation.rs`).
//!
//! [`Reading`]: crate::domain::reading::Reading
//! [`Anomaly`]: crate::domain::record::Anomaly

mod baseline;
mod config;
pub mod exact_f64;
mod observe;
mod state;

pub use baseline::{Baseline, Deviation, ABSORB_AFTER_S, BASELINE_TAU_S, MAX_WEIGHT};
pub use config::{CustomerRules, DetectorConfig, Sustain};
pub use observe::{observe, silence};
pub use state::{
    episode_events, AlertRow, CustomerState, Episode, EpisodeEvent, EventKind, Observation,
    Positions, Suppressed,
};

#[cfg(test)]
mod tests;
