//! Wiring: the two actor groups the supervisor runs, each built from `Settings`.
//!
//! - processor: KafkaSubscriber -> Validator -> AnomalyDetector -> DbWriter (-> OutputPublisher),
//!   with the OffsetLedger noting which batches finished
//! - generator: Generator -> KafkaPublisher
//! - delivery (with the processor): AlertDelivery, the alert episode events of the outbox to the
//!   Alertmanagers and `kafka.topics.alerts`; a group of its own, so that a receiver's trouble
//!   never restarts the data path
//!
//! Each group runs on arbiters (threads) of its own, so stopping a group is stopping its arbiters,
//! and the blocking DbWriter has a thread to itself. Every start builds new clients.

use std::sync::Arc;

use actix::prelude::*;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use slog::Logger;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{oneshot, Notify};

use crate::actors::alert_delivery::{AlertDelivery, DeliveryPlan};
use crate::actors::anomaly_detector::AnomalyDetector;
use crate::actors::db_writer::DbWriter;
use crate::actors::generator::{Generator, GeneratorPlan};
use crate::actors::kafka_publisher::KafkaPublisher;
use crate::actors::kafka_subscriber::{Batching, KafkaSubscriber};
use crate::actors::output_publisher::{OutputPublisher, OutputTopics};
use crate::actors::supervisor::{BoxFuture, ChildGroup};
use crate::actors::validator::Validator;
use crate::actors::{ChildExit, Downstream, ExitGuard, Stage};
use crate::config::Settings;
use crate::db;
use crate::domain::validation::ValidationRules;
use crate::health::Health;
use crate::kafka::{self as kafka_cfg, PipelineConsumer, SubscriberContext};
use crate::messages::{Drain, Flush, StopGenerating};
use crate::metrics::Metrics;
use crate::offsets::OffsetLedger;
use crate::progress::PartitionProgress;

/// Connections of the detector's pool (state loads, duplicate look-ups).
const DETECTOR_POOL_SIZE: u32 = 2;

/// Mailbox of the subscriber: it only ever gets `Drain`.
const SUBSCRIBER_MAILBOX: usize = 4;

/// What every group needs.
#[derive(Clone)]
pub struct Shared {
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub log: Logger,
    /// The writers tell the delivery through it that a batch with alert episode events
    /// committed.
    pub events_written: Arc<Notify>,
}

