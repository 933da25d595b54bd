//! Unit and property tests of the simulator: determinism, turns on the virtual clock, plausible
//! and valid readings, daily rhythm, injected kinds and their labels, faults and the profile.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

use super::model::{Customer, Trace};
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
    episode: Option<u64>,
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
                    episode,
                },
                trace,
            ) => Some(Seen {
                customer: customer_number(&customer_id).unwrap(),
                hr: heart_rate,
                time: sim_time,
                activity,
                injected,
                episode,
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
        inject: InjectionRates::all(0.2),
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
        let c = &sim.customers[customer_number(&customer_id).unwrap()];
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

/// The fleet sizes and rates that give a reading per customer every 1 s, 10 s and 60 s, and
/// how many records make `hours` simulated hours of it.
fn sampled(interval_s: f64, customers: usize, hours: f64) -> (f64, usize) {
    let rate = customers as f64 / interval_s;
    (rate, (hours * 3600.0 * rate) as usize)
}

/// Whether a reading at `hr` doing `activity` counts toward `kind` by the fleet bands (SPEC
/// section 5): sleep does not count toward bradycardia, active and exercise not toward
/// tachycardia.
fn counts(kind: AnomalyKind, hr: i16, activity: Activity) -> bool {
    let raised = classify(hr, &BANDS).threshold_anomaly() == Some(kind);
    raised
        && match kind {
            AnomalyKind::Bradycardia => activity != Activity::Sleep,
            AnomalyKind::Tachycardia => !matches!(activity, Activity::Active | Activity::Exercise),
            _ => true,
        }
}

/// The longest a (customer, threshold kind) alert episode lasts from its opening to a counting
/// reading, by SPEC section 5's counting (resolved after 3 readings that do not count), over
/// one customer's readings.
fn longest_threshold_episode(rs: &[&Seen], kind: AnomalyKind) -> TimeDelta {
    let mut longest = TimeDelta::zero();
    let mut open: Option<DateTime<Utc>> = None;
    let mut quiet = 0;
    for s in rs {
        if counts(kind, s.hr, s.activity) {
            let opened = *open.get_or_insert(s.time);
            longest = longest.max(s.time - opened);
            quiet = 0;
        } else if open.is_some() {
            quiet += 1;
            if quiet >= 3 {
                open = None;
            }
        }
    }
    longest
}

const THRESHOLD_KINDS: [AnomalyKind; 4] = [
    AnomalyKind::CriticalLow,
    AnomalyKind::Bradycardia,
    AnomalyKind::Tachycardia,
    AnomalyKind::CriticalHigh,
];

#[test]
fn natural_readings_are_unlabelled_and_activate_no_alert_with_their_activity() {
    // A simulated day at each sampling interval, no injected episodes.
    for (interval, customers) in [(1.0, 30), (10.0, 100), (60.0, 300)] {
        let (rate, records) = sampled(interval, customers, 24.0);
        let seen = readings(
            SimulatorConfig {
                inject: InjectionRates::none(),
                ..config(customers, 23, rate)
            },
            records,
        );
        let mut rest = Moments::default();
        for (_, rs) in by_customer(&seen) {
            for s in &rs {
                assert!(s.injected.is_empty() && s.episode.is_none(), "{s:?}");
                assert!(!s.trace.in_episode);
                if s.activity == Activity::Rest {
                    rest.add(f64::from(s.hr));
                    assert!((55..=105).contains(&s.hr), "{interval} s: {s:?}");
                }
                // Sleep is not that low, exercise not that high: the critical bands page.
                assert!((41..=179).contains(&s.hr), "{interval} s: {s:?}");
            }
            for w in rs.windows(2) {
                assert!((w[1].hr - w[0].hr).abs() < 30, "{:?} -> {:?}", w[0], w[1]);
            }
            for kind in THRESHOLD_KINDS {
                let longest = longest_threshold_episode(&rs, kind);
                assert!(
                    longest < TimeDelta::minutes(5),
                    "{interval} s: natural {kind:?} lasting {longest} for CUST-{}",
                    rs[0].customer
                );
            }
        }
        assert!(rest.n > 1000, "{interval} s: {}", rest.n);
        assert!((65.0..78.0).contains(&rest.mean), "{}", rest.mean);
    }
}

/// Each episode's readings, by id, in order.
fn episodes(seen: &[Seen]) -> std::collections::BTreeMap<u64, Vec<&Seen>> {
    let mut map: std::collections::BTreeMap<u64, Vec<&Seen>> = Default::default();
    for s in seen {
        if let Some(id) = s.episode {
            map.entry(id).or_default().push(s);
        }
    }
    map
}

/// The kind an episode was injected as: the one of its readings that started it.
fn kind_of(episode: &[&Seen]) -> AnomalyKind {
    episode[0]
        .trace
        .started
        .expect("an episode's first reading starts it")
}

#[test]
fn episodes_last_as_long_as_real_ones_in_simulated_time_at_1_10_and_60_s_sampling() {
    use AnomalyKind::*;
    // Rates far above the default, so every kind shows many times.
    let inject = InjectionRates {
        bradycardia: 0.03,
        tachycardia: 0.03,
        critical_low: 0.05,
        critical_high: 0.05,
        spike: 0.1,
        deviation: 0.03,
        silent: 0.1,
    };
    for (interval, customers, hours) in [(1.0, 40, 24.0), (10.0, 100, 48.0), (60.0, 300, 48.0)] {
        let (rate, records) = sampled(interval, customers, hours);
        let cfg = SimulatorConfig {
            inject: inject.clone(),
            ..config(customers, 29, rate)
        };
        let seen = readings(cfg, records);
        let last = seen.last().unwrap().time;
        let step = TimeDelta::milliseconds((interval * 1000.0) as i64);
        let mut seen_kinds = std::collections::HashSet::new();
        let by_cust = by_customer(&seen);
        for (id, ep) in episodes(&seen) {
            let kind = kind_of(&ep);
            let what = format!("{interval} s, episode {id} ({kind:?})");
            // One customer, one label set, every reading of the id.
            assert!(ep.iter().all(|s| s.customer == ep[0].customer), "{what}");
            assert!(
                ep.iter().all(|s| s.injected == ep[0].injected),
                "{what}: {ep:?}"
            );
            assert!(
                ep[0].injected.contains(&kind),
                "{what}: {:?}",
                ep[0].injected
            );
            if ep.last().unwrap().time + TimeDelta::hours(2) > last {
                // Perhaps cut off by the end of the run.
                continue;
            }
            seen_kinds.insert(kind);
            // No spike on the way in or out, and nothing else in between.
            let rs = &by_cust[&ep[0].customer];
            let at = rs.iter().position(|s| s.episode == Some(id)).unwrap();
            assert!(
                rs[at..at + ep.len()].iter().all(|s| s.episode == Some(id)),
                "{what}: contiguous"
            );
            if kind != Spike && kind != Silent {
                let next_natural = rs[at + ep.len()].episode.is_none();
                let end = at + ep.len() + usize::from(next_natural);
                for w in rs[at - 1..end].windows(2) {
                    assert!(
                        (w[1].hr - w[0].hr).abs() < 30,
                        "{what}: {:?} -> {:?}",
                        w[0],
                        w[1]
                    );
                }
            }
            let in_band: Vec<&&Seen> = ep
                .iter()
                .filter(|s| classify(s.hr, &BANDS).threshold_anomaly() == Some(kind))
                .collect();
            match kind {
                Bradycardia | Tachycardia | CriticalLow | CriticalHigh => {
                    assert!(ep.iter().all(|s| s.activity == Activity::Rest), "{what}");
                    // In its band without wandering out and back.
                    let first = ep
                        .iter()
                        .position(|s| classify(s.hr, &BANDS).threshold_anomaly() == Some(kind))
                        .unwrap_or_else(|| panic!("{what}: never in its band: {ep:?}"));
                    let run = &ep[first..first + in_band.len()];
                    assert!(
                        run.iter()
                            .all(|s| classify(s.hr, &BANDS).threshold_anomaly() == Some(kind)),
                        "{what}: {ep:?}"
                    );
                    let held = run.last().unwrap().time - run[0].time + step;
                    let (lo, hi) = if matches!(kind, Bradycardia | Tachycardia) {
                        (15, 45)
                    } else {
                        (1, 5)
                    };
                    let slack = step * 4 + TimeDelta::seconds(2);
                    assert!(
                        held >= TimeDelta::minutes(lo) - slack
                            && held <= TimeDelta::minutes(hi) + slack * 2,
                        "{what}: held {held}"
                    );
                    // The ramps are short beside the hold.
                    let total = ep.last().unwrap().time - ep[0].time + step;
                    assert!(total - held <= step * 16, "{what}: {total} for {held}");
                    if matches!(kind, CriticalLow | CriticalHigh) {
                        // It pages deviation (2 min of sustain) when it lasts long enough, with
                        // a margin either way.
                        let pages = ep[0].injected.contains(&Deviation);
                        assert_eq!(ep[0].injected.len(), 1 + usize::from(pages), "{what}");
                        if pages {
                            assert!(total >= TimeDelta::seconds(130), "{what}: {total}");
                        } else {
                            assert!(total <= TimeDelta::seconds(110), "{what}: {total}");
                        }
                    }
                    if matches!(kind, Bradycardia | Tachycardia) {
                        assert_eq!(ep[0].injected, [kind, Deviation], "{what}");
                        assert!(total - held <= held / 4, "{what}: {total} for {held}");
                    }
                }
                Deviation => {
                    assert_eq!(ep[0].injected, [Deviation], "{what}");
                    assert!(ep.iter().all(|s| s.activity == Activity::Rest), "{what}");
                    assert!(
                        ep.iter().all(|s| (56..=104).contains(&s.hr)),
                        "{what}: {ep:?}"
                    );
                    let total = ep.last().unwrap().time - ep[0].time + step;
                    assert!(
                        total >= TimeDelta::minutes(20)
                            && total <= TimeDelta::minutes(60) + step * 6,
                        "{what}: {total}"
                    );
                    // Shifted by 15-30 bpm from the resting readings after it (the
                    // customer rests two minutes more), give or take the drift.
                    let hold = &ep[ep.len() / 4..ep.len() * 3 / 4];
                    let after: Vec<f64> = rs[at + ep.len()..]
                        .iter()
                        .take_while(|s| s.activity == Activity::Rest && s.episode.is_none())
                        .take(12)
                        .map(|s| f64::from(s.hr))
                        .collect();
                    let mean = |v: &mut dyn Iterator<Item = f64>| {
                        let (n, sum) = v.fold((0.0, 0.0), |(n, sum), x| (n + 1.0, sum + x));
                        sum / n
                    };
                    let shift = (mean(&mut hold.iter().map(|s| f64::from(s.hr)))
                        - mean(&mut after.iter().copied()))
                    .abs();
                    // (Unless another episode follows at once.)
                    assert!(
                        after.is_empty() || (9.0..=36.0).contains(&shift),
                        "{what}: {shift} from {after:?}"
                    );
                }
                Spike => {
                    assert_eq!(ep.len(), 2, "{what}: a spike and its way back");
                    assert_eq!(ep[0].injected, [Spike]);
                    assert!((ep[0].hr - rs[at - 1].hr).abs() >= 30, "{what}");
                    assert!(
                        !ep.iter().any(|s| matches!(
                            classify(s.hr, &BANDS).threshold_anomaly(),
                            Some(CriticalLow | CriticalHigh)
                        )),
                        "{what}: {ep:?}"
                    );
                }
                Silent => {
                    assert_eq!(ep.len(), 1, "{what}: the reading after the silence");
                    assert_eq!(ep[0].injected, [Silent]);
                    let gap = ep[0].time - rs[at - 1].time;
                    let least = TimeDelta::seconds(60).max(step * 2);
                    assert!(
                        gap >= least && gap <= TimeDelta::seconds(600).max(step * 3) + step * 2,
                        "{what}: gap {gap}"
                    );
                }
            }
        }
        assert_eq!(seen_kinds.len(), 7, "{interval} s: {seen_kinds:?}");
    }
}

#[test]
fn natural_readings_carry_no_label_and_ids_count_up_in_order_of_first_reading() {
    let seen = readings(
        SimulatorConfig {
            inject: InjectionRates::all(0.1),
            ..config(100, 31, 10.0)
        },
        500_000,
    );
    let mut highest = 0;
    let mut per_customer: HashMap<usize, u64> = HashMap::new();
    for s in &seen {
        assert_eq!(s.episode.is_some(), s.trace.in_episode, "{s:?}");
        assert_eq!(s.episode.is_some(), !s.injected.is_empty(), "{s:?}");
        if let Some(id) = s.episode {
            if s.trace.started.is_some() {
                assert_eq!(id, highest + 1, "{s:?}");
                highest = id;
            } else {
                assert_eq!(per_customer.get(&s.customer), Some(&id), "{s:?}");
            }
            per_customer.insert(s.customer, id);
        }
        let mut sorted = s.injected.clone();
        sorted.sort_by_key(|k| k.index());
        sorted.dedup();
        assert_eq!(sorted, s.injected);
    }
    assert!(highest > 100, "{highest}");
}

/// The share of customer-time inside injected episodes: their readings and the turns silent
/// devices skipped, over all turns.
fn covered_share(cfg: SimulatorConfig, records: usize) -> f64 {
    let mut sim = Simulator::new(cfg);
    let (mut turns, mut covered) = (0u64, 0u64);
    for _ in 0..records {
        let (_, trace) = sim.next_traced(now());
        turns += 1 + trace.skipped;
        covered += u64::from(trace.in_episode) + trace.skipped;
    }
    covered as f64 / turns as f64
}

#[test]
fn by_default_injected_episodes_cover_at_most_two_percent_of_customer_time() {
    for (interval, customers, hours) in [(1.0, 100, 24.0), (10.0, 400, 48.0), (60.0, 1000, 72.0)] {
        let (rate, records) = sampled(interval, customers, hours);
        let share = covered_share(config(customers, 37, rate), records);
        assert!((0.004..=0.02).contains(&share), "{interval} s: {share}");
    }
}

#[test]
fn episodes_start_at_their_configured_rate_per_customer_hour_at_any_sampling() {
    let inject = InjectionRates {
        bradycardia: 0.004,
        tachycardia: 0.004,
        critical_low: 0.01,
        critical_high: 0.01,
        spike: 0.05,
        deviation: 0.004,
        silent: 0.03,
    };
    for (interval, customers) in [(10.0, 500), (60.0, 2000)] {
        let (rate, records) = sampled(interval, customers, 48.0);
        let seen = readings(
            SimulatorConfig {
                inject: inject.clone(),
                ..config(customers, 41, rate)
            },
            records,
        );
        let hours = customers as f64 * 48.0;
        for kind in AnomalyKind::ALL {
            let started = seen
                .iter()
                .filter(|s| s.trace.started == Some(kind))
                .count() as f64;
            // The first hours are the detector's warm-up, and a few fall due while another
            // episode is going or waits: somewhat fewer than configured, never more.
            let expected = inject.rate(kind) * hours;
            assert!(
                started <= expected + 4.0 * expected.sqrt()
                    && started >= 0.8 * expected - 4.0 * expected.sqrt(),
                "{interval} s, {kind:?}: {started} started, {expected} configured"
            );
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
        inject: InjectionRates::all(0.5),
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
    assert!(report.contains("covered"), "{report}");
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
