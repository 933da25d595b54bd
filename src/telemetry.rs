//! Logging: the root slog `Logger`, and the bridge that sends the `log` records of actix,
//! actix-web and librdkafka into the same drain.
//!
//! Terminal format for people (`log.format = "term"`), JSON lines for machines (`"json"`), and
//! optionally JSON lines appended to `log.file` as well. Records go through slog-async with
//! `Block` on overflow, so no line is silently dropped; the returned guard flushes on drop, which
//! `main` does before exiting.

use slog::{o, warn, Drain, Level, Logger};
use std::io;
use std::time::{Duration, Instant};

use crate::config::{LogFormat, LogLevel, LogSettings};
use crate::logfile::RotatingFile;

/// Capacity of the async logging channel; a full channel blocks the logging thread instead of
/// dropping lines (slog-async's default would drop them).
const LOG_CHANNEL_SIZE: usize = 4096;

/// Flushes the asynchronous drains when dropped.
pub struct LogGuard {
    _guards: Vec<slog_async::AsyncGuard>,
}

/// slog's level of `log.level`.
pub fn parse_level(level: LogLevel) -> Level {
    match level {
        LogLevel::Trace => Level::Trace,
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warning => Level::Warning,
        LogLevel::Error => Level::Error,
        LogLevel::Critical => Level::Critical,
    }
}

fn async_drain<D>(drain: D, guards: &mut Vec<slog_async::AsyncGuard>) -> slog_async::Async
where
    D: Drain<Err = slog::Never, Ok = ()> + Send + 'static,
{
    let (drain, guard) = slog_async::Async::new(drain)
        .chan_size(LOG_CHANNEL_SIZE)
        .overflow_strategy(slog_async::OverflowStrategy::Block)
        .thread_name("log".into())
        .build_with_guard();
    guards.push(guard);
    drain
}

/// Builds the root logger from `settings` and installs the `log` bridge.
pub fn init(settings: &LogSettings) -> io::Result<(Logger, LogGuard)> {
    let level = parse_level(settings.level);
    let mut guards = Vec::new();

    let console: slog_async::Async = if settings.format == LogFormat::Json {
        let json = slog_json::Json::new(io::stderr())
            .add_default_keys()
            .set_newlines(true)
            .build()
            .fuse();
        async_drain(json, &mut guards)
    } else {
        let decorator = slog_term::TermDecorator::new().stderr().build();
        let term = slog_term::FullFormat::new(decorator)
            .use_utc_timestamp()
            .build()
            .fuse();
        async_drain(term, &mut guards)
    };

    // `ignore_res`, not `fuse`, around the async drains: once the guards are dropped at exit, a
    // line logged by a thread still winding down (librdkafka's, a consumer closing) finds the
    // channel closed. `fuse` would panic there, and the panic hook's own log line would panic
    // again: an abort, and a clean stop reported as killed by a signal. The line is lost
    // instead; everything logged before the guards dropped has been written.
    let root = if settings.file.is_empty() {
        Logger::root(console.filter_level(level).ignore_res(), o!())
    } else {
        let file = RotatingFile::open(
            std::path::Path::new(&settings.file),
            settings.max_size_bytes(),
            settings.max_files,
        )
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open log.file {}: {e}", settings.file),
            )
        })?;
        let json = slog_json::Json::new(file)
            .add_default_keys()
            .set_newlines(true)
            .build()
            .fuse();
        let file_drain = async_drain(json, &mut guards).ignore_res();
        Logger::root(
            slog::Duplicate::new(console.ignore_res(), file_drain)
                .fuse()
                .filter_level(level)
                .fuse(),
            o!(),
        )
    };

    install_log_bridge(root.new(o!("source" => "lib")), level);
    Ok((root, LogGuard { _guards: guards }))
}

/// A logger that discards everything, for tests and commands that must print only data.
pub fn discard() -> Logger {
    Logger::root(slog::Discard, o!())
}

