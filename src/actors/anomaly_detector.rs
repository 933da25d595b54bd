//! AnomalyDetector: classifies each reading and finds its anomalies per customer (thresholds,
//! spikes, deviation from the customer's baseline), keeps alert episodes, notices customers that
//! went silent, and hands everything to the DbWriters with the states it saves.
//!
//! Accepts `ReadingsValidated`, emits `Persist`. The decisions are the pure functions of
//! `domain::detector`; this actor keeps the per-customer state, feeds readings in partition
//! order, and makes sure that neither a duplicate nor a record read twice changes anything.
//!
//! # The guarantee (SPEC section 5)
//! After any mix of crashes, restarts, rebalances and outages, `anomalies` and `alerts` (but
//! `silent`) hold exactly what one clean run over the same records writes. A customer's state is
//! at all times exactly what observing its stored readings in partition order gives, because:
//! - **Ownership.** The detector observes only partitions its consumer holds, and claims each
//!   one in PostgreSQL (`detector_epochs`) when it is assigned. Every write carries the epochs
//!   and commits only while they are current, so an earlier owner (a member the partition was
//!   taken from, the previous incarnation of this process) can never overwrite what the new
//!   owner wrote; the claim waits until such a write has either committed or can no longer.
//! - **Generations.** Each assignment has a generation, stamped on every record as it is read.
//!   Records of an earlier assignment still in the mailboxes are dropped (their offsets are not
//!   stored): after a reassignment the consumer reads them again from the committed offset, and
//!   observing the old copy first would put them out of order.
//! - **Positions.** A state holds, per partition, the offset of the last reading it observed. A
//!   record at or before it (read again after a crash, replayed by a new consumer group, a day
//!   retention dropped) is stored if it is missing, but never observed again.
//! - **Duplicates.** A reading whose identity is stored or in flight (a bounded set of recent
//!   identities; one look-up per batch for the rest) adds no row and changes no state.
//! - **Checkpoints.** States are not saved with every reading (a row write per reading would
//!   cost as much as the reading). At most every `detector.checkpoint_interval_ms` (stretched
//!   while the changed states hold few readings, `periodic.rs`) each partition's
//!   changed states are saved with the current batch, in the transactions of their customers'
//!   writers, which also write the customers' readings in order. Once that batch and all before
//!   it have committed (the offset ledger tells), the checkpoint holds and is recorded
//!   (`detector_checkpoints`): every reading the saved states miss was stored at or after
//!   `replay_from`, PostgreSQL's clock read before the next batch was handed on. A new owner
//!   loads the states and replays exactly the stored readings each one misses.
//! - **Evictions** beyond `detector.max_resident_customers` save the state with the current batch
//!   and keep it in memory until that batch is stored, so a reading in between never loads an
//!   older saved row (`evict.rs`).
//! - **Silences** are saved with their state at once (no stored reading would replay them) and
//!   counted by the offset ledger like any batch, so a drain waits for them.
//!
//! The periodic work (claims and releases, silences, forgetting, checkpoints) runs at the start
//! and end of every batch. When no batch comes, it runs on a timer. (actix polls an actor's
//! timers only while its mailbox is empty, which under a backlog it never is.)
//!
//! # Layout
//! - this file: the actor, its state, and `detect` (a batch in, a `Persist` out)
//! - `alert_metrics.rs`: the alert counters and the open alerts gauge
//! - `claim.rs`: claiming and letting go of partitions (`detector_epochs`)
//! - `evict.rs`: the memory budget: evicting the least recently seen, loading them again
//! - `replay.rs`: loading a claimed partition's states and replaying what they miss
//! - `periodic.rs`: silences, forgetting, checkpoints, and the timer's batches
//! - `recent.rs`: the identities of recent readings, for spotting repeats in flight
//! - `shard.rs`: splitting a batch among the writers by customer

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{info, o, warn, Logger};
use uuid::Uuid;

mod alert_metrics;
mod claim;
mod evict;
mod periodic;
mod recent;
mod replay;
mod shard;

use claim::owner_name;
use recent::RecentIdentities;

