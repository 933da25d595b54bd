//! The offset ledger of one processor incarnation: which batches are in flight, and which
//! offsets may be stored.
//!
//! The intake numbers each batch it hands on; whoever finishes a batch (the DbWriter, or the
//! OutputPublisher once the batch's dead letters and alerts are acknowledged) reports it here, from
//! its own thread. Batches may finish out of order, so a batch's offsets are stored only when
//! every earlier batch is finished too: the stored offset of a partition only moves forward over
//! a contiguous, finished range, and librdkafka commits only what was stored
//! (`enable.auto.offset.store=false`).
//!
//! Because it is shared and not an actor, it can be waited on from the rebalance callback, which
//! librdkafka runs on the subscriber's own thread (inside `recv`): a revocation waits here until
//! the batches in flight are stored, then commits, so the next owner of a partition does not read
//! them again.
//!
//! It also knows when a detector checkpoint has become durable: a checkpoint taken with batch N
//! (`note_checkpoints`) holds once N and every batch before it are finished, and the detector
//! then records it (`take_durable_checkpoints`). A part whose partition was fenced (another owner
//! holds it now) reports it: that partition's offsets and checkpoint of the batch are dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use slog::{debug, Logger};

use crate::domain::record::{BatchPositions, PartitionCheckpoint};
use crate::messages::{BatchId, BatchPersisted};

/// Where the ledger stores the offsets of finished batches: the consumer (`kafka.rs`), for
/// librdkafka to commit; a fake in the tests. A store that refuses (the partition moved to
/// another member) says so in its own log: the next owner reads the batch again.
pub trait OffsetStore: Send + Sync {
    /// Stores, per partition of `positions`, the next offset to read.
    fn store_next_offsets(&self, positions: &BatchPositions);
}

#[derive(Default)]
struct State {
    /// The id of the last batch numbered by the intake; ids start at 1.
    last_id: BatchId,
    /// Numbered and not yet finished or abandoned.
    in_flight: usize,
    /// The batch the intake is still handing on: not in any mailbox yet, so not waited for.
    /// (The intake notes it handed on right after it is queued, on the thread where rebalance
    /// callbacks and drains run, so they never see a queued batch here.)
    handing_on: Option<BatchId>,
    /// Finished ahead of an earlier batch; their offsets wait for it.
    finished: BTreeMap<BatchId, BatchPositions>,
    /// Parts stored so far of batches split among several writers.
    parts_done: HashMap<BatchId, u32>,
    /// Partitions a part of the batch was fenced out of.
    fenced: HashMap<BatchId, BTreeSet<i32>>,
    /// Checkpoints taken with a batch, valid once it is stored.
    checkpoints: HashMap<BatchId, Vec<PartitionCheckpoint>>,
    /// Checkpoints that hold, not yet taken by the detector: the latest per partition.
    durable: BTreeMap<i32, PartitionCheckpoint>,
    /// Partitions whose offsets must never be stored again by this incarnation: a write of its
    /// current ownership was fenced, so records were lost to it and must be read again by the
    /// next one.
    poisoned: BTreeSet<i32>,
    /// The batch whose offsets are stored next.
    next_to_store: BatchId,
    /// Set when the incarnation stops: nobody may wait for batches any more.
    closed: bool,
}

impl State {
    /// Batches in some mailbox or being written: numbered, not finished, not still being handed
    /// on.
    fn handed_on_unfinished(&self) -> usize {
        self.in_flight
            .saturating_sub(usize::from(self.handing_on.is_some()))
    }
}

pub struct OffsetLedger {
    state: Mutex<State>,
    settled: Condvar,
    /// Set once the consumer exists (the consumer's context holds this ledger, hence `Weak`).
    store: OnceLock<Weak<dyn OffsetStore>>,
    log: Logger,
}

impl OffsetLedger {
    pub fn new(log: Logger) -> Self {
        OffsetLedger {
            state: Mutex::new(State {
                next_to_store: 1,
                ..State::default()
            }),
            settled: Condvar::new(),
            store: OnceLock::new(),
            log,
        }
    }

