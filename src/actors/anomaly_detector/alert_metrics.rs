//! The alert metrics of SPEC section 6, from what the detector observes and holds:
//! `heartbeat_alerts_activated_total{kind}` and `heartbeat_alerts_suppressed_total{kind,reason}`
//! count the transitions of the episodes this detector observes (a batch or a silence; never the
//! replay of a claimed partition, whose rows were written, and counted, by whoever observed them
//! first), and `heartbeat_alerts_open{kind}` is counted from the states of the partitions held,
//! so it follows every revocation and every claim (docs/OPERATIONS.md, "Alert burden"). Customers
//! out of memory (evicted for the budget, or forgotten while quiet) keep their open episodes in
//! the gauge through [`OpenKinds`], noted when they leave and dropped when they come back.

use chrono::{DateTime, Utc};

use crate::domain::classification::AnomalyKind;
use crate::domain::detector::{AlertRow, CustomerState};
use crate::metrics::{Metrics, Transition};

use super::{AnomalyDetector, Tracked};

/// Per kind (in the order of [`AnomalyKind::ALL`]), the `opened_at` of the customer's activated
/// open episode. Taken before a reading is observed, to tell an activation from the update of an
/// episode activated before. On the stack: a reading costs no allocation.
pub(super) type Activated = [Option<DateTime<Utc>>; AnomalyKind::ALL.len()];

/// The kinds of a customer's activated open episodes, one bit per position in
/// [`AnomalyKind::ALL`]: what the gauge needs of a customer that is not in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OpenKinds(u8);

impl OpenKinds {
    /// The activated open episodes of `state`, `None` if it has none.
    pub(super) fn of(state: &CustomerState) -> Option<Self> {
        let bits = activated(state)
            .iter()
            .enumerate()
            .filter(|(_, opened)| opened.is_some())
            .fold(0u8, |bits, (i, _)| bits | 1 << i);
        (bits != 0).then_some(OpenKinds(bits))
    }

    /// Adds one to `open` for each kind held.
    fn count_into(self, open: &mut [i64; AnomalyKind::ALL.len()]) {
        for (i, n) in open.iter_mut().enumerate() {
            *n += i64::from(self.0 >> i & 1);
        }
    }
}

/// Customers out of memory with activated open episodes: their partition and the kinds.
pub(super) type DormantOpen = hashbrown::HashMap<String, (i32, OpenKinds)>;

/// Notes in `dormant` the activated open episodes of `customer`, leaving memory as `t`.
pub(super) fn note_dormant(dormant: &mut DormantOpen, customer: &str, t: &Tracked) {
    if let Some(kinds) = OpenKinds::of(&t.state) {
        dormant.insert(customer.to_owned(), (t.partition, kinds));
    }
}

/// The activated open episodes of `state`.
pub(super) fn activated(state: &CustomerState) -> Activated {
    let mut out = Activated::default();
    for e in state.episodes.iter().filter(|e| e.activated_at.is_some()) {
        out[e.kind.index()] = Some(e.opened_at);
    }
    out
}

/// Counts the transitions among the alert `rows` one observation of `customer_id` gave, its
/// activated episodes having been `before`: an open row activated now, a resolved row suppressed.
pub(super) fn count_transitions(
    metrics: &Metrics,
    customer_id: &str,
    before: &Activated,
    rows: &[AlertRow],
) {
    for row in rows {
        let transition = match (row.resolved_at, row.activated_at, row.suppressed) {
            (Some(_), _, Some(reason)) => Transition::Suppressed(reason),
            (None, Some(_), _) if before[row.kind.index()] != Some(row.opened_at) => {
                Transition::Activated
            }
            _ => continue,
        };
        metrics.count_transition(customer_id, row.kind, row.opened_at, transition);
    }
}

impl AnomalyDetector {
    /// Sets `heartbeat_alerts_open` from the states of the customers of the partitions held, in
    /// memory or out of it.
    pub(super) fn gauge_open_alerts(&self) {
        let mut open = [0i64; AnomalyKind::ALL.len()];
        for t in self.customers.values() {
            if let Some(kinds) = OpenKinds::of(&t.state) {
                if self.owned.contains_key(&t.partition) {
                    kinds.count_into(&mut open);
                }
            }
        }
        for (partition, kinds) in self.dormant_open.values() {
            if self.owned.contains_key(partition) {
                kinds.count_into(&mut open);
            }
        }
        self.metrics.set_alerts_open(&open);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::detector::Suppressed;

    fn row(opened: i64, activated: Option<i64>, resolved: Option<i64>) -> AlertRow {
        let t = |s: i64| {
            DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default()
                + TimeDelta::seconds(s)
        };
        AlertRow {
            customer_id: "C".into(),
            kind: AnomalyKind::Tachycardia,
            opened_at: t(opened),
            last_seen_at: t(opened),
            resolved_at: resolved.map(t),
            readings: 1,
            peak_heart_rate: Some(125),
            activated_at: activated.map(t),
            suppressed: match (resolved, activated) {
                (Some(_), None) => Some(Suppressed::Short),
                _ => None,
            },
        }
    }

    fn counts(m: &Metrics) -> (u64, u64) {
        (
            m.alerts_activated.with_label_values(&["tachycardia"]).get(),
            m.alerts_suppressed
                .with_label_values(&["tachycardia", "short"])
                .get(),
        )
    }

    #[test]
    fn only_changes_of_state_count() {
        let m = Metrics::new();
        let none = Activated::default();
        // Open, not activated: nothing.
        count_transitions(&m, "C", &none, &[row(0, None, None)]);
        assert_eq!(counts(&m), (0, 0));
        // Activated now.
        count_transitions(&m, "C", &none, &[row(0, Some(600), None)]);
        assert_eq!(counts(&m), (1, 0));
        // Later readings of the activated episode, and its resolution: no more.
        let mut before = Activated::default();
        before[AnomalyKind::Tachycardia.index()] = Some(row(0, None, None).opened_at);
        count_transitions(&m, "C", &before, &[row(0, Some(600), None)]);
        count_transitions(&m, "C", &before, &[row(0, Some(600), Some(900))]);
        assert_eq!(counts(&m), (1, 0));
        // Another episode that ends short.
        count_transitions(&m, "C", &none, &[row(1000, None, Some(1100))]);
        assert_eq!(counts(&m), (1, 1));
    }
}
