//! The detector's settings, converted once from `detector.*`.

use crate::config::{BandSettings, DetectorSettings};

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
