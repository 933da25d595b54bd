//! `produce [--topic T] [FILE]`: one Kafka record per line of FILE (standard input when FILE is
//! absent or `-`), to `kafka.topics.readings` unless `--topic` (SPEC section 2).
//!
//! Each record's value is the line's bytes as they are, without the terminator (`\n` or
//! `\r\n`): no parsing, no checks. A bad line becomes a reject in the processor, with its reason,
//! like a bad record from any other client. An empty line is sent too, as an empty value (the
//! processor rejects it as `malformed_json`). The key is the customer id the line names in any
//! format of SPEC section 4 (`domain::validation::customer_key`); a line that names none is sent
//! unkeyed. The producer is the publisher's (idempotent, `acks=all`, `murmur2_random`, so a
//! customer's readings share a partition whichever client sent them), and the topic is created
//! when missing, as `generate` does.
//!
//! The input is read line by line, never whole: librdkafka's queue bounds what is in memory,
//! and when it is full reading waits (backpressure). Exit 0 once every line was sent and
//! acknowledged; 1 when any was not, with the counts and the first failure's line and reason.
//! Nothing is half-sent without saying so:
//! - a broker that never answers: nothing is read or sent, exit 1 after at most
//!   [`kafka::FEED_DELIVERY_TIMEOUT`](crate::kafka::FEED_DELIVERY_TIMEOUT);
//! - a broker that goes away midway: each record still queued fails after that timeout, reading
//!   stops at the first such failure, and the summary says how many were not acknowledged and
//!   after which line the rest was not sent;
//! - a record the broker or librdkafka refuses on its own (larger than `message.max.bytes`):
//!   counted as not acknowledged, and the rest still goes;
//! - SIGINT or SIGTERM: reading stops, what was sent is flushed and counted, exit 0 when all of
//!   it was acknowledged (a graceful stop, SPEC section 2).
//!
//! A FILE that cannot be opened (missing, a directory) is an error naming it, exit 1, before any
//! broker is contacted.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use slog::{error, info, warn, Logger};
use tokio::sync::oneshot;

use super::{exit, stopped};
use crate::config::{KafkaSettings, Settings};
use crate::domain::validation::customer_key;
use crate::kafka as kafka_cfg;

/// Wait before queueing again when librdkafka's queue is full (as the publisher does).
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);
/// Read buffer: one system call per 64 KiB of input, whatever the line lengths.
const READ_BUFFER: usize = 64 * 1024;
/// Time given to the last flush beyond the delivery timeout: librdkafka reports a timed-out
/// record on its next timeout scan (every second or so), after the timeout itself.
const FLUSH_MARGIN: Duration = Duration::from_secs(5);
/// First wait between two attempts to reach the brokers at start; doubles up to 2 s.
const PROBE_PAUSE: Duration = Duration::from_millis(250);

pub struct ProduceArgs {
    /// Topic to send to; `kafka.topics.readings` when absent.
    pub topic: Option<String>,
    /// The input; standard input when absent or `-`.
    pub file: Option<PathBuf>,
}

/// Why the input could not be read: said with its name, exit 1.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("cannot open {name}: {source}")]
    Open {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {name}: it is a directory")]
    Directory { name: String },
    #[error("cannot read {name} at line {line}: {source}")]
    Read {
        name: String,
        line: u64,
        #[source]
        source: io::Error,
    },
}

/// The input and the name it is called by in messages.
struct Input {
    name: String,
    reader: Box<dyn Read + Send>,
}

fn open(file: Option<&Path>) -> Result<Input, InputError> {
    let path = match file {
        None => None,
        Some(p) if p.as_os_str() == "-" => None,
        Some(p) => Some(p),
    };
    let Some(path) = path else {
        return Ok(Input {
            name: "standard input".to_owned(),
            reader: Box::new(io::stdin()),
        });
    };
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| InputError::Open {
        name: name.clone(),
        source,
    })?;
    // Opening a directory succeeds on Linux; reading it fails. Say so now, not at line 1.
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(InputError::Directory { name });
    }
    Ok(Input {
        name,
        reader: Box::new(file),
    })
}

