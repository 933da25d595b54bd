//! AnomalyDetector: classifies each reading and finds its anomalies per customer (thresholds,
//! spikes, deviation from the customer's baseline), keeps alert episodes, notices customers that
//! went silent, and hands everything to the DbWriter with the state it leaves behind.
//!
//! Accepts `ReadingsValidated`, emits `Persist`. The decisions are the pure functions of
//! `domain::detector`; this actor keeps the per-customer state, feeds readings in partition
//! order, and makes sure a duplicate changes nothing:
//! - a reading is new for sure when it is later than anything stored for its customer
//!   (`max_recorded_at` in the saved state), or it was not seen recently and is not in
//!   `readings` (one look-up per batch, only for readings that could be repeats);
//! - recently seen identities (including batches still in flight to the writer) are kept in a
//!   bounded set, so a repeat is caught before its first copy has committed.
//!
//! State survives restarts and rebalances. A customer's state is saved (`detector_state`, in the
//! same transaction as its readings of that batch) the first time it is seen, then at most every
//! `detector.checkpoint_interval_ms`, and by the timer once that has passed without a new
//! reading; saving it with every reading would cost a row write per reading. It is loaded for a
//! partition's customers when the partition is assigned or first seen in a batch (and for any
//! other customer the first time it is seen), and the readings stored after it was saved (found by
//! the per-partition offsets the state holds) are replayed through the same pure `observe`, which
//! rebuilds exactly the state the previous owner had (SPEC section 5: "saved, or rebuilt from
//! stored readings"). The silence timer runs on processor wall-clock time, only for caught-up
//! partitions.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{info, o, warn, Logger};
use uuid::Uuid;

use super::{forward_all_in_order, ExitGuard, LogLimiter, MAILBOX_CAPACITY};
use crate::config::{self, DatabaseSettings, DetectorSettings};
use crate::db::models::SavedState;
use crate::db::queries::{load_partition_states, load_states, load_tails, stored_identities};
use crate::db::{self, DbError, PgPool};
use crate::domain::classification::classify;
use crate::domain::detector::{observe, silence, CustomerState, DetectorConfig};
use crate::domain::reading::Reading;
use crate::domain::record::{ClassifiedReading, CustomerSnapshot};
use crate::health::{ActorState, Health};
use crate::messages::{Persist, ReadingsValidated};
use crate::metrics::Metrics;
use crate::progress::PartitionProgress;

pub const NAME: &str = "anomaly_detector";

/// How often the silence timer looks at every customer.
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
/// How long after its due time a state save can take to commit (batches queued ahead of it,
/// retries while PostgreSQL is away); with the checkpoint interval, how far back in ingestion
/// time the readings a saved state misses can lie. Only bounds a scan: more costs a little time
/// on load, too little could miss readings.
const SAVE_SLACK: Duration = Duration::from_secs(60);

type Identity = (Uuid, DateTime<Utc>);

/// A bounded set that forgets its oldest entries first.
struct RecentIdentities {
    order: VecDeque<Identity>,
    set: hashbrown::HashSet<Identity>,
    capacity: usize,
}

impl RecentIdentities {
    fn new(capacity: usize) -> Self {
        RecentIdentities {
            order: VecDeque::new(),
            set: hashbrown::HashSet::new(),
            capacity,
        }
    }

    fn contains(&self, id: &Identity) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: Identity) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// A customer the detector is following.
struct Tracked {
    state: CustomerState,
    partition: i32,
    /// Processor wall-clock time of the last new reading (or of loading the state).
    last_consumed: Instant,
    /// When the state was last handed to a writer to save; `None`: save with the next batch.
    saved: Option<Instant>,
    /// Changed since it was last handed to a writer.
    dirty: bool,
}

impl Tracked {
    fn new(state: CustomerState, partition: i32, now: Instant, saved: Option<Instant>) -> Self {
        Tracked {
            state,
            partition,
            last_consumed: now,
            saved,
            dirty: false,
        }
    }
}

/// How often `customer`'s state is saved: between half the checkpoint interval and all of it, by
/// a hash of the id, so that customers first seen together do not all fall due together.
fn save_period(customer: &str, every: Duration) -> Duration {
    every - every.mul_f64((super::spread(customer) % 1024) as f64 / 2048.0)
}

