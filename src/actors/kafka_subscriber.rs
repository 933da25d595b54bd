//! KafkaSubscriber: reads the readings topic in a consumer group and hands batches to the
//! Validator; a batch's offsets are stored (through the [`OffsetLedger`]) once its rows
//! committed.
//!
//! # Delivery guarantee
//! At-least-once reading, exactly-once effect in PostgreSQL:
//! - `enable.auto.offset.store=false`: librdkafka commits (every second, on revoke and on close)
//!   only offsets that were stored, and a batch's offsets are stored only after the batch's
//!   transaction committed and its dead letters were acknowledged.
//! - Batches travel the pipeline in order through bounded mailboxes; they may finish out of
//!   order (dead letters are acknowledged concurrently), so the ledger stores a batch's offsets
//!   only when every earlier batch is finished: the stored offset of a partition only moves
//!   forward over a contiguous, finished range.
//!
//! # Backpressure and outages
//! When the validator's mailbox stays full for [`PAUSE_AFTER`] (the database is down, or a stage
//! is slow), the intake pauses every assigned partition and keeps polling the consumer while it
//! waits, so it stays in the group (`max.poll.interval.ms`) and rebalances are served; what it
//! holds is at most one batch. When the batch is taken, it resumes the partitions; librdkafka
//! fetches again from the position after the last record it delivered, so nothing is skipped.
//!
//! # Rebalances and shutdown
//! On a revocation (see [`crate::kafka::SubscriberContext`]) and on `Drain`, the batches in
//! flight are waited for, at most `shutdown.timeout_ms`, and the stored offsets are committed
//! synchronously.
//! - Anything not committed when the process dies, an actor restarts or a partition moves is
//!   read again, and the writer's `ON CONFLICT DO NOTHING` on each table's natural key makes the
//!   second write add nothing.
//!
//! Limits: a record stored but not yet committed is read twice (counted as a duplicate, no new
//! row). When any actor of the processor dies, the supervisor restarts the whole group with a
//! new consumer, which resumes from the committed offsets; records that sat in a lost mailbox
//! are read again that way (librdkafka would not deliver them again to the old consumer).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::SendError;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::TopicPartitionList;
use slog::{debug, info, o, warn, Logger};
use tokio::sync::watch;

use super::{Downstream, ExitGuard, Stage};
use crate::domain::record::{BatchPositions, Payload, SourceRecord};
use crate::health::{ActorState, Health};
use crate::kafka::{commit_stored_offsets, PipelineConsumer};
use crate::messages::{Drain, RecordsReceived};
use crate::metrics::Metrics;
use crate::offsets::OffsetLedger;
use crate::progress::PartitionProgress;
use crate::telemetry::LogLimiter;

const NAME: &str = Stage::KafkaSubscriber.as_str();

/// How often positions and high watermarks are compared (lag metric, caught-up flags).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// How long a high-watermark query may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the consumer may hold no partition before [`watch_progress`] asks the broker whether
/// the group still has it as a member (longer than any join seen: 0.4-3 s here, and a member
/// waiting in a long rebalance is listed by the broker meanwhile).
const ORPHAN_CHECK_AFTER: Duration = Duration::from_secs(60);
/// How often the question is asked again while the consumer still holds nothing. The consumer
/// counts as left out only when two answers this far apart list no member: a member whose
/// session expired in a broker outage may be rejoining when the broker answers again, and a join
/// takes seconds.
const ORPHAN_CHECK_EVERY: Duration = Duration::from_secs(30);
/// How long the group description may take.
const GROUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the intake waits for room in the validator's mailbox before it pauses its
/// partitions.
pub const PAUSE_AFTER: Duration = Duration::from_secs(1);
/// How long a drain waits in one go on the ledger (a blocking wait, kept short so the actor's
/// thread stays responsive).
const DRAIN_SLICE: Duration = Duration::from_millis(10);

