//! DeadLetterPublisher: sends each rejected record to the dead-letter topic (SPEC section 5) with
//! its original key and value and headers saying why, then tells the KafkaSubscriber that the
//! batch is done, so its offsets are stored only after the rows committed *and* the dead letters
//! were acknowledged.
//!
//! Accepts `PublishDeadLetters`, emits records on `kafka.topics.dead_letter` and then
//! `BatchPersisted`. At-least-once: a batch read again after a crash is dead-lettered again;
//! consumers dedupe by the `source.*` headers. A record the broker refuses is queued again with
//! backoff, never dropped. Batches are acknowledged concurrently (up to [`MAX_BATCHES_IN_FLIGHT`]),
//! so the writer is not held up by broker round trips; the subscriber puts the answers back in
//! order.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use slog::{o, warn, Logger};

use super::{ExitGuard, LogLimiter, MAILBOX_CAPACITY};
use crate::domain::record::RejectedRecord;
use crate::health::{ActorState, Health};
use crate::messages::{BatchPersisted, PublishDeadLetters};
use crate::metrics::Metrics;

pub const NAME: &str = "dead_letter_publisher";

/// Batches whose dead letters may await acknowledgement at once; past it the writer waits.
const MAX_BATCHES_IN_FLIGHT: usize = 8;
/// Wait before queueing again when librdkafka's queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);
/// First wait before resending a refused record; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the mailbox checks whether a batch slot became free.
const SLOT_POLL: Duration = Duration::from_millis(2);

/// The record as it goes to the dead-letter topic.
struct DeadLetter {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: OwnedHeaders,
}

/// The dead-letter form of `r`: value cut to `max_bytes` (with `error.truncated=true`), headers
/// as SPEC section 5 names them, numbers in decimal.
fn dead_letter(r: &RejectedRecord, max_bytes: usize) -> DeadLetter {
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
    DeadLetter {
        key: r.key.clone(),
        value,
        headers,
    }
}

pub struct DeadLetterPublisher {
    producer: FutureProducer,
    topic: Rc<str>,
    max_bytes: usize,
    done: Recipient<BatchPersisted>,
    in_flight: Rc<Cell<usize>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    exit: ExitGuard,
}

impl DeadLetterPublisher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        producer: FutureProducer,
        topic: &str,
        max_bytes: usize,
        done: Recipient<BatchPersisted>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        DeadLetterPublisher {
            producer,
            topic: Rc::from(topic),
            max_bytes,
            done,
            in_flight: Rc::new(Cell::new(0)),
            metrics,
            health,
            log: log.new(o!("actor" => NAME)),
            exit,
        }
    }
}

/// Queues `letter`, waiting while librdkafka's queue is full; `Err` for any other refusal.
async fn queue(
    producer: &FutureProducer,
    topic: &str,
    letter: &DeadLetter,
) -> Result<DeliveryFuture, KafkaError> {
    loop {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).headers(letter.headers.clone());
        if let Some(k) = &letter.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &letter.value {
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

/// Publishes every letter until each is acknowledged.
async fn deliver_all(
    producer: FutureProducer,
    topic: Rc<str>,
    letters: Vec<DeadLetter>,
    health: Arc<Health>,
    log: Logger,
) {
    let mut pending: Vec<usize> = (0..letters.len()).collect();
    let mut attempt = 0u32;
    let mut failures = LogLimiter::new(5, Duration::from_secs(60));
    while !pending.is_empty() {
        let mut deliveries = Vec::with_capacity(pending.len());
        let mut failed = Vec::new();
        for &i in &pending {
            match queue(&producer, &topic, &letters[i]).await {
                Ok(d) => deliveries.push((i, d)),
                Err(e) => {
                    if let Some(s) = failures.admit() {
                        warn!(log, "cannot queue a dead letter, will retry"; "error" => %e, "suppressed" => s);
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
                        warn!(log, "dead letter not acknowledged, will retry"; "error" => %e, "suppressed" => s);
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
                ActorState::BackingOff("dead letters not acknowledged".into()),
            );
            tokio::time::sleep(crate::db::backoff(attempt, RETRY_MIN, RETRY_MAX)).await;
            attempt = attempt.saturating_add(1);
        } else if attempt > 0 {
            health.set_actor(NAME, ActorState::Running);
        }
    }
}

impl Actor for DeadLetterPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.health.set_actor(NAME, ActorState::Running);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.producer.flush(Timeout::After(Duration::from_secs(5)));
        self.exit.stopped_cleanly();
    }
}

impl Handler<PublishDeadLetters> for DeadLetterPublisher {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: PublishDeadLetters, _: &mut Self::Context) -> Self::Result {
        self.metrics.mailbox_out(NAME);
        let letters: Vec<DeadLetter> = msg
            .rejects
            .iter()
            .map(|r| dead_letter(r, self.max_bytes))
            .collect();
        let in_flight = self.in_flight.clone();
        let (producer, topic, health, log, done, metrics) = (
            self.producer.clone(),
            self.topic.clone(),
            self.health.clone(),
            self.log.clone(),
            self.done.clone(),
            self.metrics.clone(),
        );
        let persisted = msg.persisted;
        // Atomic only until a slot is free: the acknowledgements are awaited in the background,
        // so several batches' dead letters are in flight at once.
        AtomicResponse::new(Box::pin(
            async move {
                while in_flight.get() >= MAX_BATCHES_IN_FLIGHT {
                    tokio::time::sleep(SLOT_POLL).await;
                }
                in_flight.set(in_flight.get() + 1);
                actix::spawn(async move {
                    deliver_all(producer, topic, letters, health, log).await;
                    in_flight.set(in_flight.get() - 1);
                    metrics.mailbox_in(super::kafka_subscriber::NAME);
                    done.do_send(persisted);
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
        }
    }

    fn header(h: &OwnedHeaders, key: &str) -> Option<String> {
        h.iter()
            .find(|x| x.key == key)
            .map(|x| String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())
    }

    #[test]
    fn a_dead_letter_keeps_key_and_value_and_says_why() {
        let d = dead_letter(&reject(Some(b"{oops")), 100);
        assert_eq!(d.key.as_deref(), Some(&b"CUST-1"[..]));
        assert_eq!(d.value.as_deref(), Some(&b"{oops"[..]));
        assert_eq!(
            header(&d.headers, "error.reason").as_deref(),
            Some("malformed_json")
        );
        assert_eq!(
            header(&d.headers, "error.detail").as_deref(),
            Some("expected value at line 1")
        );
        assert_eq!(
            header(&d.headers, "source.topic").as_deref(),
            Some("heartbeats")
        );
        assert_eq!(header(&d.headers, "source.partition").as_deref(), Some("4"));
        assert_eq!(header(&d.headers, "source.offset").as_deref(), Some("1234"));
        assert_eq!(header(&d.headers, "error.truncated"), None);
    }

    #[test]
    fn an_oversize_value_is_cut_and_marked_truncated() {
        let d = dead_letter(&reject(Some(&[b'x'; 150])), 100);
        assert_eq!(d.value.as_ref().map(Vec::len), Some(100));
        assert_eq!(
            header(&d.headers, "error.truncated").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn a_null_value_stays_null() {
        let d = dead_letter(&reject(None), 100);
        assert!(d.value.is_none());
    }
}
