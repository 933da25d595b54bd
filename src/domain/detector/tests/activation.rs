//! Counting readings, sustain, activation, suppression and muting (SPEC section 5): what pages a
//! person, as against the findings, which stay those of the fleet bands.

use super::*;
use crate::domain::reading::Activity;
use crate::domain::rules::Thresholds;

fn with(hr: i16, at: DateTime<Utc>, activity: Option<Activity>) -> Reading {
    Reading {
        activity,
        ..reading(hr, at)
    }
}

/// Observes `hr` every `step` seconds for `count` readings from `from`, all of `activity`.
fn run(
    cfg: &DetectorConfig,
    state: &mut CustomerState,
    rules: Option<&CustomerRules>,
    (from, step, count): (i64, i64, i64),
    hr: i16,
    activity: Option<Activity>,
) -> Vec<Observation> {
    (0..count)
        .map(|i| observe(cfg, state, &with(hr, at(from + step * i), activity), rules))
        .collect()
}

fn thresholds(low_below: Option<i64>, high_above: Option<i64>) -> CustomerRules {
    CustomerRules {
        thresholds: Thresholds {
            low_below,
            high_above,
            ..Thresholds::default()
        },
        muted_until: None,
    }
}

/// (hr, activity, rules, the finding of the fleet bands, the kind it counts toward)
type Case<'a> = (
    i16,
    Option<Activity>,
    Option<&'a CustomerRules>,
    Option<AnomalyKind>,
    Option<AnomalyKind>,
);

#[test]
fn a_reading_counts_by_the_customers_rules_and_its_activity() {
    use Activity::*;
    let athlete = thresholds(Some(45), None);
    let anxious = thresholds(None, Some(90));
    // (hr, activity, rules, the finding of the fleet bands, the kind it counts toward)
    let cases: [Case<'_>; 16] = [
        (55, None, None, Some(Bradycardia), Some(Bradycardia)),
        (55, Some(Rest), None, Some(Bradycardia), Some(Bradycardia)),
        (55, Some(Active), None, Some(Bradycardia), Some(Bradycardia)),
        (55, Some(Sleep), None, Some(Bradycardia), None),
        (130, None, None, Some(Tachycardia), Some(Tachycardia)),
        (130, Some(Rest), None, Some(Tachycardia), Some(Tachycardia)),
        (130, Some(Sleep), None, Some(Tachycardia), Some(Tachycardia)),
        (130, Some(Active), None, Some(Tachycardia), None),
        (130, Some(Exercise), None, Some(Tachycardia), None),
        (35, Some(Sleep), None, Some(CriticalLow), Some(CriticalLow)),
        (
            190,
            Some(Exercise),
            None,
            Some(CriticalHigh),
            Some(CriticalHigh),
        ),
        (48, None, Some(&athlete), Some(Bradycardia), None),
        (
            42,
            None,
            Some(&athlete),
            Some(Bradycardia),
            Some(Bradycardia),
        ),
        (42, Some(Sleep), Some(&athlete), Some(Bradycardia), None),
        (95, None, Some(&anxious), None, Some(Tachycardia)),
        (70, None, Some(&anxious), None, None),
    ];
    let cfg = DetectorConfig::default();
    for (hr, activity, rules, finding, counts) in cases {
        let mut state = CustomerState::default();
        let obs = observe(&cfg, &mut state, &with(hr, at(0), activity), rules);
        let case = format!("{hr} bpm, {activity:?}, {rules:?}");
        assert_eq!(
            kinds(&obs),
            finding.into_iter().collect::<Vec<_>>(),
            "{case}"
        );
        let episodes: Vec<AnomalyKind> = state.episodes.iter().map(|e| e.kind).collect();
        assert_eq!(episodes, counts.into_iter().collect::<Vec<_>>(), "{case}");
    }
}

#[test]
fn an_episode_activates_at_the_first_counting_reading_past_its_sustain() {
    // (hr, seconds between readings, readings, when it activates, seconds after opening)
    let cases: [(i16, i64, i64, Option<i64>); 6] = [
        (125, 60, 15, Some(600)), // tachycardia: ten minutes
        (125, 70, 15, Some(630)), // the first reading at or past ten minutes
        (125, 60, 10, None),      // nine minutes: not yet
        (55, 60, 11, Some(600)),  // bradycardia: ten minutes
        (190, 10, 4, Some(30)),   // critical_high: half a minute
        (30, 10, 3, None),        // critical_low: twenty seconds is not half a minute
    ];
    let cfg = DetectorConfig::default();
    for (hr, step, count, activates) in cases {
        let mut state = CustomerState::default();
        let obs = run(&cfg, &mut state, None, (0, step, count), hr, None);
        let row = obs.last().unwrap().alerts.last().unwrap().clone();
        assert_eq!(
            row.activated_at,
            activates.map(at),
            "{hr} every {step}s x{count}"
        );
        assert_eq!(row.opened_at, at(0));
        assert_eq!(row.suppressed, None, "open");
        // Activated once: the same time on every later row.
        if let Some(a) = activates {
            let first = obs.iter().position(|o| o.alerts[0].activated_at.is_some());
            assert_eq!(first.map(|i| i as i64 * step), Some(a));
        }
    }
}

