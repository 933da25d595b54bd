//! The settings tree turned into the domain's own types, each in this one place: the domain
//! knows nothing of the configuration (`config -> domain`, never back).
//!
//! Values the checks would have refused are mapped to the nearest usable one (a non-positive or
//! non-finite float to the domain's default), so hand-built settings cannot make the domain
//! misbehave either.

use crate::domain::classification::Bands;
use crate::domain::detector::{DetectorConfig, Sustain};
use crate::domain::simulator::{InjectionRates, SimulatorConfig};
use crate::domain::validation::ValidationRules;

use super::sections::{
    BandSettings, DetectorSettings, InjectSettings, Settings, SustainSettings, ValidationSettings,
};

impl From<&BandSettings> for Bands {
    fn from(b: &BandSettings) -> Self {
        Bands {
            critical_low_below: i64::from(b.critical_low_below),
            low_below: i64::from(b.low_below),
            high_above: i64::from(b.high_above),
            critical_high_above: i64::from(b.critical_high_above),
        }
    }
}

impl From<&DetectorSettings> for DetectorConfig {
    fn from(s: &DetectorSettings) -> Self {
        let defaults = DetectorConfig::default();
        DetectorConfig {
            bands: Bands::from(&s.bands),
            spike_bpm: i64::from(s.spike_bpm),
            spike_window_ms: millis(s.spike_window_ms),
            warmup_readings: u64::from(s.warmup_readings),
            z_threshold: positive_or(s.z_threshold, defaults.z_threshold),
            min_stddev_bpm: positive_or(s.min_stddev_bpm, defaults.min_stddev_bpm),
            resolve_after_readings: s.resolve_after_readings.max(1),
            // `[detector]` alone has no sustain: the defaults, for tools; the processor builds
            // its detector from the whole settings (below).
            sustain: defaults.sustain,
        }
    }
}

impl From<&Settings> for DetectorConfig {
    /// `detector.*` with `alerts.sustain_ms.*`: the detector the processor runs.
    fn from(s: &Settings) -> Self {
        DetectorConfig {
            sustain: Sustain::from(&s.alerts.sustain_ms),
            ..DetectorConfig::from(&s.detector)
        }
    }
}

impl From<&SustainSettings> for Sustain {
    fn from(s: &SustainSettings) -> Self {
        Sustain {
            critical_low: millis(s.critical_low),
            critical_high: millis(s.critical_high),
            bradycardia: millis(s.bradycardia),
            tachycardia: millis(s.tachycardia),
            spike: millis(s.spike),
            deviation: millis(s.deviation),
            silent: millis(s.silent),
        }
    }
}

impl From<&ValidationSettings> for ValidationRules {
    fn from(v: &ValidationSettings) -> Self {
        ValidationRules {
            max_message_bytes: v.max_message_bytes,
            max_future_skew_ms: millis(v.max_future_skew_ms),
            max_age_days: v.max_age_days,
            min_heart_rate: i64::from(v.min_heart_rate),
            max_heart_rate: i64::from(v.max_heart_rate),
        }
    }
}

impl From<&InjectSettings> for InjectionRates {
    fn from(i: &InjectSettings) -> Self {
        InjectionRates {
            bradycardia: i.bradycardia,
            tachycardia: i.tachycardia,
            critical_low: i.critical_low,
            critical_high: i.critical_high,
            spike: i.spike,
            deviation: i.deviation,
            silent: i.silent,
        }
    }
}

impl Settings {
    /// The simulator of `generator.*`, placing its injected levels with the detector's bands and
    /// spike size, from `seed` (`generator.seed`, or a random one the caller picked).
    pub fn simulator_config(&self, seed: u64) -> SimulatorConfig {
        let g = &self.generator;
        let mut sim = SimulatorConfig::new(
            g.customers,
            seed,
            g.rate as f64,
            Bands::from(&self.detector.bands),
            i64::from(self.detector.spike_bpm),
        );
        sim.fault_rate = g.fault_rate;
        sim.inject = InjectionRates::from(&g.inject);
        sim
    }
}

/// A duration in whole milliseconds, as the domain counts them, saturating.
fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn positive_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings::load_from(None, Vec::<(String, String)>::new()).unwrap()
    }

    /// The domain's defaults (for its own tests and tools) are those of `config/default.toml`,
    /// the one source of them.
    #[test]
    fn the_domains_defaults_are_those_of_the_default_file() {
        let s = defaults();
        let from = DetectorConfig::from(&s.detector);
        let d = DetectorConfig::default();
        assert_eq!(from.bands, d.bands);
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
        assert_eq!(DetectorConfig::from(&s).sustain, Sustain::DEFAULT);
        assert_eq!(
            ValidationRules::from(&s.validation),
            ValidationRules::default()
        );
        assert_eq!(
            InjectionRates::from(&s.generator.inject),
            InjectionRates::default()
        );
    }

    #[test]
    fn settings_out_of_range_map_to_usable_values() {
        let mut s = defaults().detector;
        s.z_threshold = f64::NAN;
        s.min_stddev_bpm = -1.0;
        s.resolve_after_readings = 0;
        let cfg = DetectorConfig::from(&s);
        assert_eq!(cfg.z_threshold, 4.0);
        assert_eq!(cfg.min_stddev_bpm, 3.0);
        assert_eq!(cfg.resolve_after_readings, 1);
        s.resolve_after_readings = u32::MAX;
        assert_eq!(DetectorConfig::from(&s).resolve_after_readings, u32::MAX);
        s.spike_window_ms = std::time::Duration::MAX;
        assert_eq!(DetectorConfig::from(&s).spike_window_ms, i64::MAX);
    }

    #[test]
    fn the_processors_detector_takes_the_sustain_of_alerts() {
        let mut s = defaults();
        s.alerts.sustain_ms.tachycardia = std::time::Duration::from_secs(60);
        s.detector.spike_bpm = 12;
        let cfg = DetectorConfig::from(&s);
        assert_eq!((cfg.sustain.tachycardia, cfg.spike_bpm), (60_000, 12));
        assert_eq!(cfg.sustain.bradycardia, 600_000);
    }

    #[test]
    fn the_simulator_takes_the_generators_settings_and_the_detectors_bands() {
        let mut s = defaults();
        s.generator.fault_rate = 0.25;
        s.generator.inject.silent = 0.5;
        let sim = s.simulator_config(7);
        assert_eq!((sim.customers, sim.seed, sim.rate), (1000, 7, 100.0));
        assert_eq!(sim.fault_rate, 0.25);
        assert_eq!(sim.inject.silent, 0.5);
        assert_eq!(sim.bands, Bands::from(&s.detector.bands));
        assert_eq!(sim.spike_bpm, 30);
    }
}
