//! The periodic work: silences, forgetting quiet customers, checkpoints, and reading the
//! per-customer alert rules again. It runs with every batch and, when no batch comes, on the
//! detector's timer.

use std::time::{Duration, Instant};

use crate::db::queries::database_clock;
use crate::db::queries::rules::effective_rules;
use crate::domain::detector::{episode_events, silence};
use crate::domain::record::{BatchPositions, PartitionCheckpoint};
use crate::messages::Persist;

use super::alert_metrics::{self, count_transitions};
use super::{AnomalyDetector, Found, Owned, TICK};

/// Taken off PostgreSQL's clock for a checkpoint's `replay_from`, against the clock stepping back
/// a little (an NTP correction) between the checkpoint and a later transaction. A step back by
/// more than this could leave a reading out of a replay; it only widens the scan of a load.
const CLOCK_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// The readings a partition's changed states must hold on average (readings observed since its
/// last checkpoint, per changed state) before a checkpoint saves them, once the interval has
/// passed: at most one state written per this many readings, where states outnumber what an
/// interval brings (a fleet of 100,000 customers at 100,000 readings/s sends one reading per
/// customer a second). A state is some 350 bytes of JSON, twice a reading's row.
pub(super) const READINGS_PER_SAVED_STATE: u64 = 8;

/// However few readings the changed states hold, a partition is checkpointed this many intervals
/// after its last checkpoint: what a new owner replays stays within this many intervals of
/// readings (30 s at the default 5 s).
pub(super) const CHECKPOINT_STRETCH: u32 = 6;

/// How often `partition` is checkpointed: between half the checkpoint interval and all of it, by
/// a hash of the partition, so that partitions claimed together do not all fall due together.
fn checkpoint_period(partition: i32, every: Duration) -> Duration {
    let spread = crate::actors::spread(&partition.to_string()) % 1024;
    every - every.mul_f64(spread as f64 / 2048.0)
}

/// Whether a partition whose interval has passed is checkpointed now ([`READINGS_PER_SAVED_STATE`],
/// [`CHECKPOINT_STRETCH`]).
fn checkpoint_due(o: &Owned, now: Instant) -> bool {
    now >= o.checkpoint_deadline || o.changed.saturating_mul(READINGS_PER_SAVED_STATE) <= o.observed
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
        let stored_through = self.ledger.stored_through();
        let dormant = &mut self.dormant_open;
        self.customers.retain(|customer, t| {
            let quiet = now.saturating_duration_since(t.last_consumed);
            // Only once saved, and that save stored: a forgotten customer is loaded again from
            // its saved state.
            if quiet >= forget_after && t.settled(stored_through) {
                alert_metrics::note_dormant(dormant, customer, t);
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
                    found.states.extend(t.snapshot(customer));
                }
            }
            true
        });
    }

    /// Takes the checkpoints that are due: saves every changed state of the partition with this
    /// batch, and notes where the partition stands, valid once this batch is stored.
    ///
    /// A partition is due once `detector.checkpoint_interval_ms` has passed since its last
    /// checkpoint and its changed states hold at least [`READINGS_PER_SAVED_STATE`] observed
    /// readings each on average (`Owned::changed`, `Owned::observed`), or [`CHECKPOINT_STRETCH`]
    /// intervals have passed. With a few customers (many readings each per interval) that is
    /// every interval, as before; with a large fleet, where a customer sends a reading or two per
    /// interval, saving every changed state each interval would write more state than readings.
    fn checkpoints(&mut self, now: Instant, found: &mut Found) {
        let due: Vec<i32> = self
            .owned
            .iter()
            .filter(|(_, o)| now >= o.next_checkpoint && checkpoint_due(o, now))
            .map(|(p, _)| *p)
            .collect();
        if due.is_empty() {
            return;
        }
        // Read before this batch is handed on: every later batch's transactions start after it.
        let clock = self.with_db("read the database clock", database_clock) - CLOCK_MARGIN;
        for (customer, t) in self.customers.iter_mut() {
            let in_due = due.contains(&t.partition)
                || t.state
                    .positions
                    .as_ref()
                    .is_some_and(|ps| ps.partitions().any(|p| due.contains(&p)));
            if t.dirty && in_due {
                found.states.extend(t.snapshot(customer));
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
                let period = checkpoint_period(p, every);
                o.next_checkpoint = now + period;
                o.checkpoint_deadline = now + period * CHECKPOINT_STRETCH;
                o.observed = 0;
                o.changed = 0;
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
        self.note_saved(&found.states, id);
        self.count_saved(&found.states);
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
    fn a_checkpoint_waits_until_the_changed_states_hold_enough_readings_or_its_deadline() {
        let now = Instant::now();
        let owned = |observed, changed, deadline| Owned {
            generation: 1,
            epoch: 1,
            position: None,
            next_checkpoint: now,
            checkpoint_deadline: deadline,
            observed,
            changed,
        };
        let later = now + Duration::from_secs(25);
        // A large fleet: 16,000 changed states after 20,000 readings wait, until they hold 8
        // readings each, or until the deadline.
        assert!(!checkpoint_due(&owned(20_000, 16_000, later), now));
        assert!(checkpoint_due(&owned(128_000, 16_000, later), now));
        assert!(checkpoint_due(&owned(20_000, 16_000, now), now));
        // A small one: 1,000 customers with 400 readings each are checkpointed every interval.
        assert!(checkpoint_due(&owned(400_000, 1_000, later), now));
        // Nothing changed: due (the checkpoint records where the partition stands).
        assert!(checkpoint_due(&owned(0, 0, later), now));
    }

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
