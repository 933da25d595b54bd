//! The memory budget: at most `detector.max_resident_customers` customers' states in memory.
//!
//! Beyond it, the customers seen least recently are evicted: a changed state is saved with the
//! current batch first, exactly as a checkpoint saves it (the state holds all of the customer's
//! observed readings, and its positions say which). The customer's next reading loads that saved
//! state again (`load_unknown`), so an evicted and reloaded customer observes the same readings
//! from the same state as one that stayed: the same anomalies and alert rows.
//!
//! A saved state is only safe to load once the batch that saved it has committed. Until then the
//! evicted state waits in `evicted` (its `saved_in` names that batch), and a
//! reading of the customer takes it back from there instead of from PostgreSQL. Once that batch
//! and all before it are stored (the offset ledger's `stored_through`), the entry is dropped: the
//! saved row is what memory held.
//!
//! Eviction runs after a batch is observed, and takes the customers down to
//! [`LOW_WATER`] of the budget, so its scan (a partial sort of the last-seen times) runs
//! once per sixteenth of the budget of new customers rather than with every batch. An evicted
//! customer is not watched for silence until it sends again; its open alerts stay in
//! `heartbeat_alerts_open` (`alert_metrics::DormantOpen`), and nothing else about it changes.

use std::time::Instant;

use crate::domain::record::CustomerSnapshot;
use crate::messages::BatchId;

use super::{alert_metrics, AnomalyDetector};

/// Eviction takes the resident customers down to this fraction of the budget (fifteen
/// sixteenths): room for a sixteenth of the budget of new customers before the next scan.
const LOW_WATER: (usize, usize) = (15, 16);

impl AnomalyDetector {
    /// Notes that `states` are saved with batch `id`: an evicted or forgotten customer's state
    /// may be loaded from PostgreSQL once that batch is stored.
    pub(super) fn note_saved(&mut self, states: &[CustomerSnapshot], id: BatchId) {
        for s in states {
            if let Some(t) = self.customers.get_mut(s.customer_id.as_str()) {
                t.saved_in = id;
            }
        }
    }

    /// Counts the states handed to the writers, and their bytes.
    pub(super) fn count_saved(&self, states: &[CustomerSnapshot]) {
        self.metrics
            .detector_states_saved
            .inc_by(states.len() as u64);
        let bytes: usize = states.iter().map(|s| s.state.len()).sum();
        self.metrics.detector_state_bytes_saved.inc_by(bytes as u64);
    }

    /// Drops the evicted states whose saving batch is stored: their saved rows are current.
    pub(super) fn prune_evicted(&mut self) {
        if self.evicted.is_empty() {
            return;
        }
        let through = self.ledger.stored_through();
        self.evicted.retain(|_, t| !t.settled(through));
    }

    /// Follows `customer` again from its evicted state if it is still waiting for its save to be
    /// stored; `true` if so.
    pub(super) fn revive(&mut self, customer: &str, now: Instant) -> bool {
        self.dormant_open.remove(customer);
        match self.evicted.remove_entry(customer) {
            Some((key, mut t)) => {
                t.last_consumed = now;
                self.customers.insert(key, t);
                true
            }
            None => false,
        }
    }

    /// Evicts the least recently seen customers while more than the budget are resident, saving
    /// the changed states with batch `id` (added to `states`).
    pub(super) fn evict(&mut self, id: BatchId, states: &mut Vec<CustomerSnapshot>) {
        let budget = self.max_resident;
        if self.customers.len() > budget {
            self.evict_down_to(budget, id, states);
        }
        self.metrics
            .detector_customers
            .set(self.customers.len() as i64);
    }

    /// Evicts the least recently seen customers down to [`LOW_WATER`] of `budget`.
    fn evict_down_to(&mut self, budget: usize, id: BatchId, states: &mut Vec<CustomerSnapshot>) {
        let keep = (budget * LOW_WATER.0 / LOW_WATER.1).max(1);
        let excess = self.customers.len() - keep;
        let mut by_age: Vec<(Instant, &String)> = self
            .customers
            .iter()
            .map(|(c, t)| (t.last_consumed, c))
            .collect();
        by_age.select_nth_unstable_by_key(excess - 1, |(at, _)| *at);
        let victims: Vec<String> = by_age[..excess].iter().map(|(_, c)| (*c).clone()).collect();
        let through = self.ledger.stored_through();
        for customer in victims {
            let Some((customer, mut t)) = self.customers.remove_entry(customer.as_str()) else {
                continue;
            };
            if t.dirty {
                let Some(saved) = t.snapshot(&customer) else {
                    // Cannot happen (a state always serializes); stay resident rather than lose it.
                    self.customers.insert(customer, t);
                    continue;
                };
                states.push(saved);
                t.saved_in = id;
            }
            alert_metrics::note_dormant(&mut self.dormant_open, &customer, &t);
            if !t.settled(through) {
                self.evicted.insert(customer, t);
            }
            self.metrics.detector_evictions.inc();
        }
    }
}