/// Why a group did not start: a Kafka client that every start builds anew. `run` builds each
/// once before anything starts (`check_clients`), so a configuration librdkafka refuses ends the
/// start there; what fails here is retried like any failed start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the kafka consumer: {0}")]
    CreateConsumer(#[source] KafkaError),
    #[error("cannot create the output producer: {0}")]
    CreateOutputProducer(#[source] KafkaError),
    #[error("cannot create the kafka producer: {0}")]
    CreateProducer(#[source] KafkaError),
    #[error("cannot create the alert delivery's kafka producer: {0}")]
    CreateDeliveryProducer(#[source] KafkaError),
}

/// Stops and forgets the arbiters of a group.
fn stop_arbiters(arbiters: &mut Vec<Arbiter>) {
    for a in arbiters.drain(..) {
        a.stop();
    }
}

pub struct ProcessorGroup {
    shared: Shared,
    arbiters: Vec<Arbiter>,
    subscriber: Option<Addr<KafkaSubscriber>>,
    /// Closed when the incarnation stops, so the consumer's revocation at close does not wait
    /// for batches that died with their actors.
    ledger: Option<Arc<OffsetLedger>>,
}

impl ProcessorGroup {
    pub fn new(shared: Shared) -> Self {
        ProcessorGroup {
            shared,
            arbiters: Vec::new(),
            subscriber: None,
            ledger: None,
        }
    }
}

impl ChildGroup for ProcessorGroup {
    type StartError = StartError;

    fn name(&self) -> &'static str {
        "processor"
    }

    fn actors(&self) -> &'static [&'static str] {
        const ACTORS: &[&str] = &[
            Stage::KafkaSubscriber.as_str(),
            Stage::Validator.as_str(),
            Stage::AnomalyDetector.as_str(),
            Stage::DbWriter.as_str(),
            Stage::OutputPublisher.as_str(),
        ];
        ACTORS
    }

    fn start(
        &mut self,
        generation: u64,
        exits: UnboundedSender<ChildExit>,
    ) -> BoxFuture<'_, Result<(), StartError>> {
        Box::pin(async move {
            let Shared {
                settings,
                metrics,
                health,
                log,
                events_written,
            } = self.shared.clone();
            let progress = Arc::new(PartitionProgress::default());
            let subscriber_log = log.new(slog::o!("actor" => Stage::KafkaSubscriber.as_str()));
            let ledger = Arc::new(OffsetLedger::new(subscriber_log.clone()));
            let consumer: Arc<PipelineConsumer> = Arc::new(
                kafka_cfg::consumer_config(&settings.kafka)
                    .create_with_context(SubscriberContext {
                        log: subscriber_log,
                        progress: progress.clone(),
                        ledger: ledger.clone(),
                        drain_timeout: settings.shutdown.timeout_ms,
                    })
                    .map_err(StartError::CreateConsumer)?,
            );
            let store = Arc::downgrade(&consumer);
            ledger.attach(store);
            let ledger_handle = ledger.clone();

            let output_producer: FutureProducer = kafka_cfg::producer_config(&settings.kafka)
                .create()
                .map_err(StartError::CreateOutputProducer)?;

            let output_arbiter = Arbiter::new();
            let work_arbiter = Arbiter::new();
            let intake_arbiter = Arbiter::new();

            let outputs = {
                let topics = OutputTopics {
                    dead_letter: settings.kafka.topics.dead_letter.clone(),
                    anomalies: settings.kafka.topics.anomalies.clone(),
                    max_message_bytes: settings.validation.max_message_bytes,
                };
                let (settings, done, metrics, health, log, exits) = (
                    settings.clone(),
                    ledger.clone(),
                    metrics.clone(),
                    health.clone(),
                    log.clone(),
                    exits.clone(),
                );
                // One connection: the outbox sweeps (at start, then every 10 s) and clearing
                // acknowledged alerts.
                let pool = db::pool(&settings.database, 1);
                OutputPublisher::start_in_arbiter(&output_arbiter.handle(), move |_| {
                    OutputPublisher::new(
                        output_producer,
                        topics,
                        done,
                        pool,
                        settings.database.clone(),
                        metrics,
                        health,
                        &log,
                        ExitGuard::new(Stage::OutputPublisher.as_str(), generation, exits),
                    )
                })
            };
            // Each writer on a thread of its own (diesel blocks while a query runs), sharing one
            // pool with a connection for each.
            let writers = settings.writer.parallelism.max(1);
            let pool = db::pool(
                &settings.database,
                settings
                    .database
                    .pool_size
                    .max(u32::try_from(writers).unwrap_or(u32::MAX)),
            );
            let mut writer_arbiters = Vec::with_capacity(writers);
            let mut writer_addrs = Vec::with_capacity(writers);
            for index in 0..writers {
                let (settings, metrics, health, log, exits, pool, outputs, progress, written) = (
                    settings.clone(),
                    metrics.clone(),
                    health.clone(),
                    log.clone(),
                    exits.clone(),
                    pool.clone(),
                    outputs.clone(),
                    progress.clone(),
                    events_written.clone(),
                );
                let done = ledger.clone();
                let arbiter = Arbiter::new();
                let addr = DbWriter::start_in_arbiter(&arbiter.handle(), move |_| {
                    DbWriter::new(
                        index,
                        writers,
                        pool,
                        settings.database.clone(),
                        done,
                        Downstream::new(Stage::OutputPublisher, outputs.recipient()),
                        progress,
                        written,
                        metrics,
                        health,
                        &log,
                        ExitGuard::new(Stage::DbWriter.as_str(), generation, exits),
                    )
                });
                writer_arbiters.push(arbiter);
                writer_addrs.push(addr.recipient());
            }
            let detector = {
                let (settings, progress, metrics, health, log, exits, ledger) = (
                    settings.clone(),
                    progress.clone(),
                    metrics.clone(),
                    health.clone(),
                    log.clone(),
                    exits.clone(),
                    ledger.clone(),
                );
                // Its own small pool: state loads and duplicate look-ups are short and rare.
                let pool = db::pool(&settings.database, DETECTOR_POOL_SIZE);
                AnomalyDetector::start_in_arbiter(&work_arbiter.handle(), move |_| {
                    AnomalyDetector::new(
                        &settings,
                        settings.writer.batch_size,
                        pool,
                        settings.database.clone(),
                        progress,
                        ledger,
                        Downstream::new(Stage::DbWriter, writer_addrs),
                        metrics,
                        health,
                        &log,
                        ExitGuard::new(Stage::AnomalyDetector.as_str(), generation, exits),
                    )
                })
            };
            let validator = {
                let (rules, metrics, health, log, exits) = (
                    ValidationRules::from(&settings.validation),
                    metrics.clone(),
                    health.clone(),
                    log.clone(),
                    exits.clone(),
                );
                Validator::start_in_arbiter(&work_arbiter.handle(), move |_| {
                    Validator::new(
                        rules,
                        Downstream::new(Stage::AnomalyDetector, detector.recipient()),
                        metrics,
                        health,
                        &log,
                        ExitGuard::new(Stage::Validator.as_str(), generation, exits),
                    )
                })
            };
            let batching = Batching {
                max_records: settings.writer.batch_size,
                max_wait: settings.writer.flush_interval_ms,
            };
            let topic = settings.kafka.topics.readings.clone();
            let group = settings.kafka.group_id.clone();
            let subscriber =
                KafkaSubscriber::start_in_arbiter(&intake_arbiter.handle(), move |ctx| {
                    ctx.set_mailbox_capacity(SUBSCRIBER_MAILBOX);
                    KafkaSubscriber::new(
                        consumer,
                        &topic,
                        &group,
                        Downstream::new(Stage::Validator, validator.recipient()),
                        batching,
                        ledger,
                        progress,
                        metrics,
                        health,
                        &log,
                        ExitGuard::new(Stage::KafkaSubscriber.as_str(), generation, exits),
                    )
                });

            self.subscriber = Some(subscriber);
            self.ledger = Some(ledger_handle);
            self.arbiters = vec![intake_arbiter, work_arbiter, output_arbiter];
            self.arbiters.extend(writer_arbiters);
            Ok(())
        })
    }

    fn drain(&mut self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            match &self.subscriber {
                Some(sub) => sub.send(Drain).await.unwrap_or(false),
                None => true,
            }
        })
    }

    fn stop(&mut self) {
        self.subscriber = None;
        if let Some(ledger) = self.ledger.take() {
            ledger.close();
        }
        stop_arbiters(&mut self.arbiters);
    }
}

