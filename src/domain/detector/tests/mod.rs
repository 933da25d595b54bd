//! Unit tests of the detector: positions, settings, the saved state and determinism here; the
//! anomaly kinds in `kinds.rs`, the alert episodes in `episodes.rs`.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::domain::classification::AnomalyKind;
use crate::domain::reading::{derive_event_id, Reading};
use crate::domain::record::{Anomaly, Details};
use AnomalyKind::*;

mod activation;
mod episodes;
mod kinds;

const CUSTOMER: &str = "CUST-00042";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()
}

/// `secs` seconds after the start.
fn at(secs: i64) -> DateTime<Utc> {
    start() + TimeDelta::seconds(secs)
}

fn reading(hr: i16, recorded_at: DateTime<Utc>) -> Reading {
    Reading {
        event_id: derive_event_id(CUSTOMER, &recorded_at),
        customer_id: CUSTOMER.to_owned(),
        recorded_at,
        heart_rate: hr,
        activity: None,
        device_id: None,
    }
}

/// Observes `hrs` one every 10 s from `from_secs`; returns every observation.
fn feed(
    cfg: &DetectorConfig,
    state: &mut CustomerState,
    from_secs: i64,
    hrs: &[i16],
) -> Vec<Observation> {
    hrs.iter()
        .enumerate()
        .map(|(i, &hr)| {
            observe(
                cfg,
                state,
                &reading(hr, at(from_secs + 10 * i as i64)),
                None,
            )
        })
        .collect()
}

fn kinds(obs: &Observation) -> Vec<AnomalyKind> {
    obs.anomalies.iter().map(|a| a.kind).collect()
}

fn find(obs: &Observation, kind: AnomalyKind) -> Option<&Anomaly> {
    obs.anomalies.iter().find(|a| a.kind == kind)
}

/// Around 70 with noise of at most 2 bpm.
fn steady(len: usize) -> Vec<i16> {
    const NOISE: [i16; 8] = [0, 1, -1, 2, -2, 1, 0, -1];
    (0..len).map(|i| 70 + NOISE[i % NOISE.len()]).collect()
}

