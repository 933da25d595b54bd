//! OutputPublisher: publishes what a committed batch owes the output topics, then tells the
//! offset ledger the batch is done, so its offsets are stored only after its rows committed
//! *and* these records were acknowledged (SPEC section 5):
//! - each rejected record to the dead-letter topic, with its original key and value (cut to
//!   `validation.max_message_bytes`, header `error.truncated=true`) and headers saying why;
//! - each new anomaly to the anomalies topic (`kafka.topics.anomalies`), keyed by customer id, the value being the anomaly
//!   row as JSON with UTC RFC 3339 times.
//!
//! Accepts `PublishOutputs`, emits records. At-least-once on both topics. A batch read again
//! after a crash is dead-lettered again (consumers dedupe by the `source.*` headers). A record
//! the broker refuses is queued again with backoff, never dropped. Batches are acknowledged
//! concurrently (up to [`MAX_BATCHES_IN_FLIGHT`]), so the writer is not held up by broker round
//! trips; the offset ledger (`src/offsets.rs`, called with the batch's `BatchPersisted`, no
//! message) puts the finished batches back in order before it stores their offsets.
//!
//! Alerts go through the `alert_outbox` table: the writer commits a batch's row with its
//! anomalies and hands them here, and the row is deleted once they are acknowledged. A row
//! nobody hands over is found by the sweep: at start (every row, as a crash may have left
//! some) and then every [`SWEEP_INTERVAL`] for the life of the publisher (a row committed late by
//! a writer of the previous incarnation of this group, or by a replica that died after its
//! commit). A periodic sweep skips the batches this publisher holds (an in-flight set of
//! anomaly ids) and rows younger than [`OUTBOX_MIN_AGE`], which are some writer's batch on its
//! way to its publisher. So a row may go out twice: when the start-up sweep takes another
//! replica's live batch, when a batch waits longer than that for its publisher (a long broker
//! outage), or when two replicas' sweeps take one orphaned row while its first delivery is under
//! way (milliseconds, unless the broker is slow). Consumers dedupe by (event_id, recorded_at,
//! kind). The age rule, not `FOR UPDATE SKIP LOCKED`, keeps this rare: a row lock lasts only as
//! long as its transaction, which would then have to stay open (holding the publisher's one
//! connection) through the broker's acknowledgement, retries and outages included.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use hashbrown::HashSet;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use slog::{info, o, warn, Logger};

use super::{ExitGuard, Stage, MAILBOX_CAPACITY};
use crate::config::DatabaseSettings;
use crate::db::models::StoredAnomaly;
use crate::db::queries::{alerts_published, pending_alerts, PendingAlert};
use crate::db::{self, DbError, PgPool};
use crate::domain::record::RejectedRecord;
use crate::health::{ActorState, Health};
use crate::messages::PublishOutputs;
use crate::metrics::Metrics;
use crate::offsets::OffsetLedger;
use crate::telemetry::LogLimiter;

const NAME: &str = Stage::OutputPublisher.as_str();

/// Batches whose records may await acknowledgement at once; past it the writer waits.
const MAX_BATCHES_IN_FLIGHT: usize = 8;
/// Wait before queueing again when librdkafka's queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);
/// First wait before resending a refused record; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the mailbox checks whether a batch slot became free.
const SLOT_POLL: Duration = Duration::from_millis(2);
/// How often the alert outbox is swept for rows nobody delivers (and the start-up sweep tried
/// again while PostgreSQL is away): such a row waits at most this long past
/// [`OUTBOX_MIN_AGE`], for one small indexed query per interval.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// How old an outbox row's anomalies (`detected_at`, their writer's transaction start) must be
/// before a periodic sweep takes the row. A writer hands its batch over within a second or so
/// of that start, or seconds later while this publisher's slots are full; older than this, the
/// row is nobody's pending work.
const OUTBOX_MIN_AGE: Duration = Duration::from_secs(30);

/// One record for an output topic.
struct Outgoing {
    topic: Rc<str>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
}