/// Delivery reports, counted on librdkafka's polling thread.
struct FeedContext {
    settings: KafkaSettings,
    acknowledged: AtomicU64,
    failed: AtomicU64,
    /// The earliest line that failed, and librdkafka's reason.
    first_failure: Mutex<Option<(u64, String)>>,
    /// Set by a failure that is not the record's own (a timeout, a broker gone, a fatal
    /// producer error): what would follow would fail the same way, so reading stops.
    halt: AtomicBool,
    /// librdkafka's latest client error (e.g. "Connection refused"), scrubbed of secrets.
    last_error: Mutex<Option<String>>,
}

impl FeedContext {
    fn note_failure(&self, line: u64, reason: String) {
        if let Ok(mut first) = self.first_failure.lock() {
            if !first
                .as_ref()
                .is_some_and(|(earliest, _)| *earliest <= line)
            {
                *first = Some((line, reason));
            }
        }
    }
}

/// A failure that belongs to the record alone: the next line may well go through.
fn refused_on_its_own(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::MessageBatchTooLarge
        )
    )
}

impl ClientContext for FeedContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let reason = kafka_cfg::scrub(reason, &self.settings);
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
            self.halt.store(true, Ordering::SeqCst);
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.clone());
        }
        // The line librdkafka's default context logs.
        log::error!(target: "librdkafka", "librdkafka: {error}: {reason}");
    }
}

impl ProducerContext for FeedContext {
    /// The record's line number.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, line: usize) {
        match result {
            Ok(_) => {
                self.acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                if !refused_on_its_own(e) {
                    self.halt.store(true, Ordering::SeqCst);
                }
                let reason = kafka_cfg::scrub(&e.to_string(), &self.settings);
                self.note_failure(line as u64, reason);
            }
        }
    }
}

type FeedProducer = ThreadedProducer<FeedContext>;

/// What the reading side did, shared with the signal handling.
#[derive(Default)]
struct Feed {
    /// A stop was asked for: no record is queued after this is set.
    stopped: bool,
    /// Lines handed to librdkafka (queued, or refused by it at once).
    lines: u64,
    /// Lines librdkafka queued: each gets one delivery report.
    queued: u64,
    /// Lines librdkafka refused at once (e.g. larger than `message.max.bytes`).
    refused: u64,
}

/// The line's bytes without its terminator, `\n` or `\r\n`. A `\r` elsewhere is data.
fn without_terminator(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(rest) => rest.strip_suffix(b"\r").unwrap_or(rest),
        None => line,
    }
}

/// Reads `input` line by line and queues each line as a record on `topic`, until its end
/// (`true`), a stop or a delivery failure that halts the feed (`false`). Blocking.
fn feed(
    input: Input,
    producer: &FeedProducer,
    topic: &str,
    state: &Mutex<Feed>,
) -> Result<bool, InputError> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, input.reader);
    let mut buf = Vec::new();
    let mut line_no: u64 = 0;
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| InputError::Read {
                name: input.name.clone(),
                line: line_no + 1,
                source,
            })?;
        if read == 0 {
            return Ok(true);
        }
        line_no += 1;
        let value = without_terminator(&buf);
        let key = customer_key(value);
        loop {
            // The lock is held from the stop check to the count, never while waiting.
            let Ok(mut state) = state.lock() else {
                return Ok(false);
            };
            if state.stopped || producer.context().halt.load(Ordering::SeqCst) {
                return Ok(false);
            }
            // Line numbers fit a usize on every target this builds for (64-bit).
            let mut record: BaseRecord<'_, str, [u8], usize> =
                BaseRecord::with_opaque_to(topic, line_no as usize).payload(value);
            if let Some(k) = &key {
                record = record.key(k.as_str());
            }
            match producer.send(record) {
                Ok(()) => {
                    state.lines += 1;
                    state.queued += 1;
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    drop(state);
                    std::thread::sleep(QUEUE_FULL_PAUSE);
                }
                Err((e, _)) => {
                    state.lines += 1;
                    state.refused += 1;
                    let reason = kafka_cfg::scrub(&e.to_string(), &producer.context().settings);
                    producer.context().note_failure(line_no, reason);
                    break;
                }
            }
        }
    }
}

/// The brokers gave no metadata within the bound: nothing was sent.
#[derive(Debug, thiserror::Error)]
#[error("no answer from the kafka brokers at {brokers} within {waited:?}: {reason}")]
struct Unreachable {
    brokers: String,
    waited: Duration,
    reason: String,
}

