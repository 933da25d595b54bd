//! Supervisor: starts the actor groups, notices when any of their actors goes (panic, stop,
//! dead arbiter), and restarts that actor's whole group with backoff, up to a restart intensity;
//! past it the process gives up with exit code 3 so the service manager (docker-compose's restart
//! policy) takes over.
//!
//! Why whole groups (one-for-all, as OTP calls it): the actors of a group hold each other's
//! addresses, and a dead actor's mailbox loses the batches in it. Restarting the group gives
//! every actor fresh peers and fresh clients (consumer, producer, pool), and the new consumer
//! resumes from the committed offsets, so whatever was lost in a mailbox is read again.
//! actix's own `Supervisor` restarts in place with the same value, at once, forever, and cannot
//! see a panic; this one can.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use slog::{error, info, warn, Logger};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::ChildExit;
use crate::health::{ActorState, Health};
use crate::metrics::Metrics;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A set of actors that live and restart together.
pub trait ChildGroup {
    /// Why a start failed. Every start failure counts as a failure of the group: it is
    /// restarted with backoff, within the restart intensity.
    type StartError: std::fmt::Display;
    fn name(&self) -> &'static str;
    /// The actors it starts, as their `ExitGuard`s name them.
    fn actors(&self) -> &'static [&'static str];
    /// Starts every actor; their exit guards carry `generation` and report on `exits`.
    fn start(
        &mut self,
        generation: u64,
        exits: UnboundedSender<ChildExit>,
    ) -> BoxFuture<'_, Result<(), Self::StartError>>;
    /// Stops intake and waits until what is in flight is stored and committed; `true` if so.
    fn drain(&mut self) -> BoxFuture<'_, bool>;
    /// Stops every actor at once (their arbiters), without draining.
    fn stop(&mut self);
}

/// How often and how fast to restart.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// More restarts than this within `window` and the supervisor gives up (exit 3).
    pub max_restarts: usize,
    pub window: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl RestartPolicy {
    /// The policy of `supervisor.*`.
    pub fn from_settings(s: &crate::config::SupervisorSettings) -> Self {
        RestartPolicy {
            max_restarts: s.max_restarts,
            window: s.restart_window_ms,
            backoff_min: s.backoff_min_ms,
            backoff_max: s.backoff_max_ms,
        }
    }
}

/// Restarts of one group within the policy's window.
#[derive(Debug)]
pub struct RestartHistory {
    policy: RestartPolicy,
    restarts: VecDeque<Instant>,
}

impl RestartHistory {
    pub fn new(policy: RestartPolicy) -> Self {
        RestartHistory {
            policy,
            restarts: VecDeque::new(),
        }
    }

    /// Records a failure at `now`: `Some(wait)` before the restart, or `None` when the restart
    /// intensity is exceeded. The wait doubles with each restart still inside the window (a
    /// group that stays up for a whole window starts again from the minimum), with +-20% jitter
    /// so replicas that fail together do not retry in lockstep.
    pub fn record(&mut self, now: Instant) -> Option<Duration> {
        while let Some(first) = self.restarts.front() {
            if now.duration_since(*first) > self.policy.window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if self.restarts.len() >= self.policy.max_restarts {
            return None;
        }
        let attempt = self.restarts.len() as u32;
        self.restarts.push_back(now);
        let base = crate::db::backoff(attempt, self.policy.backoff_min, self.policy.backoff_max);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        Some(base.mul_f64(jitter))
    }
}

/// How a supervised run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Asked to stop; drained and committed in time.
    Stopped,
    /// Asked to stop; the drain did not finish within the timeout.
    DrainTimedOut,
    /// A group failed more often than the restart intensity allows.
    GaveUp,
}

/// Why a group is restarted: what the log line and `/readyz` say.
#[derive(Debug)]
enum Cause<E> {
    StartFailed(E),
    /// An actor of the group went; `clean` when it stopped through `Actor::stopped`.
    ActorWent {
        actor: &'static str,
        clean: bool,
    },
}

impl<E: std::fmt::Display> std::fmt::Display for Cause<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::StartFailed(e) => write!(f, "start failed: {e}"),
            Cause::ActorWent { actor, clean: true } => write!(f, "{actor} stopped"),
            Cause::ActorWent {
                actor,
                clean: false,
            } => write!(f, "{actor} died (panic or lost arbiter)"),
        }
    }
}

