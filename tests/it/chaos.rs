//! Chaos equals clean (SPEC section 5): after any mix of crashes, restarts, rebalances and
//! outages, `anomalies` and `alerts` (leaving out `silent`, which depends on wall-clock time) hold
//! exactly what one clean run over the same records wrote.
//!
//! One seeded workload (the generator with faults on and every injected episode kind) is
//! published once to a private broker, then read twice into two databases of a private
//! PostgreSQL: run A by one processor with nothing going wrong, run B by processors that are
//! SIGKILLed, joined by a second replica that later leaves, cut off by a frozen broker and a
//! PostgreSQL restart, with a writer slowed on purpose so that a backlog outlasts the detector's
//! checkpoints. Then the tables are compared column by column, and every customer's saved
//! detector state must hold exactly its stored readings.
//!
//! Size and seed come from the environment, so the same test is the quick check of
//! `scripts/test.sh` and the long one of `scripts/bench.sh chaos`: `HEARTBEAT_CHAOS_RECORDS`
//! (records published, 1% of them faults; default 40,000), `HEARTBEAT_CHAOS_CUSTOMERS` (default
//! records / 100), `HEARTBEAT_CHAOS_SEED` (default: a random seed, printed, so a failure can be
//! rerun). `HEARTBEAT_CHAOS_LIBRDKAFKA_DEBUG` (e.g. `cgrp,protocol`) sets the processors'
//! librdkafka `debug`, for a failure that needs the consumer group's side of the story.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Text;
use rand::{Rng, SeedableRng};

use crate::broker::PrivateBroker;
use crate::helpers::*;

/// How long any one wait of the scenario may take before the test gives up and says where.
const STEP_DEADLINE: Duration = Duration::from_secs(300);
/// How long the broker stays frozen (the 15 s, longer than the 6 s session timeout of
/// the tests' processors, so the group loses its members).
const FREEZE: Duration = Duration::from_secs(15);
/// The slowed writer: every statement that inserts readings sleeps this long.
const SLOW_STATEMENT_S: f64 = 0.4;

/// The workload and what it is read with.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Records published (`generate --count`); 1% of them are faults, rejected.
    pub records: u64,
    pub customers: u64,
    pub seed: u64,
}

impl Workload {
    pub fn from_env() -> Workload {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let records = var("HEARTBEAT_CHAOS_RECORDS").unwrap_or(40_000);
        Workload {
            records,
            customers: var("HEARTBEAT_CHAOS_CUSTOMERS").unwrap_or((records / 100).max(10)),
            seed: var("HEARTBEAT_CHAOS_SEED").unwrap_or_else(|| rand::random::<u16>().into()),
        }
    }
}

/// One text line per row, sorted, for each table a user would compare.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tables {
    pub readings: Vec<String>,
    pub rejects: Vec<String>,
    pub anomalies: Vec<String>,
    pub alerts: Vec<String>,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

