//! The delivery tests' own parts, checked against each other without the pipeline: a real
//! Alertmanager (Debian's 0.25) notifies the webhook recorder of what is POSTed to its API, as
//! an operator would check a setup, with alerts labelled as SPEC section 8 says.
//!
//! They also pin down when Alertmanager never notifies an alert that fired, which sets
//! `alerts.alertmanager.min_firing_ms`: when a group's only alerts are already resolved at its
//! first flush, and when an alert fires and resolves between two flushes of a group that was
//! already notified.

use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

/// A flush takes milliseconds and a resolution one group interval; the rest is a loaded machine.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(15);

/// Long enough for any notification already decided to arrive: two default group intervals.
const QUIET_WINDOW: Duration = Duration::from_secs(2);

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ago(seconds: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::seconds(seconds)
}

/// A tachycardia episode of `customer_id` opened at `opened_at`, as the pipeline sends it:
/// firing while `ends_at` is ahead, resolved once it has passed.
fn episode(customer_id: &str, opened_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Value {
    json!([{
        "labels": {
            "alertname": "HeartRateTachycardia",
            "customer_id": customer_id,
            "kind": "tachycardia",
            "severity": "warning",
            "episode": rfc3339(opened_at),
            "service": "heartbeat-pipeline",
        },
        "annotations": {
            "summary": format!("{customer_id}: tachycardia"),
            "description": "heart rate above the tachycardia threshold",
            "peak_heart_rate": "171",
            "last_seen_at": rfc3339(Utc::now()),
        },
        "startsAt": rfc3339(opened_at),
        "endsAt": rfc3339(ends_at),
    }])
}

/// Open, with `endsAt` three minutes ahead, as a resend sets it.
fn firing(customer_id: &str, opened_at: DateTime<Utc>) -> Value {
    episode(
        customer_id,
        opened_at,
        Utc::now() + chrono::Duration::minutes(3),
    )
}

fn resolved(customer_id: &str, opened_at: DateTime<Utc>) -> Value {
    episode(customer_id, opened_at, Utc::now())
}

fn statuses(alerts: &[NotifiedAlert]) -> Vec<&str> {
    alerts.iter().map(|a| a.status.as_str()).collect()
}

#[test]
fn an_alert_posted_to_alertmanager_reaches_the_webhook_firing_and_then_resolved() {
    let webhook = WebhookRecorder::start();
    let am = Alertmanager::start(&webhook.url());
    let opened_at = ago(5);
    let sent = firing("c1", opened_at);

    // As an operator would with curl.
    let api = format!("{}/api/v2/alerts", am.url());
    let (status, body) = http_post(&api, &sent.to_string());
    assert_eq!(status, 200, "{body}");
    let fired = webhook.wait_for_status("c1", "firing", NOTIFY_DEADLINE);
    let labels: Vec<(&str, &str)> = fired
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let episode = rfc3339(opened_at);
    assert_eq!(
        labels,
        [
            ("alertname", "HeartRateTachycardia"),
            ("customer_id", "c1"),
            ("episode", episode.as_str()),
            ("kind", "tachycardia"),
            ("service", "heartbeat-pipeline"),
            ("severity", "warning"),
        ]
    );
    assert_eq!(fired.annotations["peak_heart_rate"], "171");
    assert_eq!(
        fired.ends_at, "0001-01-01T00:00:00Z",
        "a firing alert's endsAt is not passed on"
    );
    assert_eq!(
        DateTime::parse_from_rfc3339(&fired.starts_at).unwrap(),
        opened_at.trunc_subsecs(3),
        "startsAt is the episode's opening"
    );
    let notification = &webhook.notifications()[0];
    assert_eq!(notification.status, "firing");
    assert_eq!(notification.receiver, "webhook");
    assert_eq!(
        notification.group_labels, fired.labels,
        "every alert is a group of its own"
    );

    // What Alertmanager holds: the alert as sent, active.
    let held = am.alerts();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].state, "active");
    assert_eq!(held[0].labels, fired.labels);
    assert_eq!(held[0].annotations["summary"], "c1: tachycardia");
    assert_eq!(held[0].fingerprint, fired.fingerprint);
    // The API writes milliseconds always, the webhook drops trailing zeros: compare times.
    assert_eq!(
        DateTime::parse_from_rfc3339(&held[0].starts_at).unwrap(),
        DateTime::parse_from_rfc3339(&fired.starts_at).unwrap()
    );
    assert_eq!(
        DateTime::parse_from_rfc3339(&held[0].ends_at).unwrap(),
        DateTime::parse_from_rfc3339(sent[0]["endsAt"].as_str().unwrap()).unwrap(),
        "endsAt as sent"
    );

    let resolution = resolved("c1", opened_at);
    am.post_alerts(&resolution);
    let cleared = webhook.wait_for_status("c1", "resolved", NOTIFY_DEADLINE);
    let all = webhook.alerts_for("c1");
    assert_eq!(statuses(&all), ["firing", "resolved"], "{all:#?}");
    assert_eq!(webhook.firing_for("c1").len(), 1);
    assert_eq!(webhook.resolved_for("c1").len(), 1);
    assert_eq!(cleared.fingerprint, fired.fingerprint, "the same alert");
    assert_eq!(
        DateTime::parse_from_rfc3339(&cleared.ends_at).unwrap(),
        DateTime::parse_from_rfc3339(resolution[0]["endsAt"].as_str().unwrap()).unwrap(),
        "endsAt is the resolution's"
    );
    assert_eq!(webhook.notifications()[1].status, "resolved");
    assert!(
        am.alerts().is_empty(),
        "Alertmanager lists no resolved alert"
    );
}