/// Runs `groups` until `shutdown` resolves or a group exceeds its restart intensity. On
/// `shutdown`, at any moment, every group that runs is drained (a group waiting to be restarted
/// is not restarted), and the drain decides between `Stopped` and `DrainTimedOut`.
pub async fn supervise<E: std::fmt::Display>(
    mut groups: Vec<Box<dyn ChildGroup<StartError = E>>>,
    policy: RestartPolicy,
    shutdown: impl Future<Output = ()>,
    shutdown_timeout: Duration,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
) -> Outcome {
    let (tx, mut rx) = unbounded_channel::<ChildExit>();
    let mut generations = vec![0u64; groups.len()];
    let mut histories: Vec<RestartHistory> =
        groups.iter().map(|_| RestartHistory::new(policy)).collect();
    tokio::pin!(shutdown);

    // A group that cannot even start is handled like one that failed.
    let mut pending: VecDeque<(usize, Option<Cause<E>>)> =
        (0..groups.len()).map(|i| (i, None)).collect();
    // Which groups run: started, and not seen failing since. A stop drains these, whatever the
    // others are doing at that moment (backing off before a restart, starting).
    let mut running = vec![false; groups.len()];

    'supervise: loop {
        while let Some((i, cause)) = pending.pop_front() {
            if let Some(cause) = cause {
                let Some(wait) = histories[i].record(Instant::now()) else {
                    error!(log, "restart intensity exceeded, giving up";
                        "group" => groups[i].name(), "cause" => %cause,
                        "max_restarts" => policy.max_restarts,
                        "window_s" => policy.window.as_secs());
                    for g in groups.iter_mut() {
                        g.stop();
                    }
                    return Outcome::GaveUp;
                };
                info!(log, "restarting group"; "group" => groups[i].name(), "cause" => %cause,
                    "backoff_ms" => wait.as_millis() as u64);
                for actor in groups[i].actors() {
                    health.set_actor(
                        actor,
                        ActorState::BackingOff(format!("{}{cause}", crate::health::RESTARTING)),
                    );
                }
                groups[i].stop();
                tokio::select! {
                    // Not restarted; the groups that run are drained below.
                    _ = &mut shutdown => break 'supervise,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            generations[i] += 1;
            let started = tokio::select! {
                _ = &mut shutdown => None,
                r = groups[i].start(generations[i], tx.clone()) => Some(r),
            };
            // Stopped half-started (with every group, below), not drained.
            let Some(started) = started else {
                break 'supervise;
            };
            match started {
                Ok(()) => {
                    running[i] = true;
                    for actor in groups[i].actors() {
                        health.clear_restarting(actor);
                    }
                    info!(log, "group started"; "group" => groups[i].name(),
                        "generation" => generations[i])
                }
                Err(e) => {
                    warn!(log, "group failed to start"; "group" => groups[i].name(), "error" => %e);
                    pending.push_back((i, Some(Cause::StartFailed(e))));
                }
            }
        }

        tokio::select! {
            _ = &mut shutdown => break,
            Some(exit) = rx.recv() => {
                let Some(i) = groups.iter().position(|g| g.actors().contains(&exit.actor)) else {
                    continue;
                };
                if exit.generation != generations[i] || pending.iter().any(|(p, _)| *p == i) {
                    continue; // an actor of an incarnation already replaced
                }
                running[i] = false;
                metrics.actor_restarts.with_label_values(&[exit.actor]).inc();
                let cause = Cause::ActorWent { actor: exit.actor, clean: exit.clean };
                pending.push_back((i, Some(cause)));
            }
        }
    }

    // An actor that went just before the stop: its group is not drained (a drain would wait on
    // an actor that is gone); what it had in flight was not committed and is read again.
    while let Ok(exit) = rx.try_recv() {
        if let Some(i) = groups.iter().position(|g| g.actors().contains(&exit.actor)) {
            if exit.generation == generations[i] {
                running[i] = false;
            }
        }
    }
    let draining: Vec<&str> = groups
        .iter()
        .zip(&running)
        .filter(|(_, run)| **run)
        .map(|(g, _)| g.name())
        .collect();
    info!(log, "stopping: draining in-flight work"; "groups" => draining.join(","),
        "timeout_ms" => shutdown_timeout.as_millis() as u64);
    let drained = tokio::time::timeout(shutdown_timeout, async {
        let mut all = true;
        for (g, _) in groups.iter_mut().zip(&running).filter(|(_, run)| **run) {
            all &= g.drain().await;
        }
        all
    })
    .await;
    for g in groups.iter_mut() {
        g.stop();
    }
    match drained {
        Ok(true) => Outcome::Stopped,
        Ok(false) | Err(_) => Outcome::DrainTimedOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_and_give_up_past_the_intensity() {
        let policy = RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
        };
        let mut h = RestartHistory::new(policy);
        let t0 = Instant::now();
        let waits: Vec<_> = (0..3)
            .map(|i| h.record(t0 + Duration::from_secs(i)).unwrap())
            .collect();
        assert!(waits[0] >= Duration::from_millis(80) && waits[0] <= Duration::from_millis(120));
        assert!(waits[2] >= Duration::from_millis(320) && waits[2] <= Duration::from_millis(480));
        assert_eq!(h.record(t0 + Duration::from_secs(3)), None);
        // Once the window has passed, the group may restart again, from the minimum wait.
        let wait = h.record(t0 + Duration::from_secs(200)).unwrap();
        assert!(wait <= Duration::from_millis(120));
    }
}

/// The supervisor with real actors (in `supervisor/actor_tests.rs`).
#[cfg(test)]
mod actor_tests;
