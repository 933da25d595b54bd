//! DbWriter: stores each batch (readings, anomalies, rejects) in one PostgreSQL transaction, then
//! reports it finished to the offset ledger, which may then store the batch's offsets.
//!
//! Accepts `Persist`, emits `PublishOutputs` (when the batch has dead letters or alerts, which
//! then report the batch finished once acknowledged). Writes are idempotent (`ON CONFLICT DO NOTHING` on
//! each table's natural key), so a batch read twice adds nothing. A failed write is never
//! dropped: the writer keeps the batch and retries with backoff (reporting not-ready meanwhile)
//! until it commits, so its offsets are not stored before its rows are. Transient errors
//! (PostgreSQL unreachable) are retried for as long as they last; an error waiting cannot cure
//! is retried [`FATAL_ATTEMPTS`] times, then the writer stops and the supervisor restarts the
//! processor (the batch is read again from the last commit). It runs on an arbiter of its own
//! because diesel blocks the thread while a query runs.
//!
//! Every transaction is fenced with the ownership epochs of the batch's partitions (see
//! `queries::persist_batch`). When some have a new owner, their rows are left out and the rest
//! is written; the ledger is told, so their offsets are not stored. If this processor still
//! believes it holds such a partition with that very epoch, someone claimed it under it: the
//! records of the fenced rows are lost to this incarnation, so its offsets of that partition are
//! never stored again and the writer stops, for the supervisor to restart the group, whose new
//! consumer reads them again.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::NaiveDate;
use slog::{error, info, o, warn, Logger};
use tokio::sync::Notify;

use super::{Downstream, ExitGuard, Stage, MAILBOX_CAPACITY};
use crate::config::DatabaseSettings;
use crate::db::queries::{ensure_day_partitions, persist_batch, utc_day, BatchOutcome, BatchRows};
use crate::db::{self, DbError, PgPool};
use crate::health::{ActorState, Health};
use crate::messages::{BatchPersisted, Persist, PublishOutputs};
use crate::metrics::Metrics;
use crate::offsets::OffsetLedger;
use crate::progress::PartitionProgress;
use crate::telemetry::LogLimiter;

const NAME: &str = Stage::DbWriter.as_str();

/// First wait after a failed write; doubles per failure up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two attempts, so the writer resumes within seconds of PostgreSQL
/// coming back.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// At most this many "write failed" lines per minute during an outage.
const FAILURE_LOG_BURST: u32 = 5;
/// Attempts in a row that fail with an error waiting cannot cure (`DbError::is_transient` is
/// false: a permission, a constraint, a broken function) before the writer gives the failure to
/// the supervisor, which restarts the processor with fresh connections (and, past its restart
/// intensity, exits 3 so a fresh process runs the migrations again). About 13 s of backoff.
const FATAL_ATTEMPTS: u32 = 10;

/// What the writer keeps between batches; shared with the retry future of the current batch.
struct Core {
    pool: PgPool,
    settings: DatabaseSettings,
    /// Days whose partition of `readings` is known to exist.
    known_days: HashSet<NaiveDate>,
    failure_log: LogLimiter,
}

impl Core {
    fn write(&mut self, msg: &Persist) -> Result<BatchOutcome, DbError> {
        if msg.is_empty() {
            // Nothing to write (a batch of records another stage dropped, a checkpoint to wait
            // for): no transaction, so nothing to fence.
            return Ok(BatchOutcome::default());
        }
        let mut conn = db::checkout(&self.pool, &self.settings)?;
        let days: BTreeSet<NaiveDate> = msg
            .readings
            .iter()
            .map(|r| utc_day(&r.reading.recorded_at))
            .filter(|d| !self.known_days.contains(d))
            .collect();
        if !days.is_empty() {
            ensure_day_partitions(&mut conn, &days)?;
            self.known_days.extend(days);
        }
        persist_batch(
            &mut conn,
            BatchRows {
                readings: &msg.readings,
                rejects: &msg.rejects,
                anomalies: &msg.anomalies,
                alerts: &msg.alerts,
                events: &msg.events,
                states: &msg.states,
                checkpoints: &msg.checkpoints,
                fence: &msg.fence,
            },
        )
    }
}