/// Lines from librdkafka (its log callback and its error events) let through per minute. During
/// a broker outage it reports every failed connect, twice a second and per client; the first
/// lines say what happened, the rest only fill the disk.
const KAFKA_LOG_BURST: u32 = 10;
const KAFKA_LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Forwards `log` records (actix, actix-web, rdkafka's librdkafka callback) to slog.
struct LogBridge {
    logger: Logger,
    /// Shared by every Kafka client of the process.
    kafka: std::sync::Mutex<LogLimiter>,
}

impl log::Log for LogBridge {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        // actix-server narrates every start and stop at INFO; that is debug detail here.
        let chatty = record.target().starts_with("actix_server");
        let level = match record.level() {
            log::Level::Info if chatty => Level::Debug,
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warning,
            log::Level::Info => Level::Info,
            log::Level::Debug => Level::Debug,
            log::Level::Trace => Level::Trace,
        };
        let mut suppressed = 0;
        if record.target().starts_with("librdkafka") || record.target().starts_with("rdkafka") {
            let mut limiter = self.kafka.lock().unwrap_or_else(|e| e.into_inner());
            match limiter.admit() {
                Some(held_back) => suppressed = held_back,
                None => return,
            }
        }
        let logger = &self.logger;
        let target = record.target().to_owned();
        let args = *record.args();
        let logger = if suppressed > 0 {
            logger.new(slog::o!("suppressed" => suppressed))
        } else {
            logger.clone()
        };
        match level {
            Level::Critical | Level::Error => slog::error!(logger, "{}", args; "target" => target),
            Level::Warning => slog::warn!(logger, "{}", args; "target" => target),
            Level::Info => slog::info!(logger, "{}", args; "target" => target),
            Level::Debug => slog::debug!(logger, "{}", args; "target" => target),
            Level::Trace => slog::trace!(logger, "{}", args; "target" => target),
        }
    }

    fn flush(&self) {}
}

fn install_log_bridge(logger: Logger, level: Level) {
    let max = match level {
        Level::Trace => log::LevelFilter::Trace,
        Level::Debug => log::LevelFilter::Debug,
        Level::Info => log::LevelFilter::Info,
        Level::Warning => log::LevelFilter::Warn,
        Level::Error | Level::Critical => log::LevelFilter::Error,
    };
    // A second call (tests that build several loggers) keeps the first bridge: harmless.
    let bridge = LogBridge {
        logger,
        kafka: std::sync::Mutex::new(LogLimiter::new(KAFKA_LOG_BURST, KAFKA_LOG_WINDOW)),
    };
    if log::set_boxed_logger(Box::new(bridge)).is_ok() {
        log::set_max_level(max);
    }
}

/// Lets through at most `burst` lines per `window`, then counts what it held back and reports
/// the count with the next line let through ("suppressed N").
pub struct LogLimiter {
    window: Duration,
    burst: u32,
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(burst: u32, window: Duration) -> Self {
        LogLimiter {
            window,
            burst,
            window_start: Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }

    /// `Some(suppressed_before)` when a line may be logged now, `None` when it must be held.
    pub fn admit(&mut self) -> Option<u64> {
        if self.window_start.elapsed() >= self.window {
            self.window_start = Instant::now();
            self.in_window = 0;
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Logs that lines were held back, if any, and forgets them (at a stop).
    pub fn flush(&mut self, log: &Logger, what: &str) {
        if self.suppressed > 0 {
            warn!(log, "suppressed log lines"; "what" => what, "suppressed" => self.suppressed);
            self.suppressed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_lets_a_burst_through_and_counts_the_rest() {
        let mut l = LogLimiter::new(2, Duration::from_secs(3600));
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), None);
        assert_eq!(l.admit(), None);
        l.window_start -= Duration::from_secs(3601);
        assert_eq!(l.admit(), Some(2));
    }
}
