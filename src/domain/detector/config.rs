//! The detector's settings, as the detector needs them. The configuration builds them from
//! `detector.*` and `alerts.sustain_ms.*` (`src/config/domain.rs`); the domain knows nothing of
//! the configuration.

use chrono::{DateTime, Utc};

use crate::domain::classification::{AnomalyKind, Bands};
use crate::domain::rules::Thresholds;

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
    /// How long each kind's episode must last before it activates (`alerts.sustain_ms.*`).
    pub sustain: Sustain,
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
            sustain: Sustain::DEFAULT,
        }
    }
}

/// Per kind, in milliseconds of reading time, how long after `opened_at` a counting reading must
/// come for the episode to activate (SPEC section 5); 0 = at the opening reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sustain {
    pub critical_low: i64,
    pub critical_high: i64,
    pub bradycardia: i64,
    pub tachycardia: i64,
    pub spike: i64,
    pub deviation: i64,
    pub silent: i64,
}

impl Sustain {
    /// The defaults of SPEC section 3: half a minute for the critical kinds, ten minutes for
    /// bradycardia and tachycardia (as a watch's high-rate alert), two for deviation, none for a
    /// spike or a silence (each is one event, not a state that lasts).
    pub const DEFAULT: Sustain = Sustain {
        critical_low: 30_000,
        critical_high: 30_000,
        bradycardia: 600_000,
        tachycardia: 600_000,
        spike: 0,
        deviation: 120_000,
        silent: 0,
    };

    /// The sustain of `kind`, ms.
    pub fn of(&self, kind: AnomalyKind) -> i64 {
        match kind {
            AnomalyKind::CriticalLow => self.critical_low,
            AnomalyKind::CriticalHigh => self.critical_high,
            AnomalyKind::Bradycardia => self.bradycardia,
            AnomalyKind::Tachycardia => self.tachycardia,
            AnomalyKind::Spike => self.spike,
            AnomalyKind::Deviation => self.deviation,
            AnomalyKind::Silent => self.silent,
        }
    }
}

impl Default for Sustain {
    fn default() -> Self {
        Sustain::DEFAULT
    }
}

/// What a customer's row of `alert_rules` means to the detector: its own thresholds (unset ones
/// are the fleet bands) and the end of its mute. [`observe`](super::observe) takes `None` for a
/// customer without a row: the fleet bands, not muted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CustomerRules {
    pub thresholds: Thresholds,
    /// Muted while a reading's `recorded_at` is before this.
    pub muted_until: Option<DateTime<Utc>>,
}

impl CustomerRules {
    /// Whether the customer is muted for a reading recorded at `at`.
    pub fn is_muted(&self, at: DateTime<Utc>) -> bool {
        self.muted_until.is_some_and(|until| until > at)
    }
}