/// The dead-letter form of `r`: value cut to `max_bytes` (with `error.truncated=true`), headers
/// as SPEC section 5 names them, numbers in decimal.
fn dead_letter(r: &RejectedRecord, max_bytes: usize, topic: &Rc<str>) -> Outgoing {
    let truncated = r.value.as_ref().is_some_and(|v| v.len() > max_bytes);
    let value = r
        .value
        .as_ref()
        .map(|v| v[..v.len().min(max_bytes)].to_vec());
    let partition = r.partition.to_string();
    let offset = r.offset.to_string();
    let mut headers = OwnedHeaders::new_with_capacity(6)
        .insert(Header {
            key: "error.reason",
            value: Some(r.reason.as_str()),
        })
        .insert(Header {
            key: "error.detail",
            value: Some(r.detail.as_str()),
        })
        .insert(Header {
            key: "source.topic",
            value: Some(&*r.topic),
        })
        .insert(Header {
            key: "source.partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "source.offset",
            value: Some(offset.as_str()),
        });
    if truncated {
        headers = headers.insert(Header {
            key: "error.truncated",
            value: Some("true"),
        });
    }
    Outgoing {
        topic: topic.clone(),
        key: r.key.clone(),
        value,
        headers: Some(headers),
    }
}

/// About the bytes of an alert's JSON (a deviation's details are the longest).
const ALERT_BYTES: usize = 320;

/// The alert record of a stored anomaly: keyed by customer id, the row as JSON.
fn alert(a: &StoredAnomaly, topic: &Rc<str>) -> Outgoing {
    Outgoing {
        topic: topic.clone(),
        key: Some(a.customer_id.as_bytes().to_vec()),
        value: Some({
            // About the size of an alert's JSON: one allocation, not a few as it grows.
            let mut json = Vec::with_capacity(ALERT_BYTES);
            serde_json::to_writer(&mut json, a).map_or_else(|_| Vec::new(), |()| json)
        }),
        headers: None,
    }
}

pub struct OutputPublisher {
    producer: FutureProducer,
    dead_letter_topic: Rc<str>,
    anomalies_topic: Rc<str>,
    max_bytes: usize,
    done: Arc<OffsetLedger>,
    pool: PgPool,
    database: DatabaseSettings,
    in_flight: Rc<Cell<usize>>,
    /// The outbox batches this publisher is delivering or still has to delete.
    held: Rc<RefCell<Held>>,
    /// The start-up sweep has read the outbox; later sweeps keep to [`OUTBOX_MIN_AGE`].
    swept: bool,
    /// A sweep's query is running (one at a time).
    sweeping: bool,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    exit: ExitGuard,
}

/// Where the publisher sends and how it reaches the outbox.
pub struct OutputTopics {
    pub dead_letter: String,
    pub anomalies: String,
    pub max_message_bytes: usize,
}