#[test]
fn a_silence_made_with_amtool_stops_the_notifications_for_that_customer() {
    let webhook = WebhookRecorder::start();
    let am = Alertmanager::start(&webhook.url());

    let out = am.amtool(&[
        "silence",
        "add",
        "customer_id=c-muted",
        "--duration",
        "1h",
        "--comment",
        "test",
    ]);
    assert!(out.status.success(), "amtool silence add: {out:?}");
    let silence = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!silence.is_empty(), "amtool prints the silence's id");
    let query = am.amtool(&["silence", "query", "customer_id=c-muted", "--quiet"]);
    assert_eq!(String::from_utf8_lossy(&query.stdout).trim(), silence);

    am.post_alerts(&firing("c-muted", ago(5)));
    // Alertmanager has it, and holds it back because of the silence.
    wait_for("c-muted held back by the silence", NOTIFY_DEADLINE, || {
        am.alerts()
            .iter()
            .any(|a| {
                a.label("customer_id") == "c-muted"
                    && a.state == "suppressed"
                    && a.silenced_by == [silence.clone()]
            })
            .then_some(())
    });
    am.post_alerts(&firing("c-heard", ago(5)));
    webhook.wait_for_status("c-heard", "firing", NOTIFY_DEADLINE);
    webhook.assert_none_within(
        "the silenced customer is never notified",
        QUIET_WINDOW,
        |a| a.label("customer_id") == "c-muted",
    );

    // Expiring the silence lets the alert through.
    let out = am.amtool(&["silence", "expire", &silence]);
    assert!(out.status.success(), "amtool silence expire: {out:?}");
    webhook.wait_for_status("c-muted", "firing", NOTIFY_DEADLINE);
    assert_eq!(webhook.firing_for("c-muted").len(), 1);
}

/// Fifty alerts in one POST: each its own group, each notified; Alertmanager lists them all (a
/// chunked answer).
#[test]
fn every_alert_of_one_post_is_held_and_notified() {
    let webhook = WebhookRecorder::start();
    let am = Alertmanager::start(&webhook.url());
    let batch: Vec<Value> = (0..50)
        .map(|i| firing(&format!("c-batch-{i}"), ago(5))[0].clone())
        .collect();

    am.post_alerts(&Value::Array(batch));
    webhook.wait_until("50 alerts notified", NOTIFY_DEADLINE, |alerts| {
        alerts.len() == 50
    });
    assert_eq!(webhook.notifications().len(), 50, "one notification each");
    assert_eq!(am.alerts().len(), 50);
}

