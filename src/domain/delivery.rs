//! Alert delivery's decisions (SPEC section 8), pure: what an Alertmanager alert and a Kafka
//! episode event of an episode hold, and which of the outbox's events are due at a receiver now.
//!
//! The delivery actor (`actors/alert_delivery.rs`) reads the outbox, asks [`due`] what to send to
//! each receiver, builds the payloads here and notes what was acknowledged.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::classification::AnomalyKind;
use super::detector::EventKind;

/// An episode as delivery tells of it: an outbox event's copy, or an open episode re-sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub customer_id: String,
    pub kind: AnomalyKind,
    pub opened_at: DateTime<Utc>,
    pub activated_at: DateTime<Utc>,
    /// `None` while open.
    pub resolved_at: Option<DateTime<Utc>>,
    pub last_seen_at: DateTime<Utc>,
    pub readings: i32,
    pub peak_heart_rate: Option<i16>,
}

/// A time as delivery writes it: UTC RFC 3339, as many fraction digits as it needs (0, 3, 6),
/// `Z`: the form of the Kafka events' times (serde's) and of the `episode` label.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The `alertname` label of a kind.
pub fn alertname(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::CriticalLow => "HeartRateCriticalLow",
        AnomalyKind::Bradycardia => "HeartRateBradycardia",
        AnomalyKind::Tachycardia => "HeartRateTachycardia",
        AnomalyKind::CriticalHigh => "HeartRateCriticalHigh",
        AnomalyKind::Spike => "HeartRateSpike",
        AnomalyKind::Deviation => "HeartRateDeviation",
        AnomalyKind::Silent => "HeartRateSilent",
    }
}

/// The `severity` label: critical for the kinds where a person may be in danger now.
pub fn severity(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::CriticalLow | AnomalyKind::CriticalHigh | AnomalyKind::Silent => "critical",
        _ => "warning",
    }
}

/// What the kind means, for people.
fn meaning(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::CriticalLow => "critically low heart rate",
        AnomalyKind::Bradycardia => "low heart rate (bradycardia)",
        AnomalyKind::Tachycardia => "high heart rate (tachycardia)",
        AnomalyKind::CriticalHigh => "critically high heart rate",
        AnomalyKind::Spike => "sudden change of heart rate",
        AnomalyKind::Deviation => "heart rate far from the customer's own baseline",
        AnomalyKind::Silent => "no readings from the customer's device",
    }
}

/// The Alertmanager alert of `n` (`POST /api/v2/alerts` takes a list of these): labels and
/// annotations as SPEC section 8 names them, `startsAt` the opening, `endsAt` as the caller
/// says (three resend intervals ahead while open, the resolution once resolved).
pub fn alertmanager_alert(n: &Notice, ends_at: DateTime<Utc>) -> Value {
    let peak = n.peak_heart_rate.map(|p| p.to_string()).unwrap_or_default();
    let summary = format!("{} {}: {}", n.customer_id, n.kind.as_str(), meaning(n.kind));
    let mut description = match n.kind {
        AnomalyKind::Silent => format!(
            "No reading of customer {} has arrived since the one at {} (the pipeline has been \
             reading its partition meanwhile).",
            n.customer_id,
            rfc3339(n.opened_at),
        ),
        _ => {
            let mut d = format!(
                "Customer {}: {} since {} (lasted long enough to page at {}), {} readings",
                n.customer_id,
                meaning(n.kind),
                rfc3339(n.opened_at),
                rfc3339(n.activated_at),
                n.readings,
            );
            if let Some(p) = n.peak_heart_rate {
                d.push_str(&format!(", the farthest from normal {p} bpm"));
            }
            d.push_str(&format!(", the last at {}.", rfc3339(n.last_seen_at)));
            d
        }
    };
    if let Some(r) = n.resolved_at {
        description.push_str(&format!(" Resolved at {}.", rfc3339(r)));
    }
    let labels: Map<String, Value> = [
        ("alertname", alertname(n.kind).to_owned()),
        ("customer_id", n.customer_id.clone()),
        ("kind", n.kind.as_str().to_owned()),
        ("severity", severity(n.kind).to_owned()),
        ("episode", rfc3339(n.opened_at)),
        ("service", "heartbeat-pipeline".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::String(v)))
    .collect();
    json!({
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": description,
            "peak_heart_rate": peak,
            "last_seen_at": rfc3339(n.last_seen_at),
        },
        "startsAt": rfc3339(n.opened_at),
        "endsAt": rfc3339(ends_at),
    })
}

