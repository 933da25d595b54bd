//! Validator: turns each record of a batch into a valid reading or a reject with its reason, by
//! the pure rules of `domain::validation`, and hands the batch on to the AnomalyDetector.
//!
//! Accepts `RecordsReceived`, emits `ReadingsValidated`. Bad input is data, not an error: a
//! record that breaks the contract becomes a reject (logged at WARN, rate-limited) and the batch
//! goes on. An optional field whose value is not understood costs the reading nothing: it is
//! stored with the field unknown and counted in `heartbeat_ignored_values_total{field}`, when
//! validated (a record read again counts again). Nothing in here can fail on a record; the only
//! failure is a dead downstream mailbox, which the supervisor sees for itself.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use prometheus::IntCounter;
use slog::{o, warn, Logger};

use super::{forward_in_order, Downstream, ExitGuard, Stage, MAILBOX_CAPACITY};
use crate::domain::record::{RejectedRecord, SourcedReading};
use crate::domain::validation::{validate, IgnoredField, Validated, ValidationRules};
use crate::health::{ActorState, Health};
use crate::messages::{ReadingsValidated, RecordsReceived};
use crate::metrics::Metrics;
use crate::telemetry::LogLimiter;

const NAME: &str = Stage::Validator.as_str();

/// At most this many "record rejected" lines per [`REJECT_LOG_WINDOW`]; a flood of poison
/// records must not flood the logs.
const REJECT_LOG_BURST: u32 = 20;
const REJECT_LOG_WINDOW: Duration = Duration::from_secs(10);

pub struct Validator {
    rules: ValidationRules,
    /// One sender for every batch, so the detector's mailbox bound holds (see `hand_over`).
    next: Rc<Recipient<ReadingsValidated>>,
    next_stage: Stage,
    metrics: Arc<Metrics>,
    /// `heartbeat_ignored_values_total{field}` of each [`IgnoredField`], in its `ALL` order:
    /// looked up once, not per reading.
    ignored: [IntCounter; IgnoredField::ALL.len()],
    health: Arc<Health>,
    log: Logger,
    reject_log: LogLimiter,
    exit: ExitGuard,
}

impl Validator {
    pub fn new(
        rules: ValidationRules,
        next: Downstream<Recipient<ReadingsValidated>>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        let ignored = IgnoredField::ALL
            .map(|field| metrics.ignored_values.with_label_values(&[field.as_str()]));
        Validator {
            rules,
            next: Rc::new(next.to),
            next_stage: next.stage,
            metrics,
            ignored,
            health,
            log: log.new(o!("actor" => NAME)),
            reject_log: LogLimiter::new(REJECT_LOG_BURST, REJECT_LOG_WINDOW),
            exit,
        }
    }

    /// Splits a batch into readings and rejects, in the records' order.
    fn split(&mut self, msg: RecordsReceived) -> ReadingsValidated {
        let mut readings = Vec::with_capacity(msg.records.len());
        let mut rejects = Vec::new();
        for record in msg.records {
            match validate(record.payload.value(), record.reference_time(), &self.rules) {
                Ok(Validated { reading, ignored }) => {
                    if !ignored.is_empty() {
                        for (field, counter) in IgnoredField::ALL.iter().zip(&self.ignored) {
                            if ignored.contains(*field) {
                                counter.inc();
                            }
                        }
                    }
                    readings.push(SourcedReading {
                        reading,
                        partition: record.partition,
                        offset: record.offset,
                        generation: record.generation,
                    });
                }
                Err(rejection) => {
                    if let Some(suppressed) = self.reject_log.admit() {
                        warn!(self.log, "record rejected";
                            "reason" => rejection.reason.as_str(), "detail" => &rejection.detail,
                            "topic" => &*record.topic, "partition" => record.partition,
                            "offset" => record.offset, "suppressed" => suppressed);
                    }
                    rejects.push(RejectedRecord {
                        topic: record.topic,
                        partition: record.partition,
                        offset: record.offset,
                        key: record.payload.key().map(<[u8]>::to_vec),
                        value: record.payload.value().map(<[u8]>::to_vec),
                        reason: rejection.reason,
                        detail: rejection.detail,
                        generation: record.generation,
                    });
                }
            }
        }
        ReadingsValidated {
            id: msg.id,
            readings,
            rejects,
            positions: msg.positions,
        }
    }
}

impl Actor for Validator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.health.set_actor(NAME, ActorState::Running);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.reject_log.flush(&self.log, "record rejected");
        self.exit.stopped_cleanly();
    }
}

impl Handler<RecordsReceived> for Validator {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: RecordsReceived, _: &mut Self::Context) -> Self::Result {
        self.metrics.mailbox_out(NAME);
        crate::faults::maybe_panic(NAME);
        let out = self.split(msg);
        forward_in_order(self.next.clone(), out, &self.metrics, self.next_stage)
    }
}
