//! Every librdkafka property this program sets, in one place, built from `Settings`; topic
//! creation; and the processor's consumer: its type, the context that logs rebalances, the
//! synchronous commit, and where the offset ledger stores finished offsets.
//!
//! Security (`kafka.security_protocol`, SASL, TLS) is mapped onto librdkafka by [`security`]
//! alone, which every client (consumer, producers, admin) goes through. The raw
//! `kafka.librdkafka` map is applied last, over everything here (the escape hatch).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use slog::{debug, info, warn, Logger};

use crate::config::KafkaSettings;
use crate::domain::record::BatchPositions;
use crate::health::Health;
use crate::offsets::{OffsetLedger, OffsetStore};
use crate::progress::PartitionProgress;

/// How long an admin request (create topics, metadata) may take before it counts as failed.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

fn base(settings: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.brokers)
        .set(
            "client.id",
            concat!("heartbeat-pipeline/", env!("CARGO_PKG_VERSION")),
        )
        // After an outage, reconnect within two seconds of the broker coming back (librdkafka's
        // default backoff grows to ten).
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000")
        // librdkafka logs through the `log` bridge; keep its chatter at warnings.
        .set_log_level(RDKafkaLogLevel::Warning);
    security(&mut c, settings);
    c
}

/// Maps `kafka.security_protocol`, the SASL credentials and the TLS files onto librdkafka's
/// properties: the one place that does, for every client. Empty keys are left to librdkafka's
/// defaults (e.g. the system's CA store).
fn security(c: &mut ClientConfig, settings: &KafkaSettings) {
    c.set("security.protocol", settings.security_protocol.as_str());
    if settings.uses_sasl() {
        c.set("sasl.mechanisms", settings.sasl_mechanism.as_str())
            .set("sasl.username", &settings.sasl_username)
            .set("sasl.password", settings.sasl_password.expose());
    }
    if settings.uses_tls() {
        for (property, path) in [
            ("ssl.ca.location", &settings.ssl_ca_file),
            ("ssl.certificate.location", &settings.ssl_certificate_file),
            ("ssl.key.location", &settings.ssl_key_file),
        ] {
            if !path.is_empty() {
                c.set(property, path);
            }
        }
        if !settings.ssl_key_password.is_empty() {
            c.set("ssl.key.password", settings.ssl_key_password.expose());
        }
        let identification = if settings.ssl_verify_hostname {
            "https"
        } else {
            "none"
        };
        c.set("ssl.endpoint.identification.algorithm", identification);
    }
}

/// `text` with every secret of `settings` (SASL password, key passphrase, secret raw
/// properties) replaced by `<redacted>`: for messages that come from librdkafka or OpenSSL,
/// which the program does not word itself.
pub fn scrub(text: &str, settings: &KafkaSettings) -> String {
    let mut secrets: Vec<&str> = vec![
        settings.sasl_password.expose(),
        settings.ssl_key_password.expose(),
    ];
    secrets.extend(
        settings
            .librdkafka
            .iter()
            .filter(|(k, _)| crate::config::is_secret_property(k))
            .map(|(_, v)| v.as_str()),
    );
    crate::config::scrub_secrets(text, &secrets)
}

fn apply_overrides(mut c: ClientConfig, settings: &KafkaSettings) -> ClientConfig {
    for (key, value) in &settings.librdkafka {
        c.set(key, value);
    }
    c
}

/// The processor's consumer: offsets are stored by the program only after a batch's rows
/// committed (`enable.auto.offset.store=false`), and librdkafka commits what was stored.
pub fn consumer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut c = base(settings);
    c.set("group.id", &settings.group_id)
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.as_millis().to_string(),
        )
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        // A group with no committed offset starts from the earliest record (SPEC section 3).
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // What librdkafka prefetches ahead of the pipeline is bounded by messages (its
        // `queued.min.messages`, 100,000: under a second of work) before bytes. With 16 MiB
        // the byte bound came first for readings twice or three times native size (Open mHealth,
        // FHIR): the queue held half as many and the pipeline stalled on fetches, so a third of
        // each format ran at 0.52-0.55 of native only; with 64 MiB (librdkafka's default) the
        // median of five rounds is 0.947 (docs/PERFORMANCE.md, "Formats"). Native readings fill
        // 18 MB of it.
        .set("queued.max.messages.kbytes", "65536")
        // How long the broker may hold a fetch while it has nothing new. Apache Kafka answers a
        // waiting fetch as soon as a record arrives; tansu (the local broker) held it for most
        // of librdkafka's default 500 ms: record-to-consumer latency p50 115 ms, with 100 ms
        // 17 ms (docs/PERFORMANCE.md). Costs an idle fetch per 100 ms per broker.
        .set("fetch.wait.max.ms", "100")
        // At most 4 MiB per fetch response (librdkafka's default is 50 MiB): tansu answers a
        // fetch with everything up to this limit, so under a backlog each response was a large
        // buffer beside the batches in flight (peak RSS over 1,000,000 readings -9 MiB).
        .set("fetch.max.bytes", "4194304");
    apply_overrides(c, settings)
}

