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
    assert_eq!(d.details.to_value()["baseline"], json!(70.0));
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
    assert!(d.details.to_value()["z"].as_f64().unwrap() < -4.0);
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
fn an_outlier_does_not_move_the_baseline() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &[70; 40]);
    let before = state.baseline.clone();
    let obs = observe(&cfg, &mut state, &reading(150, at(400)), None);
    assert!(find(&obs, Deviation).is_some());
    assert_eq!(
        (state.baseline.mean, state.baseline.variance),
        (before.mean, before.variance),
        "a flagged reading is left out of the baseline"
    );
    let obs = observe(&cfg, &mut state, &reading(85, at(410)), None);
    assert!(
        find(&obs, Deviation).is_some(),
        "the next deviation is not hidden by the outlier"
    );
}

#[test]
fn the_warm_up_starts_from_its_median_and_spread_not_from_an_odd_reading() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let mut hrs = steady(29);
    hrs.insert(10, 160);
    feed(&cfg, &mut state, 0, &hrs);
    assert_eq!(state.baseline.count, 30);
    assert_eq!(state.baseline.mean, 70.0, "the median, not the mean of 73");
    assert!(state.baseline.stddev() < 3.0, "the MAD ignores the 160");
    assert!(state.baseline.warmup.is_empty(), "the warm-up is not kept");
    let obs = observe(&cfg, &mut state, &reading(90, at(400)), None);
    assert!(
        find(&obs, Deviation).is_some(),
        "the odd reading widened nothing"
    );
}

/// A resting customer around 70 for `warm_s`, then `shift` bpm higher for `shift_s`, then back,
/// one reading every `every_s`: the deviation episodes this gives.
fn shifted(every_s: i64, warm_s: i64, shift: i16, shift_s: i64) -> Vec<AlertRow> {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let mut rows = Vec::new();
    let (mut t, mut i) = (0, 0usize);
    while t < warm_s + shift_s + 600 {
        let base = steady(i + 1)[i];
        let hr = if (warm_s..warm_s + shift_s).contains(&t) {
            base + shift
        } else {
            base
        };
        let obs = observe(&cfg, &mut state, &reading(hr, at(t)), None);
        rows.extend(obs.alerts.into_iter().filter(|a| a.kind == Deviation));
        t += every_s;
        i += 1;
    }
    rows
}

#[test]
fn a_resting_shift_of_half_an_hour_is_one_activated_deviation_at_any_sampling() {
    for every_s in [1, 10, 60] {
        let rows = shifted(every_s, 3_600, 20, 1_800);
        let activated: Vec<_> = rows
            .iter()
            .filter(|r| r.resolved_at.is_some() && r.activated_at.is_some())
            .collect();
        assert_eq!(activated.len(), 1, "every {every_s} s: {rows:?}");
        let episode = activated[0];
        assert_eq!(episode.opened_at, at(3_600), "every {every_s} s");
        assert!(
            episode.last_seen_at >= at(3_600 + 1_800 - every_s),
            "every {every_s} s: the baseline did not absorb the shift ({episode:?})"
        );
        assert!(
            rows.iter().all(|r| r.opened_at == at(3_600)),
            "every {every_s} s: one episode, not several"
        );
    }
}

#[test]
fn a_slow_drift_of_the_resting_rate_never_deviates() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    // +12 bpm over four hours, a reading every 10 s, with the usual noise.
    let readings = 4 * 360;
    let hrs: Vec<i16> = steady(readings)
        .iter()
        .enumerate()
        .map(|(i, &hr)| hr + (12 * i / readings) as i16)
        .collect();
    let obs = feed(&cfg, &mut state, 0, &hrs);
    assert!(obs.iter().all(|o| find(o, Deviation).is_none()));
    assert!(
        state.baseline.mean > 78.0,
        "followed: {}",
        state.baseline.mean
    );
}

#[test]
fn after_a_gap_one_reading_moves_the_baseline_a_fifth_of_the_way_at_most() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &[70; 40]);
    // A day later, 80: within 4 * 3 of 70, so judged normal, but it does not replace 70.
    observe(&cfg, &mut state, &reading(80, at(86_400)), None);
    assert!(
        (state.baseline.mean - 72.0).abs() < 1e-9,
        "{}",
        state.baseline.mean
    );
}

#[test]
fn a_lasting_shift_is_absorbed_after_two_hours() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &steady(40));
    // 95 from t = 400 s, one every 10 s, for three hours.
    let obs = feed(&cfg, &mut state, 400, &[95; 3 * 360]);
    let flagged: Vec<usize> = (0..obs.len())
        .filter(|&i| find(&obs[i], Deviation).is_some())
        .collect();
    let absorbed_at = (ABSORB_AFTER_S / 10) as usize;
    assert_eq!(flagged, (0..=absorbed_at).collect::<Vec<_>>());
    let episodes: Vec<&AlertRow> = obs
        .iter()
        .flat_map(|o| &o.alerts)
        .filter(|a| a.kind == Deviation && a.resolved_at.is_some())
        .collect();
    assert_eq!(episodes.len(), 1, "one episode, paged once: {episodes:?}");
    assert!(episodes[0].activated_at.is_some());
    assert!(state.episodes.is_empty(), "the new level is normal now");
}