/// How the subscriber cuts batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max_records: usize,
    pub max_wait: Duration,
}

pub struct KafkaSubscriber {
    consumer: Arc<PipelineConsumer>,
    topic: Arc<str>,
    /// The consumer group (`kafka.group_id`), for the orphan check of [`watch_progress`].
    group: Arc<str>,
    next: Downstream<Recipient<RecordsReceived>>,
    batching: Batching,
    ledger: Arc<OffsetLedger>,
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
        consumer: Arc<PipelineConsumer>,
        topic: &str,
        group: &str,
        next: Downstream<Recipient<RecordsReceived>>,
        batching: Batching,
        ledger: Arc<OffsetLedger>,
        progress: Arc<PartitionProgress>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        KafkaSubscriber {
            intake_blocked: Arc::new(AtomicBool::new(false)),
            progress,
            consumer,
            topic: Arc::from(topic),
            group: Arc::from(group),
            next,
            batching,
            ledger,
            stop_intake: watch::channel(false).0,
            metrics,
            health,
            log: log.new(o!("actor" => NAME)),
            exit,
        }
    }
}

/// An owned copy of a Kafka record, stamped with the time it was read and the generation of its
/// partition's assignment (read here, on the thread where the rebalance callbacks run, so a
/// record returned after an assignment always carries that assignment's generation).
fn own(
    msg: &BorrowedMessage<'_>,
    topic: &Arc<str>,
    read_at: DateTime<Utc>,
    progress: &PartitionProgress,
) -> SourceRecord {
    let topic = if msg.topic() == &**topic {
        topic.clone()
    } else {
        Arc::from(msg.topic())
    };
    SourceRecord {
        topic,
        partition: msg.partition(),
        offset: msg.offset(),
        payload: Payload::new(msg.key(), msg.payload()),
        timestamp: msg
            .timestamp()
            .to_millis()
            .and_then(DateTime::<Utc>::from_timestamp_millis),
        read_at,
        // 0, which no assignment has, for a partition not assigned: the detector drops it.
        generation: progress.generation(msg.partition()).unwrap_or(0),
    }
}

/// Adds an owned copy of `msg`, read at `read_at`, to `records` and notes its delay.
fn take(
    me: &Intake,
    msg: &BorrowedMessage<'_>,
    read_at: DateTime<Utc>,
    records: &mut Vec<SourceRecord>,
) {
    let record = own(msg, &me.topic, read_at, &me.progress);
    if let Some(sent) = record.timestamp {
        let delay = (record.read_at - sent).num_microseconds().unwrap_or(0);
        me.metrics.record_delay.observe(delay.max(0) as f64 / 1e6);
    }
    records.push(record);
}

/// What the intake loop shares.
struct Intake {
    consumer: Arc<PipelineConsumer>,
    topic: Arc<str>,
    next: Downstream<Recipient<RecordsReceived>>,
    batching: Batching,
    ledger: Arc<OffsetLedger>,
    blocked: Arc<AtomicBool>,
    progress: Arc<PartitionProgress>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    errors: LogLimiter,
}