impl OutputPublisher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        producer: FutureProducer,
        topics: OutputTopics,
        done: Arc<OffsetLedger>,
        pool: PgPool,
        database: DatabaseSettings,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        OutputPublisher {
            producer,
            dead_letter_topic: Rc::from(topics.dead_letter.as_str()),
            anomalies_topic: Rc::from(topics.anomalies.as_str()),
            max_bytes: topics.max_message_bytes,
            done,
            pool,
            database,
            in_flight: Rc::new(Cell::new(0)),
            held: Rc::default(),
            swept: false,
            sweeping: false,
            metrics,
            health,
            log: log.new(o!("actor" => NAME)),
            exit,
        }
    }

    /// Reads the outbox rows nobody here delivers, off the actor's thread (diesel blocks), after
    /// deleting the rows delivered earlier whose delete failed; [`Self::publish_swept`]
    /// publishes what it found.
    fn sweep_outbox(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let startup = !self.swept;
        let min_age = if startup {
            Duration::ZERO
        } else {
            OUTBOX_MIN_AGE
        };
        let (held, uncleared) = {
            let mut held = self.held.borrow_mut();
            let ids: Vec<i64> = held.ids.iter().copied().collect();
            (ids, std::mem::take(&mut held.uncleared))
        };
        // Put back should the query's thread die, so they are neither lost nor held forever.
        let retry = uncleared.clone();
        let (pool, database) = (self.pool.clone(), self.database.clone());
        let query = tokio::task::spawn_blocking(move || {
            let mut conn = match db::checkout(&pool, &database) {
                Ok(conn) => conn,
                Err(e) => {
                    return Sweep {
                        cleared: false,
                        uncleared,
                        pending: Err(e),
                    }
                }
            };
            let cleared = uncleared.is_empty() || alerts_published(&mut conn, &uncleared).is_ok();
            let pending = pending_alerts(&mut conn, &held, min_age);
            Sweep {
                cleared,
                uncleared,
                pending,
            }
        });
        ctx.spawn(
            query
                .into_actor(self)
                .map(move |sweep, act, _| match sweep {
                    Ok(sweep) => act.publish_swept(sweep, startup),
                    Err(e) => {
                        act.sweeping = false;
                        act.held.borrow_mut().uncleared.extend(retry);
                        warn!(act.log, "the alert outbox sweep failed, will retry"; "error" => %e);
                    }
                }),
        );
    }

    /// Publishes what a sweep found, and deletes each row once its alerts are acknowledged.
    fn publish_swept(&mut self, sweep: Sweep, startup: bool) {
        self.sweeping = false;
        if sweep.cleared {
            self.held.borrow_mut().release(&sweep.uncleared);
        } else {
            self.held.borrow_mut().uncleared.extend(sweep.uncleared);
        }
        let rows = match sweep.pending {
            Ok(rows) => rows,
            Err(e) => {
                warn!(self.log, "cannot read the alert outbox, will retry"; "error" => %e);
                return;
            }
        };
        self.swept = true;
        // A batch a writer handed over while the query ran is already on its way.
        let rows: Vec<PendingAlert> = {
            let held = self.held.borrow();
            rows.into_iter()
                .filter(|r| !held.ids.contains(&r.batch))
                .collect()
        };
        if rows.is_empty() {
            return;
        }
        // The batches' first ids too: they name the rows to delete, even should a row's first
        // anomaly be missing.
        let batches: BTreeSet<i64> = rows.iter().map(|r| r.batch).collect();
        if startup {
            info!(self.log, "publishing alerts left over from a previous run";
                "count" => rows.len(), "batches" => batches.len());
        } else {
            info!(self.log, "publishing alerts another run left in the outbox";
                "count" => rows.len(), "batches" => batches.len());
        }
        let outgoing = rows
            .iter()
            .map(|r| alert(&r.anomaly, &self.anomalies_topic))
            .collect();
        let mut ids: Vec<i64> = rows.iter().map(|r| r.anomaly.id).collect();
        ids.extend(batches);
        self.held.borrow_mut().ids.extend(ids.iter().copied());
        // Not on the actor's context: a handler waiting for a batch slot must not pause it.
        actix::spawn(deliver_and_clear(
            self.producer.clone(),
            outgoing,
            ids,
            self.pool.clone(),
            self.database.clone(),
            self.held.clone(),
            self.health.clone(),
            self.log.clone(),
        ));
    }
}

/// The outbox rows this publisher holds, which its periodic sweeps leave alone: those it is
/// delivering (handed over by a writer, or found by a sweep) and those delivered whose delete
/// failed (the next sweep deletes them first, rather than publish them again).
#[derive(Default)]
struct Held {
    /// Every anomaly id of those batches: so a batch's first id, which names its row, is here
    /// whatever order its anomalies were handed over in.
    ids: HashSet<i64>,
    /// Delivered; their rows still to delete.
    uncleared: Vec<i64>,
}

impl Held {
    fn release(&mut self, ids: &[i64]) {
        for id in ids {
            self.ids.remove(id);
        }
    }
}

/// What a sweep's query found.
struct Sweep {
    /// Whether the rows of `uncleared` were deleted.
    cleared: bool,
    uncleared: Vec<i64>,
    pending: Result<Vec<PendingAlert>, DbError>,
}

