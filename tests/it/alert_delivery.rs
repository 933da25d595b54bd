//! Alert delivery (SPEC section 8) through the real binary, a real Alertmanager (Debian's 0.25,
//! `group_wait: 0s`) and the webhook it notifies: what reaches a person, with what labels, after
//! a processor is killed, while Alertmanager is away, with two Alertmanagers and with a silence;
//! and the episode events on `kafka.topics.alerts`.
//!
//! Readings are synthetic, ten seconds apart a day ago (so the default sustains apply without
//! waiting), sent by an independent client. Silences are turned off (`silence_after_ms` an hour):
//! every customer here goes quiet after its last reading.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz};
use rdkafka::message::Message;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(120);

/// A critical_high episode that activates (30 s at 190) and resolves (three readings below 181),
/// stepping down by less than a spike so that nothing else activates; its tachycardia episode
/// never lasts its ten minutes. `from` is the first reading's second.
fn critical_high(from: i64) -> Vec<(i64, i16)> {
    let hrs = [190, 190, 190, 190, 190, 165, 140, 115, 90, 70, 70, 70];
    (0..).zip(hrs).map(|(i, hr)| (from + 10 * i, hr)).collect()
}

/// A spike (70 to 110) that activates at once and resolves three readings later.
fn spike(from: i64) -> Vec<(i64, i16)> {
    let hrs = [70, 70, 110, 85, 70, 70, 70];
    (0..).zip(hrs).map(|(i, hr)| (from + 10 * i, hr)).collect()
}

/// A bradycardia episode of 20 s: it never lasts its ten minutes, so it never activates.
fn short_bradycardia(from: i64) -> Vec<(i64, i16)> {
    let hrs = [50, 50, 50, 70, 70, 70, 70];
    (0..).zip(hrs).map(|(i, hr)| (from + 10 * i, hr)).collect()
}

/// A whole hour a day ago.
fn base() -> DateTime<Utc> {
    (Utc::now() - TimeDelta::days(1))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
}

/// The setup of these tests, delivering to `alertmanagers`.
fn setup(db: &TestDb, alertmanagers: &[&Alertmanager]) -> Setup {
    let urls: Vec<String> = alertmanagers.iter().map(|a| a.url()).collect();
    Setup::new(db)
        .with("HEARTBEAT__ALERTS__ALERTMANAGER__URLS", &urls.join(","))
        // group_wait is 0 s here: a second is plenty for Alertmanager to notify the firing.
        .with("HEARTBEAT__ALERTS__ALERTMANAGER__MIN_FIRING_MS", "1000")
        .with(
            "HEARTBEAT__ALERTS__ALERTMANAGER__RESEND_INTERVAL_MS",
            "5000",
        )
        .with("HEARTBEAT__DETECTOR__SILENCE_AFTER_MS", "3600000")
}

/// Sends each customer's readings (seconds after `base`, heart rate), in order, keyed by
/// customer; returns how many.
fn send(setup: &Setup, base: DateTime<Utc>, readings: &[(&str, Vec<(i64, i16)>)]) -> i64 {
    let p = producer();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut n = 0;
    for (customer, series) in readings {
        for (secs, hr) in series {
            let at = (base + TimeDelta::seconds(*secs)).to_rfc3339_opts(SecondsFormat::Secs, true);
            let value =
                format!(r#"{{"customer_id":"{customer}","timestamp":"{at}","heart_rate":{hr}}}"#);
            p.send_result(
                FutureRecord::to(&setup.topic)
                    .key(*customer)
                    .payload(&value)
                    .timestamp(now_ms),
            )
            .map_err(|(e, _)| e)
            .expect("queue reading");
            n += 1;
        }
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    n
}

fn wait_committed(setup: &Setup, total: i64) {
    wait_for("every record committed", DEADLINE, || {
        (committed_total(&setup.group, &setup.topic) == total).then_some(())
    });
}

/// An episode as `alerts` holds it.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
struct Episode {
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Timestamptz)]
    opened_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    activated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    resolved_at: Option<DateTime<Utc>>,
}