/// Reads records and hands them on in batches until asked to stop or the validator is gone.
async fn intake(mut me: Intake, mut stop: watch::Receiver<bool>) {
    // Records read while the partitions were paused, for the next batch.
    let mut carried: Vec<SourceRecord> = Vec::new();
    // One stream for the whole loop: rdkafka's `recv()` makes a stream per call, and each
    // registers and drops a waker slot under the mutex its queue callback wakes them through.
    let consumer = me.consumer.clone();
    let mut stream = consumer.stream();
    'outer: loop {
        let mut records = std::mem::take(&mut carried);
        // The batch's deadline: armed by its first record, one timer for the whole batch (a timer
        // set anew for every record cost 5% of the processor's time).
        let window = tokio::time::sleep(me.batching.max_wait);
        tokio::pin!(window);
        let mut armed = !records.is_empty();
        while records.len() < me.batching.max_records {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break 'outer;
                    }
                }
                _ = &mut window, if armed => break,
                received = stream.next() => match received {
                    Some(Ok(msg)) => {
                        // Whatever else librdkafka holds ready now is taken at once, without
                        // going round the select (whose futures cost more than a record) or
                        // reading the clock again: a backlog comes in bursts of a fetch.
                        let read_at = Utc::now();
                        take(&me, &msg, read_at, &mut records);
                        drop(msg);
                        while records.len() < me.batching.max_records {
                            match stream.next().now_or_never() {
                                Some(Some(Ok(msg))) => take(&me, &msg, read_at, &mut records),
                                Some(Some(Err(e))) => {
                                    report_consumer_error(&me.log, &mut me.errors, &me.health, &e);
                                }
                                Some(None) | None => break,
                            }
                        }
                        if !armed {
                            armed = true;
                            window.as_mut().reset(tokio::time::Instant::now() + me.batching.max_wait);
                        }
                    }
                    // librdkafka reports each error once, as an event, and reconnects by itself;
                    // waiting here would only let a backlog of stale errors pile up.
                    Some(Err(e)) => report_consumer_error(&me.log, &mut me.errors, &me.health, &e),
                    // A consumer's stream never ends.
                    None => break 'outer,
                },
            }
        }
        if records.is_empty() {
            continue;
        }
        me.health.kafka_answered();
        me.health.set_actor(NAME, ActorState::Running);
        let mut positions = BatchPositions::default();
        for r in &records {
            positions.include(&r.topic, r.partition, r.offset);
        }
        let n = records.len() as u64;
        let id = me.ledger.begin();
        me.metrics.mailbox_in(me.next.stage.as_str());
        me.blocked.store(true, Ordering::SeqCst);
        let batch = RecordsReceived {
            id,
            records,
            positions,
        };
        let handed = hand_on(&mut me, batch, &mut carried, &mut stop).await;
        me.blocked.store(false, Ordering::SeqCst);
        if let Handed::Yes = handed {
            me.ledger.handed_on(id);
        } else {
            // Never delivered: not in flight, and nothing after it is stored.
            me.ledger.abandon(id);
            me.metrics.mailbox_out(me.next.stage.as_str());
            if let Handed::Gone = handed {
                warn!(me.log, "validator is gone, intake stops");
            }
            break;
        }
        me.metrics.records_consumed.inc_by(n);
    }
    debug!(me.log, "intake stopped");
}

/// How a hand-over ended.
enum Handed {
    /// In the validator's mailbox.
    Yes,
    /// Stop was asked while waiting; the batch was dropped, never delivered.
    Stopped,
    /// The validator is gone.
    Gone,
}

