//! KafkaSubscriber: reads the readings topic in a consumer group and hands batches to the
//! Validator; stores a batch's offsets once the DbWriter says its rows committed.
//!
//! # Delivery guarantee
//! At-least-once reading, exactly-once effect in PostgreSQL:
//! - `enable.auto.offset.store=false`: librdkafka commits (every second, on revoke and on close)
//!   only offsets this actor stored, and it stores a batch's offsets only on `BatchPersisted`,
//!   which comes after the batch's transaction committed and its dead letters were acknowledged.
//! - Batches travel the pipeline in order through bounded mailboxes; answers may come back out
//!   of order (dead letters are acknowledged concurrently), so they wait until every earlier
//!   batch is finished: the stored offset of a partition only moves forward over a contiguous,
//!   finished range.
//! - Anything not committed when the process dies, an actor restarts or a partition moves is
//!   read again, and the writer's `ON CONFLICT DO NOTHING` on each table's natural key makes the
//!   second write add nothing.
//!
//! Limits: a record stored but not yet committed is read twice (counted as a duplicate, no new
//! row). When any actor of the processor dies, the supervisor restarts the whole group with a
//! new consumer, which resumes from the committed offsets; records that sat in a lost mailbox
//! are read again that way (librdkafka would not deliver them again to the old consumer).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use slog::{debug, info, o, warn, Logger};
use tokio::sync::watch;

use super::{ExitGuard, LogLimiter};
use crate::domain::record::{BatchPositions, SourceRecord};
use crate::health::{ActorState, Health};
use crate::kafka::SubscriberContext;
use crate::messages::{BatchId, BatchPersisted, Drain, RecordsReceived};
use crate::metrics::Metrics;
use crate::progress::PartitionProgress;

pub const NAME: &str = "kafka_subscriber";

/// Pause after a consumer error before reading again, so a broker outage is not a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(500);
/// How often positions and high watermarks are compared (lag metric, caught-up flags).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// How long a high-watermark query may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a drain checks whether every batch in flight is stored.
const DRAIN_POLL: Duration = Duration::from_millis(10);

pub type LoggingConsumer = StreamConsumer<SubscriberContext>;

/// How the subscriber cuts batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max_records: usize,
    pub max_wait: Duration,
}

pub struct KafkaSubscriber {
    consumer: Arc<LoggingConsumer>,
    topic: Arc<str>,
    next: Recipient<RecordsReceived>,
    batching: Batching,
    /// Batches handed on and not yet finished.
    in_flight: Arc<AtomicUsize>,
    /// Batches finished ahead of an earlier one (dead letters are acknowledged concurrently);
    /// their offsets wait here until every earlier batch is finished too.
    finished: BTreeMap<BatchId, BatchPositions>,
    /// The batch whose offsets are stored next; ids start at 1 in the intake loop.
    next_to_store: BatchId,
    /// `true` asks the intake loop to stop reading.
    stop_intake: watch::Sender<bool>,
    /// `true` while the intake waits for room in the validator's mailbox (backpressure).
    intake_blocked: Arc<AtomicBool>,
    progress: Arc<PartitionProgress>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    exit: ExitGuard,
}

impl KafkaSubscriber {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        consumer: LoggingConsumer,
        topic: &str,
        next: Recipient<RecordsReceived>,
        batching: Batching,
        progress: Arc<PartitionProgress>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        KafkaSubscriber {
            intake_blocked: Arc::new(AtomicBool::new(false)),
            progress,
            consumer: Arc::new(consumer),
            topic: Arc::from(topic),
            next,
            batching,
            in_flight: Arc::new(AtomicUsize::new(0)),
            finished: BTreeMap::new(),
            next_to_store: 1,
            stop_intake: watch::channel(false).0,
            metrics,
            health,
            log: log.new(o!("actor" => NAME)),
            exit,
        }
    }

    fn store_offsets(&self, positions: &BatchPositions) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &positions.0 {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                warn!(self.log, "cannot note offset"; "error" => %e);
            }
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            // The partition moved to another member meanwhile: it reads the batch again from
            // the last commit and the writer deduplicates it.
            debug!(self.log, "offsets not stored"; "error" => %e);
        }
    }
}

