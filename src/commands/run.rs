//! `run`: the daemon. Serves HTTP, waits for PostgreSQL (migrations) and Kafka (topics), then
//! runs the enabled actor groups under the supervisor until SIGTERM/SIGINT.
//!
//! It never exits because a service is unreachable: it retries with backoff and reports
//! not-ready meanwhile. Exit codes: 0 drained and committed; 1 drain timed out or HTTP could not
//! bind; 3 the supervisor gave up.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use slog::{error, info, warn, Logger};
use tokio::sync::watch;

use super::{exit, stopped, until_ok};
use crate::actors::generator::GeneratorPlan;
use crate::actors::supervisor::{supervise, ChildGroup, Outcome, RestartPolicy};
use crate::config::{self, Settings};
use crate::db;
use crate::domain::simulator::SimulatorConfig;
use crate::health::{Health, PROBE_INTERVAL};
use crate::kafka::{self as kafka_cfg, ReportingContext, ADMIN_TIMEOUT};
use crate::metrics::Metrics;
use crate::pipeline::{GeneratorGroup, ProcessorGroup, Shared};

/// How often storage upkeep creates the coming day partitions and drops expired ones.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Day partitions of `readings` created ahead of today.
const PARTITION_DAYS_AHEAD: u64 = 2;

/// How often `run` logs a progress line (counts so far) at INFO.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// The generator's plan from `generator.*`; a random seed when none is set.
pub fn generator_plan(settings: &Settings, count: Option<u64>) -> GeneratorPlan {
    let g = &settings.generator;
    let rate = u64::try_from(g.rate).unwrap_or(0);
    let seed = g
        .seed
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or_else(rand::random);
    let mut sim = SimulatorConfig::new(
        config::count(g.customers),
        seed,
        rate as f64,
        settings.detector.bands,
        settings.detector.spike_bpm,
    );
    sim.fault_rate = g.fault_rate;
    sim.inject = g.inject.clone();
    GeneratorPlan { sim, rate, count }
}

/// Creates the topics this program uses, retrying until the broker answers.
pub async fn prepare_topics(
    settings: &Settings,
    log: &Logger,
    stop: &watch::Receiver<bool>,
    health: Option<Arc<Health>>,
) -> Option<()> {
    let clients = kafka_cfg::admin_client(&settings.kafka, health.clone()).and_then(|admin| {
        Ok((
            admin,
            Arc::new(kafka_cfg::Probe::new(&settings.kafka, health)?),
        ))
    });
    let (admin, probe): (AdminClient<ReportingContext>, _) = match clients {
        Ok(c) => c,
        Err(e) => {
            error!(log, "cannot create a kafka admin client"; "error" => %e);
            return None;
        }
    };
    let topics = [
        settings.kafka.topics.readings.as_str(),
        settings.kafka.topics.dead_letter.as_str(),
        settings.kafka.topics.alerts.as_str(),
    ];
    // Validated to 1..=10000; saturating all the same rather than wrapping.
    let partitions = i32::try_from(settings.kafka.topics.partitions).unwrap_or(i32::MAX);
    until_ok(
        "create kafka topics",
        log,
        stop,
        |_| {},
        || async {
            let brokers = &settings.kafka.brokers;
            // First a metadata request, whose failure carries librdkafka's reason (a refused
            // login, a TLS failure) rather than a bare timeout of the admin request.
            let p = probe.clone();
            tokio::task::spawn_blocking(move || p.check(ADMIN_TIMEOUT))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{e} (brokers {brokers})"))?;
            kafka_cfg::ensure_topics(&admin, &topics, partitions)
                .await
                .map_err(|e| format!("{e} (brokers {brokers})"))
        },
    )
    .await
}

