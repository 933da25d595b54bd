//! AlertDelivery: delivers the alert episode events of the outbox (`alert_events`, written by the
//! writers in the transaction that activated or resolved each episode) to every receiver, at
//! least once and in order per episode (SPEC section 8):
//! - each Alertmanager of `alerts.alertmanager.urls`: `POST <url>/api/v2/alerts`, the activation
//!   as a firing alert, the resolution with `endsAt` = `resolved_at`; every open activated
//!   episode again every `alerts.alertmanager.resend_interval_ms` with `endsAt` three intervals
//!   ahead;
//! - Kafka, `kafka.topics.alerts`: one record per event, keyed by customer id.
//!
//! Accepts nothing; runs one loop. One processor at a time delivers: the one whose connection
//! holds the delivery advisory lock (`db::queries::try_lead_delivery`); the others wait and take
//! over when its connection goes (a crash, a stop, an outage). Each round reads the oldest undone
//! events in id order, asks `domain::delivery::due` which are due at each receiver (a resolution
//! never before its activation reached that receiver, and at an Alertmanager not before the
//! firing has been there `alerts.alertmanager.min_firing_ms`), sends them, notes each
//! acknowledgement per receiver (`alert_deliveries`), and marks an event done once every
//! receiver has it. A receiver that fails is retried with backoff ([`RETRY_MIN`] doubling to
//! [`RETRY_MAX`]) while the others go on; nothing on the data path waits for any of this (the
//! writers only insert the events). A crash between a send and its note sends that event again:
//! at least once. Alertmanager being unreachable shows in the metrics and the log, never in
//! `/readyz`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::pg::PgConnection;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use slog::{info, o, warn, Logger};
use tokio::sync::Notify;

use super::{ExitGuard, Stage};
use crate::config::{AlertmanagerTarget, DatabaseSettings};
use crate::db::queries::{
    count_pending_events, mark_done, note_delivered, open_activated_episodes, pending_events,
    try_lead_delivery, EpisodeColumns, PendingEvent,
};
use crate::db::{self, DbError};
use crate::domain::classification::AnomalyKind;
use crate::domain::delivery::{alertmanager_alert, due, kafka_event, Notice, Outstanding};
use crate::domain::detector::EventKind;
use crate::health::{ActorState, Health};
use crate::metrics::Metrics;
use crate::telemetry::LogLimiter;

const NAME: &str = Stage::AlertDelivery.as_str();

/// The receiver name of the Kafka topic (in `alert_deliveries` and the metrics).
pub const KAFKA_RECEIVER: &str = "kafka";

/// Events read per round: a backlog (a long Alertmanager outage) goes out in rounds of this many,
/// each one request per Alertmanager.
const ROUND_EVENTS: i64 = 500;
/// How often the outbox is read when no writer said it wrote events (another processor's
/// writers, or a wake-up lost to a restart). Small: the query reads a partial index of the
/// undone events, empty when all is delivered.
const POLL: Duration = Duration::from_millis(500);
/// How often a processor that does not deliver tries to take the lead, and counts what is
/// pending for its own metric.
const FOLLOW_POLL: Duration = Duration::from_secs(2);
/// First wait before a failed receiver is tried again; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Wait before connecting again after PostgreSQL failed.
const DB_RETRY: Duration = Duration::from_secs(1);

/// How delivery is configured: `alerts.alertmanager.*` and `kafka.topics.alerts`.
#[derive(Debug, Clone)]
pub struct DeliveryPlan {
    pub alertmanagers: Vec<AlertmanagerTarget>,
    pub topic: String,
    pub resend_interval: Duration,
    pub timeout: Duration,
    pub min_firing: Duration,
}

pub struct AlertDelivery {
    courier: Option<Courier>,
    health: Arc<Health>,
    exit: ExitGuard,
}

impl AlertDelivery {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: DeliveryPlan,
        producer: FutureProducer,
        database: DatabaseSettings,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        log: &Logger,
        exit: ExitGuard,
    ) -> Self {
        let log = log.new(o!("actor" => NAME));
        let receivers = std::iter::once(Receiver::new(Target::Kafka))
            .chain(
                plan.alertmanagers
                    .iter()
                    .cloned()
                    .map(|t| Receiver::new(Target::Alertmanager(t))),
            )
            .collect();
        let courier = Courier {
            plan,
            receivers,
            producer,
            database,
            conn: None,
            leading: false,
            next_resend: Instant::now(),
            wake,
            metrics,
            failures: LogLimiter::new(3, Duration::from_secs(60)),
            log,
        };
        AlertDelivery {
            courier: Some(courier),
            health,
            exit,
        }
    }
}