fn lines(conn: &mut PgConnection, sql: &str) -> Vec<String> {
    diesel::sql_query(sql)
        .load::<Line>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// The rows of `url`'s tables, on the columns SPEC section 5 names (times in UTC).
pub fn tables(url: &str) -> Tables {
    let mut c = PgConnection::establish(url).expect("connect");
    diesel::sql_query("SET TimeZone = 'UTC'")
        .execute(&mut c)
        .unwrap();
    Tables {
        readings: lines(
            &mut c,
            "SELECT concat_ws('|', event_id, customer_id, recorded_at, heart_rate, class, \
             kafka_partition, kafka_offset) AS line FROM readings ORDER BY 1",
        ),
        rejects: lines(
            &mut c,
            "SELECT concat_ws('|', kafka_partition, kafka_offset, reason) AS line \
             FROM rejected_readings ORDER BY 1",
        ),
        anomalies: lines(
            &mut c,
            "SELECT concat_ws('|', event_id, recorded_at, kind, heart_rate, details::text) AS line \
             FROM anomalies WHERE kind <> 'silent' ORDER BY 1",
        ),
        alerts: lines(
            &mut c,
            "SELECT concat_ws('|', customer_id, kind, opened_at, last_seen_at, \
             coalesce(resolved_at::text, 'open'), readings, coalesce(peak_heart_rate::text, '-'), \
             coalesce(activated_at::text, 'pending'), coalesce(suppressed, '-')) \
             AS line FROM alerts WHERE kind <> 'silent' ORDER BY 1",
        ),
    }
}

/// Customers whose saved detector state does not hold exactly their stored readings (a state
/// without readings, readings without a state, or another count), with the numbers.
pub fn state_mismatches(url: &str) -> Vec<String> {
    let mut c = PgConnection::establish(url).expect("connect");
    lines(
        &mut c,
        "SELECT concat_ws(' ', customer_id, 'state', coalesce(s.n::text, 'none'), 'rows', \
         coalesce(r.n::text, '0')) AS line \
         FROM (SELECT customer_id, (state->>'readings')::bigint AS n FROM detector_state) s \
         FULL JOIN (SELECT customer_id, count(*) AS n FROM readings GROUP BY 1) r \
         USING (customer_id) WHERE s.n IS DISTINCT FROM r.n ORDER BY 1",
    )
}

/// What differs between two snapshots, table by table: counts of rows only on one side and a
/// few of them. Empty when the tables are equal.
pub fn differences(clean: &Tables, chaos: &Tables) -> Vec<String> {
    let mut out = Vec::new();
    for (name, a, b) in [
        ("readings", &clean.readings, &chaos.readings),
        ("rejected_readings", &clean.rejects, &chaos.rejects),
        ("anomalies", &clean.anomalies, &chaos.anomalies),
        ("alerts", &clean.alerts, &chaos.alerts),
    ] {
        if a == b {
            continue;
        }
        let only_a = sorted_minus(a, b);
        let only_b = sorted_minus(b, a);
        let mut s = format!(
            "{name}: {} rows in the clean run, {} after chaos; {} only in the clean run, {} only \
             after chaos",
            a.len(),
            b.len(),
            only_a.len(),
            only_b.len()
        );
        for l in only_a.iter().take(5) {
            let _ = write!(s, "\n      clean only: {l}");
        }
        for l in only_b.iter().take(5) {
            let _ = write!(s, "\n      chaos only: {l}");
        }
        out.push(s);
    }
    out
}

/// The lines of sorted `a` missing from sorted `b` (as multisets).
fn sorted_minus<'a>(a: &'a [String], b: &[String]) -> Vec<&'a String> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() {
        if j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && b[j] < a[i] {
            j += 1;
        } else {
            out.push(&a[i]);
            i += 1;
        }
    }
    out
}