/// A consumer that reads without a group's commits (`tail`, tests).
pub fn reader_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut c = base(settings);
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        .set("enable.partition.eof", "false");
    apply_overrides(c, settings)
}

/// The publisher's producer: idempotent (no duplicates or reordering from retries), keyed by
/// customer with the Java client's partitioner, so a customer's readings share a partition
/// whichever client sent them.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut c = base(settings);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "100000")
        .set("message.timeout.ms", "300000");
    apply_overrides(c, settings)
}

/// How long `produce` lets a record wait for the broker's acknowledgement before it counts as
/// not acknowledged (librdkafka's `message.timeout.ms`), unless `kafka.librdkafka` sets it. The
/// publisher's 300 s rides out a broker restart unattended; a person feeding a file is waiting
/// for an answer, and 30 s is ten of librdkafka's reconnect backoffs (2 s, above) plus a leader
/// election on a real cluster.
pub const FEED_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// `produce`'s producer: the publisher's (idempotent, `acks=all`, `murmur2_random`, lz4), with
/// [`FEED_DELIVERY_TIMEOUT`] unless the escape hatch names `message.timeout.ms`.
pub fn feed_producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut c = producer_config(settings);
    if !settings.librdkafka.contains_key("message.timeout.ms") {
        c.set(
            "message.timeout.ms",
            FEED_DELIVERY_TIMEOUT.as_millis().to_string(),
        );
    }
    c
}

/// Problems librdkafka finds in the properties this program would set, the raw
/// `kafka.librdkafka` ones included (an unknown name, a bad value), each naming the key, so a
/// typo there exits 2 at start like any other configuration error instead of failing later.
/// Only librdkafka's configuration object is built: no client, no connection.
///
/// With TLS, a producer is also created (and dropped, before it connects anywhere): that is
/// when librdkafka loads the CA, the certificate and the key, so an unreadable PEM, a key that
/// does not fit its certificate or a wrong passphrase exit 2 too.
pub fn check_properties(settings: &KafkaSettings) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    for config in [consumer_config(settings), producer_config(settings)] {
        if let Err(e) = config.create_native_config() {
            // The key and librdkafka's reason, never the value: it may be a password.
            let problem = match e {
                KafkaError::ClientConfig(_, desc, key, _value) => {
                    format!("kafka.librdkafka: librdkafka refuses \"{key}\": {desc}")
                }
                other => format!("kafka.librdkafka: librdkafka refuses it: {other}"),
            };
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    if problems.is_empty() && settings.uses_tls() {
        // No bootstrap servers: the client loads its TLS files and never connects.
        let created: Result<BaseProducer, KafkaError> = producer_config(settings)
            .set("bootstrap.servers", "")
            .create();
        if let Err(e) = created {
            problems.push(format!(
                "kafka.ssl_*: librdkafka cannot load the TLS files (kafka.ssl_ca_file, \
                 kafka.ssl_certificate_file, kafka.ssl_key_file, kafka.ssl_key_password): {}",
                scrub(&e.to_string(), settings)
            ));
        }
    }
    problems
}

/// An admin client for topic creation and metadata probes.
pub fn admin_config(settings: &KafkaSettings) -> ClientConfig {
    apply_overrides(base(settings), settings)
}

/// The context of the admin clients (`run`'s topic creation and probe, `generate`): librdkafka's
/// errors (a refused SASL login, a failed TLS handshake, a broker down) are logged as usual,
/// scrubbed of secrets, and the latest becomes a reason `/readyz` shows.
pub struct ReportingContext {
    health: Option<Arc<Health>>,
    settings: KafkaSettings,
    /// The latest error not yet taken by [`Probe::check`].
    latest: std::sync::Mutex<Option<String>>,
    /// The error handled last, and when.
    previous: std::sync::Mutex<Option<(String, Instant)>>,
}

/// An error repeated within this window is the same event handed over twice.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(1);

impl ReportingContext {
    pub fn new(settings: &KafkaSettings, health: Option<Arc<Health>>) -> Self {
        ReportingContext {
            health,
            settings: settings.clone(),
            latest: std::sync::Mutex::new(None),
            previous: std::sync::Mutex::new(None),
        }
    }

    fn take_error(&self) -> Option<String> {
        self.latest.lock().ok().and_then(|mut l| l.take())
    }
}

impl ClientContext for ReportingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let reason = scrub(reason, &self.settings);
        // rdkafka 0.39's BaseProducer::poll hands each error event to the context twice.
        {
            let Ok(mut previous) = self.previous.lock() else {
                return;
            };
            if previous
                .as_ref()
                .is_some_and(|(r, at)| *r == reason && at.elapsed() < DUPLICATE_WINDOW)
            {
                return;
            }
            *previous = Some((reason.clone(), Instant::now()));
        }
        // "1/1 brokers are down" follows the error that says why; it would only hide it.
        let says_why = !matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        );
        if says_why {
            if let Some(health) = &self.health {
                health.kafka_failed(&reason);
            }
            if let Ok(mut latest) = self.latest.lock() {
                *latest = Some(reason.clone());
            }
        }
        // The same line librdkafka's default context logs, through the same rate limit.
        log::error!(target: "librdkafka", "librdkafka: {error}: {reason}");
    }
}

