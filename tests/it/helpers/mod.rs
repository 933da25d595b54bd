//! Test helpers: a fresh database per test, unique topics and groups, the real binary as a child
//! process, deadline-bounded polling, and the views a user has (rows, committed offsets, HTTP).
//!
//! The services come from `scripts/services.sh up` (the test command starts them):
//! `HEARTBEAT_TEST_DATABASE_URL` (an admin URL, default the local `postgres` database) and
//! `HEARTBEAT_TEST_BROKERS` (default 127.0.0.1:9092). Child logs are kept in memory and printed
//! when a test fails or with `TEST_LOG=1`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

pub const BIN: &str = env!("CARGO_BIN_EXE_heartbeat-pipeline");

/// Partitions of every test topic: more than one, so ordering per partition matters, few enough
/// that the group joins quickly.
pub const PARTITIONS: i32 = 3;

pub fn admin_url() -> String {
    std::env::var("HEARTBEAT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn brokers() -> String {
    std::env::var("HEARTBEAT_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let name = unique("hb_test");
        let mut admin = PgConnection::establish(&admin_url()).unwrap_or_else(|e| {
            panic!(
                "cannot reach the test PostgreSQL at {}: {e}; run scripts/services.sh up",
                admin_url()
            )
        });
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create test database");
        let base = admin_url();
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("HEARTBEAT_TEST_DATABASE_URL needs a /database part"),
        };
        TestDb { name, url }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to test database")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.try_count(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `count`, or the error (e.g. the tables do not exist yet because `run` has not migrated).
    pub fn try_count(&self, sql: &str) -> Result<i64, diesel::result::Error> {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let n: N = diesel::sql_query(sql).get_result(&mut self.conn())?;
        Ok(n.n)
    }

    pub fn execute(&self, sql: &str) {
        diesel::sql_query(sql)
            .execute(&mut self.conn())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&admin_url()) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

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

pub fn log_enabled() -> bool {
    std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0")
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

/// The `n` of a query of `url` returning one row with a bigint `n`; -1 while the database cannot
/// answer (down, or not migrated yet).
pub fn count_at(url: &str, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let Ok(mut c) = PgConnection::establish(url) else {
        return -1;
    };
    diesel::sql_query(sql)
        .get_result::<N>(&mut c)
        .map_or(-1, |n| n.n)
}

/// Rows in readings + rejected_readings of `url`; -1 while the database cannot answer.
pub fn accounted(url: &str) -> i64 {
    count_at(
        url,
        "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM rejected_readings) AS n",
    )
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

/// The offsets `group` has committed on `topic`, per partition (absent = none committed).
pub fn committed_offsets(group: &str, topic: &str) -> BTreeMap<i32, i64> {
    committed_offsets_at(&brokers(), group, topic)
}

/// [`committed_offsets`] on the broker at `brokers`.
pub fn committed_offsets_at(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create offset reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("fetch committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// What the broker at `brokers` says of consumer group `group`: its state and members, for the
/// message of a wait that expired.
pub fn group_state(brokers: &str, group: &str) -> String {
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
    {
        Ok(c) => c,
        Err(e) => return format!("no client: {e}"),
    };
    match consumer.fetch_group_list(Some(group), Duration::from_secs(10)) {
        Ok(list) => list
            .groups()
            .iter()
            .map(|g| {
                let members: Vec<String> = g
                    .members()
                    .iter()
                    .map(|m| format!("{} ({})", m.id(), m.client_host()))
                    .collect();
                format!(
                    "group {} state {} protocol {} members [{}]",
                    g.name(),
                    g.state(),
                    g.protocol(),
                    members.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("cannot describe group {group}: {e}"),
    }
}

/// The sum of committed offsets = records the group has finished, when offsets start at 0.
pub fn committed_total(group: &str, topic: &str) -> i64 {
    committed_offsets(group, topic).values().sum()
}

/// Every record of `topic`, from the beginning, until `expected` have arrived.
pub fn read_topic(topic: &str, expected: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("hb_reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    wait_for(
        &format!("{expected} records on {topic}"),
        Duration::from_secs(90),
        || {
            while let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push(m.detach());
            }
            (out.len() >= expected).then_some(())
        },
    );
    // Anything beyond the expected count would be a duplicate dead letter: look a little longer.
    while let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        out.push(m.detach());
    }
    out
}

pub fn header(m: &rdkafka::message::OwnedMessage, key: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
}

/// A PostgreSQL instance of a test's own, on a free port, that the test can stop and start
/// without disturbing the others. `initdb` and `postgres` refuse to run as root, so they run as
/// the `postgres` user (as everything here runs as root).
pub struct PrivatePostgres {
    pub dir: std::path::PathBuf,
    pub port: u16,
    bin: std::path::PathBuf,
    /// More server options (`-c name=value ...`), e.g. TLS.
    options: String,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        Self::start_with(|_| String::new())
    }

    /// Starts with the server options `options` returns, given the instance's directory (owned
    /// by the postgres user, so files the server must read can go there).
    pub fn start_with(options: impl FnOnce(&std::path::Path) -> String) -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(unique("hb_pg"));
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = |args: &[&str]| {
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .output()
                .expect("runuser");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // The directory is root's: hand it to the postgres user.
        let chown = Command::new("chown")
            .arg("postgres:")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success());
        let data = dir.join("data");
        as_postgres(&[
            bin.join("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
        ]);
        let options = options(&dir);
        let pg = PrivatePostgres {
            dir,
            port,
            bin,
            options,
        };
        pg.start_again();
        pg
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 {}",
            self.port,
            self.dir.display(),
            self.options
        );
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-o", &options, "-w", "-l"])
            .arg(self.dir.join("log"))
            .args(args)
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["start"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// A URL for database `name` (created on first use by the caller).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "stop",
                "-m",
                "immediate",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
