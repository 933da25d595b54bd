//! The actors, one module each, and what they share: the names of the stages, the hand-over to
//! the next stage, and the exit guard that tells the supervisor an actor has gone.
//!
//! An actor never imports another. It gets its downstream (a `Recipient` and that stage's name,
//! for the mailbox metric) from its constructor; `pipeline.rs` wires them.
//!
//! ```text
//! Generator -> KafkaPublisher -> [heartbeats] -> KafkaSubscriber -> Validator
//!           -> AnomalyDetector -> DbWriter -> PostgreSQL
//!                                     `-> (OutputPublisher ->) OffsetLedger (stores offsets)
//! ```
//!
//! The OffsetLedger (`src/offsets.rs`) is no actor and takes no message: a writer whose part of a
//! batch committed, or the OutputPublisher once that part's records are acknowledged, calls
//! `OffsetLedger::finish` with the part's `BatchPersisted`.

pub mod alert_delivery;
pub mod anomaly_detector;
pub mod db_writer;
pub mod generator;
pub mod kafka_publisher;
pub mod kafka_subscriber;
pub mod output_publisher;
pub mod supervisor;
pub mod validator;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::SendError;
use actix::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use crate::metrics::Metrics;

/// The stages of the pipeline: the one place that names them. The names label the mailbox and
/// restart metrics, readiness (`/readyz`), the `actor` of log lines, and exit guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Generator,
    KafkaPublisher,
    KafkaSubscriber,
    Validator,
    AnomalyDetector,
    DbWriter,
    OutputPublisher,
    AlertDelivery,
}

impl Stage {
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Generator => "generator",
            Stage::KafkaPublisher => "kafka_publisher",
            Stage::KafkaSubscriber => "kafka_subscriber",
            Stage::Validator => "validator",
            Stage::AnomalyDetector => "anomaly_detector",
            Stage::DbWriter => "db_writer",
            Stage::OutputPublisher => "output_publisher",
            Stage::AlertDelivery => "alert_delivery",
        }
    }
}

/// Where an actor hands its output: `to` (a `Recipient`, or several), and the stage they are,
/// whose mailbox depth the hand-over counts.
#[derive(Clone)]
pub struct Downstream<R> {
    pub stage: Stage,
    pub to: R,
}

impl<R> Downstream<R> {
    pub fn new(stage: Stage, to: R) -> Self {
        Downstream { stage, to }
    }
}

/// A cheap, deterministic hash of a customer id (FNV-1a), for spreading customers over writers
/// and over save times; not for hash tables fed by the network (those use seeded hashers).
pub fn spread(customer: &str) -> u64 {
    customer.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Messages a data-path mailbox holds before senders wait: with batches of thousands of
/// records, a few batches per stage keep every stage busy while bounding memory.
pub const MAILBOX_CAPACITY: usize = 4;

/// Hands `msg` to the next stage of the data path as a handler's atomic response: the actor takes
/// no other message until `msg` is in `next`'s mailbox, so batches stay in order and a slow next
/// stage slows this one (backpressure). If the next stage is gone, the actor stops, which tells
/// the supervisor through its exit guard.
pub fn forward_in_order<A, M>(
    next: Rc<Recipient<M>>,
    msg: M,
    metrics: &Arc<Metrics>,
    next_stage: Stage,
) -> AtomicResponse<A, ()>
where
    A: Actor<Context = Context<A>>,
    M: Message<Result = ()> + Send + 'static,
{
    forward_all_in_order(vec![(next, msg)], metrics, next_stage)
}

/// [`forward_in_order`] for several messages, each to its own recipient (the parts of a batch
/// split among parallel writers), handed on one after the other.
pub fn forward_all_in_order<A, M>(
    sends: Vec<(Rc<Recipient<M>>, M)>,
    metrics: &Arc<Metrics>,
    next_stage: Stage,
) -> AtomicResponse<A, ()>
where
    A: Actor<Context = Context<A>>,
    M: Message<Result = ()> + Send + 'static,
{
    let metrics = metrics.clone();
    let recipients: Vec<Rc<Recipient<M>>> = sends.iter().map(|(r, _)| r.clone()).collect();
    AtomicResponse::new(Box::pin(
        actix::fut::wrap_future::<_, A>(
            async move { hand_over_all(sends, &metrics, next_stage).await },
        )
        .map(move |_, _, ctx: &mut Context<A>| {
            if recipients.iter().any(|r| !r.connected()) {
                ctx.stop();
            }
        }),
    ))
}

/// How often a message waiting for room in a full mailbox tries again.
pub const HAND_OVER_RETRY: Duration = Duration::from_millis(2);

/// Puts `msg` in `next`'s mailbox, waiting while it is full; `false` if `next` is gone.
///
/// Pass the same `Recipient` for every message, never a fresh clone: actix bounds a mailbox per
/// sender (capacity plus one message each, the sender being parked until the receiver takes
/// one), so a clone per message would never wait. Stages keep theirs in an `Rc`.
///
/// Only the queueing is awaited, not the handling: `Recipient::send` would resolve once `next`
/// has *handled* the message, which for an atomic handler that hands on in turn means once the
/// whole rest of the pipeline has, so every stage would wait for the last one and they would
/// take turns instead of working at once. The bounded mailbox is the backpressure.
pub async fn hand_over<M>(next: &Recipient<M>, msg: M) -> bool
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    let mut msg = msg;
    loop {
        match next.try_send(msg) {
            Ok(()) => return true,
            Err(SendError::Closed(_)) => return false,
            Err(SendError::Full(m)) => msg = m,
        }
        tokio::time::sleep(HAND_OVER_RETRY).await;
    }
}

