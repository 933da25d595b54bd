//! Taking over a partition: after the claim, load its customers' saved states and replay the
//! stored readings each state misses, so a new owner continues exactly where the old one was.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use slog::{info, warn};

use crate::db::models::SavedState;
use crate::db::queries::{load_partition_states, load_states, load_tails};
use crate::domain::detector::{observe, CustomerState};
use crate::domain::reading::Reading;

use super::{AnomalyDetector, Owned, Tracked};

impl AnomalyDetector {
    /// Claims `fresh` partitions (those still assigned with the same generation), loads their
    /// customers' saved states and replays the stored readings each state misses.
    pub(super) fn acquire(&mut self, fresh: &[(i32, u64)]) {
        let claimed = self.claim(fresh);
        if claimed.is_empty() {
            return;
        }
        let now = Instant::now();
        for c in &claimed {
            let Some(&(_, generation)) = fresh.iter().find(|(p, _)| *p == c.kafka_partition) else {
                continue;
            };
            self.owned.insert(
                c.kafka_partition,
                Owned {
                    generation,
                    epoch: c.epoch,
                    position: c.checkpoint_offset,
                    // Due at once: what the replay rebuilds is saved with the first batch.
                    next_checkpoint: now,
                    checkpoint_deadline: now,
                    observed: 0,
                    changed: 0,
                },
            );
            self.progress
                .set_epoch(c.kafka_partition, Some((generation, c.epoch)));
        }
        let partitions: Vec<i32> = claimed.iter().map(|c| c.kafka_partition).collect();
        let (forget_after, room) = (self.forget_after, self.max_resident);
        let rows = self.with_db(
            "load the saved detector states of claimed partitions",
            |c| load_partition_states(c, &partitions, forget_after, room),
        );
        let loaded = self.adopt(rows, now);
        let bounds: Vec<(i32, Option<DateTime<Utc>>)> = claimed
            .iter()
            .map(|c| (c.kafka_partition, c.replay_from))
            .collect();
        let tail = self.with_db("load the readings stored since the checkpoint", |c| {
            load_tails(c, &bounds)
        });
        // Customers of the tail not followed yet: quiet for longer than the forget window before,
        // or without a saved state (first seen after the checkpoint).
        self.load_unknown(tail.iter().map(|r| &r.customer_id), now);
        let (scanned, mut replayed) = (tail.len(), 0u64);
        // The rules the batches apply, so the rebuilt state is the one they would have built.
        self.refresh_rules(now);
        for r in tail {
            if let Some(o) = self.owned.get_mut(&r.kafka_partition) {
                o.position = Some(o.position.map_or(r.kafka_offset, |p| p.max(r.kafka_offset)));
            }
            let t = self
                .customers
                .entry_ref(r.customer_id.as_str())
                .or_insert_with(|| Tracked::new(CustomerState::default(), r.kafka_partition, now));
            if !t.state.misses(r.kafka_partition, r.kafka_offset) {
                continue;
            }
            let reading = Reading {
                event_id: r.event_id,
                customer_id: r.customer_id,
                recorded_at: r.recorded_at,
                heart_rate: r.heart_rate,
                activity: r.activity,
                device_id: None,
            };
            // Its anomalies and alert rows were stored with it: only the state matters here.
            observe(
                &self.cfg,
                &mut t.state,
                &reading,
                self.rules.get(&reading.customer_id),
            );
            t.state.absorbed(r.kafka_partition, r.kafka_offset);
            t.partition = r.kafka_partition;
            t.dirty = true;
            replayed += 1;
        }
        let epochs: Vec<String> = claimed
            .iter()
            .map(|c| format!("{}@{}", c.kafka_partition, c.epoch))
            .collect();
        info!(self.log, "partitions claimed, detector state loaded";
            "partitions" => epochs.join(","), "states_loaded" => loaded,
            "readings_scanned" => scanned, "readings_replayed" => replayed);
    }

    /// Loads the saved states of those of `customers` not followed yet, and follows them.
    pub(super) fn load_unknown<'a>(
        &mut self,
        customers: impl Iterator<Item = &'a String>,
        now: Instant,
    ) {
        let unknown: Vec<String> = customers
            .filter(|c| !self.customers.contains_key(*c))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|c| !self.revive(c, now))
            .collect();
        // Each is followed from here on, loaded or new.
        for c in &unknown {
            self.dormant_open.remove(c);
        }
        if !unknown.is_empty() {
            let rows = self.with_db("load detector state", |c| load_states(c, &unknown));
            self.adopt(rows, now);
        }
    }

    /// Starts following the customers whose saved state `rows` holds (unless already followed);
    /// returns how many.
    fn adopt(&mut self, rows: Vec<SavedState>, now: Instant) -> usize {
        let mut adopted = 0;
        for row in rows {
            // An evicted state whose save is not stored yet is newer than the row.
            if self.customers.contains_key(&row.customer_id) || self.revive(&row.customer_id, now) {
                continue;
            }
            // Followed from here on (or started cold): no longer out of memory.
            self.dormant_open.remove(&row.customer_id);
            match serde_json::from_str::<CustomerState>(&row.state) {
                Ok(state) => {
                    let tracked = Tracked::new(state, row.kafka_partition, now);
                    self.customers.insert(row.customer_id, tracked);
                    adopted += 1;
                }
                Err(e) => warn!(self.log, "saved detector state unreadable, starting cold";
                    "customer_id" => &row.customer_id, "error" => %e),
            }
        }
        adopted
    }
}
