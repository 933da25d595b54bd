//! The identities of recent readings: repeats are spotted without a look-up while they are in
//! flight, before PostgreSQL has them.

use std::collections::VecDeque;

use super::Identity;

/// A bounded set that forgets its oldest entries first; each entry notes its partition, so a
/// partition's entries can be forgotten when it is taken away.
pub(super) struct RecentIdentities {
    order: VecDeque<(Identity, i32)>,
    set: hashbrown::HashMap<Identity, i32>,
    capacity: usize,
}

impl RecentIdentities {
    pub(super) fn new(capacity: usize) -> Self {
        RecentIdentities {
            order: VecDeque::new(),
            set: hashbrown::HashMap::new(),
            capacity,
        }
    }

    pub(super) fn contains(&self, id: &Identity) -> bool {
        self.set.contains_key(id)
    }

    pub(super) fn insert(&mut self, id: Identity, partition: i32) {
        if self.set.insert(id, partition).is_none() {
            self.order.push_back((id, partition));
            if self.order.len() > self.capacity {
                if let Some((old, p)) = self.order.pop_front() {
                    // Only the entry this slot made: it may have been forgotten and made again.
                    if self.set.get(&old) == Some(&p) {
                        self.set.remove(&old);
                    }
                }
            }
        }
    }

    /// Forgets every identity read from `partition`: what was in flight from it is either
    /// committed (the look-up finds it) or fenced out and read again.
    pub(super) fn forget_partition(&mut self, partition: i32) {
        self.set.retain(|_, p| *p != partition);
        self.order.retain(|(_, p)| *p != partition);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn recent_identities_forget_the_oldest_first() {
        let mut r = RecentIdentities::new(2);
        let t = Utc::now();
        let ids: Vec<Identity> = (0..3).map(|_| (Uuid::new_v4(), t)).collect();
        for id in &ids {
            r.insert(*id, 0);
        }
        assert!(!r.contains(&ids[0]) && r.contains(&ids[1]) && r.contains(&ids[2]));
    }

    #[test]
    fn recent_identities_of_a_partition_taken_away_are_forgotten() {
        let mut r = RecentIdentities::new(10);
        let t = Utc::now();
        let a = (Uuid::new_v4(), t);
        let b = (Uuid::new_v4(), t);
        r.insert(a, 1);
        r.insert(b, 2);
        r.forget_partition(1);
        assert!(!r.contains(&a) && r.contains(&b));
        // Made again after being forgotten, it stays until its own slot is the oldest.
        r.insert(a, 1);
        assert!(r.contains(&a));
    }
}