/// [`hand_over`] of each message in turn, counted in `next_stage`'s mailbox depth.
pub async fn hand_over_all<M>(
    sends: Vec<(Rc<Recipient<M>>, M)>,
    metrics: &Metrics,
    next_stage: Stage,
) where
    M: Message + Send + 'static,
    M::Result: Send,
{
    for (next, msg) in sends {
        metrics.mailbox_in(next_stage.as_str());
        if !hand_over(&next, msg).await {
            metrics.mailbox_out(next_stage.as_str());
        }
    }
}

/// An actor has stopped or died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildExit {
    /// Which start of the actor's group it belonged to; exits of an older one are stale.
    pub generation: u64,
    pub actor: &'static str,
    /// `true` when the actor stopped through `Actor::stopped` (asked to); `false` when it was
    /// dropped without stopping, i.e. a panic unwound out of it or its arbiter went away.
    pub clean: bool,
}

/// Held by every supervised actor: tells the supervisor when the actor goes, however it goes.
/// A panic in a handler unwinds out of the actor's future and drops the actor without calling
/// `stopped`, so the drop is the one signal that never fails to arrive.
pub struct ExitGuard {
    generation: u64,
    actor: &'static str,
    clean: bool,
    tx: UnboundedSender<ChildExit>,
}

impl ExitGuard {
    pub fn new(actor: &'static str, generation: u64, tx: UnboundedSender<ChildExit>) -> Self {
        ExitGuard {
            generation,
            actor,
            clean: false,
            tx,
        }
    }

    /// Call from `Actor::stopped`: the actor stopped in an orderly way, unless a panic on this
    /// thread is why it stops (actix stops an actor whose handler panicked, calling `stopped`).
    pub fn stopped_cleanly(&mut self) {
        self.clean = !PANICKED.with(Cell::get);
    }
}

thread_local! {
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Called by the process's panic hook on the panicking thread: actors of this thread that stop
/// from now on are reported as failed. (Each group incarnation has threads of its own, so the
/// mark never outlives the incarnation it belongs to.)
pub fn note_panic() {
    PANICKED.with(|p| p.set(true));
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // The supervisor may be gone already at process exit; nothing to tell then.
        let _ = self.tx.send(ChildExit {
            generation: self.generation,
            actor: self.actor,
            clean: self.clean,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_reports_whether_the_actor_stopped_cleanly() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        drop(ExitGuard::new("validator", 3, tx.clone()));
        let mut g = ExitGuard::new("db_writer", 3, tx);
        g.stopped_cleanly();
        drop(g);
        assert_eq!(
            rx.try_recv().unwrap(),
            ChildExit {
                generation: 3,
                actor: "validator",
                clean: false
            }
        );
        assert!(rx.try_recv().unwrap().clean);
    }
}