use super::{forward_all_in_order, Downstream, ExitGuard, Stage, MAILBOX_CAPACITY};
use crate::config::{DatabaseSettings, Settings};
use crate::db::queries::stored_identities;
use crate::db::{self, DbError, PgPool};
use crate::domain::classification::classify;
use crate::domain::detector::{episode_events, AlertRow, EpisodeEvent};
use crate::domain::detector::{observe, CustomerRules, CustomerState, DetectorConfig};
use crate::domain::record::{
    Anomaly, BatchPositions, ClassifiedReading, CustomerSnapshot, PartitionCheckpoint,
    RejectedRecord, SourcedReading,
};
use crate::health::{ActorState, Health};
use crate::messages::{BatchId, Persist, ReadingsValidated};
use crate::metrics::Metrics;
use crate::offsets::OffsetLedger;
use crate::progress::PartitionProgress;
use crate::telemetry::LogLimiter;

const NAME: &str = Stage::AnomalyDetector.as_str();

/// How often the periodic work runs at most, and the idle timer's period.
const TICK: Duration = Duration::from_secs(1);
/// Identities remembered for spotting repeats before they are stored, at least; more than every
/// record that can be in flight between here and a commit.
const RECENT_IDENTITIES_MIN: usize = 200_000;
/// Batches the detector has seen that may not be committed yet: a writer's mailbox holds
/// `MAILBOX_CAPACITY` parts and the writer one more (what is committed, the look-up finds); with
/// more than twice the room. A remembered record costs some 60-90 bytes.
const BATCHES_IN_FLIGHT_BOUND: usize = 16;
/// Waits between attempts when PostgreSQL does not answer a look-up.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
type Identity = (Uuid, DateTime<Utc>);

/// A customer the detector is following.
struct Tracked {
    state: CustomerState,
    /// The partition of its latest reading.
    partition: i32,
    /// Processor wall-clock time of the last new reading (or of loading the state).
    last_consumed: Instant,
    /// Changed since it was last handed to a writer to save.
    dirty: bool,
    /// The batch that carried its last saved state (0: none yet): once that batch is stored, the
    /// saved row is this state, and it may leave memory (`evict.rs`).
    saved_in: BatchId,
}

impl Tracked {
    /// Boxed: the maps' slots stay a pointer wide, so growing a map of 100,000 customers moves
    /// (and holds twice, while it grows) 3 MiB instead of 21 MiB.
    fn new(state: CustomerState, partition: i32, now: Instant) -> Box<Self> {
        Box::new(Tracked {
            state,
            partition,
            last_consumed: now,
            dirty: false,
            saved_in: 0,
        })
    }

    /// The state of `customer` to save; it is no longer dirty.
    fn snapshot(&mut self, customer: &str) -> Option<CustomerSnapshot> {
        let state = serde_json::to_string(&self.state).ok()?;
        self.dirty = false;
        Some(CustomerSnapshot {
            customer_id: customer.to_owned(),
            partition: self.partition,
            state,
        })
    }

    /// Whether it may leave memory with nothing kept (forgotten): unchanged since its last save,
    /// and that save is stored (`OffsetLedger::stored_through`).
    fn settled(&self, stored_through: BatchId) -> bool {
        !self.dirty && self.saved_in <= stored_through
    }
}

/// A partition this detector holds.
#[derive(Debug, Clone)]
struct Owned {
    /// The assignment it was claimed for (`PartitionProgress::generation`).
    generation: u64,
    /// The ownership epoch every write of it is fenced with.
    epoch: i64,
    /// The last offset observed or passed over; `None` before the first.
    position: Option<i64>,
    /// When the next checkpoint may be taken (`detector.checkpoint_interval_ms` after the last).
    next_checkpoint: Instant,
    /// When it must be taken, however few readings the changed states hold
    /// ([`periodic::CHECKPOINT_STRETCH`] intervals after the last).
    checkpoint_deadline: Instant,
    /// Readings observed since the last checkpoint.
    observed: u64,
    /// Customers whose state changed (turned dirty) with a reading of this partition since the
    /// last checkpoint: counted as they change, so deciding a stretched checkpoint costs no scan
    /// of every customer (an estimate: an eviction's or a silence's save does not count down).
    changed: u64,
}

/// What the periodic work found to store.
#[derive(Default)]
struct Found {
    anomalies: Vec<Anomaly>,
    alerts: Vec<AlertRow>,
    events: Vec<EpisodeEvent>,
    states: Vec<CustomerSnapshot>,
    /// Checkpoints taken, valid once the batch they go with is stored.
    checkpoints: Vec<PartitionCheckpoint>,
}

impl Found {
    fn is_empty(&self) -> bool {
        self.anomalies.is_empty()
            && self.alerts.is_empty()
            && self.events.is_empty()
            && self.states.is_empty()
            && self.checkpoints.is_empty()
    }
}