impl Actor for AlertDelivery {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.exit.stopped_cleanly();
    }

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.health.set_actor(NAME, ActorState::Running);
        if let Some(courier) = self.courier.take() {
            // Owned by the actor's context: should it panic, the actor goes with it and the
            // supervisor hears of it through the exit guard.
            ctx.spawn(
                actix::fut::wrap_future(courier.run())
                    .map(|(), _, ctx: &mut Context<Self>| ctx.stop()),
            );
        }
    }
}

/// Where a receiver is.
#[derive(Debug, Clone)]
enum Target {
    Kafka,
    Alertmanager(AlertmanagerTarget),
}

/// A receiver and when it may be tried again.
struct Receiver {
    target: Target,
    /// Its name in `alert_deliveries` and the metrics.
    name: String,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Receiver {
    fn new(target: Target) -> Receiver {
        let name = match &target {
            Target::Kafka => KAFKA_RECEIVER.to_owned(),
            Target::Alertmanager(t) => t.url.clone(),
        };
        Receiver {
            target,
            name,
            failures: 0,
            retry_at: None,
        }
    }

    fn is_alertmanager(&self) -> bool {
        matches!(self.target, Target::Alertmanager(_))
    }

    fn ready(&self, now: Instant) -> bool {
        self.retry_at.map_or(true, |at| now >= at)
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    fn failed(&mut self, now: Instant) -> Duration {
        let wait = db::backoff(self.failures, RETRY_MIN, RETRY_MAX);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + wait);
        wait
    }
}

/// The delivery loop's state, owned by the future the actor runs.
struct Courier {
    plan: DeliveryPlan,
    receivers: Vec<Receiver>,
    producer: FutureProducer,
    database: DatabaseSettings,
    /// The session that holds (or tries for) the delivery lock: a connection of its own, not a
    /// pooled one, so that closing it releases the lock.
    conn: Option<PgConnection>,
    leading: bool,
    next_resend: Instant,
    /// Notified by the writers after a batch with events committed.
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    failures: LogLimiter,
    log: Logger,
}

/// What a round did.
struct Round {
    /// Something was sent or more is waiting: go on at once.
    more: bool,
}

impl Courier {
    async fn run(mut self) {
        let client = awc::Client::builder()
            .timeout(self.plan.timeout)
            .disable_redirects()
            .finish();
        loop {
            let was_leading = self.leading;
            let wait = match self.step(&client).await {
                Ok(Some(Round { more: true })) => continue,
                Ok(Some(Round { more: false })) => self.idle_wait(),
                Ok(None) => FOLLOW_POLL,
                Err(e) => {
                    if was_leading {
                        warn!(self.log, "alert delivery lost its database session; another \
                            processor may take over"; "error" => %e);
                    } else if self.failures.admit().is_some() {
                        warn!(self.log, "alert delivery cannot reach postgres, will retry";
                            "error" => %e);
                    }
                    self.conn = None;
                    self.leading = false;
                    DB_RETRY
                }
            };
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        }
    }

    /// How long to wait when nothing is due: the poll, or less until the next re-send or the
    /// next retry of a failed receiver.
    fn idle_wait(&self) -> Duration {
        let now = Instant::now();
        let mut wait = POLL;
        if !self.plan.alertmanagers.is_empty() {
            wait = wait.min(self.next_resend.saturating_duration_since(now));
        }
        for r in &self.receivers {
            if let Some(at) = r.retry_at {
                wait = wait.min(at.saturating_duration_since(now));
            }
        }
        wait
    }

    /// One turn: take the lead if nobody has it, then deliver a round and re-send if due.
    /// `None`: another processor delivers.
    async fn step(&mut self, client: &awc::Client) -> Result<Option<Round>, DbError> {
        if !self.leading {
            let taken = self.db(try_lead_delivery).await?;
            if !taken {
                let pending = self.db(count_pending_events).await?;
                self.metrics.alert_notification_pending.set(pending);
                return Ok(None);
            }
            self.leading = true;
            info!(self.log, "this processor delivers alert episodes";
                "receivers" => self.receivers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(","));
        }
        let round = self.round(client).await?;
        if !self.plan.alertmanagers.is_empty() && Instant::now() >= self.next_resend {
            self.resend(client).await?;
            self.next_resend = Instant::now() + self.plan.resend_interval;
        }
        Ok(Some(round))
    }