/// `msg` without the rows of `partitions`. A customer's anomalies and alert rows go with its
/// readings or its saved state, which say its partition; rows of a customer neither names are
/// left out too, so nothing of a fenced partition can be written.
fn without_partitions(msg: &mut Persist, partitions: &BTreeSet<i32>) {
    let mut of: HashMap<&str, i32> = HashMap::new();
    for r in &msg.readings {
        of.insert(&r.reading.customer_id, r.partition);
    }
    for s in &msg.states {
        of.insert(&s.customer_id, s.partition);
    }
    let keep = |customer: &str| of.get(customer).is_some_and(|p| !partitions.contains(p));
    let anomalies: Vec<_> = std::mem::take(&mut msg.anomalies)
        .into_iter()
        .filter(|a| keep(&a.customer_id))
        .collect();
    let alerts: Vec<_> = std::mem::take(&mut msg.alerts)
        .into_iter()
        .filter(|a| keep(&a.customer_id))
        .collect();
    let events: Vec<_> = std::mem::take(&mut msg.events)
        .into_iter()
        .filter(|e| keep(&e.episode.customer_id))
        .collect();
    drop(of);
    msg.anomalies = anomalies;
    msg.alerts = alerts;
    msg.events = events;
    msg.readings.retain(|r| !partitions.contains(&r.partition));
    msg.rejects.retain(|r| !partitions.contains(&r.partition));
    msg.states.retain(|s| !partitions.contains(&s.partition));
    msg.checkpoints
        .retain(|c| !partitions.contains(&c.partition));
    msg.fence.retain(|(p, _)| !partitions.contains(p));
}

pub struct DbWriter {
    /// Which writer this is, for readiness and logs: `db_writer`, or `db_writer#N` of several.
    key: String,
    core: Rc<RefCell<Core>>,
    done: Arc<OffsetLedger>,
    outputs: Downstream<Recipient<PublishOutputs>>,
    progress: Arc<PartitionProgress>,
    /// Told when a batch with alert episode events committed, so delivery need not wait for its
    /// next poll.
    events_written: Arc<Notify>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    exit: ExitGuard,
}

impl DbWriter {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        of: usize,
        pool: PgPool,
        settings: DatabaseSettings,
        done: Arc<OffsetLedger>,
        outputs: Downstream<Recipient<PublishOutputs>>,
        progress: Arc<PartitionProgress>,
        events_written: Arc<Notify>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        let key = if of > 1 {
            format!("{NAME}#{}", index + 1)
        } else {
            NAME.to_owned()
        };
        DbWriter {
            log: log.new(o!("actor" => key.clone())),
            key,
            core: Rc::new(RefCell::new(Core {
                pool,
                settings,
                known_days: HashSet::new(),
                failure_log: LogLimiter::new(FAILURE_LOG_BURST, Duration::from_secs(60)),
            })),
            done,
            outputs,
            progress,
            events_written,
            metrics,
            health,
            exit,
        }
    }
}

impl Actor for DbWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.health.set_actor(&self.key, ActorState::Running);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.exit.stopped_cleanly();
    }
}

