//! The rules: [`observe`] judges one reading and updates the customer's state and episodes;
//! [`silence`] reports a silence.

use chrono::{DateTime, TimeDelta, Utc};

use super::baseline::Baseline;
use super::config::{CustomerRules, DetectorConfig};
use super::state::{AlertRow, CustomerState, Episode, Observation};
use crate::domain::classification::{classify, AnomalyKind};
use crate::domain::reading::{Activity, Reading};
use crate::domain::record::{Anomaly, Details};

/// A kind raised by the reading being observed.
struct Raised {
    kind: AnomalyKind,
    severity: f64,
    details: Details,
}

/// Observes the next reading of `reading.customer_id` in partition order under the customer's
/// effective `rules` (`None`: the fleet bands, not muted): returns its class, the anomalies it
/// raises, and every alert row that changed, and updates `state`.
pub fn observe(
    cfg: &DetectorConfig,
    state: &mut CustomerState,
    reading: &Reading,
    rules: Option<&CustomerRules>,
) -> Observation {
    let hr = reading.heart_rate;
    let at = reading.recorded_at;
    let class = classify(hr, &cfg.bands);
    let mut raised = Vec::new();

    if let Some(kind) = class.threshold_anomaly() {
        raised.push(Raised {
            kind,
            severity: threshold_severity(kind, hr),
            details: Details::Class(class),
        });
    }

    if let Some(spike) = spike(cfg, state, hr, at) {
        raised.push(spike);
    }

    if !state.baseline.is_sane() {
        state.baseline = Baseline::default();
    }
    // Only a reading at rest (or of unknown activity) is judged for deviation or moves the
    // baseline: sleep and exercise are other levels of the same heart.
    if matches!(reading.activity, None | Some(Activity::Rest)) {
        let judged = state.baseline.judge(
            hr,
            at,
            cfg.warmup_readings,
            cfg.z_threshold,
            cfg.min_stddev_bpm,
        );
        if let Some(d) = judged {
            raised.push(Raised {
                kind: AnomalyKind::Deviation,
                severity: (f64::from(hr) - d.mean).abs(),
                details: Details::Deviation {
                    baseline: round_to(d.mean, 1),
                    stddev: round_to(d.stddev, 2),
                    z: round_to(d.z, 2),
                },
            });
        }
    }

    state.readings = state.readings.saturating_add(1);
    state.last_heart_rate = Some(hr);
    state.last_recorded_at = Some(at);
    state.max_recorded_at = Some(state.max_recorded_at.map_or(at, |m| m.max(at)));

    let counting = counting(cfg, reading, rules, &raised);
    let muted = rules.is_some_and(|r| r.is_muted(at));
    let alerts = update_episodes(cfg, state, &reading.customer_id, hr, at, &counting, muted);
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

/// How far a reading of `hr` raising threshold `kind` is from normal: larger is farther.
fn threshold_severity(kind: AnomalyKind, hr: i16) -> f64 {
    match kind {
        AnomalyKind::CriticalLow | AnomalyKind::Bradycardia => -f64::from(hr),
        _ => f64::from(hr),
    }
}

/// The kinds the reading counts toward, with its severity in each (SPEC section 5): the
/// threshold kind of its class under the customer's effective bands, unless it is tachycardia
/// while active or exercising or bradycardia while asleep; its spike and deviation as raised.
fn counting(
    cfg: &DetectorConfig,
    reading: &Reading,
    rules: Option<&CustomerRules>,
    raised: &[Raised],
) -> Vec<(AnomalyKind, f64)> {
    let hr = reading.heart_rate;
    let bands = rules.map_or(cfg.bands, |r| r.thresholds.effective(&cfg.bands));
    let threshold = classify(hr, &bands)
        .threshold_anomaly()
        .filter(|kind| {
            !matches!(
                (kind, reading.activity),
                (
                    AnomalyKind::Tachycardia,
                    Some(Activity::Active | Activity::Exercise)
                ) | (AnomalyKind::Bradycardia, Some(Activity::Sleep))
            )
        })
        .map(|kind| (kind, threshold_severity(kind, hr)));
    threshold
        .into_iter()
        .chain(
            raised
                .iter()
                .filter(|r| matches!(r.kind, AnomalyKind::Spike | AnomalyKind::Deviation))
                .map(|r| (r.kind, r.severity)),
        )
        .collect()
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
        details: Details::Spike { previous, delta },
    })
}

/// Applies one reading, counting toward the kinds of `counting`, to the open episodes; returns
/// the rows that changed.
fn update_episodes(
    cfg: &DetectorConfig,
    state: &mut CustomerState,
    customer_id: &str,
    hr: i16,
    at: DateTime<Utc>,
    counting: &[(AnomalyKind, f64)],
    muted: bool,
) -> Vec<AlertRow> {
    // A config built by hand could say 0; resolving on the very reading that misses the kind is
    // the closest meaning.
    let resolve_after = cfg.resolve_after_readings.max(1);
    let mut alerts = Vec::new();
    let mut open = Vec::with_capacity(state.episodes.len() + counting.len());
    for mut episode in state.episodes.drain(..) {
        if episode.kind == AnomalyKind::Silent {
            // Any reading ends a silence.
            alerts.push(episode.resolved_row(customer_id, at));
        } else if let Some((_, severity)) = counting.iter().find(|(k, _)| *k == episode.kind) {
            episode.add(at, hr, *severity);
            episode.consider(at, cfg.sustain.of(episode.kind), muted);
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
    for &(kind, severity) in counting {
        if !open.iter().any(|e| e.kind == kind) {
            let mut episode = Episode::open(kind, at, Some(hr), severity);
            episode.consider(at, cfg.sustain.of(kind), muted);
            alerts.push(episode.row(customer_id, None));
            open.push(episode);
        }
    }
    open.sort_by_key(|e| e.kind.index());
    alerts.sort_by_key(|a| a.kind.index());
    state.episodes = open;
    alerts
}

/// Called when the customer has been quiet for `detector.silence_after_ms` while its partition is
/// caught up (the caller's clock decides that). Returns the `silent` anomaly and its opened alert
/// row, or `None` when the customer is already in a silence (one row per silence) or has no
/// reading yet. The episode activates at once (with the default sustain of 0) unless the
/// customer is muted at the last reading's time.
pub fn silence(
    cfg: &DetectorConfig,
    state: &mut CustomerState,
    customer_id: &str,
    rules: Option<&CustomerRules>,
) -> Option<(Anomaly, AlertRow)> {
    let last_at = state.last_recorded_at?;
    if state.is_silent() {
        return None;
    }
    let mut episode = Episode::open(AnomalyKind::Silent, last_at, None, 0.0);
    let muted = rules.is_some_and(|r| r.is_muted(last_at));
    episode.consider(last_at, cfg.sustain.of(AnomalyKind::Silent), muted);
    let row = episode.row(customer_id, None);
    state.episodes.push(episode);
    state.episodes.sort_by_key(|e| e.kind.index());
    let anomaly = Anomaly {
        event_id: None,
        customer_id: customer_id.to_owned(),
        kind: AnomalyKind::Silent,
        heart_rate: None,
        recorded_at: last_at,
        details: Details::Silent {
            last_heart_rate: state.last_heart_rate,
        },
    };
    Some((anomaly, row))
}

/// `x` rounded to `decimals` places, for details meant to be read by people.
pub(super) fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}