/// Applies migrations, retrying until PostgreSQL answers.
async fn prepare_database(
    settings: &Settings,
    log: &Logger,
    stop: &watch::Receiver<bool>,
) -> Option<Vec<String>> {
    until_ok(
        "apply database migrations",
        log,
        stop,
        |_| {},
        || async {
            let database = settings.database.clone();
            tokio::task::spawn_blocking(move || {
                db::connect(&database).and_then(|mut conn| db::migrate(&mut conn))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
        },
    )
    .await
}

/// Asks Kafka and PostgreSQL every [`PROBE_INTERVAL`] so readiness reflects an idle pipeline.
fn spawn_probe(settings: Arc<Settings>, health: Arc<Health>) {
    actix_rt::spawn(async move {
        let probe = kafka_cfg::Probe::new(&settings.kafka, Some(health.clone()))
            .ok()
            .map(Arc::new);
        let mut conn: Option<diesel::PgConnection> = None;
        loop {
            if let Some(probe) = probe.clone() {
                let ok = tokio::task::spawn_blocking(move || {
                    probe.check(ADMIN_TIMEOUT.min(PROBE_INTERVAL)).is_ok()
                })
                .await
                .unwrap_or(false);
                if ok {
                    health.kafka_answered();
                }
            }
            if settings.processor.enabled {
                let database = settings.database.clone();
                let (ok, back) = tokio::task::spawn_blocking(move || {
                    let mut conn = match conn.take() {
                        Some(c) => Some(c),
                        None => db::connect(&database).ok(),
                    };
                    let ok = conn.as_mut().map(db::ping).unwrap_or(false);
                    (ok, if ok { conn } else { None })
                })
                .await
                .unwrap_or((false, None));
                conn = back;
                if ok {
                    health.db_answered();
                }
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    });
}

/// Now and every [`RETENTION_INTERVAL`]: creates the day partitions of `readings` from today to
/// [`PARTITION_DAYS_AHEAD`] days ahead, and drops expired ones (`storage.retention_days`; 0
/// keeps everything).
fn spawn_storage_upkeep(settings: Arc<Settings>, log: Logger) {
    let keep_days = i32::try_from(settings.storage.retention_days).unwrap_or(i32::MAX);
    actix_rt::spawn(async move {
        loop {
            let database = settings.database.clone();
            let result = tokio::task::spawn_blocking(move || {
                let mut c = db::connect(&database)?;
                // Today's partition and the next ones exist before the first reading of the day
                // arrives, so no batch waits for DDL at midnight.
                let today = chrono::Utc::now().date_naive();
                let ahead: std::collections::BTreeSet<_> = (0..=PARTITION_DAYS_AHEAD)
                    .filter_map(|d| today.checked_add_days(chrono::Days::new(d)))
                    .collect();
                crate::db::queries::ensure_day_partitions(&mut c, &ahead)?;
                if keep_days == 0 {
                    return Ok(Vec::new());
                }
                crate::db::queries::drop_expired_partitions(&mut c, keep_days)
            })
            .await;
            match result {
                Ok(Ok(dropped)) if !dropped.is_empty() => {
                    info!(log, "retention dropped expired days of readings";
                        "partitions" => dropped.join(","), "retention_days" => keep_days)
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.to_string().contains("permission denied") => {
                    slog::warn!(log, "retention skipped: this database role may not drop \
                        partitions (a heartbeat_writer login); run retention as the owner \
                        (docs/SECURITY.md) or set storage.retention_days = 0";
                        "retention_days" => keep_days, "error" => %e)
                }
                Ok(Err(e)) => slog::warn!(log, "storage upkeep failed, will retry"; "error" => %e),
                Err(e) => slog::warn!(log, "storage upkeep task failed"; "error" => %e),
            }
            tokio::time::sleep(RETENTION_INTERVAL).await;
        }
    });
}

/// Logs the counts so far every [`PROGRESS_INTERVAL`], so a person sees the pipeline work.
fn spawn_progress(metrics: Arc<Metrics>, log: Logger) {
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let rejected: u64 = crate::domain::validation::RejectReason::ALL
                .iter()
                .map(|r| metrics.rejects.with_label_values(&[r.as_str()]).get())
                .sum();
            let anomalies: u64 = crate::domain::classification::AnomalyKind::ALL
                .iter()
                .map(|k| metrics.anomalies.with_label_values(&[k.as_str()]).get())
                .sum();
            info!(log, "progress";
                "published" => metrics.records_published.get(),
                "consumed" => metrics.records_consumed.get(),
                "stored" => metrics.readings_stored.get(),
                "rejected" => rejected,
                "duplicates" => metrics.duplicates.get(),
                "anomalies" => anomalies);
        }
    });
}

pub async fn run(settings: Settings, log: Logger) -> i32 {
    let settings = Arc::new(settings);
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new());
    health.require_db(settings.processor.enabled);
    let stop = super::shutdown_signal(&log);

    let (addrs, server) =
        match crate::http::serve(&settings.http.bind, health.clone(), metrics.clone()) {
            Ok(s) => s,
            Err(e) => {
                error!(log, "cannot serve HTTP"; "bind" => &settings.http.bind, "error" => %e);
                eprintln!("error: cannot serve HTTP on {}: {e}", settings.http.bind);
                return exit::FAILURE;
            }
        };
    let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    info!(log, "http server listening"; "addr" => shown.join(","),
        "version" => env!("CARGO_PKG_VERSION"));
    spawn_probe(settings.clone(), health.clone());
    spawn_progress(metrics.clone(), log.clone());

    let code = run_groups(&settings, &log, &stop, &metrics, &health).await;
    server.stop(true).await;
    info!(log, "stopped"; "exit_code" => code);
    code
}

async fn run_groups(
    settings: &Arc<Settings>,
    log: &Logger,
    stop: &watch::Receiver<bool>,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
) -> i32 {
    if !settings.generator.enabled && !settings.processor.enabled {
        info!(
            log,
            "neither generator.enabled nor processor.enabled: serving HTTP only"
        );
        health.set_actor("none", crate::health::ActorState::Running);
        stopped(stop.clone()).await;
        return exit::OK;
    }
    if let Some(fault) = crate::faults::describe() {
        warn!(log, "test fault injection armed"; "fault" => fault, "variable" => crate::faults::PANIC_VAR);
    }
    if settings.processor.enabled {
        match prepare_database(settings, log, stop).await {
            Some(applied) => info!(log, "database ready"; "migrations_applied" => applied.len(),
                "database" => db::target(&settings.database.url)),
            None => return exit::OK,
        }
        spawn_storage_upkeep(settings.clone(), log.clone());
    }
    if prepare_topics(settings, log, stop, Some(health.clone()))
        .await
        .is_none()
    {
        return exit::OK;
    }

    let shared = Shared {
        settings: settings.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        log: log.clone(),
    };
    let mut groups: Vec<Box<dyn ChildGroup>> = Vec::new();
    if settings.processor.enabled {
        groups.push(Box::new(ProcessorGroup::new(shared.clone())));
    }
    if settings.generator.enabled {
        let plan = generator_plan(settings, None);
        groups.push(Box::new(GeneratorGroup::new(shared, plan, None)));
    }
    let outcome = supervise(
        groups,
        RestartPolicy::from_settings(&settings.supervisor),
        stopped(stop.clone()),
        config::millis(settings.shutdown.timeout_ms),
        metrics.clone(),
        health.clone(),
        log.clone(),
    )
    .await;
    match outcome {
        Outcome::Stopped => exit::OK,
        Outcome::DrainTimedOut => {
            error!(log, "drain did not finish in time; uncommitted records will be read again";
                "timeout_ms" => settings.shutdown.timeout_ms);
            exit::FAILURE
        }
        Outcome::GaveUp => exit::GAVE_UP,
    }
}