/// Queues `record`, waiting while librdkafka's queue is full; `Err` for any other refusal.
async fn queue(producer: &FutureProducer, out: &Outgoing) -> Result<DeliveryFuture, KafkaError> {
    loop {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&out.topic);
        if let Some(h) = &out.headers {
            record = record.headers(h.clone());
        }
        if let Some(k) = &out.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &out.value {
            record = record.payload(v.as_slice());
        }
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(QUEUE_FULL_PAUSE).await
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Publishes every record until each is acknowledged.
async fn deliver_all(
    producer: &FutureProducer,
    records: &[Outgoing],
    health: &Health,
    log: &Logger,
) {
    let mut pending: Vec<usize> = (0..records.len()).collect();
    let mut attempt = 0u32;
    let mut failures = LogLimiter::new(5, Duration::from_secs(60));
    while !pending.is_empty() {
        let mut deliveries = Vec::with_capacity(pending.len());
        let mut failed = Vec::new();
        for &i in &pending {
            match queue(producer, &records[i]).await {
                Ok(d) => deliveries.push((i, d)),
                Err(e) => {
                    if let Some(s) = failures.admit() {
                        warn!(log, "cannot queue an output record, will retry";
                            "topic" => &*records[i].topic, "error" => %e, "suppressed" => s);
                    }
                    failed.push(i);
                }
            }
        }
        for (i, d) in deliveries {
            match d.await {
                Ok(Ok(_)) => health.kafka_answered(),
                Ok(Err((e, _))) => {
                    if let Some(s) = failures.admit() {
                        warn!(log, "output record not acknowledged, will retry";
                            "topic" => &*records[i].topic, "error" => %e, "suppressed" => s);
                    }
                    failed.push(i);
                }
                Err(_) => failed.push(i),
            }
        }
        pending = failed;
        if !pending.is_empty() {
            health.set_actor(
                NAME,
                ActorState::BackingOff("output records not acknowledged".into()),
            );
            tokio::time::sleep(db::backoff(attempt, RETRY_MIN, RETRY_MAX)).await;
            attempt = attempt.saturating_add(1);
        } else if attempt > 0 {
            health.set_actor(NAME, ActorState::Running);
        }
    }
}

/// Publishes `records`, then clears the outbox entries of the alerts among them (`alert_ids`)
/// and lets `held` forget them. A failed clear leaves them held and noted for the next sweep to
/// clear; they are published again only if the process stops first.
#[allow(clippy::too_many_arguments)]
async fn deliver_and_clear(
    producer: FutureProducer,
    records: Vec<Outgoing>,
    alert_ids: Vec<i64>,
    pool: PgPool,
    database: DatabaseSettings,
    held: Rc<RefCell<Held>>,
    health: Arc<Health>,
    log: Logger,
) {
    deliver_all(&producer, &records, &health, &log).await;
    if alert_ids.is_empty() {
        return;
    }
    let cleared =
        db::checkout(&pool, &database).and_then(|mut c| alerts_published(&mut c, &alert_ids));
    match cleared {
        Ok(()) => held.borrow_mut().release(&alert_ids),
        Err(e) => {
            warn!(log, "cannot clear the alert outbox, will retry";
                "count" => alert_ids.len(), "error" => %e);
            held.borrow_mut().uncleared.extend(alert_ids);
        }
    }
}

impl Actor for OutputPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.health.set_actor(NAME, ActorState::Running);
        self.sweep_outbox(ctx);
        ctx.run_interval(SWEEP_INTERVAL, |act, ctx| act.sweep_outbox(ctx));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.producer.flush(Timeout::After(Duration::from_secs(5)));
        self.exit.stopped_cleanly();
    }
}