pub struct AnomalyDetector {
    cfg: DetectorConfig,
    /// The customers with rules of their own (`alert_rules`), read at start and again every
    /// `alerts.rules_refresh_ms`; a customer without a row has the fleet bands, not muted.
    rules: std::collections::HashMap<String, CustomerRules>,
    rules_refresh: Duration,
    /// When `rules` was last read; `None` before the first read.
    rules_read_at: Option<Instant>,
    silence_after: Duration,
    forget_after: Duration,
    /// `detector.checkpoint_interval_ms`: how often each partition is checkpointed.
    checkpoint_every: Duration,
    /// Keyed by customer id. hashbrown's map: its hasher (foldhash, seeded per map) is several
    /// times faster than std's SipHash on these short keys and still seeded against crafted ids,
    /// and `entry_ref` copies a key only when it inserts it.
    customers: hashbrown::HashMap<String, Box<Tracked>>,
    /// `detector.max_resident_customers`: the most customers kept in `customers`.
    max_resident: usize,
    /// Customers evicted for the budget whose saving batch (`Tracked::saved_in`) may not be
    /// stored yet: their next reading takes them back from here, not from PostgreSQL
    /// (`evict.rs`).
    evicted: hashbrown::HashMap<String, Box<Tracked>>,
    /// The activated open episodes of customers out of memory (evicted or forgotten), for
    /// `heartbeat_alerts_open`; a customer leaves it when it is followed again.
    dormant_open: alert_metrics::DormantOpen,
    /// The partitions this detector holds.
    owned: BTreeMap<i32, Owned>,
    recent: RecentIdentities,
    pool: PgPool,
    database: DatabaseSettings,
    progress: Arc<PartitionProgress>,
    ledger: Arc<OffsetLedger>,
    owner: String,
    /// When the periodic work last ran.
    last_periodic: Instant,
    /// The writers; each batch is split among them by customer (`shard::shard`).
    writers: Vec<Rc<Recipient<Persist>>>,
    writers_stage: Stage,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    failure_log: LogLimiter,
    exit: ExitGuard,
}

