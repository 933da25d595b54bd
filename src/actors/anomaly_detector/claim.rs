//! Partition ownership. The detector claims each partition its consumer is assigned in
//! PostgreSQL (`detector_epochs`), and every write carries the epochs it claimed. A partition
//! revoked or assigned anew is let go, with its customers.

use slog::info;

use crate::db;
use crate::db::queries::{claim_partitions, Claimed};
use crate::health::ActorState;

use super::{AnomalyDetector, NAME};

/// `host:pid` of this process, for `detector_epochs.owner`.
pub(super) fn owner_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer it is given.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".to_owned()
    };
    format!("{host}:{}", std::process::id())
}

impl AnomalyDetector {
    /// Follows the consumer's assignment: lets go of partitions revoked or reassigned since, and
    /// claims and loads those assigned since.
    pub(super) fn sync_assignment(&mut self) {
        let current = self.progress.assignment();
        let gone: Vec<i32> = self
            .owned
            .iter()
            .filter(|(p, o)| current.get(p) != Some(&o.generation))
            .map(|(p, _)| *p)
            .collect();
        if !gone.is_empty() {
            for p in &gone {
                self.release(*p);
            }
            info!(self.log, "partitions let go"; "partitions" => format!("{gone:?}"),
                "customers" => self.customers.len());
        }
        let fresh: Vec<(i32, u64)> = current
            .into_iter()
            .filter(|(p, _)| !self.owned.contains_key(p))
            .collect();
        if !fresh.is_empty() {
            self.acquire(&fresh);
        }
        if !gone.is_empty() || !fresh.is_empty() {
            self.gauge_open_alerts();
        }
    }

    /// Forgets `partition` and its customers: their next owner rebuilds them from what is stored.
    fn release(&mut self, partition: i32) {
        self.owned.remove(&partition);
        self.progress.set_epoch(partition, None);
        self.customers.retain(|_, t| t.partition != partition);
        self.evicted.retain(|_, t| t.partition != partition);
        self.dormant_open.retain(|_, (p, _)| *p != partition);
        self.recent.forget_partition(partition);
    }

    /// Claims `fresh` partitions in PostgreSQL, retrying until it answers, for as long as they
    /// stay assigned with the same generation: a claim for a partition that has moved on would
    /// fence out its new owner.
    pub(super) fn claim(&mut self, fresh: &[(i32, u64)]) -> Vec<Claimed> {
        let mut attempt = 0u32;
        loop {
            let wanted: Vec<i32> = fresh
                .iter()
                .filter(|(p, g)| self.progress.generation(*p) == Some(*g))
                .map(|(p, _)| *p)
                .collect();
            if wanted.is_empty() {
                return Vec::new();
            }
            let owner = self.owner.clone();
            let result = db::checkout(&self.pool, &self.database)
                .and_then(|mut c| claim_partitions(&mut c, &wanted, &owner));
            match result {
                Ok(rows) => {
                    if attempt > 0 {
                        self.health.set_actor(NAME, ActorState::Running);
                    }
                    return rows;
                }
                Err(e) => self.failed("claim partitions", &e, &mut attempt),
            }
        }
    }
}
