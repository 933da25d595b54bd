//! Generator: simulates the customers' heart rates (`domain::simulator`) and sends readings to
//! the KafkaPublisher at `generator.rate` readings a second.
//!
//! Emits `Publish`. Rate control is a token bucket with catch-up: a late tick sends what the
//! schedule owes, up to one second's worth, so the long-run rate holds. `rate = 0` sends as fast
//! as the publisher takes readings. With a count, the generator stops after that many and says
//! so on its `done` channel. Each reading says what its customer is doing (`activity`, from the
//! simulator's schedule) unless the plan says not to (`generator.activity = false`).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{info, o, Logger};
use tokio::sync::oneshot;

use super::{Downstream, ExitGuard, Stage, MAILBOX_CAPACITY};
use crate::domain::reading::{derive_event_id, Reading};
use crate::domain::simulator::{injected_header, SimRecord, Simulator, SimulatorConfig};
use crate::health::{ActorState, Health};
use crate::messages::{OutgoingRecord, Publish, StopGenerating};
use crate::metrics::Metrics;

const NAME: &str = Stage::Generator.as_str();

/// How often the rate-controlled generator wakes up to send what is due.
const TICK: Duration = Duration::from_millis(10);
/// Readings per `Publish` message at most.
const MAX_BATCH: u64 = 1_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorPlan {
    /// The simulated fleet (customers, seed, injected episodes and faults).
    pub sim: SimulatorConfig,
    /// Records per second; 0 = as fast as the publisher takes them.
    pub rate: u64,
    /// Stop after this many records; `None` = forever.
    pub count: Option<u64>,
    /// Send each reading's `activity` (`generator.activity`); off, readings carry none.
    pub activity: bool,
}

/// The Kafka record for one simulated record: a reading (with its activity when
/// `with_activity`) and, when it belongs to an injected episode, its ground truth (`x-injected`
/// and `x-episode`); or a fault (`x-injected: fault:<reason>`).
fn outgoing(record: SimRecord, at: DateTime<Utc>, with_activity: bool) -> OutgoingRecord {
    match record {
        SimRecord::Reading {
            customer_id,
            heart_rate,
            activity,
            injected,
            episode,
            ..
        } => {
            // Stamped with the wall clock, not the simulated time: readings are "now", so the
            // future-skew check and the day partitions follow real time.
            let reading = Reading {
                event_id: derive_event_id(&customer_id, &at),
                customer_id,
                recorded_at: at,
                heart_rate,
                activity: with_activity.then_some(activity),
                device_id: None,
            };
            // Both headers or neither: a natural reading has no episode and no kinds.
            let injected = episode.and(injected_header(&injected));
            let episode = episode.filter(|_| injected.is_some());
            OutgoingRecord::reading(&reading, injected, episode)
        }
        SimRecord::Fault {
            customer_id,
            reason,
            value,
        } => OutgoingRecord {
            key: customer_id,
            value,
            injected: Some(format!("fault:{}", reason.as_str())),
            episode: None,
        },
    }
}

pub struct Generator {
    plan: GeneratorPlan,
    next: Downstream<Recipient<Publish>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    log: Logger,
    done: Option<oneshot::Sender<u64>>,
    exit: ExitGuard,
}

impl Generator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: GeneratorPlan,
        next: Downstream<Recipient<Publish>>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        done: Option<oneshot::Sender<u64>>,
        exit: ExitGuard,
    ) -> Self {
        Generator {
            plan,
            next,
            metrics,
            health,
            log: log.new(o!("actor" => NAME)),
            done,
            exit,
        }
    }
}

/// Produces readings until the plan's count is reached or the publisher is gone; returns how
/// many were handed to the publisher.
async fn produce(
    plan: GeneratorPlan,
    next: Downstream<Recipient<Publish>>,
    metrics: Arc<Metrics>,
) -> u64 {
    let Downstream {
        stage: next_stage,
        to: next,
    } = next;
    let mut sim = Simulator::new(plan.sim.clone());
    let limit = plan.count.unwrap_or(u64::MAX);
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    // Microseconds since the epoch of the last reading: every reading gets a later instant than
    // the one before, so no two readings of a customer share an identity.
    let mut last_micros = 0i64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < limit {
        let due = if plan.rate == 0 {
            MAX_BATCH
        } else {
            tick.tick().await;
            let owed = (started.elapsed().as_secs_f64() * plan.rate as f64) as u64;
            // Catch up at most one second's worth after a stall.
            owed.saturating_sub(sent).min(plan.rate.max(1))
        };
        let mut left = due.min(limit - sent);
        while left > 0 {
            let n = left.min(MAX_BATCH);
            let now_micros = Utc::now().timestamp_micros();
            let records = (0..n)
                .map(|_| {
                    last_micros = now_micros.max(last_micros + 1);
                    let now = DateTime::from_timestamp_micros(last_micros).unwrap_or_default();
                    outgoing(sim.next_record(now), now, plan.activity)
                })
                .collect();
            metrics.mailbox_in(next_stage.as_str());
            if next.send(Publish { records }).await.is_err() {
                metrics.mailbox_out(next_stage.as_str());
                return sent;
            }
            sent += n;
            left -= n;
        }
    }
    sent
}

impl Actor for Generator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Tests: a generator that fails at every start (it has no batches to count).
        crate::faults::maybe_panic(NAME);
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.health.set_actor(NAME, ActorState::Running);
        info!(self.log, "generating"; "customers" => self.plan.sim.customers,
            "rate" => self.plan.rate, "seed" => self.plan.sim.seed, "count" => self.plan.count,
            "fault_rate" => self.plan.sim.fault_rate, "activity" => self.plan.activity);
        let fut = produce(self.plan.clone(), self.next.clone(), self.metrics.clone());
        ctx.spawn(fut.into_actor(self).map(|sent, act, _| {
            info!(act.log, "generation finished"; "sent" => sent);
            if let Some(done) = act.done.take() {
                let _ = done.send(sent);
            }
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.exit.stopped_cleanly();
    }
}

impl Handler<StopGenerating> for Generator {
    type Result = ();

    fn handle(&mut self, _: StopGenerating, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::classification::AnomalyKind;
    use crate::domain::reading::Activity;
    use crate::domain::simulator::sim_start;
    use crate::domain::validation::RejectReason;

    fn reading(injected: Vec<AnomalyKind>, episode: Option<u64>) -> SimRecord {
        SimRecord::Reading {
            customer_id: "CUST-00001".into(),
            heart_rate: 125,
            sim_time: sim_start(),
            activity: Activity::Rest,
            injected,
            episode,
        }
    }

    #[test]
    fn injected_records_carry_their_kinds_and_episode_and_natural_ones_neither() {
        let at = Utc::now();
        let natural = outgoing(reading(vec![], None), at, true);
        assert_eq!((natural.injected, natural.episode), (None, None));
        let kinds = vec![AnomalyKind::Tachycardia, AnomalyKind::Deviation];
        let injected = outgoing(reading(kinds, Some(42)), at, true);
        assert_eq!(
            (injected.injected.as_deref(), injected.episode),
            (Some("tachycardia,deviation"), Some(42))
        );
        let fault = outgoing(
            SimRecord::Fault {
                customer_id: "CUST-00001".into(),
                reason: RejectReason::MissingField,
                value: None,
            },
            at,
            true,
        );
        assert_eq!(
            (fault.injected.as_deref(), fault.episode),
            (Some("fault:missing_field"), None)
        );
    }
}
