//! AnomalyDetector: classifies each reading by the bands of `detector.bands` and finds its
//! anomalies, then hands the batch to the DbWriter.
//!
//! Accepts `ReadingsValidated`, emits `Persist`. The decisions are the pure functions of
//! `domain::classification`; this actor only applies them in order.

use std::sync::Arc;

use actix::prelude::*;
use slog::{o, Logger};

use super::{ExitGuard, MAILBOX_CAPACITY};
use crate::config::BandSettings;
use crate::domain::classification::classify;
use crate::domain::record::{Anomaly, ClassifiedReading};
use crate::messages::{Persist, ReadingsValidated};
use crate::metrics::Metrics;

pub const NAME: &str = "anomaly_detector";

pub struct AnomalyDetector {
    bands: BandSettings,
    next: Recipient<Persist>,
    metrics: Arc<Metrics>,
    #[allow(dead_code)]
    log: Logger,
    exit: ExitGuard,
}

impl AnomalyDetector {
    pub fn new(
        bands: BandSettings,
        next: Recipient<Persist>,
        metrics: Arc<Metrics>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        AnomalyDetector {
            bands,
            next,
            metrics,
            log: log.new(o!("actor" => NAME)),
            exit,
        }
    }

    fn detect(&self, msg: ReadingsValidated) -> Persist {
        let mut anomalies = Vec::new();
        let readings: Vec<ClassifiedReading> = msg
            .readings
            .into_iter()
            .map(|r| {
                let class = classify(r.reading.heart_rate, &self.bands);
                if let Some(kind) = class.threshold_anomaly() {
                    anomalies.push(Anomaly {
                        event_id: Some(r.reading.event_id),
                        customer_id: r.reading.customer_id.clone(),
                        kind,
                        heart_rate: Some(r.reading.heart_rate),
                        recorded_at: r.reading.recorded_at,
                        details: serde_json::json!({ "class": class.as_str() }),
                    });
                }
                ClassifiedReading {
                    reading: r.reading,
                    class,
                    partition: r.partition,
                    offset: r.offset,
                }
            })
            .collect();
        Persist {
            id: msg.id,
            readings,
            rejects: msg.rejects,
            anomalies,
            positions: msg.positions,
        }
    }
}

impl Actor for AnomalyDetector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.exit.stopped_cleanly();
    }
}

impl Handler<ReadingsValidated> for AnomalyDetector {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ReadingsValidated, _: &mut Self::Context) -> Self::Result {
        self.metrics.mailbox_out(NAME);
        let out = self.detect(msg);
        let next = self.next.clone();
        let metrics = self.metrics.clone();
        metrics.mailbox_in(super::db_writer::NAME);
        // Atomic for order and backpressure, as in the validator.
        AtomicResponse::new(Box::pin(
            async move {
                if next.send(out).await.is_err() {
                    metrics.mailbox_out(super::db_writer::NAME);
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                if !act.next.connected() {
                    ctx.stop();
                }
            }),
        ))
    }
}
