//! What this processor owns and how far it has got, shared by the KafkaSubscriber (which learns
//! assignments and revocations in the rebalance callbacks and compares positions with high
//! watermarks), the AnomalyDetector (which claims what is assigned, and whose silence timer must
//! not fire for a partition still working through a backlog, a stall or an outage) and the
//! DbWriters (which must tell a partition taken from this processor from one still its own when
//! a write is fenced).
//!
//! - **Generation.** Every assignment of a partition gets a number of its own, larger than any
//!   before. The subscriber stamps each record with the generation of its partition at the
//!   moment it is read, so the detector can tell a record of the current assignment from one read
//!   before a revocation that is still travelling through the mailboxes (after a reassignment the
//!   consumer reads again from the committed offset, and the old copy must not be observed out of
//!   order).
//! - **Epoch.** The ownership epoch the detector claimed in PostgreSQL for the partition
//!   (`detector_epochs`), which every write of the partition is fenced with.
//! - **Caught up** (SPEC section 5): the consumer's position is at the high watermark and the
//!   intake is neither paused nor waiting on a full downstream mailbox.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default, Clone, Copy)]
struct Partition {
    caught_up: bool,
    generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    assigned: BTreeMap<i32, Partition>,
    /// The last generation handed out.
    last_generation: u64,
    /// Partition -> (the generation it was claimed for, the epoch the detector holds it with).
    epochs: BTreeMap<i32, (u64, i64)>,
}

#[derive(Debug, Default)]
pub struct PartitionProgress {
    inner: Mutex<Inner>,
    /// Woken by every assignment and revocation, so the lag and caught-up watch sees a new
    /// partition at once rather than at its next round.
    changed: tokio::sync::Notify,
}

impl PartitionProgress {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain values.
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// `partitions` were assigned: each gets a new generation.
    pub fn assigned(&self, partitions: &[i32]) {
        self.with(|i| {
            for p in partitions {
                i.last_generation += 1;
                let generation = i.last_generation;
                i.assigned.insert(
                    *p,
                    Partition {
                        caught_up: false,
                        generation,
                    },
                );
            }
        });
        self.changed.notify_one();
    }

    /// Returns when the assignment has changed since the last call returned (at once if it has).
    pub async fn assignment_changed(&self) {
        self.changed.notified().await;
    }

    pub fn revoked(&self, partitions: &[i32]) {
        self.with(|i| {
            for p in partitions {
                i.assigned.remove(p);
            }
        });
        self.changed.notify_one();
    }

    /// The generation of `partition`'s current assignment; `None` when it is not assigned.
    pub fn generation(&self, partition: i32) -> Option<u64> {
        self.with(|i| i.assigned.get(&partition).map(|p| p.generation))
    }

    /// Every assigned partition with its generation.
    pub fn assignment(&self) -> BTreeMap<i32, u64> {
        self.with(|i| i.assigned.iter().map(|(p, s)| (*p, s.generation)).collect())
    }

    pub fn set_caught_up(&self, partition: i32, caught_up: bool) {
        self.with(|i| {
            if let Some(p) = i.assigned.get_mut(&partition) {
                p.caught_up = caught_up;
            }
        });
    }

    pub fn is_assigned(&self, partition: i32) -> bool {
        self.with(|i| i.assigned.contains_key(&partition))
    }

    pub fn is_caught_up(&self, partition: i32) -> bool {
        self.with(|i| i.assigned.get(&partition).is_some_and(|p| p.caught_up))
    }

    pub fn assigned_partitions(&self) -> Vec<i32> {
        self.with(|i| i.assigned.keys().copied().collect())
    }

    /// The detector holds `partition` with `epoch`, claimed for the assignment of `generation`
    /// (`None`: no longer).
    pub fn set_epoch(&self, partition: i32, claim: Option<(u64, i64)>) {
        self.with(|i| match claim {
            Some(c) => {
                i.epochs.insert(partition, c);
            }
            None => {
                i.epochs.remove(&partition);
            }
        });
    }

    /// Whether a write fenced out of `partition` under `epoch` means that someone claimed the
    /// partition from under this processor: it is still assigned here, in the assignment the
    /// detector claimed it for, with that epoch. After any rebalance the assignment is a new
    /// one, whose consumer reads the fenced records again by itself.
    pub fn claimed_from_under_us(&self, partition: i32, epoch: i64) -> bool {
        self.with(|i| {
            let current = i.assigned.get(&partition).map(|p| p.generation);
            i.epochs
                .get(&partition)
                .is_some_and(|(g, e)| *e == epoch && current == Some(*g))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_caught_up_only_while_assigned_and_told_so() {
        let p = PartitionProgress::default();
        assert!(!p.is_caught_up(0));
        p.assigned(&[0, 1]);
        assert!(!p.is_caught_up(0));
        p.set_caught_up(0, true);
        assert!(p.is_caught_up(0) && !p.is_caught_up(1));
        p.revoked(&[0]);
        assert!(!p.is_caught_up(0) && !p.is_assigned(0) && p.is_assigned(1));
    }

    #[test]
    fn every_assignment_has_a_generation_of_its_own() {
        let p = PartitionProgress::default();
        p.assigned(&[0, 1]);
        let first = p.assignment();
        assert_ne!(first[&0], first[&1]);
        p.revoked(&[0, 1]);
        assert_eq!(p.generation(0), None);
        p.assigned(&[0]);
        let again = p.generation(0).unwrap();
        assert!(
            again > first[&0] && again > first[&1],
            "reassigned: a new generation"
        );
        p.set_epoch(0, Some((again, 7)));
        assert!(
            p.claimed_from_under_us(0, 7),
            "fenced in the assignment it was claimed for"
        );
        assert!(!p.claimed_from_under_us(0, 6), "an older epoch's write");
        p.revoked(&[0]);
        p.assigned(&[0]);
        assert!(
            !p.claimed_from_under_us(0, 7),
            "reassigned since: the new assignment reads the records again"
        );
        let now = p.generation(0).unwrap();
        p.set_epoch(0, Some((now, 8)));
        assert!(p.claimed_from_under_us(0, 8));
        p.set_epoch(0, None);
        assert!(!p.claimed_from_under_us(0, 8), "no longer held");
    }
}