impl ProducerContext for ReportingContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

/// Asks the brokers for metadata, and says why not when they do not answer: librdkafka tells
/// a refused SASL login or a failed TLS handshake only as an event on the client's main queue,
/// which an admin client never serves. This producer (which sends nothing) serves it after each
/// request, so those errors are logged (rate-limited), reach `/readyz` through its
/// [`ReportingContext`], and become the error of [`Probe::check`].
pub struct Probe {
    producer: BaseProducer<ReportingContext>,
    last_error: std::sync::Mutex<Option<String>>,
}

/// The brokers gave no metadata: librdkafka's own reason when it gave one (a refused login, a
/// failed TLS handshake), else the request's error.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct NoAnswer {
    pub reason: String,
}

/// How long [`Probe::check`] serves the client's events after its request.
const EVENT_WAIT: Duration = Duration::from_millis(200);

impl Probe {
    pub fn new(settings: &KafkaSettings, health: Option<Arc<Health>>) -> Result<Probe, KafkaError> {
        let producer =
            admin_config(settings).create_with_context(ReportingContext::new(settings, health))?;
        Ok(Probe {
            producer,
            last_error: std::sync::Mutex::new(None),
        })
    }

    /// Blocks up to `timeout`.
    pub fn check(&self, timeout: Duration) -> Result<(), NoAnswer> {
        let answer = self.producer.client().fetch_metadata(None, timeout);
        // poll() serves one event per turn until its deadline: give the log and error events
        // of the failed attempt a moment to arrive.
        self.producer.poll(EVENT_WAIT);
        let reported = self.producer.context().take_error();
        if let Some(e) = &reported {
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(e.clone());
            }
        }
        match answer {
            Ok(_) => Ok(()),
            Err(e) => {
                let why = reported.or_else(|| self.last_error.lock().ok().and_then(|l| l.clone()));
                Err(NoAnswer {
                    reason: match why {
                        Some(why) => why,
                        None => e.to_string(),
                    },
                })
            }
        }
    }
}

/// An admin client whose errors reach `/readyz` (see [`ReportingContext`]).
pub fn admin_client(
    settings: &KafkaSettings,
    health: Option<Arc<Health>>,
) -> Result<AdminClient<ReportingContext>, KafkaError> {
    admin_config(settings).create_with_context(ReportingContext::new(settings, health))
}