/// The activated episodes, by (customer, kind).
fn activated(db: &TestDb) -> BTreeMap<(String, String), Episode> {
    let rows: Vec<Episode> = diesel::sql_query(
        "SELECT customer_id, kind, opened_at, activated_at, resolved_at FROM alerts \
         WHERE activated_at IS NOT NULL ORDER BY customer_id, kind",
    )
    .load(&mut db.conn())
    .expect("read alerts");
    rows.into_iter()
        .map(|e| ((e.customer_id.clone(), e.kind.clone()), e))
        .collect()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Waits until the webhook got every episode of `want` firing, and resolved when resolved.
fn wait_notified(webhook: &WebhookRecorder, want: &[&Episode], what: &str) {
    webhook.wait_until(what, DEADLINE, |alerts| {
        want.iter().all(|e| {
            let of = |status: &str| {
                alerts.iter().any(|a| {
                    a.status == status
                        && a.label("customer_id") == e.customer_id
                        && a.label("kind") == e.kind
                })
            };
            of("firing") && (e.resolved_at.is_none() || of("resolved"))
        })
    });
}

/// The episode events on the alerts topic, deduplicated on (customer_id, kind, opened_at,
/// event), in the order of their first copy; and how many records there were.
fn events_on_topic(setup: &Setup, at_least: usize) -> (Vec<serde_json::Value>, usize) {
    let records = read_topic(&format!("{}-alerts", setup.topic), at_least);
    let mut seen = std::collections::HashSet::new();
    let mut events = Vec::new();
    for m in &records {
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            v["customer_id"].as_str().map(str::to_owned),
            "keyed by customer id"
        );
        let key = (
            v["customer_id"].to_string(),
            v["kind"].to_string(),
            v["opened_at"].to_string(),
            v["event"].to_string(),
        );
        if seen.insert(key) {
            events.push(v);
        }
    }
    (events, records.len())
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.count(sql)
}