/// (b) of the brief: resolved a second after it was sent firing, with `group_wait: 0s`.
#[test]
fn an_alert_resolved_a_second_after_it_fired_is_notified_firing_then_resolved() {
    let webhook = WebhookRecorder::start();
    let am = Alertmanager::start(&webhook.url());
    let opened_at = ago(5);

    am.post_alerts(&firing("c-second", opened_at));
    // The scenario's own timing, not a wait for something to happen.
    thread::sleep(Duration::from_secs(1));
    am.post_alerts(&resolved("c-second", opened_at));
    webhook.wait_for_status("c-second", "resolved", NOTIFY_DEADLINE);
    assert_eq!(
        statuses(&webhook.alerts_for("c-second")),
        ["firing", "resolved"]
    );
}

/// (c) of the brief: Alertmanager's DedupStage skips a group's first notification when all its
/// alerts are resolved, so an episode first seen there resolved reaches no one.
#[test]
fn an_alert_first_posted_resolved_is_never_notified() {
    let webhook = WebhookRecorder::start();
    let am = Alertmanager::start(&webhook.url());

    am.post_alerts(&resolved("c-late", ago(60)));
    am.post_alerts(&firing("c-later", ago(5)));
    webhook.wait_for_status("c-later", "firing", NOTIFY_DEADLINE);
    webhook.assert_none_within(
        "an alert first seen resolved is never notified",
        QUIET_WINDOW,
        |a| a.label("customer_id") == "c-late",
    );
}

/// A new group waits `group_wait` from its alert's `startsAt`, not from its arrival: an episode
/// sent when it opened is held for the whole wait and lost if it resolves meanwhile, while one
/// that opened longer ago than the wait is notified at once.
#[test]
fn an_alert_resolved_within_group_wait_of_its_start_is_never_notified() {
    let group_wait = Duration::from_secs(3);
    let webhook = WebhookRecorder::start();
    let am = Alertmanager::start_with(
        &webhook.url(),
        &Routing {
            group_wait,
            ..Routing::default()
        },
    );

    let now = Utc::now();
    am.post_alerts(&firing("c-brief", now));
    am.post_alerts(&firing("c-steady", now));
    am.post_alerts(&firing("c-old", ago(60)));
    let old = webhook.wait_for_status("c-old", "firing", NOTIFY_DEADLINE);
    // The scenario's own timing: c-brief resolves a second after it opened.
    thread::sleep(Duration::from_secs(1));
    am.post_alerts(&resolved("c-brief", now));

    let steady = webhook.wait_for_status("c-steady", "firing", NOTIFY_DEADLINE);
    assert!(
        steady.received.duration_since(old.received) >= group_wait / 2,
        "c-old was notified at once, c-steady after group_wait: {old:#?} {steady:#?}"
    );
    webhook.assert_none_within(
        "an alert resolved before its group's first flush is never notified",
        QUIET_WINDOW,
        |a| a.label("customer_id") == "c-brief",
    );
}

/// With alerts grouped by customer, as deploy/ does, a second episode of a customer already
/// notified waits for the group's next interval: if it resolves meanwhile, the webhook sees it
/// only resolved, never firing.
#[test]
fn an_alert_that_fires_and_resolves_between_two_flushes_of_its_group_is_only_notified_resolved() {
    let webhook = WebhookRecorder::start();
    let am = Alertmanager::start_with(
        &webhook.url(),
        &Routing {
            group_by: vec!["customer_id".to_owned()],
            group_interval: Duration::from_secs(3),
            ..Routing::default()
        },
    );
    let (first, second) = (ago(60), ago(5));

    am.post_alerts(&firing("c-grouped", first));
    webhook.wait_for_status("c-grouped", "firing", NOTIFY_DEADLINE);
    am.post_alerts(&firing("c-grouped", second));
    am.post_alerts(&resolved("c-grouped", second));

    let episode = rfc3339(second);
    webhook.wait_until("the second episode notified", NOTIFY_DEADLINE, |alerts| {
        alerts.iter().any(|a| a.label("episode") == episode)
    });
    let group = webhook.notifications();
    assert_eq!(group.len(), 2, "{group:#?}");
    let second_notified: Vec<NotifiedAlert> = webhook
        .alerts()
        .into_iter()
        .filter(|a| a.label("episode") == episode)
        .collect();
    assert_eq!(statuses(&second_notified), ["resolved"]);
    assert_eq!(statuses(&group[1].alerts), ["firing", "resolved"]);
    assert!(
        group[1].received.duration_since(group[0].received) >= Duration::from_secs(2),
        "the group is notified again only after its interval"
    );
}