/// Creates each topic that is missing, with `partitions` partitions. An existing topic is fine.
pub async fn ensure_topics(
    admin: &AdminClient<ReportingContext>,
    topics: &[&str],
    partitions: i32,
) -> Result<(), KafkaError> {
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    for result in admin.create_topics(new.iter(), &options).await? {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

/// The processor's consumer of the readings topic.
pub type PipelineConsumer = StreamConsumer<SubscriberContext>;

/// Commits the stored offsets synchronously. "No offset" means there was nothing new to commit.
pub fn commit_stored_offsets<C: Consumer<SubscriberContext>>(
    consumer: &C,
) -> Result<(), KafkaError> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => Ok(()),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The ledger stores a finished batch's offsets in the consumer, for librdkafka to commit.
impl OffsetStore for PipelineConsumer {
    fn store_next_offsets(&self, positions: &BatchPositions) {
        let log = &self.context().log;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &positions.0 {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                warn!(log, "cannot note offset"; "error" => %e);
            }
        }
        if let Err(e) = self.store_offsets(&tpl) {
            // The partition moved to another member meanwhile: it reads the batch again from
            // the last commit and the writer deduplicates it.
            debug!(log, "offsets not stored"; "error" => %e);
        }
    }
}

/// The consumer context: logs assignments and revocations at INFO, keeps the shared partition
/// progress up to date, and drains on a revocation.
pub struct SubscriberContext {
    pub log: Logger,
    pub progress: Arc<PartitionProgress>,
    pub ledger: Arc<OffsetLedger>,
    /// How long a revocation waits for the batches in flight (`shutdown.timeout_ms`).
    pub drain_timeout: Duration,
}

fn partitions_of(tpl: &rdkafka::TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for SubscriberContext {}

impl ConsumerContext for SubscriberContext {
    /// Runs on the subscriber's thread, inside `recv`. On a revocation it waits until the
    /// batches in flight are stored (they finish on other threads), at most `drain_timeout`, and
    /// commits synchronously, so the partitions' next owner starts where this one stopped. The
    /// wait returns at once when the processor is stopping (the ledger is closed).
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                // Lost (the session expired, e.g. in a broker outage): the partitions may be
                // someone else's already and no commit can succeed; waiting would only stall.
                // What was stored but not committed is read again by the next owner.
                if consumer.assignment_lost() {
                    info!(self.log, "partitions lost"; "partitions" => describe_partitions(tpl));
                    self.progress.revoked(&partitions_of(tpl));
                    return;
                }
                let started = Instant::now();
                let drained = self.ledger.wait_settled(self.drain_timeout);
                let committed = commit_stored_offsets(consumer);
                info!(self.log, "partitions revoked"; "partitions" => describe_partitions(tpl),
                    "drained" => drained, "committed" => committed.is_ok(),
                    "took_ms" => started.elapsed().as_millis() as u64);
                if let Err(e) = committed {
                    warn!(self.log, "commit on revocation failed; the next owner reads the uncommitted records again";
                        "error" => %e);
                }
                self.progress.revoked(&partitions_of(tpl));
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => info!(self.log, "rebalance failed"; "error" => %e),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(self.log, "partitions assigned"; "partitions" => describe_partitions(tpl));
            self.progress.assigned(&partitions_of(tpl));
        }
    }
}

fn describe_partitions(tpl: &rdkafka::TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn kafka(env: &[(&str, &str)]) -> KafkaSettings {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::load_from(None, env).unwrap().kafka
    }

    #[test]
    fn every_client_gets_the_security_settings_and_the_escape_hatch_wins() {
        let pw = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(pw.path(), "sasl-secret\n").unwrap();
        let mut k = kafka(&[
            ("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
            ("HEARTBEAT__KAFKA__SASL_MECHANISM", "SCRAM-SHA-256"),
            ("HEARTBEAT__KAFKA__SASL_USERNAME", "alice"),
            (
                "HEARTBEAT__KAFKA__SASL_PASSWORD_FILE",
                pw.path().to_str().unwrap(),
            ),
            ("HEARTBEAT__KAFKA__SSL_CA_FILE", pw.path().to_str().unwrap()),
            ("HEARTBEAT__KAFKA__SSL_VERIFY_HOSTNAME", "false"),
        ]);
        k.librdkafka.insert("sasl.username".into(), "bob".into());
        for c in [
            consumer_config(&k),
            reader_config(&k, "g"),
            producer_config(&k),
            admin_config(&k),
        ] {
            assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-256"));
            assert_eq!(c.get("sasl.password"), Some("sasl-secret"));
            assert_eq!(c.get("ssl.ca.location"), pw.path().to_str());
            assert_eq!(c.get("ssl.endpoint.identification.algorithm"), Some("none"));
            assert_eq!(c.get("ssl.certificate.location"), None);
        }
        // The raw map is applied last.
        assert_eq!(consumer_config(&k).get("sasl.username"), Some("bob"));
    }

    #[test]
    fn plaintext_sets_no_credentials() {
        let c = consumer_config(&kafka(&[]));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("sasl.password"), None);
        assert_eq!(c.get("ssl.ca.location"), None);
    }

    #[test]
    fn a_tls_file_librdkafka_cannot_load_is_a_config_problem_naming_the_keys() {
        let junk = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(junk.path(), "not a certificate").unwrap();
        let k = kafka(&[
            ("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "ssl"),
            (
                "HEARTBEAT__KAFKA__SSL_CA_FILE",
                junk.path().to_str().unwrap(),
            ),
        ]);
        let problems = check_properties(&k);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("kafka.ssl_ca_file"), "{problems:?}");
    }
}
