//! Unit and property tests of the simulator: determinism, turns on the virtual clock, plausible
//! and valid readings, daily rhythm, injected kinds and their labels, faults and the profile.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

use super::model::{kind_index, Customer, Trace};
use super::profile::Moments;
use super::*;
use crate::domain::classification::{classify, AnomalyKind, Bands};
use crate::domain::reading::Activity;
use crate::domain::validation::{validate, RejectReason, ValidationRules};

const BANDS: Bands = Bands::DEFAULT;

fn config(customers: usize, seed: u64, rate: f64) -> SimulatorConfig {
    SimulatorConfig::new(customers, seed, rate, BANDS, 30)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()
}

/// A reading with its trace, flattened for tests.
#[derive(Debug, Clone)]
struct Seen {
    customer: usize,
    hr: i16,
    time: DateTime<Utc>,
    activity: Activity,
    injected: Vec<AnomalyKind>,
    trace: Trace,
}

fn readings(cfg: SimulatorConfig, records: usize) -> Vec<Seen> {
    let mut sim = Simulator::new(cfg);
    (0..records)
        .filter_map(|_| match sim.next_traced(now()) {
            (
                SimRecord::Reading {
                    customer_id,
                    heart_rate,
                    sim_time,
                    activity,
                    injected,
                    ..
                },
                trace,
            ) => Some(Seen {
                customer: customer_id[5..].parse().unwrap(),
                hr: heart_rate,
                time: sim_time,
                activity,
                injected,
                trace,
            }),
            _ => None,
        })
        .collect()
}

fn pairs(cfg: SimulatorConfig, records: usize) -> Vec<(String, i16)> {
    let mut sim = Simulator::new(cfg);
    (0..records)
        .filter_map(|i| {
            // A different wall clock each call: it must not matter.
            match sim.next_record(now() + TimeDelta::seconds(i as i64)) {
                SimRecord::Reading {
                    customer_id,
                    heart_rate,
                    ..
                } => Some((customer_id, heart_rate)),
                SimRecord::Fault { .. } => None,
            }
        })
        .collect()
}

/// Each customer's readings, in order.
fn by_customer(seen: &[Seen]) -> HashMap<usize, Vec<&Seen>> {
    let mut map: HashMap<usize, Vec<&Seen>> = HashMap::new();
    for s in seen {
        map.entry(s.customer).or_default().push(s);
    }
    map
}

#[test]
fn the_same_seed_gives_the_same_sequence_and_another_seed_another() {
    let a = pairs(config(50, 42, 100.0), 20_000);
    assert_eq!(a, pairs(config(50, 42, 100.0), 20_000));
    assert_ne!(a, pairs(config(50, 43, 100.0), 20_000));
}

#[test]
fn faults_take_no_turn_and_leave_the_readings_unchanged() {
    let clean = pairs(config(50, 7, 100.0), 20_000);
    let faulty = pairs(
        SimulatorConfig {
            fault_rate: 0.2,
            ..config(50, 7, 100.0)
        },
        25_000,
    );
    let n = faulty.len().min(clean.len());
    assert!(faulty.len() < 25_000 && n > 15_000);
    assert_eq!(faulty[..n], clean[..n]);
}

