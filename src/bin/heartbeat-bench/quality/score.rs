//! The event-level score, pure: injected episodes and activated alerts in, per kind how many
//! episodes were found, how many alerts were right, and how late they came; plus the
//! confidence intervals the report prints. Both modes (offline and Kafka) assemble the same
//! [`Episode`]s and [`Alert`]s and score them here, so they cannot score differently.
//!
//! An injected episode of kind K is *found* when an activated alert of kind K for the same
//! customer activates between the episode's start and its end plus the resolve window
//! (`detector.resolve_after_readings` × the reading interval: the time the detector takes to
//! close an episode after its last reading). Each episode is found by at most one alert and
//! each alert finds at most one episode; an alert that finds none is a false alert. An episode
//! whose kinds list several kinds counts once for each.

use std::collections::HashMap;

use heartbeat_pipeline::domain::classification::AnomalyKind;

/// The kinds, in [`AnomalyKind::ALL`] order: bit `i` of a mask is `AnomalyKind::ALL[i]`.
pub(crate) const KINDS: usize = AnomalyKind::ALL.len();
/// The index of `silent` in [`AnomalyKind::ALL`].
pub(crate) const SILENT: usize = KINDS - 1;

/// The kinds of `kinds` as a bit mask over [`AnomalyKind::ALL`].
pub(crate) fn mask(kinds: &[AnomalyKind]) -> u8 {
    kinds.iter().fold(0, |m, k| m | 1 << k.index())
}

/// One injected episode, as the ground truth says it happened. Times are microseconds since the
/// epoch; reading numbers count a customer's readings from 0 (for comparing the two modes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Episode {
    pub(crate) id: u64,
    pub(crate) customer: u32,
    /// The kinds it should page for, as a mask (bit i = `AnomalyKind::ALL[i]`).
    pub(crate) kinds: u8,
    /// Its first reading's time; for a silence, the last reading before it.
    pub(crate) start_us: i64,
    /// Its last reading's time; for a silence, the first reading after it.
    pub(crate) end_us: i64,
    pub(crate) first_reading: u32,
    pub(crate) last_reading: u32,
}

/// One activated alert episode: its customer, kind (index in [`AnomalyKind::ALL`]) and
/// `activated_at`, with the numbers of the readings that opened and activated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Alert {
    pub(crate) customer: u32,
    pub(crate) kind: u8,
    pub(crate) activated_us: i64,
    pub(crate) opened: u32,
    pub(crate) reading: u32,
}

/// Builds the episodes from a stream of readings, in each customer's order: the readings of an
/// episode share its id and kinds; a silence's episode is carried by the first reading after it.
#[derive(Debug, Default)]
pub(crate) struct Episodes {
    open: HashMap<u64, usize>,
    pub(crate) all: Vec<Episode>,
    /// The last synthetic id given (see [`Episodes::synthetic`]), above [`SYNTHETIC_EPISODE`].
    synthetic: u64,
}

/// Synthetic episode ids start above this, far above the simulator's.
const SYNTHETIC_EPISODE: u64 = 1 << 62;

impl Episodes {
    /// The episode of an injected reading that names none (a generator without `x-episode`):
    /// a customer's consecutive injected readings are one episode. `previous`: the episode of
    /// the customer's previous reading, if any.
    pub(crate) fn synthetic(&mut self, previous: Option<u64>) -> u64 {
        previous.unwrap_or_else(|| {
            self.synthetic = self.synthetic.max(SYNTHETIC_EPISODE) + 1;
            self.synthetic
        })
    }

    /// Notes reading number `n` of `customer` at `t_us`, whose previous reading was at
    /// `previous_us`, part of `episode` (None: natural) that should page for `kinds`.
    pub(crate) fn reading(
        &mut self,
        customer: u32,
        n: u32,
        t_us: i64,
        previous_us: Option<i64>,
        episode: Option<u64>,
        kinds: u8,
    ) {
        let Some(id) = episode else { return };
        if let Some(&i) = self.open.get(&id) {
            let e = &mut self.all[i];
            e.end_us = t_us;
            e.last_reading = n;
            e.kinds |= kinds;
            return;
        }
        // A silence began when the customer went quiet: at the reading before this one.
        let silence = kinds & 1 << SILENT != 0 && previous_us.is_some();
        let (start_us, first_reading) = match previous_us {
            Some(p) if silence => (p, n.saturating_sub(1)),
            _ => (t_us, n),
        };
        self.open.insert(id, self.all.len());
        self.all.push(Episode {
            id,
            customer,
            kinds,
            start_us,
            end_us: t_us,
            first_reading,
            last_reading: n,
        });
    }
}