    /// Runs `f` on the session, off the actor's thread (diesel blocks), connecting first if
    /// there is none.
    async fn db<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = self.conn.take();
        let database = self.database.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let mut conn = match conn {
                Some(c) => c,
                None => match db::connect(&database) {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            let out = f(&mut conn);
            (Some(conn), out)
        })
        .await
        .unwrap_or_else(|e| {
            (
                None,
                Err(DbError::Migrate(format!(
                    "the delivery's query thread failed: {e}"
                ))),
            )
        });
        // Any failure closes the session (and so gives up the lead): a query that failed on a
        // healthy connection is retried on a fresh one all the same.
        if out.is_ok() {
            self.conn = conn;
        } else {
            self.leading = false;
        }
        out
    }

    /// Reads the undone events, sends each receiver what is due at it, notes what was
    /// acknowledged and marks what every receiver has.
    async fn round(&mut self, client: &awc::Client) -> Result<Round, DbError> {
        let min_firing = self.plan.min_firing;
        let mut events = self
            .db(move |c| pending_events(c, ROUND_EVENTS, min_firing))
            .await?;
        let full = events.len() as i64 == ROUND_EVENTS;
        let mut sent_any = false;
        let now = Instant::now();
        for i in 0..self.receivers.len() {
            if !self.receivers[i].ready(now) {
                continue;
            }
            let receiver = &self.receivers[i];
            // Rows of a kind or event this build does not know are left alone.
            let (origin, outstanding): (Vec<usize>, Vec<Outstanding<'_>>) = events
                .iter()
                .enumerate()
                .filter_map(|(j, e)| {
                    let o = Outstanding {
                        event: EventKind::from_name(&e.event)?,
                        episode: (
                            e.episode.customer_id.as_str(),
                            AnomalyKind::from_name(&e.episode.kind)?,
                            e.episode.opened_at,
                        ),
                        delivered: &e.delivered,
                        held_at: &e.held_at,
                    };
                    Some((j, o))
                })
                .unzip();
            let picked: Vec<usize> = due(&outstanding, &receiver.name, receiver.is_alertmanager())
                .into_iter()
                .map(|k| origin[k])
                .collect();
            if picked.is_empty() {
                continue;
            }
            let batch: Vec<&PendingEvent> = picked.iter().map(|&j| &events[j]).collect();
            let delivered = self.send(client, i, &batch).await;
            let name = self.receivers[i].name.clone();
            if !delivered.is_empty() {
                sent_any = true;
                let ids = delivered.clone();
                let receiver = name.clone();
                self.db(move |c| note_delivered(c, &receiver, &ids)).await?;
                for e in events.iter_mut().filter(|e| delivered.contains(&e.id)) {
                    e.delivered.push(name.clone());
                }
            }
        }
        let names: Vec<&str> = self.receivers.iter().map(|r| r.name.as_str()).collect();
        let done: Vec<i64> = events
            .iter()
            .filter(|e| names.iter().all(|n| e.delivered.iter().any(|d| d == n)))
            .map(|e| e.id)
            .collect();
        let left = events.len() - done.len();
        if !done.is_empty() {
            self.db(move |c| mark_done(c, &done)).await?;
        }
        let pending = if full {
            self.db(count_pending_events).await?
        } else {
            left as i64
        };
        self.metrics.alert_notification_pending.set(pending);
        Ok(Round {
            more: sent_any || full,
        })
    }

    /// Sends `events` to receiver `i`; returns the ids it acknowledged.
    async fn send(&mut self, client: &awc::Client, i: usize, events: &[&PendingEvent]) -> Vec<i64> {
        let notices: Vec<(i64, EventKind, Notice)> = events
            .iter()
            .filter_map(|e| {
                Some((
                    e.id,
                    EventKind::from_name(&e.event)?,
                    notice(&e.episode, e.resolved_at)?,
                ))
            })
            .collect();
        let target = self.receivers[i].target.clone();
        let name = self.receivers[i].name.clone();
        let result: Result<Vec<i64>, String> = match &target {
            Target::Kafka => Ok(self.to_kafka(&notices).await),
            Target::Alertmanager(am) => {
                let alerts: Vec<serde_json::Value> = notices
                    .iter()
                    .map(|(_, event, n)| {
                        let ends_at = match event {
                            EventKind::Activated => self.firing_until(),
                            EventKind::Resolved => n.resolved_at.unwrap_or_else(Utc::now),
                        };
                        alertmanager_alert(n, ends_at)
                    })
                    .collect();
                post_alerts(client, am, &alerts)
                    .await
                    .map(|()| notices.iter().map(|(id, _, _)| *id).collect())
            }
        };
        let now = Instant::now();
        let acknowledged = match result {
            Ok(ids) => ids,
            Err(why) => {
                let wait = self.receivers[i].failed(now);
                if self.failures.admit().is_some() {
                    warn!(self.log, "an alert receiver failed, will retry";
                        "receiver" => &name, "error" => why, "retry_in_ms" => wait.as_millis() as u64);
                }
                Vec::new()
            }
        };
        for (id, event, _) in &notices {
            let result = if acknowledged.contains(id) {
                "ok"
            } else {
                "error"
            };
            self.metrics
                .alert_notifications
                .with_label_values(&[&name, event.as_str(), result])
                .inc();
        }
        if !acknowledged.is_empty() && acknowledged.len() == notices.len() {
            self.receivers[i].succeeded();
        } else if !acknowledged.is_empty() {
            // Part of a Kafka batch failed: try the rest again after a pause.
            self.receivers[i].failed(now);
        }
        acknowledged
    }

    /// `endsAt` of a firing alert: three re-send intervals ahead, so an Alertmanager that stops
    /// hearing from the pipeline resolves the alert by itself.
    fn firing_until(&self) -> chrono::DateTime<Utc> {
        Utc::now()
            + TimeDelta::from_std(self.plan.resend_interval * 3).unwrap_or(TimeDelta::minutes(3))
    }

    /// Publishes the events to the alerts topic; returns the ids the broker acknowledged.
    async fn to_kafka(&self, notices: &[(i64, EventKind, Notice)]) -> Vec<i64> {
        let records: Vec<(i64, Vec<u8>, &str)> = notices
            .iter()
            .map(|(id, event, n)| {
                let value = serde_json::to_vec(&kafka_event(*event, n)).unwrap_or_default();
                (*id, value, n.customer_id.as_str())
            })
            .collect();
        let sends = records.iter().map(|(id, value, key)| {
            let record = FutureRecord::to(&self.plan.topic).key(*key).payload(value);
            let send = self
                .producer
                .send(record, Timeout::After(self.plan.timeout));
            async move { send.await.ok().map(|_| *id) }
        });
        futures::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Sends every open activated episode to each Alertmanager that is not backing off, as
    /// firing with `endsAt` three intervals ahead.
    async fn resend(&mut self, client: &awc::Client) -> Result<(), DbError> {
        let open: Vec<EpisodeColumns> = self.db(open_activated_episodes).await?;
        if open.is_empty() {
            return Ok(());
        }
        let ends_at = self.firing_until();
        let alerts: Vec<serde_json::Value> = open
            .iter()
            .filter_map(|e| Some(alertmanager_alert(&notice(e, None)?, ends_at)))
            .collect();
        let now = Instant::now();
        for r in self.receivers.iter_mut().filter(|r| r.ready(now)) {
            let Target::Alertmanager(am) = &r.target else {
                continue;
            };
            let result = post_alerts(client, am, &alerts).await;
            let outcome = if result.is_ok() { "ok" } else { "error" };
            self.metrics
                .alert_notifications
                .with_label_values(&[&r.name, "resend", outcome])
                .inc_by(alerts.len() as u64);
            if let Err(why) = result {
                let wait = r.failed(now);
                if self.failures.admit().is_some() {
                    warn!(self.log, "an Alertmanager did not take the open alerts, will retry";
                        "receiver" => &r.name, "error" => why, "retry_in_ms" => wait.as_millis() as u64);
                }
            }
        }
        Ok(())
    }
}

/// An episode (an outbox event's copy, or an open one) as a notice, resolved at `resolved_at`;
/// `None` for a kind this build does not know.
fn notice(e: &EpisodeColumns, resolved_at: Option<DateTime<Utc>>) -> Option<Notice> {
    Some(Notice {
        customer_id: e.customer_id.clone(),
        kind: AnomalyKind::from_name(&e.kind)?,
        opened_at: e.opened_at,
        activated_at: e.activated_at,
        resolved_at,
        last_seen_at: e.last_seen_at,
        readings: e.readings,
        peak_heart_rate: e.peak_heart_rate,
    })
}

/// Alerts per request: Alertmanager takes any number, but one huge body after a long outage
/// would risk the request timeout.
const ALERTS_PER_REQUEST: usize = 500;

/// `POST <url>/api/v2/alerts` of `alerts`, in requests of at most [`ALERTS_PER_REQUEST`];
/// `Err` says why the first that failed did.
async fn post_alerts(
    client: &awc::Client,
    am: &AlertmanagerTarget,
    alerts: &[serde_json::Value],
) -> Result<(), String> {
    let url = format!("{}/api/v2/alerts", am.url);
    for chunk in alerts.chunks(ALERTS_PER_REQUEST) {
        let mut request = client.post(&url);
        if let Some((user, password)) = &am.basic_auth {
            request = request.basic_auth(user, password);
        }
        let mut response = request.send_json(&chunk).await.map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            let body = response.body().limit(4096).await.unwrap_or_default();
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
    }
    Ok(())
}