    /// Where finished offsets are stored.
    pub fn attach(&self, store: Weak<dyn OffsetStore>) {
        let _ = self.store.set(store);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent counters; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers a new batch, about to be handed on.
    pub fn begin(&self) -> BatchId {
        let mut s = self.lock();
        s.last_id += 1;
        s.in_flight += 1;
        s.handing_on = Some(s.last_id);
        s.last_id
    }

    /// Numbers a batch the detector makes by itself (silences, checkpoints), handed on at once:
    /// a drain waits for it like for any other.
    pub fn begin_internal(&self) -> BatchId {
        let mut s = self.lock();
        s.last_id += 1;
        s.in_flight += 1;
        s.last_id
    }

    /// The checkpoints taken with batch `id`; they hold once it is stored.
    pub fn note_checkpoints(&self, id: BatchId, checkpoints: Vec<PartitionCheckpoint>) {
        if !checkpoints.is_empty() {
            self.lock().checkpoints.insert(id, checkpoints);
        }
    }

    /// The checkpoints that hold now, latest per partition, once each.
    pub fn take_durable_checkpoints(&self) -> Vec<PartitionCheckpoint> {
        std::mem::take(&mut self.lock().durable)
            .into_values()
            .collect()
    }

    /// The last batch that is finished with every batch before it (0 before the first): whatever
    /// those batches saved is committed, or was fenced out with its partition.
    pub fn stored_through(&self) -> BatchId {
        self.lock().next_to_store - 1
    }

    /// Never store `partition`'s offsets again in this incarnation.
    pub fn poison(&self, partition: i32) {
        self.lock().poisoned.insert(partition);
    }

    /// The batch `id` is in the next stage's mailbox.
    pub fn handed_on(&self, id: BatchId) {
        let mut s = self.lock();
        if s.handing_on == Some(id) {
            s.handing_on = None;
        }
    }

    /// The batch `id` could not be handed on (the next stage is gone). Its offsets, and so those
    /// of every later batch, are never stored: the incarnation is ending, and the next one reads
    /// them again.
    pub fn abandon(&self, id: BatchId) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.handing_on == Some(id) {
            s.handing_on = None;
        }
        self.settled.notify_all();
    }

    /// A part of a batch committed (and its outputs were acknowledged). Once every part has,
    /// store the batch's offsets and those of the finished batches waiting for it.
    pub fn finish(&self, batch: BatchPersisted) {
        debug!(self.log, "batch part stored"; "batch" => batch.id, "parts" => batch.parts,
            "stored" => batch.stored, "duplicates" => batch.duplicates,
            "rejected" => batch.rejected);
        let ready = {
            let mut guard = self.lock();
            let s = &mut *guard;
            if !batch.fenced.is_empty() {
                s.fenced
                    .entry(batch.id)
                    .or_default()
                    .extend(batch.fenced.iter().copied());
            }
            if batch.parts > 1 {
                let done = s.parts_done.entry(batch.id).or_insert(0);
                *done += 1;
                if *done < batch.parts {
                    return;
                }
                s.parts_done.remove(&batch.id);
            }
            s.finished.insert(batch.id, batch.positions);
            let mut ready = Vec::new();
            while let Some(mut positions) = s.finished.remove(&s.next_to_store) {
                let id = s.next_to_store;
                let fenced = s.fenced.remove(&id).unwrap_or_default();
                positions
                    .0
                    .retain(|(_, p), _| !fenced.contains(p) && !s.poisoned.contains(p));
                for c in s.checkpoints.remove(&id).unwrap_or_default() {
                    if !fenced.contains(&c.partition) && !s.poisoned.contains(&c.partition) {
                        s.durable.insert(c.partition, c);
                    }
                }
                ready.push(positions);
                s.next_to_store += 1;
            }
            ready
        };
        // Stored before the batch stops counting as in flight, so a waiter that sees nothing in
        // flight may commit at once.
        for positions in &ready {
            self.store_positions(positions);
        }
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        self.settled.notify_all();
    }

