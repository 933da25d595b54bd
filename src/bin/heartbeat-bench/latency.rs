//! `heartbeat-bench latency`: publish-to-commit latency at a steady rate, with the quantiles
//! taken from the histograms scraped before and after.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use diesel::prelude::*;

use crate::load::publish_steady;
use crate::processors::{finished_records, scrape, PASS_DEADLINE};
use crate::services::{
    create_topics, free_port, fresh_database, pipeline_binary, pipeline_env, unique,
};

/// The cumulative buckets (upper bound, count) of histogram `name` in a `/metrics` text.
pub(super) fn buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The `q` quantile of the observations between two scrapes of the same histogram, by linear
/// interpolation within the bucket it falls in (as Prometheus's `histogram_quantile`).
pub(super) fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let earlier = before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
            (le, n - earlier)
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, n) in &counts {
        if n >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let share = if n > below {
                (rank - below) / (n - below)
            } else {
                0.0
            };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, n);
    }
    None
}

pub(super) fn latency(rate: u64, seconds: u64, linger_ms: u64) -> anyhow::Result<()> {
    let topic = unique("bench_latency");
    create_topics(&[&topic])?;
    let (db, url, mut admin) = fresh_database("hb_latency")?;
    let result = (|| {
        let bin = pipeline_binary()?;
        let mut cmd = Command::new(&bin);
        pipeline_env(&mut cmd, &topic, &url, &unique("hb_latency"));
        let addr = format!("127.0.0.1:{}", free_port()?);
        cmd.env("HEARTBEAT__HTTP__BIND", &addr);
        let mut child = cmd.arg("run").spawn()?;
        let outcome = (|| {
            // Warm up: the group has joined and a first batch is stored.
            publish_steady(&topic, 1_000, 1, linger_ms)?;
            let deadline = Instant::now() + PASS_DEADLINE;
            while finished_records(&addr) < 1_000 {
                if Instant::now() > deadline {
                    bail!("the processor did not store the warm-up readings");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            println!(
                "publishing {rate} readings/s for {seconds} s (producer linger.ms {linger_ms}) ..."
            );
            const DELAY: &str = "heartbeat_record_delay_seconds";
            let delays_before = buckets(&scrape(&addr), DELAY);
            let steady_from = chrono::Utc::now();
            let sent = publish_steady(&topic, rate, seconds, linger_ms)? + 1_000;
            while finished_records(&addr) < sent as i64 {
                if Instant::now() > deadline {
                    bail!("not every reading was stored");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // The part before the processor: producer, broker, fetch.
            let delays = buckets(&scrape(&addr), DELAY);
            if let (Some(p50), Some(p99)) = (
                quantile_between(&delays_before, &delays, 0.5),
                quantile_between(&delays_before, &delays, 0.99),
            ) {
                println!(
                    "publish to read by the processor ({DELAY}, interpolated in its buckets): \
                     p50 {:.0} ms, p99 {:.0} ms",
                    p50 * 1e3,
                    p99 * 1e3
                );
            }
            let mut conn = PgConnection::establish(&url)?;
            #[derive(QueryableByName)]
            struct On {
                #[diesel(sql_type = diesel::sql_types::Text)]
                track_commit_timestamp: String,
            }
            let exact = diesel::sql_query("SHOW track_commit_timestamp")
                .get_result::<On>(&mut conn)
                .is_ok_and(|o| o.track_commit_timestamp == "on");
            // Commit time of each row's transaction; without it, the time the transaction began
            // (a lower bound).
            let stored_at = if exact {
                "pg_xact_commit_timestamp(xmin)"
            } else {
                "ingested_at"
            };
            #[derive(QueryableByName)]
            struct P {
                #[diesel(sql_type = diesel::sql_types::Double)]
                p50: f64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                p99: f64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                max: f64,
            }
            let p: P = diesel::sql_query(format!(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, \
                 percentile_cont(0.99) WITHIN GROUP (ORDER BY l) AS p99, max(l) AS max \
                 FROM (SELECT 1000 * extract(epoch FROM {stored_at} - recorded_at)::float8 AS l \
                 FROM readings WHERE recorded_at >= $1) t"
            ))
            .bind::<diesel::sql_types::Timestamptz, _>(steady_from)
            .get_result(&mut conn)?;
            if exact {
                #[derive(QueryableByName)]
                struct Split {
                    #[diesel(sql_type = diesel::sql_types::Double)]
                    to_start: f64,
                    #[diesel(sql_type = diesel::sql_types::Double)]
                    in_tx: f64,
                }
                let split: Split = diesel::sql_query(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) AS to_start, \
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY b) AS in_tx FROM \
                     (SELECT 1000 * extract(epoch FROM ingested_at - recorded_at)::float8 AS a, \
                     1000 * extract(epoch FROM pg_xact_commit_timestamp(xmin) - ingested_at)::float8 AS b \
                     FROM readings WHERE recorded_at >= $1) t",
                )
                .bind::<diesel::sql_types::Timestamptz, _>(steady_from)
                .get_result(&mut conn)?;
                println!(
                    "median split: {:.0} ms from publish to the start of the transaction, \
                     {:.0} ms in it",
                    split.to_start, split.in_tx
                );
            }
            // Where the tail comes from: the slowest seconds, with their median.
            #[derive(QueryableByName)]
            struct Second {
                #[diesel(sql_type = diesel::sql_types::Double)]
                at: f64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                p50: f64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                max: f64,
            }
            let worst: Vec<Second> = diesel::sql_query(format!(
                "SELECT extract(epoch FROM date_trunc('second', recorded_at) - $1)::float8 AS at, \
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, max(l) AS max FROM \
                 (SELECT recorded_at, 1000 * extract(epoch FROM {stored_at} - recorded_at)::float8 \
                 AS l FROM readings WHERE recorded_at >= $1) t GROUP BY 1 ORDER BY max DESC LIMIT 5"
            ))
            .bind::<diesel::sql_types::Timestamptz, _>(steady_from)
            .load(&mut conn)?;
            let worst: Vec<String> = worst
                .iter()
                .map(|w| format!("{:.0} s: p50 {:.0} ms, max {:.0} ms", w.at, w.p50, w.max))
                .collect();
            println!("slowest seconds: {}", worst.join("; "));
            println!(
                "publish-to-commit latency at {rate} readings/s over {seconds} s: p50 {:.0} ms, \
                 p99 {:.0} ms, max {:.0} ms (target p99 <= 500 ms){}",
                p.p50,
                p.p99,
                p.max,
                if exact {
                    ""
                } else {
                    "; track_commit_timestamp is off, so these are to the start of the \
                     transaction, a lower bound"
                }
            );
            Ok(())
        })();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        outcome
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_histogram_are_taken_between_two_scrapes() {
        let text = |counts: [u32; 4]| {
            format!(
                "x_bucket{{le=\"0.1\"}} {}\nx_bucket{{le=\"1\"}} {}\nx_bucket{{le=\"10\"}} {}\n\
                 x_bucket{{le=\"+Inf\"}} {}\nx_sum 0\n",
                counts[0], counts[1], counts[2], counts[3]
            )
        };
        // 1,000 observations before (all fast), then 100 more: 50 under 0.1 s, 50 in (1, 10].
        let before = buckets(&text([1000, 1000, 1000, 1000]), "x");
        let after = buckets(&text([1050, 1050, 1100, 1100]), "x");
        assert_eq!(before.len(), 4);
        let p50 = quantile_between(&before, &after, 0.5).unwrap();
        assert!((p50 - 0.1).abs() < 1e-9, "{p50}");
        let p99 = quantile_between(&before, &after, 0.99).unwrap();
        assert!((p99 - (1.0 + 9.0 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
        assert_eq!(
            quantile_between(&after, &after, 0.5),
            None,
            "nothing observed between"
        );
    }
}
