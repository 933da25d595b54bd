//! `heartbeat-bench restart`: how soon a processor that takes over a fleet's saved detector
//! state commits, and how soon it runs at full speed.
//!
//! Preloads N/2 readings of C customers (the simulator, seed 1) and runs processor A over them
//! into a fresh database until every one is stored and every customer's state is saved (A's
//! checkpoints), measuring A's speed in one-second windows. Then SIGKILLs A, preloads N/2 more
//! (seed 2: the same customers, later readings) and starts processor B in the same group. B
//! claims the partitions, loads the saved states and replays what they miss. Reported: from B's
//! start, the first committed reading, and the first one-second window at 90% or more of A's
//! median speed; then B's speed over its whole half, and each processor's peak RSS. Last, an
//! uninterrupted control: one processor over both halves (preloaded into a fresh topic, into a
//! fresh database), whose median one-second speed over the second half is the full speed B can
//! reach (A's speed is that of empty tables, which the second half no longer has), and B's
//! first window at 90% of it.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;

use crate::load::generate_seeded;
use crate::processors::{peak_rss_kib, run_command, scrape, spawn_run, PASS_DEADLINE};
use crate::services::{count, create_topics, fresh_database, unique};

/// The share of A's median one-second speed that counts as full speed.
const FULL_SPEED: f64 = 0.9;
/// How often the processors' counters are read.
const SAMPLE: Duration = Duration::from_millis(100);

struct Processor {
    child: Child,
    addr: String,
    started: Instant,
}

impl Processor {
    /// Starts a processor; with `log`, its log at level info goes to that file.
    fn start(
        topic: &str,
        url: &str,
        group: &str,
        log: Option<&std::path::Path>,
    ) -> anyhow::Result<Processor> {
        let (mut cmd, addr) = run_command(topic, url, group)?;
        if let Some(path) = log {
            let file = std::fs::File::create(path)
                .with_context(|| format!("create {}", path.display()))?;
            cmd.env("HEARTBEAT__LOG__LEVEL", "info")
                .stdout(file.try_clone()?)
                .stderr(file);
        }
        let child = spawn_run(cmd)?;
        Ok(Processor {
            child,
            addr,
            started: Instant::now(),
        })
    }

