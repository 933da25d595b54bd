//! Runs of the real processor over a preloaded topic: start, wait until every row is stored,
//! time it and read its peak RSS.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;

use crate::services::{count, free_port, fresh_database, pipeline_binary, pipeline_env, unique};

/// How long one pass may take before the benchmark gives up.
pub(super) const PASS_DEADLINE: Duration = Duration::from_secs(600);

pub(super) struct Pass {
    /// Rows per second from the first stored row to the last.
    pub(super) rate: f64,
    pub(super) seconds: f64,
    /// From the processors' start to the last row (group join included).
    pub(super) wall_seconds: f64,
    /// Peak resident set size of each processor, in KiB (`VmHWM`).
    pub(super) peak_rss_kib: Vec<u64>,
    /// CPU seconds (user and system) each processor used, start to last row.
    pub(super) cpu_seconds: Vec<f64>,
    /// CPU seconds from the first stored row to the last: the processors' together, and the
    /// PostgreSQL server's ([`postgres_cpu_seconds`]).
    pub(super) cpu_in_pass: (f64, f64),
}

/// A `/proc/PID/stat` line's command and its ticks (USER_HZ, 1/100 s) summed over `fields`,
/// counted after the command's closing parenthesis: 11 and 12 are utime and stime, 13 and 14 the
/// times of the children it has reaped.
fn stat_ticks(stat: &str, fields: std::ops::Range<usize>) -> Option<(&str, f64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let command = head.split_once('(').map_or("", |(_, c)| c);
    let values: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields
        .filter_map(|i| values.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    Some((command, ticks))
}

/// CPU seconds (user and system) a live process has used.
pub(super) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_ticks(&stat, 11..13).map_or(0.0, |(_, ticks)| ticks / 100.0)
}

/// CPU seconds (user and system) every `postgres` process on this machine has used, with those
/// of the backends that have ended (counted in the postmaster's children's times once it has
/// reaped them): the difference over a stretch is the whole server's CPU in it, wherever a
/// backend ran. Read from `/proc`, so it needs the server on this machine (as `scripts/services.sh`
/// runs it).
pub(super) fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for entry in dir.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(("postgres", t)) = stat_ticks(&stat, 11..15) {
            ticks += t;
        }
    }
    ticks / 100.0
}

/// The peak resident set size of a live process, in KiB.
pub(super) fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the processor over `topic` into a fresh database until all `records` are stored.
pub(super) fn pass(topic: &str, records: u64) -> anyhow::Result<Pass> {
    let (db, url, mut admin) = fresh_database("hb_bench")?;
    let result = run_processors(topic, records, &url, 1);
    let _ =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin);
    result
}

/// Runs `replicas` processors in one group over `topic` into the database at `url` until all
/// `records` are stored, then stops them.
pub(super) fn run_processors(
    topic: &str,
    records: u64,
    url: &str,
    replicas: u32,
) -> anyhow::Result<Pass> {
    run_processors_with(topic, records, url, replicas, &[])
}

/// [`run_processors`] with `env` (configuration by environment variable) over the defaults.
pub(super) fn run_processors_with(
    topic: &str,
    records: u64,
    url: &str,
    replicas: u32,
    env: &[(&str, &str)],
) -> anyhow::Result<Pass> {
    let group = unique("hb_bench");
    let mut children: Vec<Child> = Vec::new();
    let mut http: Vec<String> = Vec::new();
    for _ in 0..replicas {
        let (mut cmd, addr) = run_command(topic, url, &group)?;
        cmd.envs(env.iter().copied());
        http.push(addr);
        children.push(spawn_run(cmd)?);
    }
    let started = Instant::now();
    let result = (|| {
        // Progress from the processors' own counters: a count(*) every few milliseconds would
        // take a core of PostgreSQL from the pipeline it measures.
        let mut first: Option<(Instant, i64)> = None;
        let cpu_now = |children: &[Child]| {
            let processors: f64 = children.iter().map(|c| cpu_seconds(c.id())).sum();
            (processors, postgres_cpu_seconds())
        };
        let mut cpu_at_first = (0.0, 0.0);
        loop {
            let n: i64 = http.iter().map(|a| finished_records(a)).sum();
            let now = Instant::now();
            if n > 0 && first.is_none() {
                first = Some((now, n));
                cpu_at_first = cpu_now(&children);
            }
            if n >= records as i64 {
                let cpu_at_last = cpu_now(&children);
                let mut conn = PgConnection::establish(url)?;
                let rows = count(&mut conn);
                if rows != records as i64 {
                    bail!("the processors report {n} records done but the tables hold {rows} rows");
                }
                let (t0, n0) = first.unwrap_or((now, 0));
                let seconds = now.duration_since(t0).as_secs_f64().max(1e-3);
                return Ok(Pass {
                    rate: (n - n0) as f64 / seconds,
                    seconds,
                    wall_seconds: now.duration_since(started).as_secs_f64(),
                    peak_rss_kib: children.iter().map(|c| peak_rss_kib(c.id())).collect(),
                    cpu_seconds: children.iter().map(|c| cpu_seconds(c.id())).collect(),
                    cpu_in_pass: (
                        cpu_at_last.0 - cpu_at_first.0,
                        cpu_at_last.1 - cpu_at_first.1,
                    ),
                });
            }
            if started.elapsed() > PASS_DEADLINE {
                bail!("only {n} of {records} rows after {PASS_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })();
    for child in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    result
}

/// `heartbeat-pipeline` set up to run over `topic` into the database at `url` in consumer group
/// `group`, with its HTTP server on a free port: the command (without `run`) and that address.
pub(super) fn run_command(
    topic: &str,
    url: &str,
    group: &str,
) -> anyhow::Result<(Command, String)> {
    let mut cmd = Command::new(pipeline_binary()?);
    pipeline_env(&mut cmd, topic, url, group);
    let addr = format!("127.0.0.1:{}", free_port()?);
    cmd.env("HEARTBEAT__HTTP__BIND", &addr);
    Ok((cmd, addr))
}

/// Starts `cmd` (from [`run_command`]) as `run`.
pub(super) fn spawn_run(mut cmd: Command) -> anyhow::Result<Child> {
    let program = cmd.get_program().to_owned();
    cmd.arg("run")
        .spawn()
        .with_context(|| format!("start {}", program.to_string_lossy()))
}

/// Records a processor has finished (stored, rejected or found duplicate) by its `/metrics`;
/// 0 while it does not answer yet.
pub(super) fn finished_records(addr: &str) -> i64 {
    scrape(addr)
        .lines()
        .filter(|l| {
            [
                "heartbeat_readings_stored_total",
                "heartbeat_rejects_total{",
                "heartbeat_duplicates_total",
            ]
            .iter()
            .any(|m| l.starts_with(m))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as i64
}

/// A processor's `/metrics` text; empty while it does not answer.
pub(super) fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut body).is_err() {
        return String::new();
    }
    body
}