/// `customer`'s state to save, if it changed since it was last saved and is due.
fn checkpoint(
    customer: &str,
    t: &mut Tracked,
    now: Instant,
    every: Duration,
) -> Option<CustomerSnapshot> {
    if !t.dirty {
        return None;
    }
    let due = t.saved.map_or(true, |at| {
        now.saturating_duration_since(at) >= save_period(customer, every)
    });
    if !due {
        return None;
    }
    let state = serde_json::to_value(&t.state).ok()?;
    t.dirty = false;
    t.saved = Some(now);
    Some(CustomerSnapshot {
        customer_id: customer.to_owned(),
        partition: t.partition,
        state,
    })
}

pub struct AnomalyDetector {
    cfg: DetectorConfig,
    silence_after: Duration,
    forget_after: Duration,
    /// `detector.checkpoint_interval_ms`: how often a customer's state is saved at most.
    checkpoint_every: Duration,
    /// Keyed by customer id. hashbrown's map: its hasher (foldhash, seeded per map) is several
    /// times faster than std's SipHash on these short keys and still seeded against crafted ids,
    /// and `entry_ref` copies a key only when it inserts it.
    customers: hashbrown::HashMap<String, Tracked>,
    /// Partitions whose customers' saved states have been loaded.
    loaded: HashSet<i32>,
    recent: RecentIdentities,
    pool: PgPool,
    database: DatabaseSettings,
    progress: Arc<PartitionProgress>,
    /// The writers; each batch is split among them by customer (`db_writer::shard`).
    writers: Vec<Rc<Recipient<Persist>>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    failure_log: LogLimiter,
    exit: ExitGuard,
}