#[test]
fn every_activated_episode_reaches_both_alertmanagers_firing_then_resolved_and_kafka_once() {
    let db = TestDb::new();
    let (hook1, hook2) = (WebhookRecorder::start(), WebhookRecorder::start());
    let am1 = Alertmanager::start(&hook1.url());
    let am2 = Alertmanager::start(&hook2.url());
    let setup = setup(&db, &[&am1, &am2]);
    let mut daemon = setup.spawn_run_started();
    let base = base();
    let sent = send(
        &setup,
        base,
        &[
            ("HIGH-1", critical_high(0)),
            ("SPIKE-1", spike(0)),
            ("QUIET-1", short_bradycardia(0)),
        ],
    );
    wait_committed(&setup, sent);

    let episodes = activated(&db);
    let keys: Vec<(&str, &str)> = episodes
        .keys()
        .map(|(c, k)| (c.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        keys,
        [("HIGH-1", "critical_high"), ("SPIKE-1", "spike")],
        "the workload activates exactly these"
    );
    let want: Vec<&Episode> = episodes.values().collect();
    assert!(want.iter().all(|e| e.resolved_at.is_some()));
    for hook in [&hook1, &hook2] {
        wait_notified(
            hook,
            &want,
            "both episodes firing and resolved at each Alertmanager",
        );
    }

    // Labels and annotations as SPEC section 8 says.
    let high = &episodes[&("HIGH-1".to_owned(), "critical_high".to_owned())];
    let spiked = &episodes[&("SPIKE-1".to_owned(), "spike".to_owned())];
    for (e, alertname, severity) in [
        (high, "HeartRateCriticalHigh", "critical"),
        (spiked, "HeartRateSpike", "warning"),
    ] {
        for hook in [&hook1, &hook2] {
            let a = hook
                .firing_for(&e.customer_id)
                .into_iter()
                .find(|a| a.label("kind") == e.kind)
                .expect("a firing notification");
            let labels: Vec<(&str, &str)> = a
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let episode = rfc3339(e.opened_at);
            assert_eq!(
                labels,
                [
                    ("alertname", alertname),
                    ("customer_id", e.customer_id.as_str()),
                    ("episode", episode.as_str()),
                    ("kind", e.kind.as_str()),
                    ("service", "heartbeat-pipeline"),
                    ("severity", severity),
                ]
            );
            let notes: Vec<&str> = a.annotations.keys().map(String::as_str).collect();
            assert_eq!(
                notes,
                ["description", "last_seen_at", "peak_heart_rate", "summary"]
            );
            let starts: DateTime<Utc> = a.starts_at.parse().unwrap();
            assert_eq!(starts, e.opened_at, "startsAt is opened_at");
            let resolved = hook
                .resolved_for(&e.customer_id)
                .into_iter()
                .find(|a| a.label("kind") == e.kind)
                .expect("a resolved notification");
            let ends: DateTime<Utc> = resolved.ends_at.parse().unwrap();
            assert_eq!(Some(ends), e.resolved_at, "endsAt is resolved_at");
        }
    }
    assert_eq!(high.activated_at, Some(base + TimeDelta::seconds(30)));
    let peak = hook1.firing_for("HIGH-1")[0].annotations["peak_heart_rate"].clone();
    assert_eq!(peak, "190");

    // Nothing else reached anyone: QUIET-1's episode never activated.
    for hook in [&hook1, &hook2] {
        let customers: std::collections::BTreeSet<String> = hook
            .alerts()
            .iter()
            .map(|a| format!("{}/{}", a.label("customer_id"), a.label("kind")))
            .collect();
        assert_eq!(
            customers.into_iter().collect::<Vec<_>>(),
            ["HIGH-1/critical_high", "SPIKE-1/spike"]
        );
    }

    // Kafka: one activated and one resolved event per episode, activated first.
    let (events, _) = events_on_topic(&setup, 4);
    assert_eq!(events.len(), 4, "{events:#?}");
    for e in [high, spiked] {
        let mine: Vec<&serde_json::Value> = events
            .iter()
            .filter(|v| v["customer_id"] == e.customer_id.as_str() && v["kind"] == e.kind.as_str())
            .collect();
        let order: Vec<&str> = mine.iter().map(|v| v["event"].as_str().unwrap()).collect();
        assert_eq!(order, ["activated", "resolved"], "{}", e.customer_id);
        assert_eq!(mine[0]["opened_at"], rfc3339(e.opened_at));
        assert_eq!(mine[0]["activated_at"], rfc3339(e.activated_at.unwrap()));
        assert_eq!(mine[0]["resolved_at"], serde_json::Value::Null);
        assert_eq!(mine[1]["resolved_at"], rfc3339(e.resolved_at.unwrap()));
    }
    // The per-anomaly stream goes on, on its own topic.
    let anomalies = count(&db, "SELECT count(*) AS n FROM anomalies");
    assert!(anomalies > 0);
    let stream = read_topic(&format!("{}-anomalies", setup.topic), anomalies as usize);
    assert_eq!(stream.len() as i64, anomalies);

    wait_for("nothing pending", DEADLINE, || {
        (daemon.metric_sum("heartbeat_alert_notification_pending") == 0.0).then_some(())
    });
    let ok = |receiver: &str, event: &str| {
        let (_, body) = daemon.get("/metrics");
        let series = format!(
            "heartbeat_alert_notifications_total{{event=\"{event}\",receiver=\"{receiver}\",result=\"ok\"}} "
        );
        body.lines()
            .find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    for receiver in [am1.url(), am2.url(), "kafka".to_owned()] {
        assert_eq!(
            (ok(&receiver, "activated"), ok(&receiver, "resolved")),
            (2.0, 2.0),
            "{receiver}"
        );
    }
    assert_eq!(daemon.stop(), 0);

    // A replay in a new consumer group delivers nothing new.
    let outbox = count(&db, "SELECT count(*) AS n FROM alert_events");
    let notified = (hook1.alerts().len(), hook2.alerts().len());
    replay_in_a_new_group(&setup, sent, DEADLINE);
    assert_eq!(count(&db, "SELECT count(*) AS n FROM alert_events"), outbox);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM alert_events WHERE done_at IS NULL"
        ),
        0
    );
    assert_eq!((hook1.alerts().len(), hook2.alerts().len()), notified);
    let (events, _) = events_on_topic(&setup, 4);
    assert_eq!(events.len(), 4, "no new event on the alerts topic");
}

