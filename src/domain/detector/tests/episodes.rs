//! Alert episodes: opening, growing, resolving, flapping, peaks and silences.

use super::*;

#[test]
fn an_episode_opens_grows_and_resolves_after_three_quiet_readings() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let obs = feed(&cfg, &mut state, 0, &[95, 102, 120, 115, 98, 90, 85, 105]);
    let row = |customer: &str, opened, last, resolved, readings, peak| AlertRow {
        customer_id: customer.to_owned(),
        kind: Tachycardia,
        opened_at: opened,
        last_seen_at: last,
        resolved_at: resolved,
        readings,
        peak_heart_rate: Some(peak),
        // A minute of tachycardia never lasts its ten minutes of sustain.
        activated_at: None,
        suppressed: resolved.map(|_| Suppressed::Short),
    };
    assert!(obs[0].alerts.is_empty());
    assert_eq!(
        obs[1].alerts,
        vec![row(CUSTOMER, at(10), at(10), None, 1, 102)]
    );
    assert_eq!(
        obs[2].alerts,
        vec![row(CUSTOMER, at(10), at(20), None, 2, 120)]
    );
    assert_eq!(
        obs[3].alerts,
        vec![row(CUSTOMER, at(10), at(30), None, 3, 120)]
    );
    assert!(obs[4].alerts.is_empty(), "one quiet reading changes no row");
    assert!(obs[5].alerts.is_empty(), "two quiet readings change no row");
    assert_eq!(
        obs[6].alerts,
        vec![row(CUSTOMER, at(10), at(30), Some(at(60)), 3, 120)]
    );
    // Forgotten once resolved; the next one is a new episode.
    assert_eq!(
        obs[7].alerts,
        vec![row(CUSTOMER, at(70), at(70), None, 1, 105)]
    );
    assert_eq!(state.episodes.len(), 1);
}

#[test]
fn a_reading_with_the_kind_restarts_the_quiet_streak() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let obs = feed(&cfg, &mut state, 0, &[102, 90, 90, 103, 90, 90, 90]);
    let rows: Vec<&AlertRow> = obs.iter().flat_map(|o| &o.alerts).collect();
    assert!(rows.iter().all(|r| r.opened_at == at(0)));
    assert_eq!(rows.len(), 3, "opened, updated, resolved");
    assert_eq!(rows[2].resolved_at, Some(at(60)));
    assert_eq!((rows[2].readings, rows[2].peak_heart_rate), (2, Some(103)));
}

#[test]
fn flapping_at_a_band_edge_keeps_one_bradycardia_episode() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let hrs: Vec<i16> = (0..20).map(|i| if i % 2 == 0 { 59 } else { 61 }).collect();
    let obs = feed(&cfg, &mut state, 0, &hrs);
    let rows: Vec<&AlertRow> = obs.iter().flat_map(|o| &o.alerts).collect();
    assert!(rows.iter().all(|r| r.kind == Bradycardia));
    assert!(rows.iter().all(|r| r.opened_at == at(0)));
    assert!(rows.iter().all(|r| r.resolved_at.is_none()));
    let last = rows.last().unwrap();
    assert_eq!((last.readings, last.peak_heart_rate), (10, Some(59)));
    assert_eq!(last.last_seen_at, at(180));
}

#[test]
fn bradycardia_and_critical_low_are_separate_episodes() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    let obs = feed(&cfg, &mut state, 0, &[45, 35, 42, 38]);
    assert_eq!(kinds(&obs[1]), vec![CriticalLow], "35 is critical_low only");
    let opened = |o: &Observation| -> Vec<(AnomalyKind, DateTime<Utc>)> {
        o.alerts.iter().map(|r| (r.kind, r.opened_at)).collect()
    };
    assert_eq!(opened(&obs[0]), vec![(Bradycardia, at(0))]);
    assert_eq!(opened(&obs[1]), vec![(CriticalLow, at(10))]);
    assert_eq!(opened(&obs[2]), vec![(Bradycardia, at(0))]);
    assert_eq!(opened(&obs[3]), vec![(CriticalLow, at(10))]);
    assert_eq!(state.episodes.len(), 2);
    let peak = |k| state.episode(k).and_then(|e| e.peak_heart_rate);
    assert_eq!(peak(Bradycardia), Some(42), "the minimum");
    assert_eq!(peak(CriticalLow), Some(35), "the minimum");
}

#[test]
fn the_spike_peak_is_the_largest_jump_and_the_high_peak_the_maximum() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    // Jumps: +40, -35, +50 (75 to 125, the largest), -45.
    feed(&cfg, &mut state, 0, &[70, 110, 75, 125, 80]);
    let spike = state.episode(Spike).unwrap();
    assert_eq!((spike.readings, spike.peak_heart_rate), (4, Some(125)));
    let high = state.episode(Tachycardia).unwrap();
    assert_eq!(high.peak_heart_rate, Some(125));
}

#[test]
fn silence_is_reported_once_and_the_next_reading_ends_it() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    assert!(
        silence(&cfg, &mut state, CUSTOMER, None).is_none(),
        "no reading yet"
    );

    feed(&cfg, &mut state, 0, &[70, 72]);
    let (anomaly, row) = silence(&cfg, &mut state, CUSTOMER, None).expect("a silence");
    assert_eq!(
        anomaly,
        Anomaly {
            event_id: None,
            customer_id: CUSTOMER.to_owned(),
            kind: Silent,
            heart_rate: None,
            recorded_at: at(10),
            details: Details::Silent {
                last_heart_rate: Some(72)
            },
        }
    );
    let open = AlertRow {
        customer_id: CUSTOMER.to_owned(),
        kind: Silent,
        opened_at: at(10),
        last_seen_at: at(10),
        resolved_at: None,
        readings: 0,
        peak_heart_rate: None,
        // A silence has no sustain: it activates at once.
        activated_at: Some(at(10)),
        suppressed: None,
    };
    assert_eq!(row, open);
    assert!(state.is_silent());
    assert!(
        silence(&cfg, &mut state, CUSTOMER, None).is_none(),
        "once per silence"
    );

    let obs = observe(&cfg, &mut state, &reading(71, at(500)), None);
    assert!(obs.anomalies.is_empty());
    assert_eq!(
        obs.alerts,
        vec![AlertRow {
            resolved_at: Some(at(500)),
            ..open
        }]
    );
    assert!(!state.is_silent());
    let (again, _) = silence(&cfg, &mut state, CUSTOMER, None).expect("a new silence");
    assert_eq!(again.recorded_at, at(500));
}

#[test]
fn a_late_reading_never_resolves_before_last_seen() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 100, &[70]);
    silence(&cfg, &mut state, CUSTOMER, None);
    let obs = observe(&cfg, &mut state, &reading(70, at(50)), None);
    assert_eq!(obs.alerts[0].resolved_at, Some(at(100)));
}

#[test]
fn a_silence_does_not_disturb_other_episodes() {
    let cfg = DetectorConfig::default();
    let mut state = CustomerState::default();
    feed(&cfg, &mut state, 0, &[110]);
    silence(&cfg, &mut state, CUSTOMER, None);
    let obs = observe(&cfg, &mut state, &reading(112, at(10)), None);
    let rows: Vec<(AnomalyKind, Option<DateTime<Utc>>)> =
        obs.alerts.iter().map(|r| (r.kind, r.resolved_at)).collect();
    assert_eq!(rows, vec![(Tachycardia, None), (Silent, Some(at(10)))]);
    assert_eq!(state.episode(Tachycardia).unwrap().readings, 2);
}
