//! One module per command of SPEC section 2, and what they share: exit codes, the shutdown
//! signal, and waiting for a service with backoff.

pub mod generate;
pub mod inspect;
pub mod migrate;
pub mod produce;
pub mod rules;
pub mod run;
pub mod tail;

use std::future::Future;
use std::time::Duration;

use slog::{info, warn, Logger};
use tokio::sync::watch;

/// Exit codes of SPEC section 2.
pub mod exit {
    /// Clean stop.
    pub const OK: i32 = 0;
    /// Anything else, including a drain that did not finish within `shutdown.timeout_ms`.
    pub const FAILURE: i32 = 1;
    /// Invalid configuration or usage.
    pub const USAGE: i32 = 2;
    /// The supervisor gave up (restart intensity exceeded).
    pub const GAVE_UP: i32 = 3;
}

/// First wait when a service does not answer at start; doubles up to [`WAIT_MAX`].
const WAIT_MIN: Duration = Duration::from_millis(250);
const WAIT_MAX: Duration = Duration::from_secs(5);

/// Becomes `true` on the first SIGTERM or SIGINT.
pub fn shutdown_signal(log: &Logger) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let log = log.clone();
    actix_rt::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(log, "cannot watch SIGTERM"; "error" => %e);
                    return;
                }
            };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        };
        info!(log, "stop requested"; "signal" => name);
        let _ = tx.send(true);
    });
    rx
}

/// Resolves once `rx` says stop (or its sender is gone).
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Calls `attempt` until it succeeds, waiting with backoff in between and logging failures
/// (rate-limited); `None` if a stop was requested first. Every error is retried: callers find
/// what waiting cannot cure before they wait.
pub async fn until_ok<T, E, F, Fut>(
    what: &str,
    log: &Logger,
    stop: &watch::Receiver<bool>,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return None;
        }
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    info!(log, "succeeded after retries"; "what" => what, "attempts" => failures + 1);
                }
                return Some(value);
            }
            Err(e) => {
                if failures < 3 || failures % 20 == 0 {
                    warn!(log, "not possible yet, will retry"; "what" => what, "error" => %e,
                        "attempt" => failures + 1);
                }
                let wait = crate::db::backoff(failures, WAIT_MIN, WAIT_MAX);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = stopped(stop.clone()) => return None,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}