/// The score of one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KindScore {
    /// Injected episodes that should page for this kind.
    pub(crate) episodes: u64,
    /// Of those, found by an alert of this kind.
    pub(crate) found: u64,
    /// Activated alerts of this kind.
    pub(crate) alerts: u64,
    /// Of those, the ones that found an episode.
    pub(crate) matched: u64,
    /// activated_at - episode start of each found episode, µs.
    pub(crate) delays_us: Vec<i64>,
}

/// The score of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Score {
    pub(crate) kinds: [KindScore; KINDS],
}

impl Score {
    /// Activated alerts that found no episode, over every kind.
    pub(crate) fn false_alerts(&self) -> u64 {
        self.kinds.iter().map(|k| k.alerts - k.matched).sum()
    }

    /// Adds `other` to this score (pooling seeds).
    pub(crate) fn add(&mut self, other: &Score) {
        for (a, b) in self.kinds.iter_mut().zip(&other.kinds) {
            a.episodes += b.episodes;
            a.found += b.found;
            a.alerts += b.alerts;
            a.matched += b.matched;
            a.delays_us.extend_from_slice(&b.delays_us);
        }
    }
}

/// Matches `alerts` to `episodes` (module doc) with a resolve window of `resolve_window_us`.
///
/// Per customer and kind, the alerts are taken in time order and each finds, among the episodes
/// not found yet whose window holds it, the one whose window closes first: the greedy choice
/// that finds the most episodes when windows overlap.
pub(crate) fn score(episodes: &[Episode], alerts: &[Alert], resolve_window_us: i64) -> Score {
    let mut out = Score::default();
    for (k, kind) in out.kinds.iter_mut().enumerate() {
        // Per customer, this kind's episodes as (start, deadline, found).
        let mut windows: HashMap<u32, Vec<(i64, i64, bool)>> = HashMap::new();
        for e in episodes.iter().filter(|e| e.kinds & 1 << k != 0) {
            kind.episodes += 1;
            windows.entry(e.customer).or_default().push((
                e.start_us,
                e.end_us.saturating_add(resolve_window_us),
                false,
            ));
        }
        let mut mine: Vec<&Alert> = alerts.iter().filter(|a| usize::from(a.kind) == k).collect();
        mine.sort_by_key(|a| (a.customer, a.activated_us));
        for a in mine {
            kind.alerts += 1;
            let Some(ws) = windows.get_mut(&a.customer) else {
                continue;
            };
            let t = a.activated_us;
            let best = ws
                .iter_mut()
                .filter(|(start, deadline, found)| !found && *start <= t && t <= *deadline)
                .min_by_key(|(_, deadline, _)| *deadline);
            if let Some(w) = best {
                w.2 = true;
                kind.matched += 1;
                kind.found += 1;
                kind.delays_us.push(t - w.0);
            }
        }
    }
    out
}

/// 1.96: the two-sided 95 % quantile of the standard normal.
const Z95: f64 = 1.959_964;

/// The Wilson score interval at 95 % for `successes` out of `n`: it stays inside 0..=1 and is
/// honest near 0 and 1, where the usual p ± 1.96·se is not. None when n = 0.
pub(crate) fn wilson(successes: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The mean of `values` with its 95 % t-interval (the values being one per seed, independent):
/// (mean, low, high); None for fewer than two values.
pub(crate) fn t_interval(values: &[f64]) -> Option<(f64, f64, f64)> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(Z95);
    let half = t * (var / n as f64).sqrt();
    Some((mean, mean - half, mean + half))
}