    /// Readings this processor has stored (`heartbeat_readings_stored_total`); 0 while it does
    /// not answer.
    fn stored(&self) -> f64 {
        scrape(&self.addr)
            .lines()
            .find_map(|l| l.strip_prefix("heartbeat_readings_stored_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn kill(&mut self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Samples `p`'s stored readings until `goal`, as (seconds since its start, stored), calling
/// `each` with the time of every sample.
fn follow(p: &Processor, goal: f64, mut each: impl FnMut(f64)) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut samples = Vec::new();
    loop {
        let n = p.stored();
        let t = p.started.elapsed().as_secs_f64();
        each(t);
        samples.push((t, n));
        if n >= goal {
            return Ok(samples);
        }
        if p.started.elapsed() > PASS_DEADLINE {
            bail!("only {n} of {goal} readings stored after {PASS_DEADLINE:?}");
        }
        std::thread::sleep(SAMPLE);
    }
}

/// The speed of each trailing one-second window of `samples`, with the time it ends.
fn windows(samples: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut from = 0;
    for (i, &(t, n)) in samples.iter().enumerate() {
        while samples[from].0 < t - 1.0 {
            from += 1;
        }
        let (t0, n0) = samples[from.saturating_sub(1).min(i)];
        if t - t0 >= 0.9 && n0 > 0.0 {
            out.push((t, (n - n0) / (t - t0)));
        }
    }
    out
}

fn saved_states(url: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    PgConnection::establish(url)
        .ok()
        .and_then(|mut c| {
            diesel::sql_query("SELECT count(*) AS n FROM detector_state")
                .get_result::<N>(&mut c)
                .ok()
        })
        .map_or(0, |n| n.n)
}

pub(super) fn restart(records: u64, customers: u64) -> anyhow::Result<()> {
    let half = records / 2;
    let topic = unique("bench_restart");
    create_topics(&[&topic])?;
    println!("preloading {half} simulated readings of {customers} customers into {topic} ...");
    generate_seeded(&topic, half, customers, 1)?;
    let (db, url, mut admin) = fresh_database("hb_restart")?;
    let result = (|| {
        let group = unique("hb_restart");
        let mut a = Processor::start(&topic, &url, &group, None)?;
        let a_samples = follow(&a, half as f64, |_| {})?;
        let mut a_speeds: Vec<f64> = windows(&a_samples).into_iter().map(|w| w.1).collect();
        a_speeds.sort_by(f64::total_cmp);
        let a_median = a_speeds.get(a_speeds.len() / 2).copied().unwrap_or(0.0);
        let waited = Instant::now();
        while saved_states(&url) < customers as i64 {
            if waited.elapsed() > Duration::from_secs(120) {
                bail!("only {} of {customers} states saved", saved_states(&url));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let a_rss = peak_rss_kib(a.child.id());
        println!(
            "processor A: {half} readings, median one-second speed {a_median:.0} readings/s; \
             {customers} states saved {:.1} s after its last reading; peak RSS {:.0} MiB",
            waited.elapsed().as_secs_f64(),
            a_rss as f64 / 1024.0
        );
        // A restart: a processor stopped leaves the group at once. (A SIGKILLed one holds its
        // partitions until its session times out, `kafka.session_timeout_ms`, before the group
        // gives them to anyone.)
        a.kill("-TERM");
        println!("processor A stopped (SIGTERM); preloading {half} more readings (seed 2) ...");
        generate_seeded(&topic, half, customers, 2)?;
        let log =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/bench-restart-b.log");
        let b = Processor::start(&topic, &url, &group, Some(&log))?;
        let mut assigned = None;
        let b_samples = follow(&b, half as f64, |t| {
            if assigned.is_none()
                && std::fs::read_to_string(&log).is_ok_and(|l| l.contains("partitions assigned"))
            {
                assigned = Some(t);
            }
        })?;
        let first = b_samples.iter().find(|s| s.1 > 0.0).map(|s| s.0);
        let b_windows = windows(&b_samples);
        let full = b_windows
            .iter()
            .copied()
            .find(|w| w.1 >= FULL_SPEED * a_median);
        // B's fastest second, for when it never reaches full speed.
        let best = b_windows.iter().copied().max_by(|x, y| x.1.total_cmp(&y.1));
        let (t_end, _) = *b_samples.last().unwrap_or(&(0.0, 0.0));
        let t_first = first.unwrap_or(t_end);
        let b_rss = peak_rss_kib(b.child.id());
        let mut b = b;
        b.kill("-TERM");
        let mut conn = PgConnection::establish(&url)?;
        let rows = count(&mut conn);
        println!(
            "processor B, from its start: partitions assigned {}; first commit {t_first:.1} s; \
             full speed (a one-second window >= {:.0}% of A's median) {}; {half} readings by \
             {t_end:.1} s ({:.0} readings/s from the first commit); peak RSS {:.0} MiB",
            assigned.map_or("?".to_owned(), |t| format!("{t:.1} s")),
            FULL_SPEED * 100.0,
            full.map_or("never".to_owned(), |(t, r)| format!(
                "{t:.1} s ({r:.0} readings/s)"
            )),
            half as f64 / (t_end - t_first).max(1e-3),
            b_rss as f64 / 1024.0
        );
        if let Some((t, r)) = best {
            println!(
                "processor B's fastest one-second window: {r:.0} readings/s, ending {t:.1} s \
                 after its start ({:.0}% of A's median)",
                100.0 * r / a_median
            );
        }
        if rows != 2 * half as i64 {
            bail!("the tables hold {rows} rows, not {}", 2 * half);
        }
        // A measures its speed on empty tables; B writes into tables holding A's half. What B
        // can reach is the speed of a processor that never stopped, over the same second half.
        let control = uninterrupted_second_half(half, customers)?;
        let matched = b_windows
            .iter()
            .copied()
            .find(|w| w.1 >= FULL_SPEED * control);
        println!(
            "uninterrupted control (one processor over both halves, fresh topic and database): \
             median one-second speed over the second half {control:.0} readings/s; B's first \
             window >= {:.0}% of it: {}",
            FULL_SPEED * 100.0,
            matched.map_or("never".to_owned(), |(t, r)| format!(
                "{t:.1} s after B's start ({r:.0} readings/s)"
            ))
        );
        println!(
            "target: full speed within 30 s (processor B's log: {})",
            log.display()
        );
        Ok(())
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

/// One processor over `half` readings of `customers` (seed 1) and `half` more (seed 2), both
/// preloaded, without a restart, into a fresh topic and database: its median one-second speed
/// over the second half, the speed a processor taking over at that point could reach.
fn uninterrupted_second_half(half: u64, customers: u64) -> anyhow::Result<f64> {
    let topic = unique("bench_restart_control");
    create_topics(&[&topic])?;
    generate_seeded(&topic, half, customers, 1)?;
    generate_seeded(&topic, half, customers, 2)?;
    let (db, url, mut admin) = fresh_database("hb_restart")?;
    let result = (|| {
        let mut c = Processor::start(&topic, &url, &unique("hb_restart"), None)?;
        let samples = follow(&c, 2.0 * half as f64, |_| {});
        c.kill("-TERM");
        let samples = samples?;
        // The windows wholly inside the second half: from its first stored reading on.
        let start = samples
            .iter()
            .position(|s| s.1 > half as f64)
            .unwrap_or(samples.len());
        let mut speeds: Vec<f64> = windows(&samples[start.saturating_sub(1)..])
            .into_iter()
            .map(|w| w.1)
            .collect();
        speeds.sort_by(f64::total_cmp);
        let (t0, t1) = (
            samples.get(start.saturating_sub(1)).map_or(0.0, |s| s.0),
            samples.last().map_or(0.0, |s| s.0),
        );
        println!(
            "uninterrupted control: second half of {half} readings in {:.1} s ({:.0} readings/s), \
             one-second windows {:.0} to {:.0}",
            t1 - t0,
            half as f64 / (t1 - t0).max(1e-3),
            speeds.first().copied().unwrap_or(0.0),
            speeds.last().copied().unwrap_or(0.0)
        );
        Ok(speeds.get(speeds.len() / 2).copied().unwrap_or(0.0))
    })();
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}
