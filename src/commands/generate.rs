//! `generate`: Generator + KafkaPublisher only. Publishes `--count` readings (forever when
//! absent) and exits 0 once every one is acknowledged by the broker (or on a stop before the
//! topics were ready), 1 if any failed or no Kafka client can be built.

use std::sync::Arc;

use actix::prelude::*;
use rdkafka::producer::FutureProducer;
use slog::{error, info, Logger};
use tokio::sync::{mpsc, oneshot};

use super::run::{generator_plan, prepare_topics, NotPrepared};
use super::{exit, stopped};
use crate::actors::generator::Generator;
use crate::actors::kafka_publisher::KafkaPublisher;
use crate::actors::{Downstream, ExitGuard, Stage};
use crate::config::Settings;
use crate::domain::simulator::profile_report;
use crate::health::Health;
use crate::kafka as kafka_cfg;
use crate::messages::{Flush, StopGenerating};
use crate::metrics::Metrics;

pub struct GenerateArgs {
    pub count: Option<u64>,
    pub rate: Option<u64>,
    pub customers: Option<u64>,
    pub seed: Option<u64>,
    /// Print a profile of this many records of the stream instead of publishing.
    pub profile: Option<u64>,
}

pub async fn generate(settings: Settings, args: GenerateArgs, log: Logger) -> i32 {
    let stop = super::shutdown_signal(&log);
    let mut plan = generator_plan(&settings, args.count);
    if let Some(rate) = args.rate {
        plan.rate = rate;
        plan.sim.rate = rate as f64;
    }
    if let Some(customers) = args.customers {
        plan.sim.customers = usize::try_from(customers).unwrap_or(usize::MAX).max(1);
    }
    if let Some(seed) = args.seed {
        plan.sim.seed = seed;
    }
    if let Some(records) = args.profile {
        print!("{}", profile_report(&plan.sim, records));
        return exit::OK;
    }
    match prepare_topics(&settings, &log, &stop, None).await {
        Ok(()) => {}
        // Nothing was queued, so nothing failed: a clean stop.
        Err(NotPrepared::Stopped) => return exit::OK,
        Err(e @ NotPrepared::NoClient(_)) => {
            error!(log, "cannot generate"; "error" => %e);
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    }
    let producer: FutureProducer = match kafka_cfg::producer_config(&settings.kafka).create() {
        Ok(p) => p,
        Err(e) => {
            let e = kafka_cfg::scrub(&e.to_string(), &settings.kafka);
            error!(log, "cannot create the kafka producer"; "error" => &e);
            eprintln!("error: cannot create the kafka producer: {e}");
            return exit::FAILURE;
        }
    };
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new());
    // No supervisor here: a one-shot command reports a failure instead of restarting.
    let (exits, _exit_rx) = mpsc::unbounded_channel();
    let publisher = KafkaPublisher::new(
        producer,
        &settings.kafka.topics.readings,
        metrics.clone(),
        health.clone(),
        &log,
        ExitGuard::new(Stage::KafkaPublisher.as_str(), 0, exits.clone()),
    )
    .start();
    let (done_tx, done_rx) = oneshot::channel();
    let generator = Generator::new(
        plan,
        Downstream::new(Stage::KafkaPublisher, publisher.clone().recipient()),
        metrics,
        health,
        &log,
        Some(done_tx),
        ExitGuard::new(Stage::Generator.as_str(), 0, exits),
    )
    .start();

    tokio::select! {
        _ = done_rx => {}
        _ = stopped(stop) => {
            let _ = generator.send(StopGenerating).await;
        }
    }
    let totals = match publisher.send(Flush).await {
        Ok(t) => t,
        Err(e) => {
            error!(log, "publisher is gone"; "error" => %e);
            return exit::FAILURE;
        }
    };
    info!(log, "generate finished"; "queued" => totals.queued,
        "acknowledged" => totals.acknowledged, "failed" => totals.failed);
    println!(
        "published {} readings to {} ({} acknowledged, {} failed)",
        totals.queued, settings.kafka.topics.readings, totals.acknowledged, totals.failed
    );
    if totals.failed == 0 {
        exit::OK
    } else {
        exit::FAILURE
    }
}