impl Handler<PublishOutputs> for OutputPublisher {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: PublishOutputs, _: &mut Self::Context) -> Self::Result {
        self.metrics.mailbox_out(NAME);
        let mut records: Vec<Outgoing> = msg
            .dead_letters
            .iter()
            .map(|r| dead_letter(r, self.max_bytes, &self.dead_letter_topic))
            .collect();
        records.extend(msg.alerts.iter().map(|a| alert(a, &self.anomalies_topic)));
        let alert_ids: Vec<i64> = msg.alerts.iter().map(|a| a.id).collect();
        // Held from now on, so no sweep publishes this batch a second time.
        self.held.borrow_mut().ids.extend(alert_ids.iter().copied());
        let in_flight = self.in_flight.clone();
        let (producer, pool, database, held, health, log, done) = (
            self.producer.clone(),
            self.pool.clone(),
            self.database.clone(),
            self.held.clone(),
            self.health.clone(),
            self.log.clone(),
            self.done.clone(),
        );
        let persisted = msg.persisted;
        // Atomic only until a slot is free: the acknowledgements are awaited in the background,
        // so several batches' records are in flight at once.
        AtomicResponse::new(Box::pin(
            async move {
                while in_flight.get() >= MAX_BATCHES_IN_FLIGHT {
                    tokio::time::sleep(SLOT_POLL).await;
                }
                in_flight.set(in_flight.get() + 1);
                actix::spawn(async move {
                    deliver_and_clear(
                        producer, records, alert_ids, pool, database, held, health, log,
                    )
                    .await;
                    in_flight.set(in_flight.get() - 1);
                    if let Some(persisted) = persisted {
                        done.finish(persisted);
                    }
                });
            }
            .into_actor(self),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validation::RejectReason;
    use rdkafka::message::Headers;

    fn reject(value: Option<&[u8]>) -> RejectedRecord {
        RejectedRecord {
            topic: Arc::from("heartbeats"),
            partition: 4,
            offset: 1234,
            key: Some(b"CUST-1".to_vec()),
            value: value.map(<[u8]>::to_vec),
            reason: RejectReason::MalformedJson,
            detail: "expected value at line 1".into(),
            generation: 1,
        }
    }

    fn topic() -> Rc<str> {
        Rc::from("heartbeats-dlq")
    }

    fn header(h: &OwnedHeaders, key: &str) -> Option<String> {
        h.iter()
            .find(|x| x.key == key)
            .map(|x| String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())
    }

    #[test]
    fn a_dead_letter_keeps_key_and_value_and_says_why() {
        let d = dead_letter(&reject(Some(b"{oops")), 100, &topic());
        let h = d.headers.as_ref().unwrap();
        assert_eq!(d.key.as_deref(), Some(&b"CUST-1"[..]));
        assert_eq!(d.value.as_deref(), Some(&b"{oops"[..]));
        assert_eq!(header(h, "error.reason").as_deref(), Some("malformed_json"));
        assert_eq!(
            header(h, "error.detail").as_deref(),
            Some("expected value at line 1")
        );
        assert_eq!(header(h, "source.topic").as_deref(), Some("heartbeats"));
        assert_eq!(header(h, "source.partition").as_deref(), Some("4"));
        assert_eq!(header(h, "source.offset").as_deref(), Some("1234"));
        assert_eq!(header(h, "error.truncated"), None);
    }

    #[test]
    fn an_oversize_value_is_cut_and_marked_truncated() {
        let d = dead_letter(&reject(Some(&[b'x'; 150])), 100, &topic());
        let h = d.headers.as_ref().unwrap();
        assert_eq!(d.value.as_ref().map(Vec::len), Some(100));
        assert_eq!(header(h, "error.truncated").as_deref(), Some("true"));
    }

    #[test]
    fn an_alert_is_the_anomaly_row_as_json_keyed_by_customer() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T13:00:00.25Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let row = StoredAnomaly {
            id: 7,
            event_id: None,
            customer_id: "CUST-00042".into(),
            kind: "silent".into(),
            heart_rate: None,
            recorded_at: at,
            detected_at: at,
            details: crate::domain::record::Details::Silent {
                last_heart_rate: Some(71),
            },
        };
        let out = alert(&row, &Rc::from("heartbeat-alerts"));
        assert_eq!(out.key.as_deref(), Some(&b"CUST-00042"[..]));
        assert!(out.headers.is_none());
        let json: serde_json::Value = serde_json::from_slice(&out.value.unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": 7, "event_id": null, "customer_id": "CUST-00042",
                "kind": "silent", "heart_rate": null, "recorded_at": "2026-11-29T13:00:00.250Z",
                "detected_at": "2026-11-29T13:00:00.250Z", "details": {"last_heart_rate": 71}})
        );
    }

    #[test]
    fn a_null_value_stays_null() {
        let d = dead_letter(&reject(None), 100, &topic());
        assert!(d.value.is_none());
    }
}
