//! Classification of a reading into a heart-rate class by the bands of `detector.bands`, and the
//! threshold anomaly kind each class raises.

use serde::{Deserialize, Serialize};

/// A reading's class (SPEC section 5): `critical_low` below 40, `low` 40-59, `normal` 60-100,
/// `high` 101-180, `critical_high` above 180, with the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartRateClass {
    CriticalLow,
    Low,
    Normal,
    High,
    CriticalHigh,
}

impl HeartRateClass {
    pub const ALL: [HeartRateClass; 5] = [
        HeartRateClass::CriticalLow,
        HeartRateClass::Low,
        HeartRateClass::Normal,
        HeartRateClass::High,
        HeartRateClass::CriticalHigh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HeartRateClass::CriticalLow => "critical_low",
            HeartRateClass::Low => "low",
            HeartRateClass::Normal => "normal",
            HeartRateClass::High => "high",
            HeartRateClass::CriticalHigh => "critical_high",
        }
    }

    /// The anomaly kind a reading of this class raises, if any.
    pub fn threshold_anomaly(self) -> Option<AnomalyKind> {
        match self {
            HeartRateClass::CriticalLow => Some(AnomalyKind::CriticalLow),
            HeartRateClass::Low => Some(AnomalyKind::Bradycardia),
            HeartRateClass::Normal => None,
            HeartRateClass::High => Some(AnomalyKind::Tachycardia),
            HeartRateClass::CriticalHigh => Some(AnomalyKind::CriticalHigh),
        }
    }
}

/// The kinds of anomaly of SPEC section 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    CriticalLow,
    Bradycardia,
    Tachycardia,
    CriticalHigh,
    Spike,
    Deviation,
    Silent,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 7] = [
        AnomalyKind::CriticalLow,
        AnomalyKind::Bradycardia,
        AnomalyKind::Tachycardia,
        AnomalyKind::CriticalHigh,
        AnomalyKind::Spike,
        AnomalyKind::Deviation,
        AnomalyKind::Silent,
    ];

    /// The kind's position in [`AnomalyKind::ALL`], the one order kinds are kept, sorted and
    /// counted in (the declaration order; a test holds the two equal).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind whose [`as_str`](AnomalyKind::as_str) is `name`.
    pub fn from_name(name: &str) -> Option<AnomalyKind> {
        AnomalyKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::CriticalLow => "critical_low",
            AnomalyKind::Bradycardia => "bradycardia",
            AnomalyKind::Tachycardia => "tachycardia",
            AnomalyKind::CriticalHigh => "critical_high",
            AnomalyKind::Spike => "spike",
            AnomalyKind::Deviation => "deviation",
            AnomalyKind::Silent => "silent",
        }
    }
}

/// The class bands in bpm: critical_low < `critical_low_below` <= low < `low_below` <= normal
/// <= `high_above` < high <= `critical_high_above` < critical_high (`detector.bands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bands {
    pub critical_low_below: i64,
    pub low_below: i64,
    pub high_above: i64,
    pub critical_high_above: i64,
}

impl Bands {
    /// The bands of `config/default.toml` (SPEC section 5), for tests and tools; a test of the
    /// configuration holds them equal.
    pub const DEFAULT: Bands = Bands {
        critical_low_below: 40,
        low_below: 60,
        high_above: 100,
        critical_high_above: 180,
    };
}

/// The class of `heart_rate` under `bands`.
pub fn classify(heart_rate: i16, bands: &Bands) -> HeartRateClass {
    let hr = i64::from(heart_rate);
    if hr < bands.critical_low_below {
        HeartRateClass::CriticalLow
    } else if hr < bands.low_below {
        HeartRateClass::Low
    } else if hr <= bands.high_above {
        HeartRateClass::Normal
    } else if hr <= bands.critical_high_above {
        HeartRateClass::High
    } else {
        HeartRateClass::CriticalHigh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANDS: Bands = Bands::DEFAULT;

    #[test]
    fn band_edges_fall_on_the_documented_side() {
        use HeartRateClass::*;
        let cases = [
            (20, CriticalLow),
            (39, CriticalLow),
            (40, Low),
            (59, Low),
            (60, Normal),
            (100, Normal),
            (101, High),
            (180, High),
            (181, CriticalHigh),
            (250, CriticalHigh),
        ];
        for (hr, class) in cases {
            assert_eq!(classify(hr, &BANDS), class, "heart rate {hr}");
        }
    }

    #[test]
    fn a_kinds_index_is_its_place_in_all_and_its_name_names_it() {
        for (i, kind) in AnomalyKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
            assert_eq!(AnomalyKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(AnomalyKind::from_name("Spike"), None);
        assert_eq!(AnomalyKind::from_name(""), None);
    }

    #[test]
    fn each_abnormal_class_raises_its_threshold_kind() {
        assert_eq!(
            HeartRateClass::CriticalLow.threshold_anomaly(),
            Some(AnomalyKind::CriticalLow)
        );
        assert_eq!(
            HeartRateClass::Low.threshold_anomaly(),
            Some(AnomalyKind::Bradycardia)
        );
        assert_eq!(HeartRateClass::Normal.threshold_anomaly(), None);
        assert_eq!(
            HeartRateClass::High.threshold_anomaly(),
            Some(AnomalyKind::Tachycardia)
        );
        assert_eq!(
            HeartRateClass::CriticalHigh.threshold_anomaly(),
            Some(AnomalyKind::CriticalHigh)
        );
    }
}
