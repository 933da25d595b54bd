//! `run`: the daemon. Serves HTTP, waits for PostgreSQL (migrations) and Kafka (topics), then
//! runs the enabled actor groups under the supervisor until SIGTERM/SIGINT.
//!
//! It never exits because a service is unreachable: it retries with backoff and reports
//! not-ready meanwhile. Exit codes: 0 drained and committed (or stopped before anything ran);
//! 1 drain timed out, HTTP could not bind, or no Kafka client can be built from the
//! configuration; 3 the supervisor gave up.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::BaseProducer;
use slog::{error, info, warn, Logger};
use tokio::sync::watch;

use super::{exit, stopped, until_ok};
use crate::actors::generator::GeneratorPlan;
use crate::actors::supervisor::{supervise, ChildGroup, Outcome, RestartPolicy};
use crate::config::Settings;
use crate::db;
use crate::health::{Health, PROBE_INTERVAL};
use crate::kafka::{self as kafka_cfg, ReportingContext, ADMIN_TIMEOUT};
use crate::metrics::Metrics;
use crate::pipeline::{DeliveryGroup, GeneratorGroup, ProcessorGroup, Shared, StartError};

/// How often storage upkeep creates the coming day partitions and drops expired ones.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Day partitions of `readings` created ahead of today.
const PARTITION_DAYS_AHEAD: u64 = 2;

/// How often `run` logs a progress line (counts so far) at INFO.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// The generator's plan from `generator.*`; a random seed when none is set.
pub fn generator_plan(settings: &Settings, count: Option<u64>) -> GeneratorPlan {
    let g = &settings.generator;
    let seed = g.seed.unwrap_or_else(rand::random);
    let sim = settings.simulator_config(seed);
    GeneratorPlan {
        sim,
        rate: g.rate,
        count,
        activity: g.activity,
    }
}

/// Why [`prepare_topics`] returned before the topics were there.
#[derive(Debug, thiserror::Error)]
pub enum NotPrepared {
    /// A stop was asked for while the broker did not answer yet: a clean stop.
    #[error("stopped before the kafka topics were ready")]
    Stopped,
    /// librdkafka builds no admin client from this configuration; waiting cannot help.
    #[error("cannot create the kafka admin client: {0}")]
    NoClient(String),
}

/// Why the topics are not there yet: retried until the broker answers.
#[derive(Debug, thiserror::Error)]
enum TopicsNotReady {
    /// The task of the blocking metadata request failed.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    /// No metadata from the brokers: librdkafka's reason (a refused login, a TLS failure, a
    /// timeout).
    #[error("{source} (brokers {brokers})")]
    Unanswered {
        #[source]
        source: kafka_cfg::NoAnswer,
        brokers: String,
    },
    #[error("{source} (brokers {brokers})")]
    CreateTopics {
        #[source]
        source: KafkaError,
        brokers: String,
    },
}

/// Creates the topics this program uses, retrying until the broker answers.
pub async fn prepare_topics(
    settings: &Settings,
    log: &Logger,
    stop: &watch::Receiver<bool>,
    health: Option<Arc<Health>>,
) -> Result<(), NotPrepared> {
    let clients = kafka_cfg::admin_client(&settings.kafka, health.clone()).and_then(|admin| {
        Ok((
            admin,
            Arc::new(kafka_cfg::Probe::new(&settings.kafka, health)?),
        ))
    });
    let (admin, probe): (AdminClient<ReportingContext>, _) = clients
        .map_err(|e| NotPrepared::NoClient(kafka_cfg::scrub(&e.to_string(), &settings.kafka)))?;
    let topics = [
        settings.kafka.topics.readings.as_str(),
        settings.kafka.topics.dead_letter.as_str(),
        settings.kafka.topics.anomalies.as_str(),
        settings.kafka.topics.alerts.as_str(),
    ];
    // Validated to 1..=10000; saturating all the same rather than wrapping.
    let partitions = settings.kafka.topics.partitions;
    until_ok("create kafka topics", log, stop, || async {
        let brokers = || settings.kafka.brokers.clone();
        // First a metadata request, whose failure carries librdkafka's reason (a refused
        // login, a TLS failure) rather than a bare timeout of the admin request.
        let p = probe.clone();
        tokio::task::spawn_blocking(move || p.check(ADMIN_TIMEOUT))
            .await?
            .map_err(|source| TopicsNotReady::Unanswered {
                source,
                brokers: brokers(),
            })?;
        kafka_cfg::ensure_topics(&admin, &topics, partitions)
            .await
            .map_err(|source| TopicsNotReady::CreateTopics {
                source,
                brokers: brokers(),
            })
    })
    .await
    .ok_or(NotPrepared::Stopped)
}