/// Puts `batch` in the validator's mailbox, waiting while it is full (backpressure up to
/// Kafka). Past [`PAUSE_AFTER`] it pauses the assigned partitions and polls the consumer
/// meanwhile, so the consumer stays in its group and serves rebalances; a record that still
/// arrives (from a partition assigned meanwhile) goes to `carried` and its partition is paused
/// too. A stop asked meanwhile drops the batch undelivered, so a drain never waits for it.
async fn hand_on(
    me: &mut Intake,
    batch: RecordsReceived,
    carried: &mut Vec<SourceRecord>,
    stop: &mut watch::Receiver<bool>,
) -> Handed {
    let started = Instant::now();
    let mut batch = batch;
    let mut paused_since: Option<Instant> = None;
    // Every partition paused here: librdkafka keeps a partition paused across a rebalance, so
    // one revoked meanwhile and assigned again must be resumed too.
    let mut paused = TopicPartitionList::new();
    let handed = loop {
        batch = match me.next.to.try_send(batch) {
            Ok(()) => break Handed::Yes,
            Err(SendError::Closed(_)) => break Handed::Gone,
            Err(SendError::Full(batch)) => batch,
        };
        if paused_since.is_none() && started.elapsed() >= PAUSE_AFTER {
            paused_since = Some(Instant::now());
            let assigned = me.consumer.assignment().unwrap_or_default();
            pause(me, &assigned, &mut paused);
            info!(me.log, "validator busy, partitions paused";
                "partitions" => assigned.count(), "waited_ms" => PAUSE_AFTER.as_millis() as u64);
        }
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break Handed::Stopped;
                }
            }
            _ = tokio::time::sleep(super::HAND_OVER_RETRY) => {}
            received = me.consumer.recv(), if paused_since.is_some() => match received {
                Ok(msg) => {
                    let record = own(&msg, &me.topic, Utc::now(), &me.progress);
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(&record.topic, record.partition);
                    pause(me, &tpl, &mut paused);
                    carried.push(record);
                }
                Err(e) => report_consumer_error(&me.log, &mut me.errors, &me.health, &e),
            },
        }
    };
    if let Some(since) = paused_since {
        // What was paused, and whatever is assigned now (a rebalance may have come between).
        let mut resume = paused;
        add_missing(&mut resume, &me.consumer.assignment().unwrap_or_default());
        if let Err(e) = me.consumer.resume(&resume) {
            warn!(me.log, "cannot resume partitions"; "error" => %e);
        }
        info!(me.log, "partitions resumed"; "partitions" => resume.count(),
            "paused_ms" => since.elapsed().as_millis() as u64);
    }
    handed
}

/// Pauses `partitions` and notes them in `paused`.
fn pause(me: &Intake, partitions: &TopicPartitionList, paused: &mut TopicPartitionList) {
    if let Err(e) = me.consumer.pause(partitions) {
        warn!(me.log, "cannot pause partitions"; "error" => %e);
    }
    add_missing(paused, partitions);
}

/// Adds to `into` each partition of `from` it does not hold yet.
fn add_missing(into: &mut TopicPartitionList, from: &TopicPartitionList) {
    for e in from.elements() {
        if into.find_partition(e.topic(), e.partition()).is_none() {
            into.add_partition(e.topic(), e.partition());
        }
    }
}

/// Why [`watch_progress`] ended.
#[derive(Debug, PartialEq, Eq)]
enum Watch {
    /// Asked to stop.
    Stopped,
    /// The consumer has held no partition for [`ORPHAN_CHECK_AFTER`] and twice,
    /// [`ORPHAN_CHECK_EVERY`] apart, the broker listed no member of its group holding one: the
    /// consumer is not in the group, or the group assigns nothing to anyone, and it will not be
    /// assigned anything. With how long it has held nothing.
    Orphaned { unassigned: Duration },
}