#[test]
fn a_state_misses_the_readings_after_its_positions_only() {
    let mut s = CustomerState::default();
    assert!(s.misses(0, 5), "a new state misses everything");
    assert!(!s.holds(0, 5));
    s.absorbed(0, 10);
    s.absorbed(0, 7);
    assert!(!s.misses(0, 10) && !s.misses(0, 3));
    assert!(s.holds(0, 10) && s.holds(0, 3) && !s.holds(0, 11));
    assert!(s.misses(0, 11));
    assert!(s.misses(1, 0), "nothing of another partition is held");
    assert!(!s.holds(1, 0));
    let json = serde_json::to_value(&s).unwrap();
    let back: CustomerState = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
    let old: CustomerState = serde_json::from_str(r#"{"readings": 3}"#).unwrap();
    assert_eq!(old.positions, None);
    assert!(
        !old.misses(0, 5) && !old.holds(0, 5),
        "a state saved before positions were kept (with every batch) misses nothing, and \
         says nothing of what it has seen"
    );
}

#[test]
fn positions_are_saved_as_the_object_they_always_were() {
    let saved: CustomerState =
        serde_json::from_str(r#"{"readings": 2, "positions": {"3": 12, "0": 5}}"#).unwrap();
    assert!(saved.holds(3, 12) && saved.holds(0, 5) && saved.misses(3, 13) && saved.misses(1, 0));
    let mut s = saved.clone();
    s.absorbed(1, 7);
    s.absorbed(3, 11);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json["positions"],
        serde_json::json!({"0": 5, "1": 7, "3": 12})
    );
    let back: CustomerState = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

/// A state with a bit of everything: baseline floats, open episodes, a silence.
fn busy_state(cfg: &DetectorConfig) -> CustomerState {
    let mut state = CustomerState::default();
    let mut hrs = steady(37);
    hrs.extend([118, 57, 59, 33]);
    feed(cfg, &mut state, 0, &hrs);
    silence(cfg, &mut state, CUSTOMER, None);
    state
}

#[test]
fn the_state_round_trips_through_json_exactly() {
    let cfg = DetectorConfig::default();
    let mut state = busy_state(&cfg);
    assert!(state.episodes.len() >= 3);
    // A value serde_json's default number parser would get one ulp wrong.
    state.baseline.mean = 1040.0000010400001;

    let text = serde_json::to_string(&state).unwrap();
    let back: CustomerState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, state);
    assert_eq!(back.baseline.mean.to_bits(), state.baseline.mean.to_bits());
    assert_eq!(serde_json::to_string(&back).unwrap(), text);

    // The path of a jsonb column read into a `serde_json::Value`.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let back: CustomerState = serde_json::from_value(value).unwrap();
    assert_eq!(back, state);
}

#[test]
fn an_older_or_hand_written_state_still_loads() {
    let state: CustomerState = serde_json::from_str(
        r#"{"readings": 3, "baseline": {"count": 3, "mean": 70.5, "variance": 2}}"#,
    )
    .unwrap();
    assert_eq!(state.readings, 3);
    assert_eq!((state.baseline.mean, state.baseline.variance), (70.5, 2.0));
    assert!(state.episodes.is_empty());
}

#[test]
fn a_corrupted_baseline_starts_afresh_instead_of_poisoning_judgements() {
    let cfg = DetectorConfig::default();
    let mut state = busy_state(&cfg);
    state.baseline.mean = f64::NAN;
    let text = serde_json::to_string(&state).unwrap();
    let mut state: CustomerState = serde_json::from_str(&text).unwrap();
    assert!(state.baseline.mean.is_nan());
    observe(&cfg, &mut state, &reading(70, at(1000)), None);
    assert_eq!((state.baseline.count, state.baseline.mean), (1, 70.0));
}

#[test]
fn the_same_readings_from_the_same_state_give_the_same_results() {
    let cfg = DetectorConfig::default();
    let state = busy_state(&cfg);
    let restored: CustomerState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let mut hrs = steady(20);
    hrs.extend([130, 40, 35, 70, 200, 70, 70, 70, 70]);
    let (mut a, mut b) = (state, restored);
    let first = feed(&cfg, &mut a, 1000, &hrs);
    let second = feed(&cfg, &mut b, 1000, &hrs);
    assert_eq!(first, second);
    assert_eq!(a, b);
    assert!(first.iter().any(|o| !o.alerts.is_empty()));
}

proptest! {
    #[test]
    fn random_sequences_never_panic_and_keep_one_open_episode_per_kind(
        steps in prop::collection::vec(
            // Mostly a steady customer with jumps, so that baselines form and deviations
            // happen; every value of 0..=300 can come.
            (
                prop_oneof![3 => 65i16..=75, 1 => 0i16..=300],
                -120_000i64..=120_000,
                prop::bool::weighted(0.1),
            ),
            0..200,
        ),
        warmup in 0u64..=5,
        resolve in 1u32..=4,
        spike_bpm in 1i64..=60,
    ) {
        let cfg = DetectorConfig {
            warmup_readings: warmup,
            resolve_after_readings: resolve,
            spike_bpm,
            ..DetectorConfig::default()
        };
        let mut state = CustomerState::default();
        let mut open: HashMap<AnomalyKind, DateTime<Utc>> = HashMap::new();
        let mut t = start();
        let mut check = |rows: &[AlertRow], state: &CustomerState| {
            for r in rows {
                prop_assert!(r.opened_at <= r.last_seen_at);
                match r.resolved_at {
                    None => {
                        if let Some(opened) = open.insert(r.kind, r.opened_at) {
                            prop_assert_eq!(opened, r.opened_at, "two open {:?}", r.kind);
                        }
                    }
                    Some(resolved) => {
                        prop_assert!(r.last_seen_at <= resolved);
                        prop_assert_eq!(open.remove(&r.kind), Some(r.opened_at));
                    }
                }
            }
            let mut kinds: Vec<AnomalyKind> = state.episodes.iter().map(|e| e.kind).collect();
            prop_assert_eq!(kinds.len(), open.len());
            kinds.dedup();
            prop_assert_eq!(kinds.len(), open.len());
            for e in &state.episodes {
                prop_assert_eq!(open.get(&e.kind), Some(&e.opened_at));
            }
            Ok(())
        };
        for (hr, step_ms, quiet) in steps {
            t += TimeDelta::milliseconds(step_ms);
            let obs = observe(&cfg, &mut state, &reading(hr, t), None);
            for a in &obs.anomalies {
                prop_assert_eq!(a.heart_rate, Some(hr));
                prop_assert_eq!(a.recorded_at, t);
            }
            check(&obs.alerts, &state)?;
            if quiet {
                let rows: Vec<AlertRow> =
                    silence(&cfg, &mut state, CUSTOMER, None).into_iter().map(|(_, r)| r).collect();
                prop_assert_eq!(rows.len(), 1);
                check(&rows, &state)?;
                prop_assert!(silence(&cfg, &mut state, CUSTOMER, None).is_none());
            }
        }
        let text = serde_json::to_string(&state).unwrap();
        let back: CustomerState = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, state);
    }
}
