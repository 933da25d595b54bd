//! The detector's settings, as the detector needs them. The configuration builds them from
//! `detector.*` (`src/config/domain.rs`); the domain knows nothing of the configuration.

use crate::domain::classification::Bands;

/// The detector's settings.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    pub bands: Bands,
    pub spike_bpm: i64,
    pub spike_window_ms: i64,
    pub warmup_readings: u64,
    pub z_threshold: f64,
    pub min_stddev_bpm: f64,
    pub resolve_after_readings: u32,
}

impl Default for DetectorConfig {
    /// The defaults of `config/default.toml` (SPEC section 3), for tests and tools; a test of the
    /// configuration holds them equal.
    fn default() -> Self {
        DetectorConfig {
            bands: Bands::DEFAULT,
            spike_bpm: 30,
            spike_window_ms: 60_000,
            warmup_readings: 30,
            z_threshold: 4.0,
            min_stddev_bpm: 3.0,
            resolve_after_readings: 3,
        }
    }
}