/// Creates `topic` when missing, as `generate` does, trying for at most `bound`. A broker that
/// answers but does not create it (no permission, say) is only a warning: the topic may exist,
/// and the delivery reports will tell.
async fn prepare_topic(
    settings: &Settings,
    topic: &str,
    bound: Duration,
    log: &Logger,
) -> Result<(), Unreachable> {
    let unreachable = |reason: String| Unreachable {
        brokers: settings.kafka.brokers.clone(),
        waited: bound,
        reason,
    };
    let probe = Arc::new(
        kafka_cfg::Probe::new(&settings.kafka, None)
            .map_err(|e| unreachable(kafka_cfg::scrub(&e.to_string(), &settings.kafka)))?,
    );
    let deadline = Instant::now() + bound;
    let mut attempt = 0u32;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let p = probe.clone();
        let answer = tokio::task::spawn_blocking(move || {
            p.check(left.clamp(Duration::from_millis(100), kafka_cfg::ADMIN_TIMEOUT))
        })
        .await;
        let reason = match answer {
            Ok(Ok(())) => break,
            Ok(Err(e)) => e.reason,
            Err(e) => e.to_string(),
        };
        let pause = crate::db::backoff(attempt, PROBE_PAUSE, Duration::from_secs(2));
        if Instant::now() + pause >= deadline {
            return Err(unreachable(reason));
        }
        if attempt < 3 {
            warn!(log, "the kafka brokers do not answer yet, will retry"; "error" => &reason);
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(pause).await;
    }
    let created = match kafka_cfg::admin_client(&settings.kafka, None) {
        Ok(admin) => {
            kafka_cfg::ensure_topics(&admin, &[topic], settings.kafka.topics.partitions).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = created {
        warn!(log, "cannot create the topic; sending all the same"; "topic" => topic,
            "error" => kafka_cfg::scrub(&e.to_string(), &settings.kafka));
    }
    Ok(())
}

/// The delivery timeout in force: `message.timeout.ms` of the producer's configuration.
fn delivery_timeout(config: &rdkafka::ClientConfig) -> Duration {
    config
        .get("message.timeout.ms")
        .and_then(|ms| ms.parse().ok())
        .map_or(kafka_cfg::FEED_DELIVERY_TIMEOUT, Duration::from_millis)
}

pub async fn produce(settings: Settings, args: ProduceArgs, log: Logger) -> i32 {
    let stop = super::shutdown_signal(&log);
    let topic = args
        .topic
        .unwrap_or_else(|| settings.kafka.topics.readings.clone());
    let input = match open(args.file.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}; nothing was sent");
            return exit::FAILURE;
        }
    };
    let name = input.name.clone();
    let config = kafka_cfg::feed_producer_config(&settings.kafka);
    let timeout = delivery_timeout(&config);
    let context = FeedContext {
        settings: settings.kafka.clone(),
        acknowledged: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_failure: Mutex::new(None),
        halt: AtomicBool::new(false),
        last_error: Mutex::new(None),
    };
    let producer: Arc<FeedProducer> = match config.create_with_context(context) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            let e = kafka_cfg::scrub(&e.to_string(), &settings.kafka);
            error!(log, "cannot create the kafka producer"; "error" => &e);
            eprintln!("error: cannot create the kafka producer: {e}");
            return exit::FAILURE;
        }
    };
    tokio::select! {
        prepared = prepare_topic(&settings, &topic, timeout, &log) => {
            if let Err(e) = prepared {
                error!(log, "cannot produce"; "error" => %e);
                println!("sent 0 records to {topic}: 0 acknowledged, 0 not acknowledged");
                eprintln!("error: {e}; nothing was read from {name} or sent");
                return exit::FAILURE;
            }
        }
        // Nothing was read or queued: a clean stop.
        _ = stopped(stop.clone()) => return exit::OK,
    }
    info!(log, "producing"; "topic" => &topic, "input" => &name);

    let state = Arc::new(Mutex::new(Feed::default()));
    // A thread of its own, not `spawn_blocking`: the runtime waits for its blocking tasks when
    // it ends, and a read blocked on a quiet pipe would then hold up the exit after a signal.
    let (ended_tx, mut feeding) = oneshot::channel();
    {
        let (producer, topic, state) = (producer.clone(), topic.clone(), state.clone());
        let spawned = std::thread::Builder::new()
            .name("produce-reader".to_owned())
            .spawn(move || {
                let _ = ended_tx.send(feed(input, &producer, &topic, &state));
            });
        if let Err(e) = spawned {
            eprintln!("error: cannot start reading {name}: {e}; nothing was sent");
            return exit::FAILURE;
        }
    }
    let mut signalled = false;
    let ended = tokio::select! {
        ended = &mut feeding => ended,
        _ = stopped(stop) => {
            // From here on nothing more is queued; a read blocked on its input is left behind
            // (the process exits without waiting for it).
            if let Ok(mut s) = state.lock() {
                s.stopped = true;
            }
            signalled = true;
            Ok(Ok(false))
        }
    };
    let (read_error, whole) = match ended {
        Ok(Ok(whole)) => (None, whole),
        Ok(Err(e)) => (Some(e.to_string()), false),
        // The reader ended without a word: it panicked.
        Err(_) => (Some(format!("reading {name} failed")), false),
    };

    // Every queued record gets its delivery report within the delivery timeout.
    let flushing = producer.clone();
    let _ = tokio::task::spawn_blocking(move || flushing.flush(timeout + FLUSH_MARGIN)).await;

    let (lines, queued, refused) = match state.lock() {
        Ok(s) => (s.lines, s.queued, s.refused),
        Err(_) => (0, 0, 0),
    };
    let ctx = producer.context();
    let acknowledged = ctx.acknowledged.load(Ordering::SeqCst);
    let failed = ctx.failed.load(Ordering::SeqCst);
    // Reports still missing after the flush count as not acknowledged, like the failures.
    let not_acknowledged = lines.saturating_sub(acknowledged);
    let halted = ctx.halt.load(Ordering::SeqCst);
    info!(log, "produce finished"; "topic" => &topic, "input" => &name, "sent" => lines,
        "acknowledged" => acknowledged, "failed" => failed, "refused" => refused,
        "unreported" => queued.saturating_sub(acknowledged + failed));
    println!(
        "sent {lines} records to {topic}: {acknowledged} acknowledged, \
         {not_acknowledged} not acknowledged"
    );
    if not_acknowledged > 0 {
        let first = ctx.first_failure.lock().ok().and_then(|f| f.clone());
        let why = match first {
            Some((line, reason)) => format!("; the first was line {line}: {reason}"),
            None => match ctx.last_error.lock().ok().and_then(|e| e.clone()) {
                Some(reason) => format!("; the broker's last error: {reason}"),
                None => String::new(),
            },
        };
        eprintln!("error: {not_acknowledged} of {lines} records were not acknowledged{why}");
    }
    if let Some(e) = &read_error {
        eprintln!("error: {e}; the rest of {name} was not sent");
    } else if halted && !whole {
        eprintln!("error: stopped reading {name} after line {lines}: the rest was not sent");
    } else if signalled && !whole {
        eprintln!("stopped by a signal after line {lines} of {name}: the rest was not sent");
    }
    if not_acknowledged == 0 && read_error.is_none() && !halted {
        exit::OK
    } else {
        exit::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_terminator_is_taken_off_a_line() {
        for (line, value) in [
            (&b"{}\n"[..], &b"{}"[..]),
            (b"{}\r\n", b"{}"),
            (b"{}", b"{}"),
            (b"\n", b""),
            (b"\r\n", b""),
            (b"{}\r", b"{}\r"),
            (b"{}\r\r\n", b"{}\r"),
            (b" {} \n", b" {} "),
        ] {
            assert_eq!(
                without_terminator(line),
                value,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn standard_input_is_absent_or_a_dash_and_a_file_is_named() {
        assert_eq!(open(None).unwrap().name, "standard input");
        assert_eq!(open(Some(Path::new("-"))).unwrap().name, "standard input");
        let e = open(Some(Path::new("/nonexistent/x.jsonl"))).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("cannot open /nonexistent/x.jsonl: "),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = open(Some(dir.path())).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!("cannot read {}: it is a directory", dir.path().display())
        );
    }

    #[test]
    fn only_a_record_s_own_refusal_lets_the_feed_go_on() {
        let own = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let gone = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(refused_on_its_own(&own));
        assert!(!refused_on_its_own(&gone));
    }
}