#[test]
fn an_episode_activated_before_a_sigkill_is_delivered_after_the_restart() {
    let db = TestDb::new();
    let hook = WebhookRecorder::start();
    let mut am = Alertmanager::start(&hook.url());
    // Away while the episode activates and resolves: its events stay in the outbox.
    am.stop();
    let setup = setup(&db, &[&am]);
    let mut daemon = setup.spawn_run_started();
    let sent = send(&setup, base(), &[("KILLED-1", critical_high(0))]);
    wait_committed(&setup, sent);
    wait_for(
        "both events in the outbox, not yet at the Alertmanager",
        DEADLINE,
        || {
            (count(
                &db,
                "SELECT count(*) AS n FROM alert_events e WHERE e.customer_id = 'KILLED-1' AND \
             NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.event_id = e.id \
             AND d.receiver <> 'kafka')",
            ) == 2)
                .then_some(())
        },
    );
    assert!(daemon.metric_sum("heartbeat_alert_notification_pending") >= 1.0);
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(10));

    am.start_again();
    let _daemon = setup.spawn_run_started();
    let episodes = activated(&db);
    let want: Vec<&Episode> = episodes.values().collect();
    assert_eq!(want.len(), 1);
    wait_notified(
        &hook,
        &want,
        "the killed processor's episode, firing then resolved",
    );
    let firing = hook.firing_for("KILLED-1");
    let resolved = hook.resolved_for("KILLED-1");
    assert!(
        firing[0].received < resolved[0].received,
        "firing before resolved"
    );
}

#[test]
fn episodes_that_activate_and_resolve_while_alertmanager_is_away_for_a_minute_all_arrive() {
    let db = TestDb::new();
    let hook = WebhookRecorder::start();
    let mut am = Alertmanager::start(&hook.url());
    let setup = setup(&db, &[&am]);
    let _daemon = setup.spawn_run_started();
    let base = base();
    // BEFORE-1 fires while Alertmanager is there.
    let before = critical_high(0);
    let mut sent = send(&setup, base, &[("BEFORE-1", before[..5].to_vec())]);
    wait_committed(&setup, sent);
    hook.wait_for_status("BEFORE-1", "firing", DEADLINE);

    am.stop();
    let stopped = std::time::Instant::now();
    // While it is away: BEFORE-1 resolves, DURING-1 activates and resolves, OPEN-1 activates.
    sent += send(
        &setup,
        base,
        &[
            ("BEFORE-1", before[5..].to_vec()),
            ("DURING-1", spike(0)),
            ("OPEN-1", critical_high(0)[..5].to_vec()),
        ],
    );
    wait_committed(&setup, sent);
    wait_for("the events of all three in the outbox", DEADLINE, || {
        (count(&db, "SELECT count(*) AS n FROM alert_events") == 5).then_some(())
    });
    // Away for a minute in all.
    wait_for("a minute since the stop", Duration::from_secs(90), || {
        (stopped.elapsed() >= Duration::from_secs(60)).then_some(())
    });
    am.start_again();

    let episodes = activated(&db);
    assert_eq!(episodes.len(), 3, "{episodes:#?}");
    let want: Vec<&Episode> = episodes.values().collect();
    wait_notified(&hook, &want, "every episode, the resolved ones resolved");
    // Alertmanager holds as active only the episode still open.
    let held = wait_for("only OPEN-1 active at the Alertmanager", DEADLINE, || {
        let held = am.alerts();
        let active: Vec<String> = held
            .iter()
            .filter(|a| a.state == "active")
            .map(|a| a.label("customer_id").to_owned())
            .collect();
        (active == ["OPEN-1"]).then_some(held)
    });
    assert_eq!(held.len(), 1, "resolved alerts are not listed: {held:#?}");
    // Kafka had them all along, once each.
    let (events, _) = events_on_topic(&setup, 5);
    assert_eq!(events.len(), 5, "{events:#?}");
}

#[test]
fn a_silence_made_with_amtool_stops_the_notifications_of_that_customer() {
    let db = TestDb::new();
    let hook = WebhookRecorder::start();
    let am = Alertmanager::start(&hook.url());
    let out = am.amtool(&[
        "silence",
        "add",
        "customer_id=SILENCED-1",
        "--duration=1h",
        "--comment=under a clinician's care",
        "--author=test",
    ]);
    assert!(out.status.success(), "{out:?}");
    let setup = setup(&db, &[&am]);
    let _daemon = setup.spawn_run_started();
    let sent = send(
        &setup,
        base(),
        &[
            ("SILENCED-1", critical_high(0)[..5].to_vec()),
            ("HEARD-1", critical_high(0)),
        ],
    );
    wait_committed(&setup, sent);
    // Both activated and were delivered; Alertmanager holds the silenced one back.
    assert_eq!(activated(&db).len(), 2);
    hook.wait_for_status("HEARD-1", "resolved", DEADLINE);
    wait_for("both delivered", DEADLINE, || {
        (count(
            &db,
            "SELECT count(*) AS n FROM alert_events WHERE done_at IS NULL",
        ) == 0)
            .then_some(())
    });
    hook.assert_none_within("SILENCED-1 is silenced", Duration::from_secs(3), |a| {
        a.label("customer_id") == "SILENCED-1"
    });
    let held = am.alerts();
    let silenced = held
        .iter()
        .find(|a| a.label("customer_id") == "SILENCED-1")
        .expect("Alertmanager holds the silenced customer's alert");
    assert_eq!(silenced.state, "suppressed");
    assert_eq!(silenced.silenced_by.len(), 1);
}