impl AnomalyDetector {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        all: &Settings,
        batch_size: usize,
        pool: PgPool,
        database: DatabaseSettings,
        progress: Arc<PartitionProgress>,
        ledger: Arc<OffsetLedger>,
        writers: Downstream<Vec<Recipient<Persist>>>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        let settings = &all.detector;
        AnomalyDetector {
            cfg: DetectorConfig::from(all),
            rules: std::collections::HashMap::new(),
            rules_refresh: all.alerts.rules_refresh_ms,
            rules_read_at: None,
            silence_after: settings.silence_after_ms,
            forget_after: settings.forget_after_ms,
            checkpoint_every: settings.checkpoint_interval_ms,
            customers: hashbrown::HashMap::new(),
            max_resident: settings.max_resident_customers,
            evicted: hashbrown::HashMap::new(),
            dormant_open: alert_metrics::DormantOpen::new(),
            owned: BTreeMap::new(),
            recent: RecentIdentities::new(
                RECENT_IDENTITIES_MIN.max(BATCHES_IN_FLIGHT_BOUND * batch_size),
            ),
            pool,
            database,
            progress,
            ledger,
            owner: owner_name(),
            last_periodic: Instant::now(),
            writers: writers.to.into_iter().map(Rc::new).collect(),
            writers_stage: writers.stage,
            metrics,
            health,
            log: log.new(o!("actor" => NAME)),
            failure_log: LogLimiter::new(5, Duration::from_secs(60)),
            exit,
        }
    }

    /// Runs `f` with a connection until it succeeds, waiting between attempts. Blocks this
    /// actor's thread, like any diesel call: the pipeline waits for PostgreSQL as it must.
    fn with_db<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut diesel::PgConnection) -> Result<T, DbError>,
    ) -> T {
        let mut attempt = 0u32;
        loop {
            let result = db::checkout(&self.pool, &self.database).and_then(|mut c| f(&mut c));
            match result {
                Ok(v) => {
                    if attempt > 0 {
                        self.health.set_actor(NAME, ActorState::Running);
                    }
                    return v;
                }
                Err(e) => self.failed(what, &e, &mut attempt),
            }
        }
    }

    /// Reports a failed database call and waits before the next attempt.
    fn failed(&mut self, what: &str, e: &DbError, attempt: &mut u32) {
        if let Some(suppressed) = self.failure_log.admit() {
            warn!(self.log, "database call failed, will retry"; "what" => what,
                "error" => %e, "suppressed" => suppressed);
        }
        self.health
            .set_actor(NAME, ActorState::BackingOff(e.to_string()));
        std::thread::sleep(db::backoff(*attempt, RETRY_MIN, RETRY_MAX));
        *attempt = attempt.saturating_add(1);
    }

    /// The partitions held, with their epochs: what every write is fenced with.
    fn fence(&self) -> Vec<(i32, i64)> {
        self.owned.iter().map(|(p, o)| (*p, o.epoch)).collect()
    }

    /// The parts of `batch` for each writer.
    fn shard(&self, batch: Persist) -> Vec<(Rc<Recipient<Persist>>, Persist)> {
        shard::shard(batch, self.writers.len())
            .into_iter()
            .map(|(i, part)| (self.writers[i].clone(), part))
            .collect()
    }

    /// Checkpoints that have become durable, of partitions still held with the same epoch.
    fn durable_checkpoints(&self) -> Vec<PartitionCheckpoint> {
        let mut out = self.ledger.take_durable_checkpoints();
        out.retain(|c| {
            self.owned
                .get(&c.partition)
                .is_some_and(|o| o.epoch == c.epoch)
        });
        out
    }

    fn detect(&mut self, msg: ReadingsValidated) -> Persist {
        self.sync_assignment();
        let ReadingsValidated {
            id,
            readings,
            rejects,
            mut positions,
        } = msg;

        // 1. Only records of the current assignment of partitions held.
        let before = readings.len() + rejects.len();
        let owned = &self.owned;
        let current = |p: i32, g: u64| owned.get(&p).is_some_and(|o| o.generation == g);
        let readings: Vec<SourcedReading> = readings
            .into_iter()
            .filter(|r| current(r.partition, r.generation))
            .collect();
        let rejects: Vec<RejectedRecord> = rejects
            .into_iter()
            .filter(|r| current(r.partition, r.generation))
            .collect();
        let dropped = before - readings.len() - rejects.len();
        if dropped > 0 {
            keep_positions_of(&mut positions, &readings, &rejects);
            info!(self.log, "records of an earlier assignment dropped; they are read again";
                "batch" => id, "records" => dropped);
        }

        // 2. The saved states of customers seen for the first time (since start, or since they
        //    were forgotten or evicted).
        self.prune_evicted();
        self.load_unknown(
            readings.iter().map(|r| &r.reading.customer_id),
            Instant::now(),
        );

        // 3. Readings that could repeat a stored one: not later than the newest observed reading
        //    of their customer, and not seen recently. One look-up for all of them.
        let candidates: Vec<Identity> = readings
            .iter()
            .filter(|r| {
                let id = (r.reading.event_id, r.reading.recorded_at);
                let newest = self
                    .customers
                    .get(&r.reading.customer_id)
                    .and_then(|t| t.state.max_recorded_at);
                !self.recent.contains(&id) && newest.is_some_and(|m| r.reading.recorded_at <= m)
            })
            .map(|r| (r.reading.event_id, r.reading.recorded_at))
            .collect();
        let stored = if candidates.is_empty() {
            HashSet::new()
        } else {
            self.with_db("look up stored readings", |c| {
                stored_identities(c, &candidates)
            })
        };

        // 4. Observe the new readings in partition order, under rules at most
        //    `alerts.rules_refresh_ms` old.
        let now = Instant::now();
        self.refresh_rules(now);
        let mut anomalies = Vec::new();
        let mut alerts = Vec::new();
        let mut events = Vec::new();
        let mut out = Vec::with_capacity(readings.len());
        for r in readings {
            let id = (r.reading.event_id, r.reading.recorded_at);
            let (partition, offset) = (r.partition, r.offset);
            if let Some(o) = self.owned.get_mut(&partition) {
                o.position = Some(o.position.map_or(offset, |p| p.max(offset)));
            }
            let duplicate = self.recent.contains(&id) || stored.contains(&id);
            let tracked = self
                .customers
                .entry_ref(r.reading.customer_id.as_str())
                .or_insert_with(|| Tracked::new(CustomerState::default(), partition, now));
            // Read again (a crash before the commit, a new consumer group, a day retention
            // dropped): the state has been here. A later reading at a lower offset than the
            // state's can only be a readings topic created anew, and is observed.
            let seen = tracked.state.holds(partition, offset)
                && tracked
                    .state
                    .max_recorded_at
                    .is_some_and(|m| r.reading.recorded_at <= m);
            let class = if duplicate || seen {
                classify(r.reading.heart_rate, &self.cfg.bands)
            } else {
                self.recent.insert(id, partition);
                if let Some(o) = self.owned.get_mut(&partition) {
                    o.observed += 1;
                    o.changed += u64::from(!tracked.dirty);
                }
                tracked.partition = partition;
                tracked.last_consumed = now;
                tracked.dirty = true;
                let rules = self.rules.get(r.reading.customer_id.as_str());
                let before = alert_metrics::activated(&tracked.state);
                let observation = observe(&self.cfg, &mut tracked.state, &r.reading, rules);
                let (customer, rows) = (&r.reading.customer_id, &observation.alerts);
                alert_metrics::count_transitions(&self.metrics, customer, &before, rows);
                events.extend(episode_events(&before, rows));
                tracked.state.absorbed(partition, offset);
                anomalies.extend(observation.anomalies);
                alerts.extend(observation.alerts);
                observation.class
            };
            out.push(ClassifiedReading {
                reading: r.reading,
                class,
                partition,
                offset,
                known_duplicate: duplicate,
            });
        }
        for r in &rejects {
            if let Some(o) = self.owned.get_mut(&r.partition) {
                o.position = Some(o.position.map_or(r.offset, |p| p.max(r.offset)));
            }
        }

        // 5. Silences, forgetting and checkpoints, once a tick.
        let found = self.periodic(now);
        anomalies.extend(found.anomalies);
        alerts.extend(found.alerts);
        events.extend(found.events);
        self.ledger.note_checkpoints(id, found.checkpoints);

        // 6. Within the memory budget: the least recently seen customers saved and evicted.
        let mut states = found.states;
        self.note_saved(&states, id);
        self.evict(id, &mut states);
        self.count_saved(&states);
        Persist {
            id,
            readings: out,
            rejects,
            anomalies,
            alerts,
            events,
            states,
            positions,
            parts: 1,
            fence: self.fence(),
            checkpoints: self.durable_checkpoints(),
        }
    }
}

