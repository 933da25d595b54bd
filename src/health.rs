//! Readiness: what `/readyz` reports, fed by the actors and by a periodic probe.
//!
//! Ready (SPEC section 6) means every enabled actor runs and is not backing off, Kafka answered
//! within the last [`ANSWER_WINDOW`], and, with the processor enabled, PostgreSQL did too. Actors
//! mark the services as seen whenever they talk to them; the probe task of `run` also asks
//! both every [`PROBE_INTERVAL`], so an idle pipeline stays ready.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How recently a service must have answered for the process to be ready.
pub const ANSWER_WINDOW: Duration = Duration::from_secs(10);
/// How often the probe asks Kafka and PostgreSQL; well inside [`ANSWER_WINDOW`].
pub const PROBE_INTERVAL: Duration = Duration::from_secs(3);

/// How the supervisor's backing-off reason for an actor about to restart begins.
pub const RESTARTING: &str = "restarting: ";

/// The state of one supervised actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorState {
    Starting,
    Running,
    /// Waiting to retry or restart; the text says why.
    BackingOff(String),
}

pub struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` + 1 of the last answer; 0 = never.
    kafka_seen: AtomicU64,
    db_seen: AtomicU64,
    db_required: AtomicBool,
    /// What librdkafka last reported going wrong (a refused login, a failed TLS handshake),
    /// shown with the "kafka has not answered" reason; forgotten once Kafka answers.
    kafka_error: Mutex<Option<String>>,
    actors: Mutex<BTreeMap<String, ActorState>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health {
            epoch: Instant::now(),
            kafka_seen: AtomicU64::new(0),
            db_seen: AtomicU64::new(0),
            db_required: AtomicBool::new(false),
            kafka_error: Mutex::new(None),
            actors: Mutex::new(BTreeMap::new()),
        }
    }

    fn stamp(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    pub fn kafka_answered(&self) {
        self.kafka_seen.store(self.stamp(), Ordering::Relaxed);
        if let Ok(mut e) = self.kafka_error.lock() {
            *e = None;
        }
    }

    /// Notes why Kafka does not answer, for `/readyz` (librdkafka's error, already scrubbed).
    pub fn kafka_failed(&self, reason: &str) {
        if let Ok(mut e) = self.kafka_error.lock() {
            *e = Some(reason.to_owned());
        }
    }

    pub fn db_answered(&self) {
        self.db_seen.store(self.stamp(), Ordering::Relaxed);
    }

    /// Whether PostgreSQL counts for readiness (the processor is enabled).
    pub fn require_db(&self, required: bool) {
        self.db_required.store(required, Ordering::Relaxed);
    }

    pub fn set_actor(&self, actor: &str, state: ActorState) {
        if let Ok(mut actors) = self.actors.lock() {
            actors.insert(actor.to_owned(), state);
        }
    }

    /// Forgets the supervisor's "restarting" mark on `actor` once its group has started again
    /// (the new incarnation reports its own state, possibly under another key, such as each of
    /// several writers); any other state stays.
    pub fn clear_restarting(&self, actor: &str) {
        if let Ok(mut actors) = self.actors.lock() {
            if matches!(actors.get(actor), Some(ActorState::BackingOff(why)) if why.starts_with(RESTARTING))
            {
                actors.remove(actor);
            }
        }
    }

    fn answered_recently(&self, seen: &AtomicU64) -> bool {
        let seen = seen.load(Ordering::Relaxed);
        seen != 0 && self.stamp().saturating_sub(seen) <= ANSWER_WINDOW.as_millis() as u64
    }

    /// Whether the process is ready, and if not, every reason why.
    pub fn readiness(&self) -> (bool, Vec<String>) {
        let mut reasons = Vec::new();
        if !self.answered_recently(&self.kafka_seen) {
            let last = self
                .kafka_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default();
            reasons.push(format!(
                "kafka has not answered within {}s{last}",
                ANSWER_WINDOW.as_secs()
            ));
        }
        if self.db_required.load(Ordering::Relaxed) && !self.answered_recently(&self.db_seen) {
            reasons.push(format!(
                "postgresql has not answered within {}s",
                ANSWER_WINDOW.as_secs()
            ));
        }
        if let Ok(actors) = self.actors.lock() {
            if actors.is_empty() {
                reasons.push("no actor is running yet".to_owned());
            }
            for (actor, state) in actors.iter() {
                match state {
                    ActorState::Running => {}
                    ActorState::Starting => reasons.push(format!("{actor} is starting")),
                    ActorState::BackingOff(why) => {
                        reasons.push(format!("{actor} is backing off: {why}"))
                    }
                }
            }
        }
        (reasons.is_empty(), reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_services_answered_and_actors_run() {
        let h = Health::new();
        h.require_db(true);
        let (ready, reasons) = h.readiness();
        assert!(!ready);
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        h.kafka_answered();
        h.db_answered();
        h.set_actor("db_writer", ActorState::Running);
        assert_eq!(h.readiness(), (true, vec![]));
        h.kafka_failed("SASL authentication error");
        h.kafka_answered();
        assert_eq!(h.readiness(), (true, vec![]), "an answer clears the error");
        h.set_actor(
            "db_writer",
            ActorState::BackingOff("connection refused".into()),
        );
        let (ready, reasons) = h.readiness();
        assert!(!ready);
        assert_eq!(
            reasons,
            vec!["db_writer is backing off: connection refused".to_owned()]
        );
    }
}

#[cfg(test)]
mod kafka_error_tests {
    use super::*;

    #[test]
    fn the_last_kafka_error_is_a_readiness_reason() {
        let h = Health::new();
        h.kafka_failed("SASL authentication error: Authentication failed");
        let (ready, reasons) = h.readiness();
        assert!(!ready);
        assert!(
            reasons[0].starts_with("kafka has not answered within 10s (last error: SASL"),
            "{reasons:?}"
        );
    }
}