/// Every [`PROGRESS_INTERVAL`] and at every assignment: per assigned partition, the lag (high
/// watermark minus position) for `heartbeat_consumer_lag`, and whether the partition is caught
/// up (position at the high watermark and the intake not held up by backpressure). A partition
/// from which nothing was read yet counts as caught up only when it is empty. A broker that
/// answers these queries also clears a backing-off state left by consumer errors, so an idle
/// topic does not keep the process unready after an outage.
///
/// Ends with [`Watch::Orphaned`] when the consumer is left out of its group: with the local
/// broker (tansu) a processor started during a freeze of the broker (SIGSTOP) waited for an
/// assignment for ever, reading nothing until it was restarted. A member that is merely idle
/// (more replicas than partitions) sees the others hold the partitions, so it is left alone.
#[allow(clippy::too_many_arguments)]
async fn watch_progress(
    consumer: Arc<PipelineConsumer>,
    topic: Arc<str>,
    group: Arc<str>,
    progress: Arc<PartitionProgress>,
    blocked: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Watch {
    // Partitions whose lag this processor reports; one that moves to another member loses its
    // series here rather than showing its last lag for ever.
    let mut reported: Vec<i32> = Vec::new();
    // Since when the consumer has held no partition, when the group was last asked about, and
    // how many answers in a row listed no member.
    let mut unassigned_since = Instant::now();
    let mut asked_at: Option<Instant> = None;
    let mut memberless = 0u32;
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Watch::Stopped;
                }
            }
            _ = tokio::time::sleep(PROGRESS_INTERVAL) => {}
            // A partition assigned gets its lag series now (SPEC section 6), not a round later.
            _ = progress.assignment_changed() => {}
        }
        let positions: Vec<(i32, Option<i64>)> = match consumer.position() {
            Ok(tpl) => tpl
                .elements_for_topic(&topic)
                .iter()
                .map(|e| (e.partition(), e.offset().to_raw().filter(|o| *o >= 0)))
                .collect(),
            Err(_) => continue,
        };
        for gone in reported
            .iter()
            .filter(|p| !positions.iter().any(|(q, _)| q == *p))
        {
            let _ = metrics
                .consumer_lag
                .remove_label_values(&[&*topic, gone.to_string().as_str()]);
        }
        reported = positions.iter().map(|(p, _)| *p).collect();
        // Once it has read something: the revocation commits it, and the local broker lists a
        // group only once it has committed offsets.
        if positions.iter().any(|(_, p)| p.unwrap_or(0) > 0) && crate::faults::leave_group_once() {
            consumer.unsubscribe();
        }
        if !positions.is_empty() {
            unassigned_since = Instant::now();
            asked_at = None;
            memberless = 0;
        } else if unassigned_since.elapsed() >= ORPHAN_CHECK_AFTER
            && asked_at.map_or(true, |at| at.elapsed() >= ORPHAN_CHECK_EVERY)
        {
            asked_at = Some(Instant::now());
            let (c, g) = (consumer.clone(), group.clone());
            let held = tokio::task::spawn_blocking(move || group_holds_partitions(&c, &g)).await;
            // Unknown (the broker did not answer) proves nothing either way: an outage is handled
            // as such.
            match held {
                Ok(Some(false)) => memberless += 1,
                Ok(Some(true)) => memberless = 0,
                _ => {}
            }
            if memberless >= 2 {
                return Watch::Orphaned {
                    unassigned: unassigned_since.elapsed(),
                };
            }
        }
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
            health.set_actor(NAME, ActorState::Running);
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

/// Whether any member the broker lists in `group` holds a partition (`false` when it lists no
/// member); `None` when it does not answer or does not list the group.
fn group_holds_partitions(consumer: &PipelineConsumer, group: &str) -> Option<bool> {
    let list = consumer.fetch_group_list(Some(group), GROUP_TIMEOUT).ok()?;
    // Not listed is no answer either: the local broker lists a group only once it has committed
    // offsets.
    let found = list.groups().iter().find(|g| g.name() == group)?;
    Some(
        found
            .members()
            .iter()
            .any(|m| m.assignment().map_or(true, assigns_a_partition)),
    )
}

/// Whether a member's assignment, in the consumer protocol's encoding (version: i16, then per
/// topic its name and its partitions: i32 count, i16 length and bytes, i32 count and i32 each),
/// names a partition. What does not parse counts as a partition: the check must never take a
/// working member for an empty one.
fn assigns_a_partition(bytes: &[u8]) -> bool {
    fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
        let (head, rest) = b.split_first_chunk::<N>()?;
        *b = rest;
        Some(*head)
    }
    let parse = |mut b: &[u8]| -> Option<bool> {
        take::<2>(&mut b)?;
        let topics = i32::from_be_bytes(take::<4>(&mut b)?);
        for _ in 0..topics.max(0) {
            let name = usize::try_from(i16::from_be_bytes(take::<2>(&mut b)?)).ok()?;
            b = b.get(name..)?;
            if i32::from_be_bytes(take::<4>(&mut b)?) > 0 {
                return Some(true);
            }
        }
        Some(false)
    };
    parse(bytes).unwrap_or(true)
}