/// Keeps in `positions` only the partitions of `readings` and `rejects`, each at the offset after
/// its last kept record.
fn keep_positions_of(
    positions: &mut BatchPositions,
    readings: &[SourcedReading],
    rejects: &[RejectedRecord],
) {
    let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
    let offsets = readings
        .iter()
        .map(|r| (r.partition, r.offset))
        .chain(rejects.iter().map(|r| (r.partition, r.offset)));
    for (p, o) in offsets {
        let h = highest.entry(p).or_insert(o);
        *h = (*h).max(o);
    }
    positions.0.retain(|(_, p), next| match highest.get(p) {
        Some(o) => {
            *next = o + 1;
            true
        }
        None => false,
    });
}

impl Actor for AnomalyDetector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.health.set_actor(NAME, ActorState::Running);
        ctx.run_interval(TICK, |act, ctx| {
            if let Some(persist) = act.tick() {
                let sends = act.shard(persist);
                let metrics = act.metrics.clone();
                let writers_stage = act.writers_stage;
                // `wait`: nothing else runs until the silences are in the writers' mailboxes, so
                // they are stored before any later reading that ends them.
                ctx.wait(
                    async move { super::hand_over_all(sends, &metrics, writers_stage).await }
                        .into_actor(act),
                );
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.exit.stopped_cleanly();
    }
}

impl Handler<ReadingsValidated> for AnomalyDetector {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ReadingsValidated, _: &mut Self::Context) -> Self::Result {
        self.metrics.mailbox_out(NAME);
        crate::faults::maybe_panic(NAME);
        let out = self.detect(msg);
        let sends = self.shard(out);
        forward_all_in_order(sends, &self.metrics, self.writers_stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reading::Reading;

    #[test]
    fn positions_keep_only_what_was_kept() {
        let topic: Arc<str> = Arc::from("t");
        let mut positions = BatchPositions::default();
        for (p, o) in [(0, 10), (1, 20), (2, 30)] {
            positions.include(&topic, p, o);
        }
        let reading = |partition, offset| SourcedReading {
            reading: Reading {
                event_id: Uuid::nil(),
                customer_id: "C".into(),
                recorded_at: Utc::now(),
                heart_rate: 70,
                activity: None,
                device_id: None,
            },
            partition,
            offset,
            generation: 1,
        };
        keep_positions_of(&mut positions, &[reading(0, 4), reading(0, 7)], &[]);
        assert_eq!(
            positions.0.into_iter().collect::<Vec<_>>(),
            vec![((topic, 0), 8)]
        );
    }
}