    fn store_positions(&self, positions: &BatchPositions) {
        if let Some(store) = self.store.get().and_then(Weak::upgrade) {
            store.store_next_offsets(positions);
        }
    }

    /// Batches handed on and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.lock().handed_on_unfinished()
    }

    /// Waits until every batch handed on is finished, at most `timeout`; `true` if so. Returns
    /// `false` at once when the ledger is closed.
    pub fn wait_settled(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if s.closed {
                return false;
            }
            if s.handed_on_unfinished() == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .settled
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The incarnation is stopping: waiters return at once from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.settled.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use std::sync::Arc;

    /// Notes every store, in order: per call, (partition, next offset).
    #[derive(Default)]
    struct RecordingStore {
        stored: Mutex<Vec<Vec<(i32, i64)>>>,
    }

    impl OffsetStore for RecordingStore {
        fn store_next_offsets(&self, positions: &BatchPositions) {
            let call = positions
                .0
                .iter()
                .map(|((_, p), next)| (*p, *next))
                .collect();
            self.stored.lock().unwrap().push(call);
        }
    }

    impl RecordingStore {
        fn calls(&self) -> Vec<Vec<(i32, i64)>> {
            self.stored.lock().unwrap().clone()
        }
    }

    /// A ledger storing into a `RecordingStore`.
    fn recorded() -> (OffsetLedger, Arc<RecordingStore>) {
        let ledger = OffsetLedger::new(crate::telemetry::discard());
        let store = Arc::new(RecordingStore::default());
        let weak = Arc::downgrade(&store);
        ledger.attach(weak);
        (ledger, store)
    }

    /// A batch handed on, ending before `next` on each of `partitions`.
    fn handed(ledger: &OffsetLedger, partitions: &[(i32, i64)]) -> BatchPersisted {
        let id = ledger.begin();
        ledger.handed_on(id);
        let topic: Arc<str> = Arc::from("heartbeats");
        let mut positions = BatchPositions::default();
        for (p, next) in partitions {
            positions.include(&topic, *p, next - 1);
        }
        BatchPersisted {
            positions,
            ..persisted(id)
        }
    }

    fn checkpoint(partition: i32) -> PartitionCheckpoint {
        PartitionCheckpoint {
            partition,
            epoch: 1,
            offset: Some(9),
            replay_from: Utc::now(),
        }
    }

    #[test]
    fn offsets_are_stored_over_a_contiguous_finished_range_and_only_forward() {
        let (ledger, store) = recorded();
        let a = handed(&ledger, &[(0, 10), (1, 5)]);
        let b = handed(&ledger, &[(0, 20)]);
        let c = handed(&ledger, &[(1, 8)]);
        ledger.finish(c);
        ledger.finish(b);
        assert!(
            store.calls().is_empty(),
            "nothing before the first batch finishes"
        );
        ledger.finish(a);
        assert_eq!(
            store.calls(),
            vec![vec![(0, 10), (1, 5)], vec![(0, 20)], vec![(1, 8)]],
            "in batch order once the gap is filled"
        );
        // Per partition, each stored offset is past the one before.
        for p in [0, 1] {
            let seen: Vec<i64> = store
                .calls()
                .iter()
                .flatten()
                .filter(|(q, _)| *q == p)
                .map(|(_, next)| *next)
                .collect();
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{p}: {seen:?}");
        }
    }

    #[test]
    fn a_fenced_partition_is_left_out_of_the_store_and_of_the_checkpoints() {
        let (ledger, store) = recorded();
        let batch = handed(&ledger, &[(0, 10), (1, 10)]);
        ledger.note_checkpoints(batch.id, vec![checkpoint(0), checkpoint(1)]);
        ledger.finish(BatchPersisted {
            fenced: vec![1],
            ..batch
        });
        assert_eq!(store.calls(), vec![vec![(0, 10)]]);
        let durable: Vec<i32> = ledger
            .take_durable_checkpoints()
            .iter()
            .map(|c| c.partition)
            .collect();
        assert_eq!(durable, vec![0]);
        assert!(ledger.take_durable_checkpoints().is_empty(), "taken once");
    }

    #[test]
    fn a_poisoned_partition_is_never_stored_again() {
        let (ledger, store) = recorded();
        ledger.poison(2);
        let a = handed(&ledger, &[(2, 10), (3, 10)]);
        ledger.finish(a);
        let b = handed(&ledger, &[(2, 20)]);
        ledger.finish(b);
        assert_eq!(store.calls(), vec![vec![(3, 10)], vec![]]);
    }

    #[test]
    fn nothing_is_stored_past_an_abandoned_batch_or_once_the_store_is_gone() {
        let (ledger, store) = recorded();
        let gap = ledger.begin();
        ledger.abandon(gap);
        let later = handed(&ledger, &[(0, 10)]);
        ledger.finish(later);
        assert!(store.calls().is_empty());

        let (ledger, store) = recorded();
        drop(store);
        let batch = handed(&ledger, &[(0, 10)]);
        ledger.finish(batch);
        assert_eq!(ledger.in_flight(), 0, "finished all the same");
    }

    fn persisted(id: BatchId) -> BatchPersisted {
        BatchPersisted {
            id,
            parts: 1,
            positions: BatchPositions::default(),
            fenced: Vec::new(),
            stored: 0,
            duplicates: 0,
            rejected: 0,
        }
    }

    #[test]
    fn batches_settle_whatever_order_they_finish_in() {
        let ledger = OffsetLedger::new(crate::telemetry::discard());
        let a = ledger.begin();
        ledger.handed_on(a);
        let b = ledger.begin();
        ledger.handed_on(b);
        assert_eq!(ledger.in_flight(), 2);
        ledger.finish(persisted(b));
        assert_eq!(ledger.in_flight(), 1);
        assert!(!ledger.wait_settled(Duration::from_millis(10)));
        ledger.finish(persisted(a));
        assert!(ledger.wait_settled(Duration::ZERO));
        assert_eq!(ledger.lock().next_to_store, 3);
    }

    #[test]
    fn a_batch_still_being_handed_on_is_not_waited_for() {
        let ledger = OffsetLedger::new(crate::telemetry::discard());
        let _ = ledger.begin();
        assert_eq!(ledger.in_flight(), 0);
        assert!(ledger.wait_settled(Duration::ZERO));
    }

    #[test]
    fn a_waiter_wakes_when_the_last_batch_finishes_or_the_ledger_closes() {
        let ledger = Arc::new(OffsetLedger::new(crate::telemetry::discard()));
        let id = ledger.begin();
        ledger.handed_on(id);
        let waiter = {
            let ledger = ledger.clone();
            std::thread::spawn(move || ledger.wait_settled(Duration::from_secs(30)))
        };
        ledger.finish(persisted(id));
        assert!(waiter.join().unwrap());

        let id = ledger.begin();
        ledger.handed_on(id);
        let waiter = {
            let ledger = ledger.clone();
            std::thread::spawn(move || ledger.wait_settled(Duration::from_secs(30)))
        };
        ledger.close();
        assert!(!waiter.join().unwrap());
    }

    #[test]
    fn a_batch_split_among_writers_finishes_with_its_last_part() {
        let ledger = OffsetLedger::new(crate::telemetry::discard());
        let id = ledger.begin();
        ledger.handed_on(id);
        let part = || BatchPersisted {
            parts: 3,
            ..persisted(id)
        };
        ledger.finish(part());
        ledger.finish(part());
        assert_eq!(
            ledger.in_flight(),
            1,
            "two of three parts are not the batch"
        );
        ledger.finish(part());
        assert_eq!(ledger.in_flight(), 0);
        assert_eq!(ledger.lock().next_to_store, 2);
    }

    #[test]
    fn an_abandoned_batch_blocks_every_later_store() {
        let ledger = OffsetLedger::new(crate::telemetry::discard());
        let a = ledger.begin();
        ledger.abandon(a);
        let b = ledger.begin();
        ledger.handed_on(b);
        ledger.finish(persisted(b));
        assert_eq!(ledger.in_flight(), 0);
        assert_eq!(ledger.lock().next_to_store, 1, "nothing past the gap");
    }
}