/// Builds, without contacting a broker, each Kafka client the enabled groups build at every
/// start: the consumer and the output producer of the processor, the generator's producer.
/// librdkafka checks some properties against each other only then (`fetch.max.bytes` against
/// `message.max.bytes` in the escape hatch, a SASL mechanism this build lacks), and a group
/// whose start cannot build its client would fail every restart until the supervisor gave up
/// (exit 3). Found here, the start ends with exit 1 and the reason instead.
fn check_clients(settings: &Settings) -> Result<(), ClientRefused> {
    let quiet = |mut c: ClientConfig| {
        // No bootstrap servers: nothing connects. librdkafka warns about that; not here.
        c.set("bootstrap.servers", "")
            .set_log_level(RDKafkaLogLevel::Critical);
        c
    };
    let scrub = |client: &'static str, e: KafkaError| ClientRefused {
        client,
        reason: kafka_cfg::scrub(&e.to_string(), &settings.kafka),
    };
    if settings.processor.enabled {
        quiet(kafka_cfg::consumer_config(&settings.kafka))
            .create::<BaseConsumer>()
            .map_err(|e| scrub("consumer", e))?;
    }
    quiet(kafka_cfg::producer_config(&settings.kafka))
        .create::<BaseProducer>()
        .map_err(|e| scrub("producer", e))?;
    Ok(())
}

/// A Kafka client librdkafka does not build from this configuration: waiting cannot help.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the kafka {client}: {reason}")]
struct ClientRefused {
    client: &'static str,
    /// librdkafka's reason, scrubbed of secrets.
    reason: String,
}

/// Ends a start that cannot build a Kafka client: logged, said on stderr, exit 1.
fn no_client(log: &Logger, reason: &str) -> i32 {
    error!(log, "cannot start: no kafka client can be built from this configuration";
        "error" => reason);
    eprintln!("error: {reason}");
    exit::FAILURE
}

/// Why the migrations are not applied yet: retried until PostgreSQL answers.
#[derive(Debug, thiserror::Error)]
enum DatabaseNotReady {
    /// The task of the blocking migration failed.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Migrate(#[from] db::DbError),
}