#[test]
fn a_spike_activates_at_once_and_a_short_episode_is_suppressed_short() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let obs = feed(&cfg, &mut state, 0, &[70, 110]);
    let spike = obs[1].alerts.iter().find(|r| r.kind == Spike).unwrap();
    assert_eq!(spike.activated_at, Some(at(10)));

    // Three minutes at 125, then normal: resolved, never activated, `short`.
    let mut state = CustomerState::default();
    run(
        &cfg,
        &mut state,
        None,
        (0, 10, 18),
        125,
        Some(Activity::Rest),
    );
    let obs = run(
        &cfg,
        &mut state,
        None,
        (180, 10, 3),
        80,
        Some(Activity::Rest),
    );
    let row = &obs[2].alerts[0];
    assert_eq!((row.kind, row.resolved_at), (Tachycardia, Some(at(200))));
    assert_eq!(
        (row.activated_at, row.suppressed),
        (None, Some(Suppressed::Short))
    );
}

#[test]
fn a_muted_customers_episode_activates_only_once_the_mute_has_ended() {
    let mute = |until: i64| CustomerRules {
        muted_until: Some(at(until)),
        ..CustomerRules::default()
    };
    // (muted until, minutes at 125, then: activated at, suppressed)
    let cases: [(i64, i64, Option<i64>, Option<Suppressed>); 4] = [
        (86_400, 15, None, Some(Suppressed::Muted)), // lasted, but muted throughout
        (86_400, 3, None, Some(Suppressed::Short)),  // never lasted: short, muted or not
        (720, 15, Some(720), None), // the mute ends while open: its next counting reading
        (300, 15, Some(600), None), // the mute ended before the sustain did
    ];
    let cfg = DetectorConfig::default();
    for (until, minutes, activated, suppressed) in cases {
        let rules = mute(until);
        let mut state = CustomerState::default();
        run(&cfg, &mut state, Some(&rules), (0, 60, minutes), 125, None);
        let end = 60 * minutes;
        let obs = run(&cfg, &mut state, Some(&rules), (end, 60, 3), 80, None);
        let row = &obs[2].alerts[0];
        let case = format!("muted until {until}, {minutes} min");
        assert_eq!(row.resolved_at, Some(at(end + 120)), "{case}");
        assert_eq!(row.activated_at, activated.map(at), "{case}");
        assert_eq!(row.suppressed, suppressed, "{case}");
    }
}

#[test]
fn a_muted_customers_silence_does_not_activate() {
    let cfg = DetectorConfig::default();
    let rules = CustomerRules {
        muted_until: Some(at(3_600)),
        ..CustomerRules::default()
    };
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &[70]);
    let (_, row) = silence(&cfg, &mut state, CUSTOMER, Some(&rules)).unwrap();
    assert_eq!(row.activated_at, None);
    let obs = observe(&cfg, &mut state, &reading(70, at(60)), Some(&rules));
    assert_eq!(obs.alerts[0].suppressed, Some(Suppressed::Muted));
}

#[test]
fn only_readings_at_rest_or_of_unknown_activity_are_judged_for_deviation() {
    let cfg = DetectorConfig::default();
    for activity in [None, Some(Activity::Rest)] {
        let mut state = CustomerState::default();
        run(&cfg, &mut state, None, (0, 10, 40), 60, activity);
        let baseline = state.baseline.clone();
        for other in [Activity::Sleep, Activity::Active, Activity::Exercise] {
            let obs = observe(&cfg, &mut state, &with(95, at(500), Some(other)), None);
            assert!(!kinds(&obs).contains(&Deviation), "{other:?} is not judged");
            assert_eq!(state.baseline, baseline, "{other:?} moves no baseline");
        }
        let obs = observe(&cfg, &mut state, &with(95, at(510), activity), None);
        assert!(kinds(&obs).contains(&Deviation), "{activity:?} is judged");
    }
    // The warm-up counts judged readings only: 40 readings asleep leave it to come.
    let mut state = CustomerState::default();
    run(
        &cfg,
        &mut state,
        None,
        (0, 10, 40),
        50,
        Some(Activity::Sleep),
    );
    let obs = observe(&cfg, &mut state, &with(95, at(500), None), None);
    assert!(!kinds(&obs).contains(&Deviation));
}

#[test]
fn an_episode_saved_before_activation_existed_loads_and_activates_later() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    run(&cfg, &mut state, None, (0, 60, 2), 125, None);
    let mut saved = serde_json::to_value(&state).unwrap();
    for e in saved["episodes"].as_array_mut().unwrap() {
        let e = e.as_object_mut().unwrap();
        e.remove("activated_at");
        e.remove("lasted");
    }
    let mut loaded: CustomerState = serde_json::from_value(saved).unwrap();
    assert_eq!(loaded, state);
    let obs = run(&cfg, &mut loaded, None, (120, 60, 9), 125, None);
    assert_eq!(obs[8].alerts[0].activated_at, Some(at(600)));
    // And what it holds now round-trips exactly.
    let text = serde_json::to_string(&loaded).unwrap();
    assert_eq!(
        serde_json::from_str::<CustomerState>(&text).unwrap(),
        loaded
    );
}