#[test]
fn customers_take_turns_on_the_virtual_clock() {
    let seen = readings(
        SimulatorConfig {
            inject: InjectionRates::none(),
            ..config(3, 1, 100.0)
        },
        7,
    );
    let ids: Vec<usize> = seen.iter().map(|s| s.customer).collect();
    assert_eq!(ids, [0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(seen[0].time, sim_start());
    assert_eq!(
        seen[0].time.to_rfc3339(),
        "2026-01-01T00:00:00+00:00",
        "the documented start"
    );
    // 3 customers at 100 readings/s: one slot every 10 ms, each customer every 30 ms.
    assert_eq!(seen[1].time - seen[0].time, TimeDelta::milliseconds(10));
    assert_eq!(seen[3].time - seen[0].time, TimeDelta::milliseconds(30));
    assert_eq!(customer_id(42), "CUST-00042");
}

#[test]
fn rate_zero_gives_each_customer_a_reading_a_second() {
    let cfg = config(4, 1, 0.0);
    assert_eq!(cfg.reading_interval_s(), 1.0);
    let seen = readings(cfg, 9);
    assert_eq!(seen[8].time - seen[0].time, TimeDelta::seconds(2));
    assert_eq!(config(1000, 1, 100.0).reading_interval_s(), 10.0);
}

#[test]
fn every_reading_is_valid_and_natural_ones_are_plausible() {
    // 200 customers, one reading each every 30 s, for 8 simulated hours: every activity.
    let cfg = SimulatorConfig {
        inject: InjectionRates::all(0.002),
        ..config(200, 3, 200.0 / 30.0)
    };
    let seen = readings(cfg, 200 * 960);
    let mut activities = std::collections::HashSet::new();
    for s in &seen {
        assert!((20..=250).contains(&s.hr), "{s:?}");
        if !s.trace.in_episode {
            assert!((30..=220).contains(&s.hr), "{s:?}");
        }
        activities.insert(s.activity);
    }
    assert_eq!(activities.len(), 4, "{activities:?}");
}

#[test]
fn customers_have_different_baselines() {
    let seen = readings(
        SimulatorConfig {
            inject: InjectionRates::none(),
            ..config(1000, 5, 100.0)
        },
        100_000,
    );
    let mut spread = Moments::default();
    for (_, rs) in by_customer(&seen) {
        spread.add(rs.iter().map(|s| f64::from(s.hr)).sum::<f64>() / rs.len() as f64);
    }
    assert_eq!(spread.n, 1000);
    assert!(spread.sd() > 5.0, "sd of customer means {}", spread.sd());
    assert!((60.0..80.0).contains(&spread.mean), "{}", spread.mean);
}

#[test]
fn consecutive_readings_move_smoothly() {
    // Readings of a customer every second, every 10 s and every 1000 s.
    for (customers, rate) in [(20, 20.0), (100, 10.0), (100, 0.1)] {
        let cfg = SimulatorConfig {
            inject: InjectionRates::default(),
            ..config(customers, 11, rate)
        };
        let seen = readings(cfg, 100_000);
        let mut steps = Vec::new();
        for (_, rs) in by_customer(&seen) {
            for w in rs.windows(2) {
                let step = (w[1].hr - w[0].hr).abs();
                steps.push(step);
                if !w[1].trace.in_episode {
                    assert!(step < 30, "{:?} -> {:?}", w[0], w[1]);
                }
            }
        }
        steps.sort_unstable();
        let median = steps[steps.len() / 2];
        assert!(median <= 5, "median step {median} at rate {rate}");
        assert!(
            median >= 1,
            "median step {median} at rate {rate}: too smooth"
        );
    }
}

#[test]
fn sleep_is_at_local_night_and_slower_than_rest() {
    let cfg = SimulatorConfig {
        inject: InjectionRates::none(),
        ..config(50, 9, 50.0 / 60.0)
    };
    let mut sim = Simulator::new(cfg);
    let mut sleep = Moments::default();
    let mut rest = Moments::default();
    let mut exercise = Moments::default();
    // Two simulated days, a reading per customer a minute.
    for _ in 0..50 * 2 * 1440 {
        let SimRecord::Reading {
            customer_id,
            heart_rate,
            sim_time,
            activity,
            ..
        } = sim.next_record(now())
        else {
            unreachable!("no faults configured")
        };
        let c = &sim.customers[customer_id[5..].parse::<usize>().unwrap()];
        let local_hour =
            (sim_time.timestamp() + i64::from(c.tz_qh) * 900).rem_euclid(86_400) / 3600;
        match local_hour {
            2..=4 => assert_eq!(activity, Activity::Sleep, "{customer_id} at {local_hour}"),
            10..=20 => assert_ne!(activity, Activity::Sleep, "{customer_id} at {local_hour}"),
            _ => {}
        }
        match activity {
            Activity::Sleep => sleep.add(f64::from(heart_rate)),
            Activity::Rest => rest.add(f64::from(heart_rate)),
            Activity::Exercise => exercise.add(f64::from(heart_rate)),
            Activity::Active => {}
        }
    }
    assert!(
        sleep.mean < rest.mean * 0.92,
        "{} {}",
        sleep.mean,
        rest.mean
    );
    assert!(exercise.mean > 110.0, "{}", exercise.mean);
}

/// `observed` is within 5 standard deviations of `n` draws at probability `p`.
fn within_binomial(observed: u64, n: u64, p: f64) -> bool {
    let expected = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (observed as f64 - expected).abs() <= 5.0 * sd + 1.0
}

#[test]
fn injected_kinds_start_at_their_configured_rates_and_are_labelled() {
    let inject = InjectionRates {
        bradycardia: 0.004,
        tachycardia: 0.003,
        critical_low: 0.002,
        critical_high: 0.002,
        spike: 0.005,
        deviation: 0.004,
        silent: 0.001,
    };
    let cfg = SimulatorConfig {
        inject: inject.clone(),
        ..config(300, 13, 30.0)
    };
    let seen = readings(cfg, 300_000);
    let eligible = seen.iter().filter(|s| s.trace.eligible).count() as u64;
    assert!(eligible > 200_000, "{eligible}");
    for kind in AnomalyKind::ALL {
        let started = seen
            .iter()
            .filter(|s| s.trace.started == Some(kind))
            .count() as u64;
        assert!(
            within_binomial(started, eligible, inject.rate(kind)),
            "{kind:?}: {started} starts in {eligible} eligible readings at {}",
            inject.rate(kind)
        );
    }

    // Each episode's readings carry the kind it was injected as.
    for (_, rs) in by_customer(&seen) {
        let mut i = 0;
        while i < rs.len() {
            let Some(kind) = rs[i].trace.started else {
                i += 1;
                continue;
            };
            let mut end = i + 1;
            while end < rs.len() && rs[end].trace.in_episode && rs[end].trace.started.is_none() {
                end += 1;
            }
            if end == rs.len() {
                // Cut off by the end of the run: not a whole episode.
                break;
            }
            let episode = &rs[i..end];
            let has = |s: &&Seen, k| s.injected.contains(&k);
            match kind {
                AnomalyKind::Silent => {
                    assert!(has(&rs[i], AnomalyKind::Silent));
                    // 300 customers at 30/s: one reading every 10 s; a gap of >= 120 s.
                    assert!(rs[i + 1].time - rs[i].time >= TimeDelta::seconds(120));
                }
                AnomalyKind::Spike => {
                    assert!(has(&rs[i], AnomalyKind::Spike), "{:?}", rs[i]);
                    assert_eq!(episode.len(), 2, "a spike and its way back");
                }
                AnomalyKind::Deviation => {
                    let shifted = episode
                        .iter()
                        .filter(|s| has(s, AnomalyKind::Deviation))
                        .count();
                    assert!((3..=8).contains(&shifted), "{episode:?}");
                    assert!(episode.iter().all(|s| !has(s, AnomalyKind::Spike)));
                }
                _ => {
                    assert!(
                        episode.iter().any(|s| has(s, kind)),
                        "{kind:?} episode without its label: {episode:?}"
                    );
                    assert!(episode.iter().all(|s| !has(s, AnomalyKind::Spike)));
                }
            }
            i = end;
        }
    }

    // Spike labels come from injected spikes only, and a silence is labelled once.
    for s in &seen {
        if s.injected.contains(&AnomalyKind::Spike) {
            assert!(s.trace.in_episode, "{s:?}");
        }
        assert_eq!(
            s.injected.contains(&AnomalyKind::Silent),
            s.trace.started == Some(AnomalyKind::Silent)
        );
    }
}

#[test]
fn labels_are_exactly_what_the_reading_raises() {
    let cfg = SimulatorConfig {
        inject: InjectionRates::all(0.003),
        ..config(100, 17, 10.0)
    };
    let seen = readings(cfg, 100_000);
    for (_, rs) in by_customer(&seen) {
        for (i, s) in rs.iter().enumerate() {
            let threshold = classify(s.hr, &BANDS).threshold_anomaly();
            for kind in [
                AnomalyKind::CriticalLow,
                AnomalyKind::Bradycardia,
                AnomalyKind::Tachycardia,
                AnomalyKind::CriticalHigh,
            ] {
                assert_eq!(s.injected.contains(&kind), threshold == Some(kind), "{s:?}");
            }
            let spike = i > 0 && (s.hr - rs[i - 1].hr).abs() >= 30;
            assert_eq!(s.injected.contains(&AnomalyKind::Spike), spike, "{s:?}");
            let mut sorted = s.injected.clone();
            sorted.sort_by_key(|k| kind_index(*k));
            sorted.dedup();
            assert_eq!(sorted, s.injected);
        }
    }
}

#[test]
fn faults_cover_every_reason_and_each_is_rejected_with_it() {
    let mut sim = Simulator::new(SimulatorConfig {
        fault_rate: 1.0,
        ..config(10, 1, 100.0)
    });
    let mut seen = HashMap::new();
    // Six rounds: every variant of every reason.
    for i in 0..RejectReason::ALL.len() * 6 {
        let at = now() + TimeDelta::milliseconds(i as i64 * 250);
        let SimRecord::Fault {
            customer_id,
            reason,
            value,
        } = sim.next_record(at)
        else {
            panic!("fault_rate 1 gives only faults")
        };
        assert_eq!(reason, RejectReason::ALL[i % RejectReason::ALL.len()]);
        assert!(customer_id.starts_with("CUST-"));
        let verdict = validate(value.as_deref(), Some(at), &ValidationRules::default());
        assert_eq!(
            verdict.as_ref().map_err(|r| r.reason),
            Err(reason),
            "{reason}: {:?}",
            value
                .as_ref()
                .map(|v| String::from_utf8_lossy(&v[..v.len().min(200)]))
        );
        *seen.entry(reason).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), RejectReason::ALL.len());
}

#[test]
fn faults_appear_at_their_rate() {
    let mut sim = Simulator::new(SimulatorConfig {
        fault_rate: 0.05,
        ..config(100, 2, 100.0)
    });
    let n = 50_000;
    let mut reasons = HashMap::new();
    for _ in 0..n {
        if let SimRecord::Fault { reason, .. } = sim.next_record(now()) {
            *reasons.entry(reason).or_insert(0u64) += 1;
        }
    }
    let faults: u64 = reasons.values().sum();
    assert!(within_binomial(faults, n, 0.05), "{faults}");
    assert_eq!(reasons.len(), RejectReason::ALL.len());
}

#[test]
fn injected_header_lists_kinds_in_canonical_order() {
    use AnomalyKind::*;
    assert_eq!(injected_header(&[]), None);
    assert_eq!(injected_header(&[Silent]).as_deref(), Some("silent"));
    assert_eq!(
        injected_header(&[Spike, CriticalHigh]).as_deref(),
        Some("critical_high,spike")
    );
    assert_eq!(
        injected_header(&AnomalyKind::ALL).as_deref(),
        Some("critical_low,bradycardia,tachycardia,critical_high,spike,deviation,silent")
    );
}

#[test]
fn profile_report_shows_activities_kinds_and_faults() {
    let cfg = SimulatorConfig {
        fault_rate: 0.01,
        inject: InjectionRates::all(0.002),
        ..config(200, 4, 100.0)
    };
    let report = profile_report(&cfg, 20_000);
    for activity in Activity::ALL {
        assert!(report.contains(activity.as_str()), "{report}");
    }
    for kind in AnomalyKind::ALL {
        assert!(report.contains(kind.as_str()), "{report}");
    }
    assert!(report.contains("too_large"), "{report}");
    assert!(report.contains("200 customers"), "{report}");
}

#[test]
fn a_hundred_thousand_customers_fit_well_under_100_mib() {
    assert!(std::mem::size_of::<Customer>() <= 48);
    let mut sim = Simulator::new(config(100_000, 1, 100_000.0));
    let bytes = sim.customers.capacity() * std::mem::size_of::<Customer>();
    assert!(bytes < 10 * 1024 * 1024, "{bytes} bytes");
    for _ in 0..200_000 {
        sim.next_record(now());
    }
}

#[test]
fn odd_configurations_still_give_valid_readings() {
    let odd = [
        SimulatorConfig {
            customers: 0,
            rate: f64::NAN,
            fault_rate: f64::NAN,
            inject: InjectionRates::all(0.9),
            ..config(0, 1, 0.0)
        },
        SimulatorConfig {
            spike_bpm: 1,
            rate: -5.0,
            fault_rate: 0.5,
            inject: InjectionRates::all(f64::INFINITY),
            ..config(3, 1, 0.0)
        },
        SimulatorConfig {
            spike_bpm: 1_000_000,
            bands: Bands {
                critical_low_below: i64::MAX,
                low_below: i64::MIN,
                high_above: 0,
                critical_high_above: -7,
            },
            ..config(5, 1, 1e-9)
        },
    ];
    for cfg in odd {
        let mut sim = Simulator::new(cfg);
        for _ in 0..20_000 {
            if let SimRecord::Reading { heart_rate, .. } = sim.next_record(now()) {
                assert!((20..=250).contains(&heart_rate));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_configuration_gives_valid_readings_without_panicking(
        customers in 0usize..50,
        seed in any::<u64>(),
        rate in prop_oneof![Just(0.0), 0.001f64..1e6, any::<f64>()],
        inject in prop_oneof![Just(0.0), 0.0f64..0.2, any::<f64>()],
        fault_rate in prop_oneof![Just(0.0), 0.0f64..=1.0, any::<f64>()],
        spike_bpm in prop_oneof![Just(30i64), any::<i64>()],
    ) {
        let cfg = SimulatorConfig {
            inject: InjectionRates::all(inject),
            fault_rate,
            ..SimulatorConfig::new(customers, seed, rate, BANDS, spike_bpm)
        };
        let mut sim = Simulator::new(cfg);
        for _ in 0..2_000 {
            if let SimRecord::Reading { heart_rate, .. } = sim.next_record(now()) {
                prop_assert!((20..=250).contains(&heart_rate));
            }
        }
    }
}