#[test]
fn when_the_processor_that_delivers_is_killed_another_takes_over() {
    let db = TestDb::new();
    let hook = WebhookRecorder::start();
    let am = Alertmanager::start(&hook.url());
    let setup = setup(&db, &[&am]);
    let mut daemons = [setup.spawn_run_started(), setup.spawn_run_started()];
    let leads = |d: &Daemon| {
        !d.records("this processor delivers alert episodes")
            .is_empty()
    };
    let leader = wait_for(
        "one processor to take the delivery lock",
        DEADLINE,
        || match (leads(&daemons[0]), leads(&daemons[1])) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        },
    );
    let follower = 1 - leader;
    let base = base();
    let mut sent = send(&setup, base, &[("BEFORE-KILL", critical_high(0))]);
    wait_committed(&setup, sent);
    hook.wait_for_status("BEFORE-KILL", "resolved", DEADLINE);
    assert!(!leads(&daemons[follower]), "only one delivers");

    daemons[leader].signal(libc::SIGKILL);
    daemons[leader].wait_exit(Duration::from_secs(10));
    sent += send(&setup, base, &[("AFTER-KILL", critical_high(0))]);
    wait_committed(&setup, sent);
    hook.wait_for_status("AFTER-KILL", "firing", DEADLINE);
    hook.wait_for_status("AFTER-KILL", "resolved", DEADLINE);
    assert!(
        leads(&daemons[follower]),
        "the other processor took the lead"
    );
}

#[test]
fn a_spike_that_resolves_at_once_is_notified_firing_then_resolved_despite_group_wait() {
    // Alertmanager flushes a new group `group_wait` after the alert's start and notifies nobody
    // if the alert is resolved by then. The pipeline holds the resolution back until the firing
    // has been there `min_firing_ms`; without that hold this episode would reach no one.
    let db = TestDb::new();
    let hook = WebhookRecorder::start();
    let routing = Routing {
        group_wait: Duration::from_secs(5),
        ..Routing::default()
    };
    let am = Alertmanager::start_with(&hook.url(), &routing);
    let setup = setup(&db, &[&am]).with("HEARTBEAT__ALERTS__ALERTMANAGER__MIN_FIRING_MS", "7000");
    let _daemon = setup.spawn_run_started();
    // In real time, 100 ms apart: the spike and its resolution within half a second.
    let p = producer();
    let start = Utc::now() - TimeDelta::seconds(1);
    let hrs = [70, 70, 110, 85, 70, 70, 70];
    for (i, hr) in (0..).zip(hrs) {
        let at =
            (start + TimeDelta::milliseconds(100 * i)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let value = format!(r#"{{"customer_id":"QUICK-1","timestamp":"{at}","heart_rate":{hr}}}"#);
        p.send_result(
            FutureRecord::to(&setup.topic)
                .key("QUICK-1")
                .payload(&value),
        )
        .map_err(|(e, _)| e)
        .expect("queue reading");
    }
    p.flush(Timeout::After(Duration::from_secs(30))).unwrap();
    wait_committed(&setup, hrs.len() as i64);
    let episodes = activated(&db);
    let spiked = &episodes[&("QUICK-1".to_owned(), "spike".to_owned())];
    assert!(
        spiked.resolved_at.is_some(),
        "it resolved at once: {spiked:?}"
    );
    let firing = hook.wait_for_status("QUICK-1", "firing", DEADLINE);
    let resolved = hook.wait_for_status("QUICK-1", "resolved", DEADLINE);
    assert!(firing.received < resolved.received);
}