fn silence_customer(am: &Alertmanager, customer_id: &str) -> String {
    let matcher = format!("customer_id={customer_id}");
    let out = am.amtool(&[
        "silence",
        "add",
        &matcher,
        "--duration",
        "1h",
        "--comment",
        "maintenance",
    ]);
    assert!(out.status.success(), "amtool silence add: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn silences(am: &Alertmanager) -> String {
    let out = am.amtool(&["silence", "query", "--quiet"]);
    assert!(out.status.success(), "amtool silence query: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What a test of an Alertmanager outage can count on when it stops Alertmanager with SIGTERM:
/// the silences and the notification log are written to the data directory on the way out and
/// the alerts are forgotten. An alert sent again is held but not notified again, and one that
/// resolved meanwhile is notified resolved.
#[test]
fn a_restarted_alertmanager_keeps_its_silences_and_whom_it_notified() {
    let webhook = WebhookRecorder::start();
    let mut am = Alertmanager::start(&webhook.url());
    let url = am.url();
    let silence = silence_customer(&am, "c-muted");
    let (known, gone) = (ago(5), ago(6));
    am.post_alerts(&firing("c-known", known));
    am.post_alerts(&firing("c-gone", gone));
    webhook.wait_for_status("c-known", "firing", NOTIFY_DEADLINE);
    webhook.wait_for_status("c-gone", "firing", NOTIFY_DEADLINE);

    am.stop();
    assert!(!am.is_running());
    am.start_again();
    let restarted = Instant::now();
    assert_eq!(am.url(), url, "the same port");
    assert!(am.alerts().is_empty(), "alerts are held in memory only");
    assert_eq!(silences(&am), silence, "the silence survives the restart");

    am.post_alerts(&firing("c-known", known));
    // c-gone resolved during the outage, and is sent now.
    am.post_alerts(&episode("c-gone", gone, ago(2)));
    webhook.wait_for_status("c-gone", "resolved", NOTIFY_DEADLINE);
    assert_eq!(am.alerts().len(), 1, "c-known is held again");
    webhook.assert_none_within(
        "the notification log remembers c-known was notified",
        QUIET_WINDOW,
        |a| a.label("customer_id") == "c-known" && a.received > restarted,
    );
}

/// The same after SIGKILL: Alertmanager writes its state only on a clean exit (or every 15
/// minutes), so it forgets its silences and whom it notified. An alert sent again is notified
/// again, and one that resolved meanwhile reaches no one: its group's first flush is all
/// resolved.
#[test]
fn a_killed_alertmanager_forgets_its_silences_and_whom_it_notified() {
    let webhook = WebhookRecorder::start();
    let mut am = Alertmanager::start(&webhook.url());
    silence_customer(&am, "c-muted");
    let (known, gone) = (ago(5), ago(6));
    am.post_alerts(&firing("c-known", known));
    am.post_alerts(&firing("c-gone", gone));
    webhook.wait_for_status("c-known", "firing", NOTIFY_DEADLINE);
    webhook.wait_for_status("c-gone", "firing", NOTIFY_DEADLINE);

    am.kill();
    am.start_again();
    let restarted = Instant::now();
    assert_eq!(silences(&am), "", "the silence is lost");

    am.post_alerts(&episode("c-gone", gone, ago(2)));
    am.post_alerts(&firing("c-known", known));
    webhook.wait_until("c-known notified again", NOTIFY_DEADLINE, |alerts| {
        alerts
            .iter()
            .any(|a| a.label("customer_id") == "c-known" && a.received > restarted)
    });
    webhook.assert_none_within("a resolution alone reaches no one", QUIET_WINDOW, |a| {
        a.label("customer_id") == "c-gone" && a.received > restarted
    });
}