fn report_consumer_error(log: &Logger, limiter: &mut LogLimiter, health: &Health, e: &KafkaError) {
    if let Some(suppressed) = limiter.admit() {
        warn!(log, "kafka consumer error, retrying"; "error" => %e, "suppressed" => suppressed);
    }
    health.set_actor(NAME, ActorState::BackingOff(format!("kafka: {e}")));
}

impl Actor for KafkaSubscriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Err(e) = self.consumer.subscribe(&[&self.topic]) {
            warn!(self.log, "cannot subscribe"; "topic" => &*self.topic, "error" => %e);
        }
        info!(self.log, "subscribed"; "topic" => &*self.topic,
            "batch_size" => self.batching.max_records,
            "flush_interval_ms" => self.batching.max_wait.as_millis() as u64);
        self.health.set_actor(NAME, ActorState::Running);
        actix::spawn(intake(
            Intake {
                consumer: self.consumer.clone(),
                topic: self.topic.clone(),
                next: self.next.clone(),
                batching: self.batching,
                ledger: self.ledger.clone(),
                blocked: self.intake_blocked.clone(),
                progress: self.progress.clone(),
                metrics: self.metrics.clone(),
                health: self.health.clone(),
                log: self.log.clone(),
                errors: LogLimiter::new(5, Duration::from_secs(60)),
            },
            self.stop_intake.subscribe(),
        ));
        let watch = watch_progress(
            self.consumer.clone(),
            self.topic.clone(),
            self.group.clone(),
            self.progress.clone(),
            self.intake_blocked.clone(),
            self.stop_intake.subscribe(),
            self.metrics.clone(),
            self.health.clone(),
        );
        ctx.spawn(watch.into_actor(self).map(|ended, act, ctx| {
            if let Watch::Orphaned { unassigned } = ended {
                // Stopping restarts the processor's group with a new consumer, which joins
                // afresh and resumes from the committed offsets.
                warn!(act.log, "this consumer holds no partition and no member of its group holds \
                    one: restarting with a new consumer"; "group" => &*act.group,
                    "unassigned_s" => unassigned.as_secs());
                ctx.stop();
            }
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.stop_intake.send(true);
        self.ledger.close();
        self.exit.stopped_cleanly();
    }
}

impl Handler<Drain> for KafkaSubscriber {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let _ = self.stop_intake.send(true);
        let ledger = self.ledger.clone();
        info!(self.log, "draining"; "batches_in_flight" => ledger.in_flight());
        Box::pin(
            async move {
                // Short blocking waits between yields: the caller bounds the whole drain.
                while !ledger.wait_settled(DRAIN_SLICE) {
                    tokio::task::yield_now().await;
                }
            }
            .into_actor(self)
            .map(|_, act, _| {
                // Every finished batch's offsets are stored in librdkafka by now.
                let consumer = act.consumer.clone();
                match commit_stored_offsets(&*consumer) {
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

#[cfg(test)]
mod tests {
    use super::assigns_a_partition;

    /// The consumer protocol's assignment: version, then topics with their partitions.
    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = 0i16.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (name, partitions) in topics {
            b.extend((name.len() as i16).to_be_bytes());
            b.extend(name.as_bytes());
            b.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // no user data
        b
    }

    #[test]
    fn an_assignment_names_a_partition_or_not_and_what_does_not_parse_counts_as_one() {
        assert!(assigns_a_partition(&assignment(&[("heartbeats", &[0, 2])])));
        assert!(assigns_a_partition(&assignment(&[
            ("a", &[]),
            ("heartbeats", &[1])
        ])));
        assert!(!assigns_a_partition(&assignment(&[])));
        assert!(!assigns_a_partition(&assignment(&[("heartbeats", &[])])));
        assert!(assigns_a_partition(&[0, 0, 0, 0, 0, 1, 0]), "truncated");
        assert!(assigns_a_partition(&[]), "empty bytes");
    }
}
