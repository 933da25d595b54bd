//! The tables: per seed, then pooled over the seeds with 95 % confidence intervals (Wilson for
//! recall and precision over the pooled counts; a t-interval over the seeds' false-alert
//! burdens, each seed being one independent fleet).

use heartbeat_pipeline::domain::classification::AnomalyKind;
use heartbeat_pipeline::domain::detector::DetectorConfig;

use super::score::{quantile, score, t_interval, wilson, KindScore, Score, KINDS, SILENT};
use super::{Findings, Params, Run};

/// `1-10,1000` for the seeds, ranges collapsed.
pub(super) fn seed_list(seeds: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seeds.len() {
        let mut j = i;
        while j + 1 < seeds.len() && seeds[j + 1] == seeds[j].wrapping_add(1) {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", seeds[i], seeds[j])
        } else {
            seeds[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Prints every seed's table, then the pooled one and the findings.
pub(super) fn print(runs: &[Run], cfg: &DetectorConfig, p: &Params, mode: &str) {
    let mut pooled = Score::default();
    let mut findings = Findings::default();
    let mut burdens = Vec::new();
    for run in runs {
        let s = score(&run.episodes, &run.alerts, run.resolve_window_us);
        println!(
            "\nseed {} ({mode}): {} readings, {} customer-days, {:.1} s",
            run.seed,
            run.readings,
            days_text(run.customer_days),
            run.seconds
        );
        header(false);
        for (k, kind) in s.kinds.iter().enumerate() {
            row(k, kind, false);
        }
        let burden = s.false_alerts() as f64 / run.customer_days.max(1e-9);
        println!(
            "false activated alerts: {} ({burden:.3} per customer-day)",
            s.false_alerts()
        );
        if run.left_out > 0 {
            println!(
                "({} silences at the end of the stream, when every customer falls quiet, left out)",
                run.left_out
            );
        }
        burdens.push(burden);
        pooled.add(&s);
        findings.add(&run.findings);
    }
    let days: f64 = runs.iter().map(|r| r.customer_days).sum();
    println!(
        "\npooled over {} seed(s) ({mode}; 95% CI: Wilson on the pooled counts)",
        runs.len()
    );
    header(true);
    for (k, kind) in pooled.kinds.iter().enumerate() {
        row(k, kind, true);
    }
    let ci = t_interval(&burdens)
        .map(|(_, lo, hi)| {
            format!(
                ", 95% CI {:.3} to {:.3} (t over the seeds)",
                lo.max(0.0),
                hi
            )
        })
        .unwrap_or_default();
    println!(
        "false activated alerts: {} over {} customer-days: {:.3} per customer-day{ci}",
        pooled.false_alerts(),
        days_text(days),
        pooled.false_alerts() as f64 / days.max(1e-9),
    );
    println!(
        "(found = an activated alert of the kind for the customer between the episode's start and \
         its end + {} readings ({} ms); delay = activated_at - episode start)",
        cfg.resolve_after_readings,
        (f64::from(cfg.resolve_after_readings) * p.interval_s * 1e3).round()
    );
    if mode == "offline" {
        println!(
            "(silent offline: a customer whose next reading comes detector.silence_after_ms or \
             more of simulated time after its previous one was silent)"
        );
    }
    print_findings(&findings);
}

/// Customer-days to one decimal, or three when there are few (a short Kafka run).
fn days_text(days: f64) -> String {
    if days >= 10.0 {
        format!("{days:.1}")
    } else {
        format!("{days:.3}")
    }
}

fn header(ci: bool) {
    let w = if ci { 22 } else { 9 };
    println!(
        "{:<14} {:>8} {:>6} {:>w$} {:>7} {:>7} {:>w$} {:>9} {:>9}",
        "kind", "episodes", "found", "recall", "alerts", "matched", "precision", "delay p50", "p95"
    );
}

fn row(k: usize, s: &KindScore, ci: bool) {
    let mut delays = s.delays_us.clone();
    delays.sort_unstable();
    let delay = |q: f64| {
        quantile(&delays, q)
            .map(|d| format!("{:.1} s", d as f64 / 1e6))
            .unwrap_or_else(|| "-".to_owned())
    };
    let w = if ci { 22 } else { 9 };
    println!(
        "{:<14} {:>8} {:>6} {:>w$} {:>7} {:>7} {:>w$} {:>9} {:>9}",
        AnomalyKind::ALL[k].as_str(),
        s.episodes,
        s.found,
        ratio(s.found, s.episodes, ci),
        s.alerts,
        s.matched,
        ratio(s.matched, s.alerts, ci),
        delay(0.5),
        delay(0.95),
    );
}

/// `a / b` to three places, with its Wilson interval when `ci`; `-` when b = 0.
fn ratio(a: u64, b: u64, ci: bool) -> String {
    match wilson(a, b) {
        None => "-".to_owned(),
        Some((lo, hi)) if ci => format!("{:.3} ({lo:.3}-{hi:.3})", a as f64 / b as f64),
        Some(_) => format!("{:.3}", a as f64 / b as f64),
    }
}

fn print_findings(f: &Findings) {
    println!(
        "\nfindings (per reading: the anomalies rows, against the kinds of the reading's episode; \
         silent left out)"
    );
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "kind", "labelled", "raised", "correct", "precision", "recall"
    );
    for k in (0..KINDS).filter(|&k| k != SILENT) {
        println!(
            "{:<14} {:>10} {:>10} {:>10} {:>10} {:>8}",
            AnomalyKind::ALL[k].as_str(),
            f.labelled[k],
            f.raised[k],
            f.correct[k],
            ratio(f.correct[k], f.raised[k], false),
            ratio(f.correct[k], f.labelled[k], false),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_collapse_ranges() {
        assert_eq!(seed_list(&[1, 2, 3, 1000, 1001, 7]), "1-3,1000-1001,7");
        assert_eq!(seed_list(&[42]), "42");
    }
}