/// An owned copy of a Kafka record, stamped with the time it was read.
fn own(msg: &BorrowedMessage<'_>, topic: &Arc<str>, read_at: DateTime<Utc>) -> SourceRecord {
    let topic = if msg.topic() == &**topic {
        topic.clone()
    } else {
        Arc::from(msg.topic())
    };
    SourceRecord {
        topic,
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        timestamp: msg
            .timestamp()
            .to_millis()
            .and_then(DateTime::<Utc>::from_timestamp_millis),
        read_at,
    }
}

/// Reads records and hands them on in batches until asked to stop or the validator is gone.
#[allow(clippy::too_many_arguments)]
async fn intake(
    consumer: Arc<LoggingConsumer>,
    topic: Arc<str>,
    next: Recipient<RecordsReceived>,
    batching: Batching,
    in_flight: Arc<AtomicUsize>,
    blocked: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
) {
    let mut errors = LogLimiter::new(5, Duration::from_secs(60));
    let mut id: BatchId = 0;
    'outer: loop {
        let mut records = Vec::new();
        let mut positions = BatchPositions::default();
        let mut deadline = None;
        while records.len() < batching.max_records {
            let wait = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break 'outer;
                    }
                }
                _ = wait => break,
                received = consumer.recv() => match received {
                    Ok(msg) => {
                        let record = own(&msg, &topic, Utc::now());
                        positions.include(&record.topic, record.partition, record.offset);
                        records.push(record);
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + batching.max_wait);
                    }
                    Err(e) => {
                        report_consumer_error(&log, &mut errors, &health, &e);
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                },
            }
        }
        if records.is_empty() {
            continue;
        }
        health.kafka_answered();
        id += 1;
        let n = records.len() as u64;
        in_flight.fetch_add(1, Ordering::SeqCst);
        metrics.mailbox_in(super::validator::NAME);
        // `send` waits while the validator's mailbox is full: backpressure up to Kafka.
        blocked.store(true, Ordering::SeqCst);
        let sent = next
            .send(RecordsReceived {
                id,
                records,
                positions,
            })
            .await;
        blocked.store(false, Ordering::SeqCst);
        if sent.is_err() {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            metrics.mailbox_out(super::validator::NAME);
            warn!(log, "validator is gone, intake stops");
            break;
        }
        metrics.records_consumed.inc_by(n);
    }
    debug!(log, "intake stopped");
}

/// Every [`PROGRESS_INTERVAL`]: per assigned partition, the lag (high watermark minus position)
/// for `heartbeat_consumer_lag`, and whether the partition is caught up (position at the high
/// watermark and the intake not held up by backpressure). A partition from which nothing was
/// read yet counts as caught up only when it is empty.
async fn watch_progress(
    consumer: Arc<LoggingConsumer>,
    topic: Arc<str>,
    progress: Arc<PartitionProgress>,
    blocked: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            _ = tokio::time::sleep(PROGRESS_INTERVAL) => {}
        }
        let positions: Vec<(i32, Option<i64>)> = match consumer.position() {
            Ok(tpl) => tpl
                .elements_for_topic(&topic)
                .iter()
                .map(|e| (e.partition(), e.offset().to_raw().filter(|o| *o >= 0)))
                .collect(),
            Err(_) => continue,
        };
        for (partition, position) in positions {
            let (c, t) = (consumer.clone(), topic.clone());
            let watermarks = tokio::task::spawn_blocking(move || {
                c.fetch_watermarks(&t, partition, WATERMARK_TIMEOUT)
            })
            .await;
            let Ok(Ok((low, high))) = watermarks else {
                progress.set_caught_up(partition, false);
                continue;
            };
            let caught_up = match position {
                Some(pos) => pos >= high,
                None => low >= high,
            };
            let lag = high - position.unwrap_or(low);
            metrics
                .consumer_lag
                .with_label_values(&[&*topic, partition.to_string().as_str()])
                .set(lag.max(0));
            progress.set_caught_up(partition, caught_up && !blocked.load(Ordering::SeqCst));
        }
    }
}

