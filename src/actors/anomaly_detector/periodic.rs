//! The periodic work: silences, forgetting quiet customers, checkpoints, and reading the
//! per-customer alert rules again. It runs with every batch and, when no batch comes, on the
//! detector's timer.

use std::time::{Duration, Instant};

use crate::db::queries::database_clock;
use crate::db::queries::rules::effective_rules;
use crate::domain::detector::{episode_events, silence};
use crate::domain::record::{BatchPositions, CustomerSnapshot, PartitionCheckpoint};
use crate::messages::Persist;

use super::alert_metrics::count_transitions;
use super::{AnomalyDetector, Found, Tracked, TICK};

/// Taken off PostgreSQL's clock for a checkpoint's `replay_from`, against the clock stepping back
/// a little (an NTP correction) between the checkpoint and a later transaction. A step back by
/// more than this could leave a reading out of a replay; it only widens the scan of a load.
const CLOCK_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// How often `partition` is checkpointed: between half the checkpoint interval and all of it, by
/// a hash of the partition, so that partitions claimed together do not all fall due together.
fn checkpoint_period(partition: i32, every: Duration) -> Duration {
    let spread = crate::actors::spread(&partition.to_string()) % 1024;
    every - every.mul_f64(spread as f64 / 2048.0)
}

/// The state of `customer` to save.
fn snapshot(customer: &str, t: &mut Tracked) -> Option<CustomerSnapshot> {
    let state = serde_json::to_string(&t.state).ok()?;
    t.dirty = false;
    Some(CustomerSnapshot {
        customer_id: customer.to_owned(),
        partition: t.partition,
        state,
    })
}

impl AnomalyDetector {
    /// Reports silences and forgets long-quiet customers, at most once a [`TICK`], and takes the
    /// checkpoints that are due (with every batch for an interval of 0).
    pub(super) fn periodic(&mut self, now: Instant) -> Found {
        let mut found = Found::default();
        self.refresh_rules(now);
        if now.saturating_duration_since(self.last_periodic) >= TICK {
            self.last_periodic = now;
            self.silences(now, &mut found);
            self.gauge_open_alerts();
        }
        self.checkpoints(now, &mut found);
        found
    }

    /// Reads `alert_rules` again when it was last read `alerts.rules_refresh_ms` ago or never:
    /// a change applies to the readings observed after it, on every processor, with no restart.
    pub(super) fn refresh_rules(&mut self, now: Instant) {
        let due = self.rules_read_at.map_or(true, |at| {
            now.saturating_duration_since(at) >= self.rules_refresh
        });
        if due {
            self.rules = self.with_db("read the alert rules", effective_rules);
            self.rules_read_at = Some(now);
        }
    }

    /// Reports the customers silent for `detector.silence_after_ms` while their partition is
    /// caught up, and forgets those quiet for `detector.forget_after_ms` (once saved).
    fn silences(&mut self, now: Instant, found: &mut Found) {
        let progress = self.progress.clone();
        let owned = &self.owned;
        let (silence_after, forget_after) = (self.silence_after, self.forget_after);
        let (cfg, rules, metrics) = (&self.cfg, &self.rules, &self.metrics);
        self.customers.retain(|customer, t| {
            let quiet = now.saturating_duration_since(t.last_consumed);
            // Only once saved: a forgotten customer is loaded again from its saved state.
            if quiet >= forget_after && !t.dirty {
                return false;
            }
            if quiet >= silence_after
                && owned.contains_key(&t.partition)
                && progress.is_caught_up(t.partition)
            {
                if let Some((anomaly, alert)) =
                    silence(cfg, &mut t.state, customer, rules.get(customer))
                {
                    let none = Default::default();
                    let rows = std::slice::from_ref(&alert);
                    count_transitions(metrics, customer, &none, rows);
                    found.events.extend(episode_events(&none, rows));
                    found.anomalies.push(anomaly);
                    found.alerts.push(alert);
                    // Saved at once: no stored reading would replay a silence.
                    found.states.extend(snapshot(customer, t));
                }
            }
            true
        });
    }

    /// Takes the checkpoints that are due: saves every changed state of the partition with this
    /// batch, and notes where the partition stands, valid once this batch is stored.
    fn checkpoints(&mut self, now: Instant, found: &mut Found) {
        let due: Vec<i32> = self
            .owned
            .iter()
            .filter(|(_, o)| now >= o.next_checkpoint)
            .map(|(p, _)| *p)
            .collect();
        if due.is_empty() {
            return;
        }
        // Read before this batch is handed on: every later batch's transactions start after it.
        let clock = self.with_db("read the database clock", database_clock) - CLOCK_MARGIN;
        for (customer, t) in self.customers.iter_mut() {
            let touches = |p: &i32| due.contains(p);
            let in_due = due.contains(&t.partition)
                || t.state
                    .positions
                    .as_ref()
                    .is_some_and(|ps| ps.keys().any(touches));
            if t.dirty && in_due {
                found.states.extend(snapshot(customer, t));
            }
        }
        let every = self.checkpoint_every;
        for p in due {
            if let Some(o) = self.owned.get_mut(&p) {
                found.checkpoints.push(PartitionCheckpoint {
                    partition: p,
                    epoch: o.epoch,
                    offset: o.position,
                    replay_from: clock,
                });
                o.next_checkpoint = now + checkpoint_period(p, every);
            }
        }
    }

    /// The timer: follows the assignment and does the periodic work when no batch does it.
    /// Returns what must be stored, if anything, as a batch of its own.
    pub(super) fn tick(&mut self) -> Option<Persist> {
        self.sync_assignment();
        let found = self.periodic(Instant::now());
        let checkpoints = self.durable_checkpoints();
        if found.is_empty() && checkpoints.is_empty() {
            return None;
        }
        let id = self.ledger.begin_internal();
        self.ledger.note_checkpoints(id, found.checkpoints);
        Some(Persist {
            anomalies: found.anomalies,
            alerts: found.alerts,
            events: found.events,
            states: found.states,
            fence: self.fence(),
            checkpoints,
            ..Persist::empty(id, BatchPositions::default())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn checkpoint_periods_are_spread_over_the_second_half_of_the_interval() {
        let every = Duration::from_secs(5);
        let periods: Vec<Duration> = (0..64).map(|p| checkpoint_period(p, every)).collect();
        assert!(periods.iter().all(|p| *p > every / 2 && *p <= every));
        let distinct: BTreeSet<Duration> = periods.iter().copied().collect();
        assert!(distinct.len() > 32, "{} distinct periods", distinct.len());
        assert_eq!(checkpoint_period(1, Duration::ZERO), Duration::ZERO);
    }
}
