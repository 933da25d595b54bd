//! KafkaPublisher: sends readings to the readings topic with an idempotent producer, keyed by
//! customer id, and counts delivery reports.
//!
//! Accepts `Publish` (answered once every reading is queued in librdkafka) and `Flush`
//! (answered once every queued record is acknowledged or failed). When librdkafka's local queue
//! is full, the publisher waits and tries again instead of dropping: the Generator's `send`
//! waits meanwhile (backpressure).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use slog::{o, warn, Logger};

use super::{ExitGuard, Stage, MAILBOX_CAPACITY};
use crate::health::{ActorState, Health};
use crate::messages::{DeliveryTotals, Flush, Publish};
use crate::metrics::Metrics;
use crate::telemetry::LogLimiter;

const NAME: &str = Stage::KafkaPublisher.as_str();

/// The header carrying the generator's ground truth: the kinds an injected episode's record
/// should page for (comma-separated), or `fault:<reason>`.
pub const INJECTED_HEADER: &str = "x-injected";
/// The header naming the injected episode a record belongs to: its id in decimal.
pub const EPISODE_HEADER: &str = "x-episode";
/// Wait before queueing again when librdkafka's queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);
/// How often `Flush` checks for outstanding deliveries.
const FLUSH_POLL: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    acknowledged: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn totals(&self) -> DeliveryTotals {
        DeliveryTotals {
            queued: self.queued.load(Ordering::SeqCst),
            acknowledged: self.acknowledged.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
        }
    }
}

pub struct KafkaPublisher {
    producer: FutureProducer,
    topic: String,
    counters: Arc<Counters>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    failure_log: LogLimiter,
    exit: ExitGuard,
}

impl KafkaPublisher {
    pub fn new(
        producer: FutureProducer,
        topic: &str,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        KafkaPublisher {
            producer,
            topic: topic.to_owned(),
            counters: Arc::default(),
            metrics,
            health,
            log: log.new(o!("actor" => NAME)),
            failure_log: LogLimiter::new(5, Duration::from_secs(60)),
            exit,
        }
    }
}

impl Actor for KafkaPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.health.set_actor(NAME, ActorState::Running);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Give queued records a moment to leave; what does not is reported as failed by
        // librdkafka's delivery reports (none are lost silently).
        let _ = self.producer.flush(Timeout::After(Duration::from_secs(5)));
        self.exit.stopped_cleanly();
    }
}

impl Handler<Publish> for KafkaPublisher {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Publish, _: &mut Self::Context) -> Self::Result {
        self.metrics.mailbox_out(NAME);
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let counters = self.counters.clone();
        let metrics = self.metrics.clone();
        let health = self.health.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let mut deliveries = Vec::with_capacity(msg.records.len());
                let mut last_error = None;
                for out in &msg.records {
                    let episode = out.episode.map(|id| id.to_string());
                    let headers = out.injected.as_deref().map(|kinds| {
                        let headers = OwnedHeaders::new().insert(Header {
                            key: INJECTED_HEADER,
                            value: Some(kinds),
                        });
                        match &episode {
                            Some(id) => headers.insert(Header {
                                key: EPISODE_HEADER,
                                value: Some(id.as_str()),
                            }),
                            None => headers,
                        }
                    });
                    loop {
                        let mut record: FutureRecord<'_, [u8], [u8]> =
                            FutureRecord::to(&topic).key(out.key.as_bytes());
                        if let Some(v) = &out.value {
                            record = record.payload(v.as_slice());
                        }
                        if let Some(h) = &headers {
                            record = record.headers(h.clone());
                        }
                        match producer.send_result(record) {
                            Ok(delivery) => {
                                counters.queued.fetch_add(1, Ordering::SeqCst);
                                deliveries.push(delivery);
                                break;
                            }
                            Err((
                                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                _,
                            )) => {
                                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                            }
                            Err((e, _)) => {
                                counters.queued.fetch_add(1, Ordering::SeqCst);
                                counters.failed.fetch_add(1, Ordering::SeqCst);
                                metrics.publish_failures.inc();
                                last_error = Some(e);
                                break;
                            }
                        }
                    }
                }
                // Delivery reports arrive on librdkafka's thread; count them without holding up
                // the next batch.
                let counters = counters.clone();
                actix::spawn(async move {
                    for delivery in deliveries {
                        match delivery.await {
                            Ok(Ok(_)) => {
                                counters.acknowledged.fetch_add(1, Ordering::SeqCst);
                                metrics.records_published.inc();
                                health.kafka_answered();
                            }
                            Ok(Err(_)) | Err(_) => {
                                counters.failed.fetch_add(1, Ordering::SeqCst);
                                metrics.publish_failures.inc();
                            }
                        }
                    }
                });
                last_error
            }
            .into_actor(self)
            .map(|error, act, _| {
                if let Some(e) = error {
                    if let Some(suppressed) = act.failure_log.admit() {
                        warn!(act.log, "cannot queue a record"; "error" => %e,
                            "suppressed" => suppressed);
                    }
                }
            }),
        ))
    }
}

impl Handler<Flush> for KafkaPublisher {
    type Result = ResponseFuture<DeliveryTotals>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        let counters = self.counters.clone();
        Box::pin(async move {
            loop {
                let t = counters.totals();
                if t.acknowledged + t.failed >= t.queued {
                    return t;
                }
                tokio::time::sleep(FLUSH_POLL).await;
            }
        })
    }
}