fn report_consumer_error(log: &Logger, limiter: &mut LogLimiter, health: &Health, e: &KafkaError) {
    if let Some(suppressed) = limiter.admit() {
        warn!(log, "kafka consumer error, retrying"; "error" => %e, "suppressed" => suppressed);
    }
    health.set_actor(NAME, ActorState::BackingOff(format!("kafka: {e}")));
}

impl Actor for KafkaSubscriber {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        if let Err(e) = self.consumer.subscribe(&[&self.topic]) {
            warn!(self.log, "cannot subscribe"; "topic" => &*self.topic, "error" => %e);
        }
        info!(self.log, "subscribed"; "topic" => &*self.topic,
            "batch_size" => self.batching.max_records,
            "flush_interval_ms" => self.batching.max_wait.as_millis() as u64);
        self.health.set_actor(NAME, ActorState::Running);
        actix::spawn(intake(
            self.consumer.clone(),
            self.topic.clone(),
            self.next.clone(),
            self.batching,
            self.in_flight.clone(),
            self.intake_blocked.clone(),
            self.stop_intake.subscribe(),
            self.metrics.clone(),
            self.health.clone(),
            self.log.clone(),
        ));
        actix::spawn(watch_progress(
            self.consumer.clone(),
            self.topic.clone(),
            self.progress.clone(),
            self.intake_blocked.clone(),
            self.stop_intake.subscribe(),
            self.metrics.clone(),
        ));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.stop_intake.send(true);
        self.exit.stopped_cleanly();
    }
}

impl Handler<BatchPersisted> for KafkaSubscriber {
    type Result = ();

    fn handle(&mut self, msg: BatchPersisted, _: &mut Self::Context) {
        self.metrics.mailbox_out(NAME);
        self.finished.insert(msg.id, msg.positions);
        // Offsets move forward over a contiguous finished range only.
        while let Some(positions) = self.finished.remove(&self.next_to_store) {
            self.store_offsets(&positions);
            self.next_to_store += 1;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        // The consumer answered recently enough to deliver this batch; keep readiness fresh.
        self.health.set_actor(NAME, ActorState::Running);
        debug!(self.log, "batch stored"; "batch" => msg.id, "stored" => msg.stored,
            "duplicates" => msg.duplicates, "rejected" => msg.rejected);
    }
}

impl Handler<Drain> for KafkaSubscriber {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let _ = self.stop_intake.send(true);
        let in_flight = self.in_flight.clone();
        info!(self.log, "draining"; "batches_in_flight" => in_flight.load(Ordering::SeqCst));
        Box::pin(
            async move {
                while in_flight.load(Ordering::SeqCst) > 0 {
                    tokio::time::sleep(DRAIN_POLL).await;
                }
            }
            .into_actor(self)
            .map(|_, act, _| {
                // Batches' BatchPersisted may still be queued behind this future's polls; they
                // were handled (in_flight is 0), so every stored offset is in librdkafka now.
                let consumer = act.consumer.clone();
                match commit_now(&consumer) {
                    Ok(()) => {
                        info!(act.log, "offsets committed");
                        true
                    }
                    Err(e) => {
                        warn!(act.log, "final commit failed; uncommitted records will be read again";
                            "error" => %e);
                        false
                    }
                }
            }),
        )
    }
}

/// Commits the stored offsets synchronously. "No offset" means there was nothing new to commit.
fn commit_now(consumer: &LoggingConsumer) -> Result<(), KafkaError> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => Ok(()),
        Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) => Err(e),
    }
}