pub struct GeneratorGroup {
    shared: Shared,
    plan: GeneratorPlan,
    arbiters: Vec<Arbiter>,
    publisher: Option<Addr<KafkaPublisher>>,
    generator: Option<Addr<Generator>>,
    /// Told how many readings were generated when a counted plan finishes (first start only).
    done: Option<oneshot::Sender<u64>>,
}

impl GeneratorGroup {
    pub fn new(shared: Shared, plan: GeneratorPlan, done: Option<oneshot::Sender<u64>>) -> Self {
        GeneratorGroup {
            shared,
            plan,
            arbiters: Vec::new(),
            publisher: None,
            generator: None,
            done,
        }
    }
}

impl ChildGroup for GeneratorGroup {
    type StartError = StartError;

    fn name(&self) -> &'static str {
        "generator"
    }

    fn actors(&self) -> &'static [&'static str] {
        const ACTORS: &[&str] = &[Stage::Generator.as_str(), Stage::KafkaPublisher.as_str()];
        ACTORS
    }

    fn start(
        &mut self,
        generation: u64,
        exits: UnboundedSender<ChildExit>,
    ) -> BoxFuture<'_, Result<(), StartError>> {
        Box::pin(async move {
            let Shared {
                settings,
                metrics,
                health,
                log,
                ..
            } = self.shared.clone();
            let producer: FutureProducer = kafka_cfg::producer_config(&settings.kafka)
                .create()
                .map_err(StartError::CreateProducer)?;
            let arbiter = Arbiter::new();
            let publisher = {
                let (topic, metrics, health, log, exits) = (
                    settings.kafka.topics.readings.clone(),
                    metrics.clone(),
                    health.clone(),
                    log.clone(),
                    exits.clone(),
                );
                KafkaPublisher::start_in_arbiter(&arbiter.handle(), move |_| {
                    KafkaPublisher::new(
                        producer,
                        &topic,
                        metrics,
                        health,
                        &log,
                        ExitGuard::new(Stage::KafkaPublisher.as_str(), generation, exits),
                    )
                })
            };
            let plan = self.plan.clone();
            let done = self.done.take();
            let next = Downstream::new(Stage::KafkaPublisher, publisher.clone().recipient());
            let generator = Generator::start_in_arbiter(&arbiter.handle(), move |_| {
                Generator::new(
                    plan,
                    next,
                    metrics,
                    health,
                    &log,
                    done,
                    ExitGuard::new(Stage::Generator.as_str(), generation, exits),
                )
            });
            self.publisher = Some(publisher);
            self.generator = Some(generator);
            self.arbiters = vec![arbiter];
            Ok(())
        })
    }

    fn drain(&mut self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            // Stop generating, then wait for what was queued to be acknowledged.
            if let Some(g) = self.generator.take() {
                let _ = g.send(StopGenerating).await;
            }
            match &self.publisher {
                Some(p) => p.send(Flush).await.is_ok(),
                None => true,
            }
        })
    }

    fn stop(&mut self) {
        self.generator = None;
        self.publisher = None;
        stop_arbiters(&mut self.arbiters);
    }
}

