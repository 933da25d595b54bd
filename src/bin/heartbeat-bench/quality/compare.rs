//! `heartbeat-bench quality --compare`: the Kafka and the offline mode on the same seed, side by
//! side. Times differ between them (the generator stamps the wall clock, the offline run the
//! simulated clock), so both are compared by reading number: an episode by its customer, kinds
//! and first and last reading; an activated alert by its customer, kind and the reading that
//! activated it.
//!
//! They agree when they saw the same episodes and activated the same alerts. An alert activated
//! one reading apart also agrees: a sustain is a time, and the wall-clock stamps of the Kafka
//! mode lie a few milliseconds off the simulated grid, so the reading that is exactly the
//! sustain after the opening one can fall either side of it.

use std::collections::{BTreeSet, HashSet};

use heartbeat_pipeline::domain::classification::AnomalyKind;

use super::score::{Alert, Episode};
use super::Run;

/// How many differences of each sort are listed.
const SHOWN: usize = 10;

type EpisodeKey = (u32, u32, u32, u8);
type AlertKey = (u32, u8, u32);

fn episode_keys(episodes: &[Episode]) -> BTreeSet<EpisodeKey> {
    episodes
        .iter()
        .map(|e| (e.customer, e.first_reading, e.last_reading, e.kinds))
        .collect()
}

fn alert_keys(alerts: &[Alert]) -> BTreeSet<AlertKey> {
    alerts
        .iter()
        .map(|a| (a.customer, a.kind, a.reading))
        .collect()
}

/// What sets the two modes apart.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Differences {
    pub(super) same_episodes: usize,
    pub(super) episodes_only_kafka: Vec<EpisodeKey>,
    pub(super) episodes_only_offline: Vec<EpisodeKey>,
    pub(super) same_alerts: usize,
    pub(super) one_reading_apart: usize,
    pub(super) alerts_only_kafka: Vec<AlertKey>,
    pub(super) alerts_only_offline: Vec<AlertKey>,
}

impl Differences {
    pub(super) fn agree(&self) -> bool {
        self.episodes_only_kafka.is_empty()
            && self.episodes_only_offline.is_empty()
            && self.alerts_only_kafka.is_empty()
            && self.alerts_only_offline.is_empty()
    }
}

/// The differences between the Kafka run's and the offline run's episodes and alerts.
pub(super) fn differences(kafka: &Run, offline: &Run) -> Differences {
    let (ek, eo) = (
        episode_keys(&kafka.episodes),
        episode_keys(&offline.episodes),
    );
    let (ak, ao) = (alert_keys(&kafka.alerts), alert_keys(&offline.alerts));
    let mut d = Differences {
        same_episodes: ek.intersection(&eo).count(),
        episodes_only_kafka: ek.difference(&eo).copied().collect(),
        episodes_only_offline: eo.difference(&ek).copied().collect(),
        same_alerts: ak.intersection(&ao).count(),
        ..Differences::default()
    };
    let mut only_offline: HashSet<AlertKey> = ao.difference(&ak).copied().collect();
    for &(c, k, n) in ak.difference(&ao) {
        let near = [n.wrapping_sub(1), n.wrapping_add(1)]
            .into_iter()
            .find(|m| only_offline.contains(&(c, k, *m)));
        match near {
            Some(m) => {
                only_offline.remove(&(c, k, m));
                d.one_reading_apart += 1;
            }
            None => d.alerts_only_kafka.push((c, k, n)),
        }
    }
    d.alerts_only_offline = only_offline.into_iter().collect();
    d.alerts_only_offline.sort_unstable();
    d
}

/// Prints the comparison of one seed; whether the modes agree.
pub(super) fn compare(kafka: &Run, offline: &Run) -> bool {
    let d = differences(kafka, offline);
    println!(
        "\nseed {}: {} readings through Kafka, {} offline",
        kafka.seed, kafka.readings, offline.readings
    );
    println!(
        "episodes: {} through Kafka, {} offline, {} the same",
        kafka.episodes.len(),
        offline.episodes.len(),
        d.same_episodes
    );
    println!(
        "activated alerts: {} through Kafka, {} offline: {} at the same reading, {} one reading \
         apart, {} only through Kafka, {} only offline ({} end-of-stream silences left out)",
        kafka.alerts.len(),
        offline.alerts.len(),
        d.same_alerts,
        d.one_reading_apart,
        d.alerts_only_kafka.len(),
        d.alerts_only_offline.len(),
        kafka.left_out
    );
    let kind = |k: u8| {
        AnomalyKind::ALL
            .get(usize::from(k))
            .map_or("?", |k| k.as_str())
    };
    for (label, list) in [
        ("episode only through Kafka", &d.episodes_only_kafka),
        ("episode only offline", &d.episodes_only_offline),
    ] {
        for (c, first, last, kinds) in list.iter().take(SHOWN) {
            println!("  {label}: customer {c}, readings {first}-{last}, kinds mask {kinds:#b}");
        }
    }
    for (label, list) in [
        ("alert only through Kafka", &d.alerts_only_kafka),
        ("alert only offline", &d.alerts_only_offline),
    ] {
        for (c, k, n) in list.iter().take(SHOWN) {
            println!(
                "  {label}: customer {c}, {}, activated at reading {n}",
                kind(*k)
            );
        }
    }
    println!(
        "{}",
        if d.agree() {
            "the modes agree"
        } else {
            "the modes DISAGREE"
        }
    );
    d.agree()
}

#[cfg(test)]
mod tests {
    use super::super::Findings;
    use super::*;

    fn run(alerts: &[(u32, u8, u32)]) -> Run {
        Run {
            seed: 1,
            readings: 0,
            customer_days: 1.0,
            episodes: vec![],
            alerts: alerts
                .iter()
                .map(|&(customer, kind, reading)| Alert {
                    customer,
                    kind,
                    activated_us: 0,
                    reading,
                })
                .collect(),
            findings: Findings::default(),
            resolve_window_us: 0,
            seconds: 0.0,
            left_out: 0,
            episode_ids: true,
        }
    }

    #[test]
    fn alerts_one_reading_apart_agree_and_others_do_not() {
        let d = differences(
            &run(&[(1, 2, 600), (2, 2, 10)]),
            &run(&[(1, 2, 601), (2, 2, 10)]),
        );
        assert_eq!((d.same_alerts, d.one_reading_apart), (1, 1));
        assert!(d.agree());
        let d = differences(&run(&[(1, 2, 600)]), &run(&[(1, 2, 603)]));
        assert_eq!(d.alerts_only_kafka, vec![(1, 2, 600)]);
        assert_eq!(d.alerts_only_offline, vec![(1, 2, 603)]);
        assert!(!d.agree());
    }
}