/// The value of an episode event on `kafka.topics.alerts`.
pub fn kafka_event(event: EventKind, n: &Notice) -> Value {
    json!({
        "event": event.as_str(),
        "customer_id": n.customer_id,
        "kind": n.kind.as_str(),
        "opened_at": rfc3339(n.opened_at),
        "activated_at": rfc3339(n.activated_at),
        "resolved_at": n.resolved_at.map(rfc3339),
        "readings": n.readings,
        "peak_heart_rate": n.peak_heart_rate,
    })
}

/// An outbox event as [`due`] weighs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outstanding<'a> {
    pub event: EventKind,
    /// The episode: (customer, kind, opened_at).
    pub episode: (&'a str, AnomalyKind, DateTime<Utc>),
    /// Receivers that acknowledged this event.
    pub delivered: &'a [String],
    /// For a resolved event: receivers that acknowledged the activation less than `min_firing`
    /// ago.
    pub held_at: &'a [String],
}

/// Which of `events` (the outbox's undone events in id order) are due at `receiver` now, by
/// index: those it lacks, but a resolution
/// - never before the same episode's activation has reached the receiver (in order per
///   episode: a firing alert that arrives after its resolution would fire again), and
/// - at an Alertmanager (`hold_resolution`), not before the activation has been there
///   `min_firing`, so Alertmanager has notified the firing first. An activation done before
///   this receiver was configured (it is not pending, and the receiver never got it) does not
///   hold the resolution back.
pub fn due(events: &[Outstanding<'_>], receiver: &str, hold_resolution: bool) -> Vec<usize> {
    let lacks = |e: &Outstanding<'_>| !e.delivered.iter().any(|r| r == receiver);
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| lacks(e))
        .filter(|(i, e)| match e.event {
            EventKind::Activated => true,
            EventKind::Resolved => {
                let activation_pending = events[..*i]
                    .iter()
                    .any(|a| a.event == EventKind::Activated && a.episode == e.episode && lacks(a));
                let held = hold_resolution && e.held_at.iter().any(|r| r == receiver);
                !activation_pending && !held
            }
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_764_662_400 + s, 250_000_000).unwrap_or_default()
    }

    fn notice(kind: AnomalyKind, resolved: Option<i64>) -> Notice {
        Notice {
            customer_id: "CUST-00042".into(),
            kind,
            opened_at: at(0),
            activated_at: at(30),
            resolved_at: resolved.map(at),
            last_seen_at: at(45),
            readings: 46,
            peak_heart_rate: (kind != AnomalyKind::Silent).then_some(31),
        }
    }

    #[test]
    fn an_alert_has_the_labels_and_annotations_of_the_spec() {
        let a = alertmanager_alert(&notice(AnomalyKind::CriticalLow, None), at(210));
        assert_eq!(
            a["labels"],
            json!({
                "alertname": "HeartRateCriticalLow", "customer_id": "CUST-00042",
                "kind": "critical_low", "severity": "critical",
                "episode": "2025-12-02T08:00:00.250Z", "service": "heartbeat-pipeline",
            })
        );
        assert_eq!(a["startsAt"], "2025-12-02T08:00:00.250Z");
        assert_eq!(a["endsAt"], "2025-12-02T08:03:30.250Z");
        let notes = &a["annotations"];
        assert_eq!(notes["peak_heart_rate"], "31");
        assert_eq!(notes["last_seen_at"], "2025-12-02T08:00:45.250Z");
        assert!(notes["summary"].as_str().unwrap().contains("CUST-00042"));
        let description = notes["description"].as_str().unwrap();
        assert!(description.contains("31 bpm"), "{description}");
        assert!(description.starts_with("Customer CUST-00042: critically low heart rate since"));
        let silent = alertmanager_alert(&notice(AnomalyKind::Silent, Some(60)), at(60));
        assert_eq!(silent["labels"]["severity"], "critical");
        assert_eq!(silent["annotations"]["peak_heart_rate"], "");
        let said = silent["annotations"]["description"].as_str().unwrap();
        assert!(
            said.starts_with("No reading of customer CUST-00042 has arrived since"),
            "{said}"
        );
        assert!(
            said.ends_with("Resolved at 2025-12-02T08:01:00.250Z."),
            "{said}"
        );
        for (kind, name, sev) in [
            (AnomalyKind::Bradycardia, "HeartRateBradycardia", "warning"),
            (AnomalyKind::Tachycardia, "HeartRateTachycardia", "warning"),
            (
                AnomalyKind::CriticalHigh,
                "HeartRateCriticalHigh",
                "critical",
            ),
            (AnomalyKind::Spike, "HeartRateSpike", "warning"),
            (AnomalyKind::Deviation, "HeartRateDeviation", "warning"),
        ] {
            assert_eq!((alertname(kind), severity(kind)), (name, sev));
        }
    }

    #[test]
    fn a_kafka_event_holds_the_episode_with_utc_times() {
        let v = kafka_event(
            EventKind::Resolved,
            &notice(AnomalyKind::Tachycardia, Some(50)),
        );
        assert_eq!(
            v,
            json!({
                "event": "resolved", "customer_id": "CUST-00042", "kind": "tachycardia",
                "opened_at": "2025-12-02T08:00:00.250Z", "activated_at": "2025-12-02T08:00:30.250Z",
                "resolved_at": "2025-12-02T08:00:50.250Z", "readings": 46, "peak_heart_rate": 31,
            })
        );
        let open = kafka_event(EventKind::Activated, &notice(AnomalyKind::Silent, None));
        assert_eq!(
            (open["resolved_at"].clone(), open["peak_heart_rate"].clone()),
            (Value::Null, Value::Null)
        );
    }

    #[test]
    fn a_resolution_waits_for_its_activation_and_at_an_alertmanager_for_min_firing() {
        let ep = ("C", AnomalyKind::Spike, at(0));
        let other = ("D", AnomalyKind::Spike, at(0));
        let none: Vec<String> = Vec::new();
        let kafka = vec!["kafka".to_owned()];
        let held_at_am = vec!["am".to_owned()];
        let nothing_held: Vec<String> = Vec::new();
        let ev = |event, episode, delivered, held_at| Outstanding {
            event,
            episode,
            delivered,
            held_at,
        };
        use EventKind::{Activated, Resolved};
        // Both pending: only the activation is due, at either receiver.
        let both = [ev(Activated, ep, &none, &[]), ev(Resolved, ep, &none, &[])];
        assert_eq!(due(&both, "kafka", false), [0]);
        assert_eq!(due(&both, "am", true), [0]);
        // The activation reached Kafka only: Kafka takes the resolution, the Alertmanager the
        // activation first.
        let half = [ev(Activated, ep, &kafka, &[]), ev(Resolved, ep, &none, &[])];
        assert_eq!(due(&half, "kafka", false), [1]);
        assert_eq!(due(&half, "am", true), [0]);
        // Activation done everywhere (no longer pending): the resolution waits at the
        // Alertmanager until the firing has been there min_firing.
        let held = [
            ev(Resolved, ep, &none, &held_at_am),
            ev(Activated, other, &none, &[]),
        ];
        assert_eq!(due(&held, "am", true), [1]);
        assert_eq!(due(&held, "kafka", false), [0, 1]);
        let ripe = [ev(Resolved, ep, &none, &nothing_held)];
        assert_eq!(due(&ripe, "am", true), [0]);
        // An Alertmanager added after the activation was done: the resolution is not held.
        let held_at_kafka = vec!["kafka".to_owned()];
        let late = [ev(Resolved, ep, &kafka, &held_at_kafka)];
        assert_eq!(due(&late, "am-new", true), [0]);
        assert!(due(&late, "kafka", false).is_empty(), "delivered already");
    }
}
