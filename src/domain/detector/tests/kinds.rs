//! The anomaly kinds: thresholds, spikes, deviations and the baseline they are judged against.

use super::*;
use crate::domain::detector::observe::round_to;

#[test]
fn band_edges_raise_the_right_threshold_anomaly() {
    let cfg = DetectorConfig::default();
    let cases = [
        (39, Some((CriticalLow, "critical_low"))),
        (40, Some((Bradycardia, "low"))),
        (59, Some((Bradycardia, "low"))),
        (60, None),
        (100, None),
        (101, Some((Tachycardia, "high"))),
        (180, Some((Tachycardia, "high"))),
        (181, Some((CriticalHigh, "critical_high"))),
    ];
    for (hr, expected) in cases {
        let mut state = CustomerState::default();
        let obs = observe(&cfg, &mut state, &reading(hr, at(0)), None);
        match expected {
            None => assert!(obs.anomalies.is_empty(), "heart rate {hr}"),
            Some((kind, class)) => {
                assert_eq!(kinds(&obs), vec![kind], "heart rate {hr}");
                let a = &obs.anomalies[0];
                assert_eq!(a.details, json!({ "class": class }), "heart rate {hr}");
                assert_eq!(a.event_id, Some(derive_event_id(CUSTOMER, &at(0))));
                assert_eq!(a.customer_id, CUSTOMER);
                assert_eq!(a.heart_rate, Some(hr));
                assert_eq!(a.recorded_at, at(0));
                assert_eq!(obs.class.threshold_anomaly(), Some(kind));
            }
        }
    }
}

#[test]
fn a_jump_of_the_spike_size_within_the_window_is_a_spike_either_way() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let obs = feed(&cfg, &mut state, 0, &[70, 105, 70]);
    let up = find(&obs[1], Spike).expect("+35 is a spike");
    assert_eq!(up.details, json!({ "previous": 70, "delta": 35 }));
    let down = find(&obs[2], Spike).expect("-35 is a spike");
    assert_eq!(down.details, json!({ "previous": 105, "delta": -35 }));
}

#[test]
fn the_spike_threshold_and_window_are_inclusive() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let obs = feed(&cfg, &mut state, 0, &[70, 100]);
    assert!(find(&obs[1], Spike).is_some(), "+30 = spike_bpm is a spike");

    let mut state = CustomerState::default();
    observe(&cfg, &mut state, &reading(70, at(0)), None);
    let obs = observe(&cfg, &mut state, &reading(105, at(60)), None);
    assert!(find(&obs, Spike).is_some(), "exactly 60 s is within");
}

#[test]
fn small_jumps_late_jumps_and_first_readings_are_not_spikes() {
    let cfg = DetectorConfig::default();

    let mut state = CustomerState::default();
    let obs = feed(&cfg, &mut state, 0, &[70, 99]);
    assert!(find(&obs[1], Spike).is_none(), "+29 is below spike_bpm");

    let mut state = CustomerState::default();
    observe(&cfg, &mut state, &reading(70, at(0)), None);
    let obs = observe(&cfg, &mut state, &reading(105, at(61)), None);
    assert!(find(&obs, Spike).is_none(), "61 s is outside the window");

    let mut state = CustomerState::default();
    observe(&cfg, &mut state, &reading(70, at(0)), None);
    let late = at(60) + TimeDelta::microseconds(1);
    let obs = observe(&cfg, &mut state, &reading(105, late), None);
    assert!(find(&obs, Spike).is_none(), "60 s and 1 µs is outside");

    let mut state = CustomerState::default();
    let obs = observe(&cfg, &mut state, &reading(200, at(0)), None);
    assert!(
        find(&obs, Spike).is_none(),
        "the first reading has no previous"
    );
}

#[test]
fn a_previous_reading_recorded_later_is_not_compared() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    observe(&cfg, &mut state, &reading(70, at(30)), None);
    let obs = observe(&cfg, &mut state, &reading(140, at(20)), None);
    assert!(find(&obs, Spike).is_none());
    // The late reading is still the previous one for the next reading.
    let obs = observe(&cfg, &mut state, &reading(70, at(40)), None);
    let spike = find(&obs, Spike).expect("compared with the late reading");
    assert_eq!(spike.details, json!({ "previous": 140, "delta": -70 }));
    assert_eq!(state.max_recorded_at, Some(at(40)));
    assert_eq!(state.last_recorded_at, Some(at(40)));
}

