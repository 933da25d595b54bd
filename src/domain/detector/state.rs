//! What the detector remembers about a customer (saved as JSON and loaded after a restart), and
//! what one reading gives.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::baseline::Baseline;
use super::exact_f64;
use crate::domain::classification::{AnomalyKind, HeartRateClass};
use crate::domain::record::Anomaly;

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
    /// Consecutive readings since the kind was last counted.
    pub quiet_streak: u32,
    /// The time of the counting reading that activated it; `None` until then. Missing from
    /// states saved before activation existed: such an episode activates at its next counting
    /// reading past its sustain.
    #[serde(default)]
    pub activated_at: Option<DateTime<Utc>>,
    /// Whether a counting reading came at least the sustain time after `opened_at` while the
    /// customer was muted: if it resolves unactivated, it was `muted`, not `short`.
    #[serde(default)]
    pub lasted: bool,
}

impl Episode {
    pub(super) fn open(
        kind: AnomalyKind,
        at: DateTime<Utc>,
        hr: Option<i16>,
        severity: f64,
    ) -> Self {
        Episode {
            kind,
            opened_at: at,
            last_seen_at: at,
            readings: i32::from(hr.is_some()),
            peak_heart_rate: hr,
            peak_severity: severity,
            quiet_streak: 0,
            activated_at: None,
            lasted: false,
        }
    }

    /// Activates the episode at a counting reading recorded at `at` when that is at least
    /// `sustain_ms` after `opened_at` and the customer is not `muted`; notes that it lasted when
    /// muted. A sustain that overflows the calendar is never reached.
    pub(super) fn consider(&mut self, at: DateTime<Utc>, sustain_ms: i64, muted: bool) {
        if self.activated_at.is_some() {
            return;
        }
        let due = TimeDelta::try_milliseconds(sustain_ms.max(0))
            .and_then(|d| self.opened_at.checked_add_signed(d));
        if due.is_some_and(|due| at >= due) {
            if muted {
                self.lasted = true;
            } else {
                self.activated_at = Some(at);
            }
        }
    }

    pub(super) fn add(&mut self, at: DateTime<Utc>, hr: i16, severity: f64) {
        self.readings = self.readings.saturating_add(1);
        self.last_seen_at = self.last_seen_at.max(at);
        // Strictly greater: on a tie the earlier reading stays the peak.
        if severity > self.peak_severity {
            self.peak_severity = severity;
            self.peak_heart_rate = Some(hr);
        }
        self.quiet_streak = 0;
    }

    pub(super) fn row(&self, customer_id: &str, resolved_at: Option<DateTime<Utc>>) -> AlertRow {
        AlertRow {
            customer_id: customer_id.to_owned(),
            kind: self.kind,
            opened_at: self.opened_at,
            last_seen_at: self.last_seen_at,
            resolved_at,
            readings: self.readings,
            peak_heart_rate: self.peak_heart_rate,
            activated_at: self.activated_at,
            suppressed: match (resolved_at, self.activated_at) {
                (Some(_), None) if self.lasted => Some(Suppressed::Muted),
                (Some(_), None) => Some(Suppressed::Short),
                _ => None,
            },
        }
    }

    /// The row of this episode resolved by a reading at `at`; never before `last_seen_at`.
    pub(super) fn resolved_row(&self, customer_id: &str, at: DateTime<Utc>) -> AlertRow {
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
    ///
    /// [`observe`]: super::observe
    pub positions: Option<Positions>,
}

/// Per Kafka partition, the offset of the last reading a state holds: a short list in partition
/// order, saved as the JSON object `{"3": 1234}` (partition as text, as a map of them was). A
/// customer's readings nearly always come from one partition, and a one-entry list is 16 bytes
/// where a B-tree map's node is 144.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Positions(Vec<(i32, i64)>);

impl Positions {
    /// The offset of the last reading of `partition` held.
    pub fn get(&self, partition: i32) -> Option<i64> {
        self.0
            .binary_search_by_key(&partition, |(p, _)| *p)
            .ok()
            .map(|i| self.0[i].1)
    }

