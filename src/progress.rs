//! Which partitions this processor owns and whether each is caught up, shared by the
//! KafkaSubscriber (which knows) and the AnomalyDetector (whose silence timer must not fire for
//! a partition that is still working through a backlog, a stall or an outage).
//!
//! Caught up (SPEC section 5): the consumer's position is at the high watermark and the intake
//! is neither paused nor waiting on a full downstream mailbox. Assignments and revocations come
//! from the rebalance callbacks; the subscriber refreshes positions and watermarks every few
//! seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

#[derive(Debug, Default, Clone, Copy)]
struct Partition {
    caught_up: bool,
}

#[derive(Debug, Default)]
struct Inner {
    assigned: BTreeMap<i32, Partition>,
    /// Assigned since the detector last asked, so it can load their customers' state.
    newly_assigned: BTreeSet<i32>,
}

#[derive(Debug, Default)]
pub struct PartitionProgress {
    inner: Mutex<Inner>,
}

impl PartitionProgress {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain flags.
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn assigned(&self, partitions: &[i32]) {
        self.with(|i| {
            for p in partitions {
                i.assigned.insert(*p, Partition::default());
                i.newly_assigned.insert(*p);
            }
        });
    }

    pub fn revoked(&self, partitions: &[i32]) {
        self.with(|i| {
            for p in partitions {
                i.assigned.remove(p);
                i.newly_assigned.remove(p);
            }
        });
    }

    /// Partitions assigned since the last call.
    pub fn take_newly_assigned(&self) -> Vec<i32> {
        self.with(|i| std::mem::take(&mut i.newly_assigned).into_iter().collect())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_caught_up_only_while_assigned_and_told_so() {
        let p = PartitionProgress::default();
        assert!(!p.is_caught_up(0));
        p.assigned(&[0, 1]);
        assert_eq!(p.take_newly_assigned(), vec![0, 1]);
        assert!(p.take_newly_assigned().is_empty());
        assert!(!p.is_caught_up(0));
        p.set_caught_up(0, true);
        assert!(p.is_caught_up(0) && !p.is_caught_up(1));
        p.revoked(&[0]);
        assert!(!p.is_caught_up(0) && !p.is_assigned(0) && p.is_assigned(1));
    }
}