fn execute(url: &str, sql: &str) {
    let mut c = PgConnection::establish(url).expect("connect");
    diesel::sql_query(sql)
        .execute(&mut c)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Makes every statement that inserts readings sleep for `seconds`, so batches queue up behind
/// the writers. The delay sits in a table the trigger reads, so that changing it later takes no
/// lock on `readings` (dropping the trigger would wait for every open transaction on it,
/// a frozen process's included, and every writer would queue behind that).
pub fn slow_the_writer(url: &str, seconds: f64) {
    execute(
        url,
        "CREATE TABLE IF NOT EXISTS test_slowdown (seconds float8 NOT NULL)",
    );
    execute(url, "DELETE FROM test_slowdown");
    execute(
        url,
        &format!("INSERT INTO test_slowdown VALUES ({seconds})"),
    );
    execute(
        url,
        "CREATE OR REPLACE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(coalesce((SELECT max(seconds) FROM test_slowdown), 0)); \
         RETURN NULL; END $$",
    );
    execute(
        url,
        "CREATE OR REPLACE TRIGGER test_slow BEFORE INSERT ON readings \
         FOR EACH STATEMENT EXECUTE FUNCTION test_slow()",
    );
}

/// Ends [`slow_the_writer`]'s delay (the trigger stays, and sleeps for 0 s).
pub fn unslow_the_writer(url: &str) {
    execute(url, "UPDATE test_slowdown SET seconds = 0");
}

/// Publishes the workload to `setup`'s topic; returns the number of records sent.
pub fn publish(setup: &Setup, w: &Workload) -> i64 {
    let out = setup
        .command(&[
            "generate",
            "--count",
            &w.records.to_string(),
            "--rate",
            "0",
            "--seed",
            &w.seed.to_string(),
            "--customers",
            &w.customers.to_string(),
        ])
        .env("HEARTBEAT__GENERATOR__FAULT_RATE", "0.01")
        .output()
        .expect("run generate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "generate: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("generate said {stdout:?}"))
}

/// Waits until `group` has committed `total` records on the private broker, with `what` in the
/// message if it never does.
fn wait_committed(broker: &PrivateBroker, setup: &Setup, total: i64, what: &str) {
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        let committed: i64 = committed_offsets_at(&broker.brokers(), &setup.group, &setup.topic)
            .values()
            .sum();
        if committed == total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {STEP_DEADLINE:?} waiting for {what}: {committed} of {total} \
             committed; {}",
            group_state(&broker.brokers(), &setup.group)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The processors' configuration file: a rebalance waits at most 20 s for a member to rejoin
/// (librdkafka sends `max.poll.interval.ms` as the JoinGroup's rebalance timeout, 300 s by
/// default). The local broker keeps a member that was killed in the middle of a join until that
/// timeout runs out, so with the default a kill during a rebalance stalled the group for five
/// minutes.
fn rebalance_config() -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let mut text = "[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"20000\"\n".to_owned();
    if let Ok(debug) = std::env::var("HEARTBEAT_CHAOS_LIBRDKAFKA_DEBUG") {
        let _ = writeln!(text, "debug = {debug:?}");
    }
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

/// A fault of run B, applied once the chaos database holds `at` of the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Join,
    Leave,
    FreezeBroker,
    RestartPostgres,
    UnslowWriter,
}

/// The faults in the order they are applied, each at a fraction of the records: three kills, a
/// join before its leave, the frozen broker and the PostgreSQL restart anywhere, and the slowed
/// writer back to normal at the end (so the run finishes in reasonable time).
fn plan(rng: &mut impl Rng) -> Vec<(f64, Fault)> {
    let mut faults: Vec<(f64, Fault)> = [
        Fault::Kill,
        Fault::Kill,
        Fault::Kill,
        Fault::FreezeBroker,
        Fault::RestartPostgres,
    ]
    .into_iter()
    .map(|f| (rng.gen_range(0.05..0.85), f))
    .collect();
    let join = rng.gen_range(0.05..0.5);
    faults.push((join, Fault::Join));
    faults.push((rng.gen_range(join + 0.05..0.9), Fault::Leave));
    faults.push((0.9, Fault::UnslowWriter));
    faults.sort_by(|a, b| a.0.total_cmp(&b.0));
    faults
}

/// What a chaos run did and found.
pub struct Report {
    pub workload: Workload,
    pub records: i64,
    /// Rows of the clean run: readings, rejects, anomalies and alerts (but `silent`).
    pub rows: [usize; 4],
    pub applied: Vec<String>,
    pub clean_run: Duration,
    pub chaos_run: Duration,
    pub differences: Vec<String>,
    pub state_mismatches: Vec<String>,
}

impl Report {
    pub fn print(&self) {
        eprintln!(
            "[chaos] seed {} / {} records of {} customers / clean run {:.1} s / chaos run {:.1} s",
            self.workload.seed,
            self.records,
            self.workload.customers,
            self.clean_run.as_secs_f64(),
            self.chaos_run.as_secs_f64()
        );
        eprintln!(
            "[chaos] clean run: {} readings, {} rejects, {} anomalies, {} alert episodes (but \
             silent)",
            self.rows[0], self.rows[1], self.rows[2], self.rows[3]
        );
        eprintln!("[chaos] faults applied: {}", self.applied.join(", "));
        if self.differences.is_empty() && self.state_mismatches.is_empty() {
            eprintln!("[chaos] readings, rejects, anomalies, alerts: equal; every saved state holds its readings");
        }
        for d in &self.differences {
            eprintln!("[chaos] DIFFERS {d}");
        }
        if !self.state_mismatches.is_empty() {
            eprintln!(
                "[chaos] {} customers' saved state does not hold their readings, e.g. {:?}",
                self.state_mismatches.len(),
                &self.state_mismatches[..self.state_mismatches.len().min(5)]
            );
        }
    }
}

/// Runs the scenario of the module doc.
pub fn run(w: Workload) -> Report {
    eprintln!(
        "[chaos] seed {} / {} records of {} customers: starting",
        w.seed, w.records, w.customers
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(w.seed);
    let pg = PrivatePostgres::start();
    for name in ["clean", "chaos"] {
        execute(&pg.url("postgres"), &format!("CREATE DATABASE {name}"));
    }
    let (clean_url, chaos_url) = (pg.url("clean"), pg.url("chaos"));
    let broker = PrivateBroker::start();
    let config = rebalance_config();
    let base = Setup {
        db_url: clean_url.clone(),
        ..Setup::new_without_db()
    }
    .with("HEARTBEAT__KAFKA__BROKERS", &broker.brokers())
    // Batches of 1,000: many batches in flight, so faults land between and inside them.
    .with("HEARTBEAT__WRITER__BATCH_SIZE", "1000")
    .with("HEARTBEAT_CONFIG", config.path().to_str().unwrap());
    let records = publish(&base, &w);

    // Run A: one processor, nothing goes wrong.
    let started = Instant::now();
    let mut clean = base.spawn_run();
    wait_committed(
        &broker,
        &base,
        records,
        "the clean run to commit every record",
    );
    wait_for("the clean run's states", STEP_DEADLINE, || {
        state_mismatches(&clean_url).is_empty().then_some(())
    });
    assert_eq!(clean.stop(), 0, "the clean run stops cleanly");
    let clean_run = started.elapsed();

    // Run B: the same records into another database, by another group, through every fault.
    let mut chaos = Setup {
        db_url: chaos_url.clone(),
        group: unique("hb_chaos"),
        ..base.clone()
    }
    // A revocation gives up waiting for the slowed writer: batches stay in flight across
    // rebalances.
    .with("HEARTBEAT__SHUTDOWN__TIMEOUT_MS", "2000");
    if std::env::var_os("HEARTBEAT_CHAOS_LIBRDKAFKA_DEBUG").is_some() {
        // librdkafka's debug lines are logged at debug level.
        chaos = chaos.with("HEARTBEAT__LOG__LEVEL", "debug");
    }
    chaos.migrate();
    slow_the_writer(&chaos_url, SLOW_STATEMENT_S);
    let started = Instant::now();
    let mut processors = vec![chaos.spawn_run()];
    let mut applied = Vec::new();
    let plan = plan(&mut rng);
    eprintln!("[chaos] plan: {plan:?}");
    for (at, fault) in plan {
        let target = (at * records as f64) as i64;
        let deadline = Instant::now() + STEP_DEADLINE;
        while accounted(&chaos_url) < target {
            assert!(
                Instant::now() < deadline,
                "seed {}: no {target} of {records} records within {STEP_DEADLINE:?} before \
                 {fault:?} (applied: {applied:?}); {}",
                w.seed,
                group_state(&broker.brokers(), &chaos.group)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let t = started.elapsed().as_secs_f64();
        match fault {
            Fault::Kill => {
                let victim = rng.gen_range(0..processors.len());
                processors[victim].signal(9);
                processors[victim].wait_exit(Duration::from_secs(30));
                processors[victim] = chaos.spawn_run();
                applied.push(format!("SIGKILL of processor {} at {t:.0} s", victim + 1));
            }
            Fault::Join => {
                let joining = chaos.spawn_run();
                // Until the group has rebalanced with it (or it is clear it will not soon).
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline
                    && !joining
                        .records("partitions assigned")
                        .iter()
                        .any(|r| !r["partitions"].as_str().unwrap_or_default().is_empty())
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                processors.push(joining);
                applied.push(format!("second processor joined at {t:.0} s"));
            }
            Fault::Leave => {
                // The test broker (tansu) wedges a group for good when a member leaves while
                // the group is forming: the leaver stays its leader and nobody is ever assigned
                // again (docs/TROUBLESHOOTING.md, "tansu: a leave during a rebalance"). Apache
                // Kafka has no such fault, so the leave waits for a formed group: first for the
                // members SIGKILLed before to have left it (the broker drops them only when their
                // session times out, and that starts a rebalance; a leave then wedged the group,
                // seed 56863), then for every processor to hold partitions.
                let brokers = broker.brokers();
                wait_for(
                    "the killed members to leave the group",
                    STEP_DEADLINE,
                    || {
                        (group_members(&brokers, &chaos.group) == Some(processors.len()))
                            .then_some(())
                    },
                );
                wait_for("the group to form before the leave", STEP_DEADLINE, || {
                    processors
                        .iter()
                        .all(Daemon::holds_partitions)
                        .then_some(())
                });
                let mut leaving = processors.pop().expect("the second processor");
                let code = leaving.stop();
                applied.push(format!("second processor left at {t:.0} s (exit {code})"));
            }
            Fault::FreezeBroker => {
                broker.freeze();
                std::thread::sleep(FREEZE);
                broker.thaw();
                applied.push(format!("broker frozen for 15 s at {t:.0} s"));
            }
            Fault::RestartPostgres => {
                pg.stop();
                std::thread::sleep(Duration::from_secs(2));
                pg.start_again();
                applied.push(format!("PostgreSQL restarted at {t:.0} s"));
            }
            Fault::UnslowWriter => {
                unslow_the_writer(&chaos_url);
                applied.push(format!("writer back to normal at {t:.0} s"));
            }
        }
    }
    wait_committed(
        &broker,
        &chaos,
        records,
        &format!(
            "the chaos run to commit every record (seed {}; applied: {applied:?})",
            w.seed
        ),
    );
    wait_for("the chaos run to store every record", STEP_DEADLINE, || {
        (accounted(&chaos_url) == records).then_some(())
    });
    // The states of the last readings are saved within a checkpoint interval.
    let settle = Instant::now() + Duration::from_secs(60);
    while !state_mismatches(&chaos_url).is_empty() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(500));
    }
    for p in &mut processors {
        p.stop();
    }
    let chaos_run = started.elapsed();
    let (a, b) = (tables(&clean_url), tables(&chaos_url));
    Report {
        workload: w,
        records,
        rows: [
            a.readings.len(),
            a.rejects.len(),
            a.anomalies.len(),
            a.alerts.len(),
        ],
        applied,
        clean_run,
        chaos_run,
        differences: differences(&a, &b),
        state_mismatches: state_mismatches(&chaos_url),
    }
}

#[test]
fn after_kills_rebalances_and_outages_anomalies_and_alerts_equal_a_clean_run() {
    let report = run(Workload::from_env());
    report.print();
    assert!(
        report.differences.is_empty() && report.state_mismatches.is_empty(),
        "the chaos run differs from the clean run (seed {}; rerun with HEARTBEAT_CHAOS_SEED)",
        report.workload.seed
    );
}

#[test]
fn the_comparison_sees_a_changed_column() {
    let a = Tables {
        alerts: vec!["C|tachycardia|t0|t1|open|3|120".into()],
        ..Tables::default()
    };
    let b = Tables {
        alerts: vec!["C|tachycardia|t0|t1|open|2|120".into()],
        ..Tables::default()
    };
    let d = differences(&a, &b);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("alerts: 1 rows in the clean run, 1 after chaos; 1 only"));
    assert!(differences(&a, &a).is_empty());
}
