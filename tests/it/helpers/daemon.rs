//! The settings one test's processes share, and the real binary as a child process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::kafka::committed_total;
use super::{brokers, log_enabled, unique, wait_for, TestDb, BIN, PARTITIONS};

/// The settings one test's processes share: its database, topics and group.
#[derive(Clone)]
pub struct Setup {
    pub db_url: String,
    pub topic: String,
    pub group: String,
    pub extra: BTreeMap<String, String>,
}

impl Setup {
    pub fn new(db: &TestDb) -> Setup {
        Setup {
            db_url: db.url.clone(),
            ..Setup::new_without_db()
        }
    }

    /// Unique topics and group; the caller sets `db_url`.
    pub fn new_without_db() -> Setup {
        Setup {
            db_url: String::new(),
            topic: unique("hb_readings"),
            group: unique("hb_group"),
            extra: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Setup {
        self.extra.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("HEARTBEAT__DATABASE__URL", self.db_url.clone()),
            ("HEARTBEAT__KAFKA__BROKERS", brokers()),
            ("HEARTBEAT__KAFKA__GROUP_ID", self.group.clone()),
            // Short, so a departed member's partitions move quickly in tests.
            ("HEARTBEAT__KAFKA__SESSION_TIMEOUT_MS", "6000".to_owned()),
            ("HEARTBEAT__KAFKA__TOPICS__READINGS", self.topic.clone()),
            (
                "HEARTBEAT__KAFKA__TOPICS__DEAD_LETTER",
                format!("{}-dlq", self.topic),
            ),
            (
                "HEARTBEAT__KAFKA__TOPICS__ANOMALIES",
                format!("{}-anomalies", self.topic),
            ),
            (
                "HEARTBEAT__KAFKA__TOPICS__ALERTS",
                format!("{}-alerts", self.topic),
            ),
            (
                "HEARTBEAT__KAFKA__TOPICS__PARTITIONS",
                PARTITIONS.to_string(),
            ),
            ("HEARTBEAT__HTTP__BIND", "127.0.0.1:0".to_owned()),
            ("HEARTBEAT__LOG__FORMAT", "json".to_owned()),
            ("HEARTBEAT__LOG__LEVEL", "info".to_owned()),
            ("HEARTBEAT__GENERATOR__ENABLED", "false".to_owned()),
            // Tests send readings of fixed dates (late 2026) with Kafka timestamps of now: an
            // age bound of ten years keeps them readings whenever the suite runs, and still
            // lets a test send a stale one (2000 is). Tests of the bound itself set their own.
            ("HEARTBEAT__VALIDATION__MAX_AGE_DAYS", "3650".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<Vec<_>>();
        for (k, v) in &self.extra {
            env.push((k.clone(), v.clone()));
        }
        env
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_remove("HEARTBEAT_CONFIG");
        for (k, _) in std::env::vars() {
            if k.starts_with("HEARTBEAT__") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env());
        cmd
    }

    /// Runs `migrate` on this setup's database and asserts that it succeeded, printing its output
    /// if not.
    pub fn migrate(&self) {
        let out = self.command(&["migrate"]).output().expect("run migrate");
        assert!(
            out.status.success(),
            "migrate: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `generate` to completion and returns its exit status.
    pub fn generate(&self, count: u64, seed: u64) -> ExitStatus {
        let out = self
            .command(&[
                "generate",
                "--count",
                &count.to_string(),
                "--rate",
                "0",
                "--seed",
                &seed.to_string(),
                "--customers",
                "200",
            ])
            .output()
            .expect("run generate");
        if !out.status.success() || log_enabled() {
            eprintln!(
                "generate: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status
    }

    /// Starts `run` (processor only unless the setup says otherwise).
    pub fn spawn_run(&self) -> Daemon {
        Daemon::spawn(self.command(&["run"]))
    }

    /// Starts `run` and waits until its actors run, so the topics it creates exist.
    pub fn spawn_run_started(&self) -> Daemon {
        let daemon = self.spawn_run();
        wait_for("the processor to start", Duration::from_secs(90), || {
            daemon.records("group started").first().map(|_| ())
        });
        daemon
    }
}

/// A running `heartbeat-pipeline` child; its stderr lines are collected.
pub struct Daemon {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn heartbeat-pipeline");
        let stderr = child.stderr.take().expect("stderr piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if log_enabled() {
                    eprintln!("[daemon] {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child: Some(child),
            lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The processor's latest rebalance event is an assignment of at least one partition: it is
    /// a member of a formed group. (On tansu, stop a member only then: docs/TROUBLESHOOTING.md.)
    pub fn holds_partitions(&self) -> bool {
        const EVENTS: [&str; 3] = [
            "partitions assigned",
            "partitions revoked",
            "partitions lost",
        ];
        self.log_lines()
            .iter()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| EVENTS.iter().any(|e| v["msg"] == *e))
            .is_some_and(|v| {
                v["msg"] == "partitions assigned"
                    && !v["partitions"].as_str().unwrap_or_default().is_empty()
            })
    }

    /// JSON log records whose `msg` is `msg`.
    pub fn records(&self, msg: &str) -> Vec<serde_json::Value> {
        self.log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["msg"] == msg)
            .collect()
    }

    /// The address the HTTP server bound (from its INFO line).
    pub fn http_addr(&self) -> String {
        wait_for("the http server to listen", Duration::from_secs(30), || {
            self.records("http server listening")
                .first()
                .and_then(|r| r["addr"].as_str().map(str::to_owned))
        })
    }

    /// GET `path` from the daemon's HTTP server: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.http_addr(), path)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY-free: the `kill` command keeps this test free of libc bindings.
        let name = match signal {
            9 => "KILL",
            15 => "TERM",
            2 => "INT",
            19 => "STOP",
            18 => "CONT",
            _ => panic!("unsupported signal {signal}"),
        };
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Freezes the process (SIGSTOP): it holds its connections and does nothing, as a process
    /// stalled by its host would.
    pub fn suspend(&self) {
        self.signal(19);
    }

    /// Lets a suspended process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal(18);
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let child = self.child.as_mut().expect("running");
        let status = wait_for("the daemon to exit", timeout, || child.try_wait().unwrap());
        self.child = None;
        status.code().unwrap_or(-1)
    }

    /// SIGTERM, then the exit code.
    pub fn stop(&mut self) -> i32 {
        self.signal(15);
        self.wait_exit(Duration::from_secs(30))
    }

    /// The sum of every sample of the metric `name` (all label sets) in `/metrics`.
    pub fn metric_sum(&self, name: &str) -> f64 {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        body.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The resident set size of the process, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the daemon's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn dump(&self) {
        eprintln!("--- daemon log ---");
        for l in self.log_lines() {
            eprintln!("{l}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            self.dump();
        }
    }
}

/// A minimal HTTP/1.1 GET, enough for /healthz, /readyz and /metrics.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Reads `setup`'s whole topic again with a new consumer group, which must commit `total`
/// records; returns the replay's setup.
pub fn replay_in_a_new_group(setup: &Setup, total: i64, deadline: Duration) -> Setup {
    let replay = Setup {
        group: unique("hb_replay"),
        ..setup.clone()
    };
    let mut daemon = replay.spawn_run();
    wait_for("the replay to commit", deadline, || {
        (committed_total(&replay.group, &replay.topic) == total).then_some(())
    });
    assert_eq!(daemon.stop(), 0);
    replay
}