/// The alert delivery (SPEC section 8): one actor on an arbiter of its own, run with the
/// processor. Restarting it (a panic) restarts only it; the data path does not notice.
pub struct DeliveryGroup {
    shared: Shared,
    arbiters: Vec<Arbiter>,
}

impl DeliveryGroup {
    pub fn new(shared: Shared) -> Self {
        DeliveryGroup {
            shared,
            arbiters: Vec::new(),
        }
    }
}

impl ChildGroup for DeliveryGroup {
    type StartError = StartError;

    fn name(&self) -> &'static str {
        "delivery"
    }

    fn actors(&self) -> &'static [&'static str] {
        const ACTORS: &[&str] = &[Stage::AlertDelivery.as_str()];
        ACTORS
    }

    fn start(
        &mut self,
        generation: u64,
        exits: UnboundedSender<ChildExit>,
    ) -> BoxFuture<'_, Result<(), StartError>> {
        Box::pin(async move {
            let Shared {
                settings,
                metrics,
                health,
                log,
                events_written,
            } = self.shared.clone();
            let producer: FutureProducer = kafka_cfg::producer_config(&settings.kafka)
                .create()
                .map_err(StartError::CreateDeliveryProducer)?;
            let am = &settings.alerts.alertmanager;
            let plan = DeliveryPlan {
                alertmanagers: am.targets(),
                topic: settings.kafka.topics.alerts.clone(),
                resend_interval: am.resend_interval_ms,
                timeout: am.timeout_ms,
                min_firing: am.min_firing_ms,
            };
            let database = settings.database.clone();
            let arbiter = Arbiter::new();
            AlertDelivery::start_in_arbiter(&arbiter.handle(), move |_| {
                AlertDelivery::new(
                    plan,
                    producer,
                    database,
                    events_written,
                    metrics,
                    health,
                    &log,
                    ExitGuard::new(Stage::AlertDelivery.as_str(), generation, exits),
                )
            });
            self.arbiters = vec![arbiter];
            Ok(())
        })
    }

    fn drain(&mut self) -> BoxFuture<'_, bool> {
        // Nothing to drain: what was not noted as delivered is delivered by the next run.
        Box::pin(async { true })
    }

    fn stop(&mut self) {
        stop_arbiters(&mut self.arbiters);
    }
}