impl Handler<Persist> for DbWriter {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Persist, _: &mut Self::Context) -> Self::Result {
        self.metrics.mailbox_out(NAME);
        crate::faults::maybe_panic(NAME);
        let core = self.core.clone();
        let done = self.done.clone();
        let outputs = self.outputs.clone();
        let progress = self.progress.clone();
        let events_written = self.events_written.clone();
        let metrics = self.metrics.clone();
        let health = self.health.clone();
        let key = self.key.clone();
        let log = self.log.clone();
        let mut msg = msg;
        // Atomic: one batch at a time, in order, and the mailbox waits while this one retries.
        AtomicResponse::new(Box::pin(
            async move {
                let mut attempt = 0u32;
                let mut fatal_in_a_row = 0u32;
                let mut failing_since: Option<Instant> = None;
                let mut fenced: BTreeSet<i32> = BTreeSet::new();
                let mut lost_under_us = false;
                let outcome = loop {
                    let started = Instant::now();
                    let result = core.borrow_mut().write(&msg);
                    match result {
                        Ok(outcome) => {
                            metrics
                                .db_batch_duration
                                .observe(started.elapsed().as_secs_f64());
                            break outcome;
                        }
                        Err(DbError::Fenced { partitions }) => {
                            for p in &partitions {
                                let epoch = msg.fence.iter().find(|(q, _)| q == p).map(|(_, e)| *e);
                                if epoch.is_some_and(|e| progress.claimed_from_under_us(*p, e)) {
                                    // Still ours as far as this processor knows: claimed under us.
                                    lost_under_us = true;
                                    done.poison(*p);
                                }
                            }
                            info!(log, "batch fenced out of partitions with a new owner; writing the rest";
                                "partitions" => format!("{partitions:?}"), "batch" => msg.id);
                            fenced.extend(partitions);
                            without_partitions(&mut msg, &fenced);
                        }
                        Err(e) => {
                            fatal_in_a_row = if e.is_transient() { 0 } else { fatal_in_a_row + 1 };
                            if fatal_in_a_row >= FATAL_ATTEMPTS {
                                error!(log, "batch write keeps failing with an error retrying cannot cure; handing it to the supervisor";
                                    "error" => %e, "batch" => msg.id, "attempts" => attempt + 1);
                                return Err(());
                            }
                            {
                                let mut core = core.borrow_mut();
                                // A partition may have been dropped under us: check again.
                                core.known_days.clear();
                                if let Some(suppressed) = core.failure_log.admit() {
                                    warn!(log, "batch write failed, will retry";
                                        "error" => %e, "transient" => e.is_transient(),
                                        "batch" => msg.id, "attempt" => attempt + 1,
                                        "suppressed" => suppressed);
                                }
                            }
                            health.set_actor(&key, ActorState::BackingOff(e.to_string()));
                            failing_since.get_or_insert_with(Instant::now);
                            let wait = db::backoff(attempt, RETRY_MIN, RETRY_MAX);
                            attempt = attempt.saturating_add(1);
                            tokio::time::sleep(wait).await;
                        }
                    }
                };
                health.db_answered();
                if !msg.events.is_empty() {
                    events_written.notify_one();
                }
                if let Some(since) = failing_since {
                    health.set_actor(&key, ActorState::Running);
                    info!(log, "batch write succeeded again";
                        "after_ms" => since.elapsed().as_millis() as u64, "attempts" => attempt + 1);
                }
                metrics.readings_stored.inc_by(outcome.stored);
                metrics.duplicates.inc_by(outcome.duplicates);
                for reject in msg.rejects.iter() {
                    metrics.rejects.with_label_values(&[reject.reason.as_str()]).inc();
                }
                for (kind, n) in &outcome.anomalies {
                    metrics.anomalies.with_label_values(&[kind.as_str()]).inc_by(*n);
                }
                let persisted = BatchPersisted {
                    id: msg.id,
                    parts: msg.parts,
                    positions: msg.positions,
                    fenced: fenced.into_iter().collect(),
                    stored: outcome.stored,
                    duplicates: outcome.duplicates,
                    rejected: outcome.rejected,
                };
                if msg.rejects.is_empty() && outcome.stored_anomalies.is_empty() {
                    done.finish(persisted);
                } else {
                    // Dead letters and anomaly records go out before the offsets may be
                    // stored; the publisher hands `persisted` to the ledger once they are
                    // acknowledged.
                    metrics.mailbox_in(outputs.stage.as_str());
                    let sent = outputs
                        .to
                        .send(PublishOutputs {
                            persisted: Some(persisted),
                            dead_letters: msg.rejects,
                            alerts: outcome.stored_anomalies,
                        })
                        .await;
                    if sent.is_err() {
                        metrics.mailbox_out(outputs.stage.as_str());
                    }
                }
                if lost_under_us {
                    error!(log, "a partition this processor holds was claimed by another; \
                        restarting so that its records are read again";
                        "batch" => msg.id);
                    return Err(());
                }
                Ok(())
            }
            .into_actor(self)
            .map(|written: Result<(), ()>, _, ctx: &mut Context<Self>| {
                if written.is_err() {
                    ctx.stop();
                }
            }),
        ))
    }
}