    /// Raises the offset of `partition` to `offset` (never lowers it).
    pub fn raise(&mut self, partition: i32, offset: i64) {
        match self.0.binary_search_by_key(&partition, |(p, _)| *p) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(offset),
            Err(i) => self.0.insert(i, (partition, offset)),
        }
    }

    /// The partitions held, in order.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.0.iter().map(|(p, _)| *p)
    }
}

impl Serialize for Positions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(p, o)| (p, o)))
    }
}

impl<'de> Deserialize<'de> for Positions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<i32, i64>::deserialize(deserializer)?;
        Ok(Positions(map.into_iter().collect()))
    }
}

impl CustomerState {
    /// Records that the reading at `offset` of `partition` has been observed.
    pub fn absorbed(&mut self, partition: i32, offset: i64) {
        self.positions
            .get_or_insert_with(Positions::default)
            .raise(partition, offset);
    }

    /// Whether the stored reading at `offset` of `partition` is missing from this state and must
    /// be replayed. A new state misses everything; a state saved before positions were kept
    /// (they were saved with every batch then) misses nothing.
    pub fn misses(&self, partition: i32, offset: i64) -> bool {
        match &self.positions {
            None => self.readings == 0,
            Some(p) => p.get(partition).map_or(true, |last| offset > last),
        }
    }

    /// Whether this state has already reached `offset` of `partition` (it observed that record
    /// or a later one of the partition): a record read again, which must not be observed twice.
    pub fn holds(&self, partition: i32, offset: i64) -> bool {
        self.positions
            .as_ref()
            .and_then(|p| p.get(partition))
            .is_some_and(|last| offset <= last)
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
    /// The time of the counting reading that activated the episode; `None` until then.
    #[serde(default)]
    pub activated_at: Option<DateTime<Utc>>,
    /// Why a resolved episode never activated; `None` while open or once activated.
    #[serde(default)]
    pub suppressed: Option<Suppressed>,
}

/// What happened to an activated episode, for its delivery (SPEC section 8): it activated, or
/// (having activated) it resolved. Episodes that never activate have no events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Activated,
    Resolved,
}

impl EventKind {
    /// As `alert_events.event` and the Kafka event's `event` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Activated => "activated",
            EventKind::Resolved => "resolved",
        }
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        match name {
            "activated" => Some(EventKind::Activated),
            "resolved" => Some(EventKind::Resolved),
            _ => None,
        }
    }
}

/// One event of an episode with the episode as it was right after the reading (or silence) that
/// made it: fixed by the readings alone, so every run over the same records makes the same ones.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeEvent {
    pub event: EventKind,
    pub episode: AlertRow,
}

/// The events among the `rows` one observation of a customer gave, the customer's activated open
/// episodes having been `activated_before` (the `opened_at` of each, by kind): a row activated
/// now (an episode activated earlier is only updated), and a resolved row that had activated.
pub fn episode_events<'a>(
    activated_before: &'a [Option<DateTime<Utc>>],
    rows: &'a [AlertRow],
) -> impl Iterator<Item = EpisodeEvent> + 'a {
    rows.iter().flat_map(move |row| {
        let activated_now = row.activated_at.is_some()
            && activated_before.get(row.kind.index()).copied().flatten() != Some(row.opened_at);
        let resolved = row.activated_at.is_some() && row.resolved_at.is_some();
        [
            activated_now.then_some(EventKind::Activated),
            resolved.then_some(EventKind::Resolved),
        ]
        .into_iter()
        .flatten()
        .map(|event| EpisodeEvent {
            event,
            episode: row.clone(),
        })
    })
}

/// Why an episode resolved without activating (`alerts.suppressed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppressed {
    /// It never lasted its sustain time.
    Short,
    /// It did, but the customer was muted.
    Muted,
}

impl Suppressed {
    pub fn as_str(self) -> &'static str {
        match self {
            Suppressed::Short => "short",
            Suppressed::Muted => "muted",
        }
    }
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