#[test]
fn a_reading_far_from_a_steady_baseline_is_a_deviation() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &steady(40));
    let mean = state.baseline.mean;
    let obs = observe(&cfg, &mut state, &reading(110, at(400)), None);
    let d = find(&obs, Deviation).expect("110 after a steady 70 is a deviation");
    assert_eq!(d.heart_rate, Some(110));
    // The noise is below the floor, so the floor is the stddev used.
    let z = (110.0 - mean) / 3.0;
    assert_eq!(
        d.details,
        json!({ "baseline": round_to(mean, 1), "stddev": 3.0, "z": round_to(z, 2) })
    );
    assert_eq!(d.details["baseline"], json!(70.0));
    assert!(find(&obs, Tachycardia).is_some());
    assert!(find(&obs, Spike).is_some());
}

#[test]
fn a_deviation_below_the_baseline_has_a_negative_z() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &steady(40));
    let obs = observe(&cfg, &mut state, &reading(50, at(400)), None);
    let d = find(&obs, Deviation).expect("50 after a steady 70 is a deviation");
    assert!(d.details["z"].as_f64().unwrap() < -4.0);
}

#[test]
fn no_deviation_during_warm_up_even_for_a_big_jump() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let mut hrs = vec![70; 29];
    hrs.push(150); // the 30th reading: n = warmup_readings
    let obs = feed(&cfg, &mut state, 0, &hrs);
    assert!(obs
        .iter()
        .all(|o| o.anomalies.iter().all(|a| a.kind != Deviation)));
    assert!(find(&obs[29], Tachycardia).is_some());

    // The 31st reading is the first one judged.
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &[70; 30]);
    let obs = observe(&cfg, &mut state, &reading(110, at(300)), None);
    assert!(find(&obs, Deviation).is_some());
}

#[test]
fn a_steady_series_never_deviates() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let obs = feed(&cfg, &mut state, 0, &steady(500));
    assert!(obs.iter().all(|o| o.anomalies.is_empty()));
    assert!(state.episodes.is_empty());
}

#[test]
fn the_stddev_floor_spares_a_perfectly_constant_customer() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &[70; 40]);
    assert_eq!((state.baseline.mean, state.baseline.variance), (70.0, 0.0));
    let base = state.clone();

    let obs = observe(&cfg, &mut state, &reading(73, at(400)), None);
    assert!(obs.anomalies.is_empty(), "|73-70| = 3 < 4 * 3");

    let mut state = base.clone();
    let obs = observe(&cfg, &mut state, &reading(81, at(400)), None);
    assert!(obs.anomalies.is_empty(), "11 < 12");

    let mut state = base;
    let obs = observe(&cfg, &mut state, &reading(82, at(400)), None);
    let d = find(&obs, Deviation).expect("12 = 4 * 3 is at least z_threshold");
    assert_eq!(
        d.details,
        json!({ "baseline": 70.0, "stddev": 3.0, "z": 4.0 })
    );
}

#[test]
fn the_baseline_is_the_exact_mean_and_variance_at_first() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &[60, 70, 80, 90]);
    assert_eq!(state.baseline.count, 4);
    assert!((state.baseline.mean - 75.0).abs() < 1e-12);
    assert!((state.baseline.variance - 125.0).abs() < 1e-9);
}

#[test]
fn one_outlier_widens_the_baseline_only_a_little() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &[70; 40]);
    observe(&cfg, &mut state, &reading(150, at(400)), None);
    // Folded in as 70 + 4 * 3 = 82, not 150.
    assert!((state.baseline.mean - 70.6).abs() < 1e-9);
    assert!(state.baseline.stddev() < 3.0);
}

#[test]
fn a_lasting_shift_is_absorbed_by_the_baseline() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &steady(40));
    let obs = feed(&cfg, &mut state, 400, &[95; 60]);
    let deviations = obs.iter().filter(|o| find(o, Deviation).is_some()).count();
    assert!(
        (1..=10).contains(&deviations),
        "{deviations} deviations before the new level became the baseline"
    );
    assert!(
        obs[50..].iter().all(|o| o.anomalies.is_empty()),
        "the new level is normal now"
    );
    assert!(state.episodes.is_empty(), "the deviation episode resolved");
}