/// The `p`-th quantile (0..=1) of `sorted` by nearest rank; None when empty.
pub(crate) fn quantile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TACHY: u8 = 2;
    const S: i64 = 1_000_000;

    fn episode(customer: u32, kinds: u8, start_s: i64, end_s: i64) -> Episode {
        Episode {
            id: 0,
            customer,
            kinds,
            start_us: start_s * S,
            end_us: end_s * S,
            first_reading: 0,
            last_reading: 0,
        }
    }

    fn alert(customer: u32, kind: u8, at_s: i64) -> Alert {
        Alert {
            customer,
            kind,
            activated_us: at_s * S,
            opened: 0,
            reading: 0,
        }
    }

    #[test]
    fn an_alert_activating_inside_the_window_finds_the_episode() {
        let e = [episode(1, 1 << TACHY, 100, 1000)];
        for at in [100, 700, 1000, 1030] {
            let s = score(&e, &[alert(1, TACHY, at)], 30 * S);
            let k = &s.kinds[usize::from(TACHY)];
            assert_eq!(
                (k.episodes, k.found, k.alerts, k.matched),
                (1, 1, 1, 1),
                "{at}"
            );
            assert_eq!(k.delays_us, vec![(at - 100) * S]);
            assert_eq!(s.false_alerts(), 0);
        }
    }

    #[test]
    fn an_alert_after_the_end_and_the_resolve_window_or_before_the_start_is_false() {
        let e = [episode(1, 1 << TACHY, 100, 1000)];
        for at in [99, 1031] {
            let s = score(&e, &[alert(1, TACHY, at)], 30 * S);
            let k = &s.kinds[usize::from(TACHY)];
            assert_eq!((k.found, k.alerts, k.matched), (0, 1, 0), "{at}");
            assert_eq!(s.false_alerts(), 1);
        }
    }

    #[test]
    fn an_alert_of_another_kind_or_customer_finds_nothing() {
        let e = [episode(1, 1 << TACHY, 100, 1000)];
        let s = score(&e, &[alert(2, TACHY, 500), alert(1, 1, 500)], 30 * S);
        assert_eq!(s.kinds[usize::from(TACHY)].found, 0);
        assert_eq!(s.false_alerts(), 2);
    }

    #[test]
    fn two_alerts_for_one_episode_are_one_match_and_one_false_alert() {
        let e = [episode(1, 1 << TACHY, 100, 1000)];
        let s = score(&e, &[alert(1, TACHY, 900), alert(1, TACHY, 700)], 30 * S);
        let k = &s.kinds[usize::from(TACHY)];
        assert_eq!((k.episodes, k.found, k.alerts, k.matched), (1, 1, 2, 1));
        // The earlier alert is the one that found it.
        assert_eq!(k.delays_us, vec![600 * S]);
        assert_eq!(s.false_alerts(), 1);
    }

    #[test]
    fn overlapping_windows_each_find_their_episode() {
        // The second episode starts inside the first one's resolve window.
        let e = [
            episode(1, 1 << TACHY, 100, 200),
            episode(1, 1 << TACHY, 210, 400),
        ];
        let s = score(&e, &[alert(1, TACHY, 215), alert(1, TACHY, 220)], 30 * S);
        let k = &s.kinds[usize::from(TACHY)];
        assert_eq!((k.found, k.matched), (2, 2));
    }

    #[test]
    fn an_episode_of_several_kinds_counts_for_each() {
        let e = [episode(1, 1 << 3 | 1 << 4, 100, 160)];
        let s = score(&e, &[alert(1, 4, 100)], 30 * S);
        assert_eq!((s.kinds[3].episodes, s.kinds[3].found), (1, 0));
        assert_eq!((s.kinds[4].episodes, s.kinds[4].found), (1, 1));
    }

    #[test]
    fn episodes_are_built_from_readings_and_a_silence_starts_at_the_reading_before() {
        let mut b = Episodes::default();
        b.reading(3, 0, 10, None, None, 0);
        b.reading(3, 1, 20, Some(10), Some(7), 1 << TACHY);
        b.reading(3, 2, 30, Some(20), Some(7), 1 << TACHY);
        b.reading(3, 3, 40, Some(30), None, 0);
        b.reading(3, 4, 400, Some(40), Some(8), 1 << SILENT);
        assert_eq!(b.all.len(), 2);
        let (tachy, silent) = (&b.all[0], &b.all[1]);
        assert_eq!(
            (
                tachy.start_us,
                tachy.end_us,
                tachy.first_reading,
                tachy.last_reading
            ),
            (20, 30, 1, 2)
        );
        assert_eq!(
            (
                silent.start_us,
                silent.end_us,
                silent.first_reading,
                silent.last_reading
            ),
            (40, 400, 3, 4)
        );
    }

    #[test]
    fn synthetic_episodes_are_runs_of_injected_readings() {
        let mut b = Episodes::default();
        let first = b.synthetic(None);
        assert_eq!(b.synthetic(Some(first)), first);
        assert_ne!(b.synthetic(None), first);
    }

    #[test]
    fn wilson_interval_matches_the_textbook_figures() {
        // 8 of 10: 0.490 to 0.943 (Wilson 1927; e.g. Newcombe 1998, table I).
        let (lo, hi) = wilson(8, 10).unwrap();
        assert!(
            (lo - 0.490).abs() < 1e-3 && (hi - 0.943).abs() < 1e-3,
            "{lo} {hi}"
        );
        // All of 20: the upper end is 1, the lower end 0.839.
        let (lo, hi) = wilson(20, 20).unwrap();
        assert!((lo - 0.839).abs() < 1e-3 && hi == 1.0, "{lo} {hi}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn t_interval_and_quantiles() {
        // Mean 2, sd 1, n 3: 2 ± 4.303 / sqrt(3).
        let (mean, lo, hi) = t_interval(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(mean, 2.0);
        assert!(
            (hi - mean - 4.303 / 3f64.sqrt()).abs() < 1e-9
                && (mean - lo - (hi - mean)).abs() < 1e-9
        );
        assert_eq!(t_interval(&[1.0]), None);
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.95), Some(95));
        assert_eq!(quantile(&[7], 0.95), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
