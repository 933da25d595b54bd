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
//! State is saved with every batch (`detector_state`, same transaction as the readings) and
//! loaded for a partition's customers when it is assigned (and for any customer the first time
//! it is seen), so baselines survive restarts and rebalances. The silence timer runs on
//! processor wall-clock time, only for caught-up partitions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{info, o, warn, Logger};
use uuid::Uuid;

use super::{forward_all_in_order, ExitGuard, LogLimiter, MAILBOX_CAPACITY};
use crate::config::{self, DatabaseSettings, DetectorSettings};
use crate::db::queries::{load_states, stored_identities};
use crate::db::{self, DbError, PgPool};
use crate::domain::classification::classify;
use crate::domain::detector::{observe, silence, CustomerState, DetectorConfig};
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
/// Batches that can be in flight after the detector: its mailbox and the writer's hold
/// `MAILBOX_CAPACITY` each, the writer one more, the output publisher up to 8; with room to spare.
const BATCHES_IN_FLIGHT_BOUND: usize = 40;
/// Waits between attempts when PostgreSQL does not answer a look-up.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

type Identity = (Uuid, DateTime<Utc>);

/// A bounded set that forgets its oldest entries first.
struct RecentIdentities {
    order: VecDeque<Identity>,
    set: HashSet<Identity>,
    capacity: usize,
}

impl RecentIdentities {
    fn new(capacity: usize) -> Self {
        RecentIdentities {
            order: VecDeque::new(),
            set: HashSet::new(),
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
}

pub struct AnomalyDetector {
    cfg: DetectorConfig,
    silence_after: Duration,
    forget_after: Duration,
    customers: HashMap<String, Tracked>,
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
            customers: HashMap::new(),
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

    /// Starts following the customers whose saved state `rows` holds (unless already followed).
    fn adopt(&mut self, rows: Vec<crate::db::models::SavedState>) {
        let now = Instant::now();
        for row in rows {
            if self.customers.contains_key(&row.customer_id) {
                continue;
            }
            match serde_json::from_value::<CustomerState>(row.state) {
                Ok(state) => {
                    self.customers.insert(
                        row.customer_id,
                        Tracked {
                            state,
                            partition: row.kafka_partition,
                            last_consumed: now,
                        },
                    );
                }
                Err(e) => warn!(self.log, "saved detector state unreadable, starting cold";
                    "customer_id" => &row.customer_id, "error" => %e),
            }
        }
    }

    fn snapshot(&self, customer: &str) -> Option<CustomerSnapshot> {
        let t = self.customers.get(customer)?;
        Some(CustomerSnapshot {
            customer_id: customer.to_owned(),
            partition: t.partition,
            state: serde_json::to_value(&t.state).ok()?,
        })
    }

    /// The parts of `batch` for each writer.
    fn shard(&self, batch: Persist) -> Vec<(Rc<Recipient<Persist>>, Persist)> {
        super::db_writer::shard(batch, self.writers.len())
            .into_iter()
            .map(|(i, part)| (self.writers[i].clone(), part))
            .collect()
    }

    fn detect(&mut self, msg: ReadingsValidated) -> Persist {
        // 1. Customers seen for the first time since start: their saved state, if any.
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
        let mut changed: Vec<String> = Vec::new();
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
                    .entry(r.reading.customer_id.clone())
                    .or_insert_with(|| Tracked {
                        state: CustomerState::default(),
                        partition: r.partition,
                        last_consumed: now,
                    });
                tracked.partition = r.partition;
                tracked.last_consumed = now;
                let observation = observe(&self.cfg, &mut tracked.state, &r.reading);
                anomalies.extend(observation.anomalies);
                alerts.extend(observation.alerts);
                changed.push(r.reading.customer_id.clone());
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
        changed.sort_unstable();
        changed.dedup();
        let states = changed.iter().filter_map(|c| self.snapshot(c)).collect();
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
        if !assigned.is_empty() {
            let forget_ms = self.forget_after.as_millis() as i64;
            let rows = self.with_db("load detector state of assigned partitions", |c| {
                crate::db::queries::load_partition_states(c, &assigned, forget_ms)
            });
            let before = self.customers.len();
            self.adopt(rows);
            info!(self.log, "detector state loaded"; "partitions" => format!("{assigned:?}"),
                "customers" => self.customers.len() - before);
        }
        // Customers of partitions this processor no longer owns belong to another member now;
        // its state (saved with every batch) is the one that counts.
        let progress = self.progress.clone();
        let owned: HashSet<i32> = progress.assigned_partitions().into_iter().collect();
        self.customers.retain(|_, t| owned.contains(&t.partition));

        let mut anomalies = Vec::new();
        let mut alerts = Vec::new();
        let mut changed = Vec::new();
        let (silence_after, forget_after) = (self.silence_after, self.forget_after);
        self.customers.retain(|customer, t| {
            let quiet = t.last_consumed.elapsed();
            if quiet >= forget_after {
                return false;
            }
            if quiet >= silence_after && progress.is_caught_up(t.partition) {
                if let Some((anomaly, alert)) = silence(&mut t.state, customer) {
                    anomalies.push(anomaly);
                    alerts.push(alert);
                    changed.push(customer.clone());
                }
            }
            true
        });
        if anomalies.is_empty() {
            return None;
        }
        let states = changed.iter().filter_map(|c| self.snapshot(c)).collect();
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