/// Applies migrations, retrying until PostgreSQL answers.
async fn prepare_database(
    settings: &Settings,
    log: &Logger,
    stop: &watch::Receiver<bool>,
) -> Option<Vec<String>> {
    until_ok("apply database migrations", log, stop, || async {
        let database = settings.database.clone();
        let applied = tokio::task::spawn_blocking(move || {
            db::connect(&database).and_then(|mut conn| db::migrate(&mut conn))
        })
        .await??;
        Ok::<_, DatabaseNotReady>(applied)
    })
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
/// [`PARTITION_DAYS_AHEAD`] days ahead, and applies `storage.retention_days` (0 keeps
/// everything): drops the expired days of `readings`, then deletes the expired rows of the other
/// tables (SPEC section 5, "Retention").
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
                    return Ok((Vec::new(), Default::default()));
                }
                let dropped = crate::db::queries::drop_expired_partitions(&mut c, keep_days)?;
                let expired = crate::db::queries::expire_rows(
                    &mut c,
                    keep_days,
                    crate::db::queries::ROWS_PER_ROUND,
                )?;
                Ok::<_, db::DbError>((dropped, expired))
            })
            .await;
            match result {
                Ok(Ok((dropped, expired))) => {
                    if !dropped.is_empty() {
                        info!(log, "retention dropped expired days of readings";
                            "partitions" => dropped.join(","), "retention_days" => keep_days)
                    }
                    if !expired.is_empty() {
                        let counts: Vec<String> =
                            expired.iter().map(|(t, n)| format!("{t}={n}")).collect();
                        info!(log, "retention deleted expired rows";
                            "rows" => counts.join(","), "retention_days" => keep_days)
                    }
                }
                Ok(Err(e)) if e.to_string().contains("permission denied") => {
                    // The first refusal is the drop of a partition, before any row is deleted.
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
    // Before waiting for any service: no wait can make librdkafka build a client it refuses.
    if let Err(refused) = check_clients(settings) {
        return no_client(log, &refused.to_string());
    }
    if settings.processor.enabled {
        match prepare_database(settings, log, stop).await {
            Some(applied) => info!(log, "database ready"; "migrations_applied" => applied.len(),
                "database" => db::target(&settings.database.url)),
            None => return exit::OK,
        }
        spawn_storage_upkeep(settings.clone(), log.clone());
    }
    match prepare_topics(settings, log, stop, Some(health.clone())).await {
        Ok(()) => {}
        Err(NotPrepared::Stopped) => return exit::OK,
        Err(e @ NotPrepared::NoClient(_)) => return no_client(log, &e.to_string()),
    }

    let shared = Shared {
        settings: settings.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        log: log.clone(),
        events_written: Arc::new(tokio::sync::Notify::new()),
    };
    let mut groups: Vec<Box<dyn ChildGroup<StartError = StartError>>> = Vec::new();
    if settings.processor.enabled {
        groups.push(Box::new(ProcessorGroup::new(shared.clone())));
        groups.push(Box::new(DeliveryGroup::new(shared.clone())));
    }
    if settings.generator.enabled {
        let plan = generator_plan(settings, None);
        groups.push(Box::new(GeneratorGroup::new(shared, plan, None)));
    }
    let outcome = supervise(
        groups,
        RestartPolicy::from_settings(&settings.supervisor),
        stopped(stop.clone()),
        settings.shutdown.timeout_ms,
        metrics.clone(),
        health.clone(),
        log.clone(),
    )
    .await;
    match outcome {
        Outcome::Stopped => exit::OK,
        Outcome::DrainTimedOut => {
            error!(log, "drain did not finish in time; uncommitted records will be read again";
                "timeout_ms" => settings.shutdown.timeout_ms.as_millis() as u64);
            exit::FAILURE
        }
        Outcome::GaveUp => exit::GAVE_UP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn settings() -> Settings {
        let mut s = Settings::load_from(None, Vec::<(String, String)>::new()).unwrap();
        // Nothing listens there: the topics can never be created.
        s.kafka.brokers = "127.0.0.1:1".to_owned();
        s
    }

    /// SASL with a mechanism this build of librdkafka lacks: no client can be built.
    fn without_a_client() -> Settings {
        let mut s = settings();
        s.kafka.security_protocol = config::SecurityProtocol::SaslPlaintext;
        s.kafka.sasl_mechanism = config::SaslMechanism::Plain;
        s.kafka.sasl_username = "alice".to_owned();
        s.kafka.sasl_password = config::Secret::new("pw");
        s.kafka
            .librdkafka
            .insert("sasl.mechanisms".to_owned(), "GSSAPI".to_owned());
        s
    }

    #[actix::test]
    async fn a_stop_and_a_client_that_cannot_be_built_are_told_apart() {
        let log = crate::telemetry::discard();
        let (_tx, stopped) = watch::channel(true);
        let got = prepare_topics(&settings(), &log, &stopped, None).await;
        assert!(matches!(got, Err(NotPrepared::Stopped)), "{got:?}");
        let (_tx, running) = watch::channel(false);
        let got = prepare_topics(&without_a_client(), &log, &running, None).await;
        match got {
            Err(NotPrepared::NoClient(e)) => assert!(e.contains("GSSAPI"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_clients_of_every_start_are_checked_before_anything_waits() {
        assert!(check_clients(&settings()).is_ok());
        let e = check_clients(&without_a_client()).unwrap_err().to_string();
        assert!(e.starts_with("cannot create the kafka consumer: "), "{e}");
        let mut generator_only = without_a_client();
        generator_only.processor.enabled = false;
        let e = check_clients(&generator_only).unwrap_err().to_string();
        assert!(e.starts_with("cannot create the kafka producer: "), "{e}");
        let mut hatch = settings();
        hatch
            .kafka
            .librdkafka
            .insert("message.max.bytes".to_owned(), "10000000".to_owned());
        let e = check_clients(&hatch).unwrap_err().to_string();
        assert!(
            e.contains("`fetch.max.bytes` must be >= `message.max.bytes`"),
            "{e}"
        );
    }
}