impl AnomalyDetector {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: &DetectorSettings,
        batch_size: usize,
        pool: PgPool,
        database: DatabaseSettings,
        progress: Arc<PartitionProgress>,
        writers: Vec<Recipient<Persist>>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        AnomalyDetector {
            cfg: DetectorConfig::from_settings(settings),
            silence_after: config::millis(settings.silence_after_ms),
            forget_after: config::millis(settings.forget_after_ms),
            checkpoint_every: config::millis(settings.checkpoint_interval_ms),
            customers: hashbrown::HashMap::new(),
            loaded: HashSet::new(),
            recent: RecentIdentities::new(
                RECENT_IDENTITIES_MIN.max(BATCHES_IN_FLIGHT_BOUND * batch_size),
            ),
            pool,
            database,
            progress,
            writers: writers.into_iter().map(Rc::new).collect(),
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
                Err(e) => {
                    if let Some(suppressed) = self.failure_log.admit() {
                        warn!(self.log, "database look-up failed, will retry"; "what" => what,
                            "error" => %e, "suppressed" => suppressed);
                    }
                    self.health
                        .set_actor(NAME, ActorState::BackingOff(e.to_string()));
                    std::thread::sleep(db::backoff(attempt, RETRY_MIN, RETRY_MAX));
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// Starts following the customers whose saved state `rows` holds (unless already followed),
    /// then replays the stored readings their states miss.
    fn adopt(&mut self, rows: Vec<SavedState>) {
        let now = Instant::now();
        let mut adopted = HashSet::new();
        let mut partitions = BTreeSet::new();
        for row in rows {
            if self.customers.contains_key(&row.customer_id) {
                continue;
            }
            match serde_json::from_value::<CustomerState>(row.state) {
                Ok(state) => {
                    partitions.insert(row.kafka_partition);
                    adopted.insert(row.customer_id.clone());
                    let tracked = Tracked::new(state, row.kafka_partition, now, Some(now));
                    self.customers.insert(row.customer_id, tracked);
                }
                Err(e) => warn!(self.log, "saved detector state unreadable, starting cold";
                    "customer_id" => &row.customer_id, "error" => %e),
            }
        }
        if adopted.is_empty() {
            return;
        }
        let partitions: Vec<i32> = partitions.into_iter().collect();
        let window = (self.checkpoint_every + SAVE_SLACK).as_millis() as i64;
        let tail = self.with_db("load the readings stored since the saved state", |c| {
            load_tails(c, &partitions, window)
        });
        let mut replayed = 0u64;
        for r in tail {
            if !adopted.contains(&r.customer_id) {
                continue;
            }
            let Some(t) = self.customers.get_mut(&r.customer_id) else {
                continue;
            };
            if !t.state.misses(r.kafka_partition, r.kafka_offset) {
                continue;
            }
            let reading = Reading {
                event_id: r.event_id,
                customer_id: r.customer_id,
                recorded_at: r.recorded_at,
                heart_rate: r.heart_rate,
            };
            // Its anomalies and alert rows were stored with it: only the state matters here.
            observe(&self.cfg, &mut t.state, &reading);
            t.state.absorbed(r.kafka_partition, r.kafka_offset);
            t.partition = r.kafka_partition;
            t.dirty = true;
            t.saved = None;
            replayed += 1;
        }
        if replayed > 0 {
            info!(self.log, "detector state rebuilt from stored readings";
                "customers" => adopted.len(), "readings_replayed" => replayed);
        }
    }

    /// Loads the saved states of the customers of `partitions` not loaded yet (those active
    /// within `detector.forget_after_ms`).
    fn load_partitions(&mut self, partitions: impl IntoIterator<Item = i32>) {
        let fresh: Vec<i32> = partitions
            .into_iter()
            .filter(|p| self.loaded.insert(*p))
            .collect();
        if fresh.is_empty() {
            return;
        }
        let forget_ms = self.forget_after.as_millis() as i64;
        let rows = self.with_db("load detector state of assigned partitions", |c| {
            load_partition_states(c, &fresh, forget_ms)
        });
        let before = self.customers.len();
        self.adopt(rows);
        info!(self.log, "detector state loaded"; "partitions" => format!("{fresh:?}"),
            "customers" => self.customers.len() - before);
    }

    /// The parts of `batch` for each writer.
    fn shard(&self, batch: Persist) -> Vec<(Rc<Recipient<Persist>>, Persist)> {
        super::db_writer::shard(batch, self.writers.len())
            .into_iter()
            .map(|(i, part)| (self.writers[i].clone(), part))
            .collect()
    }

    fn detect(&mut self, msg: ReadingsValidated) -> Persist {
        // 1. The saved states of partitions seen for the first time, then of any other customer
        //    seen for the first time since start.
        self.load_partitions(msg.readings.iter().map(|r| r.partition));
        let unknown: Vec<String> = msg
            .readings
            .iter()
            .map(|r| &r.reading.customer_id)
            .filter(|c| !self.customers.contains_key(*c))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !unknown.is_empty() {
            let rows = self.with_db("load detector state", |c| load_states(c, &unknown));
            self.adopt(rows);
        }

        // 2. Readings that could repeat a stored one: not later than the newest stored reading of
        //    their customer, and not seen recently. One look-up for all of them.
        let candidates: Vec<Identity> = msg
            .readings
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

        // 3. Observe the new readings in partition order.
        let now = Instant::now();
        let mut anomalies = Vec::new();
        let mut alerts = Vec::new();
        let mut readings = Vec::with_capacity(msg.readings.len());
        for r in msg.readings {
            let id = (r.reading.event_id, r.reading.recorded_at);
            let duplicate = self.recent.contains(&id) || stored.contains(&id);
            let class = if duplicate {
                classify(r.reading.heart_rate, &self.cfg.bands)
            } else {
                self.recent.insert(id);
                let tracked = self
                    .customers
                    .entry_ref(r.reading.customer_id.as_str())
                    .or_insert_with(|| {
                        Tracked::new(CustomerState::default(), r.partition, now, None)
                    });
                tracked.partition = r.partition;
                tracked.last_consumed = now;
                tracked.dirty = true;
                let observation = observe(&self.cfg, &mut tracked.state, &r.reading);
                tracked.state.absorbed(r.partition, r.offset);
                anomalies.extend(observation.anomalies);
                alerts.extend(observation.alerts);
                observation.class
            };
            readings.push(ClassifiedReading {
                reading: r.reading,
                class,
                partition: r.partition,
                offset: r.offset,
                known_duplicate: duplicate,
            });
        }
        // The states the batch changed that are due: each at most once, as a save clears `dirty`.
        let every = self.checkpoint_every;
        let mut states = Vec::new();
        for r in readings.iter().filter(|r| !r.known_duplicate) {
            let customer = r.reading.customer_id.as_str();
            if let Some(t) = self.customers.get_mut(customer) {
                states.extend(checkpoint(customer, t, now, every));
            }
        }
        Persist {
            id: Some(msg.id),
            readings,
            rejects: msg.rejects,
            anomalies,
            alerts,
            states,
            positions: msg.positions,
            parts: 1,
        }
    }

    /// The timer: adopt newly assigned partitions' customers, drop those of revoked ones, report
    /// silences, forget long-quiet customers. Returns what must be stored, if anything.
    fn tick(&mut self) -> Option<Persist> {
        let assigned = self.progress.take_newly_assigned();
        self.load_partitions(assigned);
        // Customers of partitions this processor no longer owns belong to another member now,
        // which loads their saved state and replays what it misses.
        let progress = self.progress.clone();
        let owned: HashSet<i32> = progress.assigned_partitions().into_iter().collect();
        self.customers.retain(|_, t| owned.contains(&t.partition));
        self.loaded.retain(|p| owned.contains(p));

        let mut anomalies = Vec::new();
        let mut alerts = Vec::new();
        let mut states = Vec::new();
        let now = Instant::now();
        let (silence_after, forget_after, every) =
            (self.silence_after, self.forget_after, self.checkpoint_every);
        self.customers.retain(|customer, t| {
            let quiet = now.saturating_duration_since(t.last_consumed);
            if quiet >= forget_after {
                return false;
            }
            if quiet >= silence_after && progress.is_caught_up(t.partition) {
                if let Some((anomaly, alert)) = silence(&mut t.state, customer) {
                    anomalies.push(anomaly);
                    alerts.push(alert);
                    // A silence is saved at once: no stored reading would replay it.
                    t.dirty = true;
                    t.saved = None;
                }
            }
            // Changed and not saved for a checkpoint interval: save it now, so what a saved
            // state misses is always the last few seconds of readings.
            states.extend(checkpoint(customer, t, now, every));
            true
        });
        if anomalies.is_empty() && states.is_empty() {
            return None;
        }
        Some(Persist {
            id: None,
            readings: Vec::new(),
            rejects: Vec::new(),
            anomalies,
            alerts,
            states,
            positions: Default::default(),
            parts: 1,
        })
    }
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
                // `wait`: nothing else runs until the silences are in the writers' mailboxes, so
                // they are stored before any later reading that ends them.
                ctx.wait(
                    async move {
                        super::hand_over_all(sends, &metrics, super::db_writer::NAME).await
                    }
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
        forward_all_in_order(sends, &self.metrics, super::db_writer::NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_periods_are_spread_over_the_second_half_of_the_interval() {
        let every = Duration::from_secs(5);
        let periods: Vec<Duration> = (0..1000)
            .map(|i| save_period(&format!("CUST-{i:05}"), every))
            .collect();
        assert!(periods.iter().all(|p| *p > every / 2 && *p <= every));
        let early = periods.iter().filter(|p| **p < every * 3 / 4).count();
        assert!(
            (400..600).contains(&early),
            "{early} of 1000 in the first half"
        );
        assert_eq!(save_period("CUST-1", Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_state_is_saved_when_changed_and_due_only() {
        let every = Duration::from_secs(5);
        let now = Instant::now();
        let mut t = Tracked::new(CustomerState::default(), 3, now, None);
        assert!(checkpoint("C", &mut t, now, every).is_none(), "unchanged");
        t.dirty = true;
        let first = checkpoint("C", &mut t, now, every).expect("never saved: saved at once");
        assert_eq!(first.partition, 3);
        assert!(!t.dirty && t.saved == Some(now));
        t.dirty = true;
        assert!(
            checkpoint("C", &mut t, now + every / 4, every).is_none(),
            "not due yet"
        );
        assert!(checkpoint("C", &mut t, now + every, every).is_some(), "due");
        t.dirty = true;
        let later = now + every;
        assert!(
            checkpoint("C", &mut t, later, Duration::ZERO).is_some(),
            "an interval of 0 saves with every batch"
        );
    }

    #[test]
    fn recent_identities_forget_the_oldest_first() {
        let mut r = RecentIdentities::new(2);
        let t = Utc::now();
        let ids: Vec<Identity> = (0..3).map(|_| (Uuid::new_v4(), t)).collect();
        for id in &ids {
            r.insert(*id);
        }
        assert!(!r.contains(&ids[0]) && r.contains(&ids[1]) && r.contains(&ids[2]));
    }
}
