//! Supervision and fault tolerance: the faults people meet (a database or broker outage, kills,
//! a graceful stop, a replica lost, a panicking actor), each ridden out with nothing lost and
//! nothing stored twice. Every test prints a tally: produced / stored / rejected / duplicate
//! rows / records read again / restarts / recovery time.

use std::thread;
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};

use crate::broker::PrivateBroker;
use crate::helpers::*;

/// Long enough for a tansu group join (seconds) plus the work, short enough to fail usefully.
const STORE_DEADLINE: Duration = Duration::from_secs(120);
/// The bound on resuming after a dependency comes back.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// What a fault test prints and checks.
#[derive(Debug, Default)]
struct Tally {
    produced: i64,
    stored: i64,
    rejected: i64,
    duplicate_rows: i64,
    /// Records read a second time (`heartbeat_duplicates_total`), summed over the daemons asked.
    read_again: f64,
    /// `heartbeat_actor_restarts_total`, summed over the daemons asked.
    restarts: f64,
    /// From the fault's end to the first new row.
    resumed: Option<Duration>,
    /// From the fault's end to the last row.
    caught_up: Option<Duration>,
}

impl Tally {
    fn count(produced: i64, db: &impl Counts) -> Tally {
        Tally {
            produced,
            stored: db.n("SELECT count(*) AS n FROM readings"),
            rejected: db.n("SELECT count(*) AS n FROM rejected_readings"),
            duplicate_rows: db
                .n("SELECT count(*) - count(DISTINCT (event_id, recorded_at)) AS n FROM readings"),
            ..Tally::default()
        }
    }

    /// Waits until `setup`'s group has committed all `total` records, then counts what the
    /// tables and `daemon` say, with the recovery times (`recovery`'s answer), if any.
    fn settled(
        setup: &Setup,
        db: &impl Counts,
        daemon: &Daemon,
        total: i64,
        recovered: Option<(Duration, Duration)>,
    ) -> Tally {
        let at = setup
            .extra
            .get("HEARTBEAT__KAFKA__BROKERS")
            .cloned()
            .unwrap_or_else(brokers);
        wait_for("the group to commit every record", STORE_DEADLINE, || {
            let committed: i64 = committed_offsets_at(&at, &setup.group, &setup.topic)
                .values()
                .sum();
            (committed == total).then_some(())
        });
        let mut tally = Tally::count(total, db).ask(daemon);
        if let Some((resumed, caught_up)) = recovered {
            (tally.resumed, tally.caught_up) = (Some(resumed), Some(caught_up));
        }
        tally
    }

    /// Adds a live daemon's counters.
    fn ask(mut self, daemon: &Daemon) -> Tally {
        self.read_again += daemon.metric_sum("heartbeat_duplicates_total");
        self.restarts += daemon.metric_sum("heartbeat_actor_restarts_total");
        self
    }

    fn print(&self, test: &str) {
        eprintln!(
            "[{test}] produced {} / stored {} / rejected {} / duplicate rows {} / read again {} / \
             restarts {} / resumed after {} / caught up after {}",
            self.produced,
            self.stored,
            self.rejected,
            self.duplicate_rows,
            self.read_again,
            self.restarts,
            seconds(self.resumed),
            seconds(self.caught_up),
        );
    }

    /// Nothing lost, nothing stored twice.
    fn assert_exact(&self) {
        assert_eq!(self.stored + self.rejected, self.produced, "{self:?}");
        assert_eq!(self.duplicate_rows, 0, "{self:?}");
    }
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// Waits from the end of a fault (`since`) until every one of `total` rows is there: (time to
/// the first new row, time to the last).
fn recovery(db: &impl Counts, total: i64, since: Instant) -> (Duration, Duration) {
    let before = accounted(db);
    let mut resumed = None;
    wait_for(&format!("all {total} rows"), STORE_DEADLINE, || {
        let now = accounted(db);
        if now > before || now == total {
            resumed.get_or_insert_with(|| since.elapsed());
        }
        (now == total).then_some(())
    });
    (resumed.unwrap_or_default(), since.elapsed())
}

/// Counting queries, on the shared test server or on a private one.
trait Counts {
    /// The query's `n`, or -1 while the database cannot answer (down, or not migrated yet).
    fn n(&self, sql: &str) -> i64;
}

impl Counts for TestDb {
    fn n(&self, sql: &str) -> i64 {
        self.try_count(sql).unwrap_or(-1)
    }
}

/// A database on a [`PrivatePostgres`].
struct PrivateDb {
    url: String,
}

impl PrivateDb {
    fn create(pg: &PrivatePostgres) -> PrivateDb {
        let mut conn = diesel::PgConnection::establish(&pg.url("postgres")).expect("private pg");
        diesel::sql_query("CREATE DATABASE heartbeat")
            .execute(&mut conn)
            .unwrap();
        PrivateDb {
            url: pg.url("heartbeat"),
        }
    }
}

impl Counts for PrivateDb {
    fn n(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let Ok(mut c) = diesel::PgConnection::establish(&self.url) else {
            return -1;
        };
        diesel::sql_query(sql)
            .get_result::<N>(&mut c)
            .map_or(-1, |n| n.n)
    }
}

/// Rows in readings + rejected_readings; -1 while the database cannot answer.
fn accounted(db: &impl Counts) -> i64 {
    db.n("SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM rejected_readings) AS n")
}

/// A configuration file for what environment variables cannot say (keys with dots).
fn config_file(toml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, toml.as_bytes()).unwrap();
    f
}

/// Log lines whose `msg` is `msg`, counted.
fn logged(daemon: &Daemon, msg: &str) -> usize {
    daemon.records(msg).len()
}

/// Stops PostgreSQL under a running processor for `outage` while readings keep arriving, and
/// checks that it stays alive, ready again within [`RECOVERY_BOUND`], and in its group (its
/// partitions paused, not revoked: librdkafka's `max.poll.interval.ms` is set below the
/// outage), and that every reading is stored once. Returns the daemon and what it saw.
struct OutageRun {
    tally: Tally,
    peak_rss_kib: u64,
    lines_during_outage: usize,
}

fn database_outage(outage: Duration, during: u64) -> OutageRun {
    let pg = PrivatePostgres::start();
    let db = PrivateDb::create(&pg);
    // Ten seconds without a poll and librdkafka would leave the group: the outage is longer.
    let config = config_file("[kafka.librdkafka]\n\"max.poll.interval.ms\" = \"10000\"\n");
    let setup = Setup {
        db_url: db.url.clone(),
        ..Setup::new_without_db()
    }
    .with("HEARTBEAT_CONFIG", config.path().to_str().unwrap())
    // Small batches, so the readings that arrive during the outage fill every mailbox.
    .with("HEARTBEAT__WRITER__BATCH_SIZE", "200");

    let mut daemon = setup.spawn_run_started();
    assert!(setup.generate(2_000, 21).success());
    wait_for("the first 2,000 rows", STORE_DEADLINE, || {
        (accounted(&db) == 2_000).then_some(())
    });

    pg.stop();
    let down = Instant::now();
    let lines_before = daemon.log_lines().len();
    assert!(setup.generate(during, 22).success());
    wait_for("readiness to turn 503", STORE_DEADLINE, || {
        let (status, body) = daemon.get("/readyz");
        (status == 503 && body.contains("postgresql")).then_some(())
    });
    wait_for("the subscriber to pause", STORE_DEADLINE, || {
        (logged(&daemon, "validator busy, partitions paused") > 0).then_some(())
    });
    let mut peak_rss_kib = 0;
    while down.elapsed() < outage {
        assert_eq!(daemon.get("/healthz").0, 200, "the process stays alive");
        peak_rss_kib = peak_rss_kib.max(daemon.rss_kib());
        thread::sleep(Duration::from_millis(500));
    }
    let lines_during_outage = daemon.log_lines().len() - lines_before;

    pg.start_again();
    let back = Instant::now();
    let total = 2_000 + during as i64;
    let recovered = recovery(&db, total, back);
    wait_for("readiness to turn 200", STORE_DEADLINE, || {
        (daemon.get("/readyz").0 == 200).then_some(())
    });
    let tally = Tally::settled(&setup, &db, &daemon, total, Some(recovered));
    assert_eq!(
        logged(&daemon, "partitions revoked"),
        0,
        "the consumer stayed in its group"
    );
    assert_eq!(daemon.stop(), 0);
    OutageRun {
        tally,
        peak_rss_kib,
        lines_during_outage,
    }
}

#[test]
fn postgres_unreachable_for_30_seconds_mid_stream_loses_nothing() {
    let run = database_outage(Duration::from_secs(30), 20_000);
    run.tally.print("postgres down 30 s");
    run.tally.assert_exact();
    assert_eq!(run.tally.read_again, 0.0, "nothing was read twice");
    assert_eq!(run.tally.restarts, 0.0, "an outage is not a crash");
    assert!(
        run.tally.resumed.unwrap() <= RECOVERY_BOUND,
        "{:?}",
        run.tally
    );
}

#[test]
fn a_minute_long_database_outage_keeps_memory_and_logs_bounded() {
    let run = database_outage(Duration::from_secs(60), 100_000);
    run.tally.print("postgres down 60 s");
    eprintln!(
        "[postgres down 60 s] peak RSS {} MiB, {} log lines during the outage",
        run.peak_rss_kib / 1024,
        run.lines_during_outage
    );
    run.tally.assert_exact();
    assert!(
        run.peak_rss_kib < 256 * 1024,
        "peak RSS {} KiB",
        run.peak_rss_kib
    );
    assert!(
        run.lines_during_outage <= 40,
        "{} lines logged during the outage",
        run.lines_during_outage
    );
}

#[test]
fn the_broker_unreachable_for_30_seconds_mid_stream_loses_nothing() {
    let broker = PrivateBroker::start();
    let db = TestDb::new();
    let setup = Setup::new(&db)
        .with("HEARTBEAT__KAFKA__BROKERS", &broker.brokers())
        .with("HEARTBEAT__WRITER__BATCH_SIZE", "500");
    let total = 20_000;
    assert!(setup.generate(total as u64, 41).success());
    let mut daemon = setup.spawn_run();
    wait_for("a quarter of the rows", STORE_DEADLINE, || {
        (accounted(&db) >= total / 4).then_some(())
    });

    broker.proxy.cut();
    let down = Instant::now();
    wait_for("readiness to turn 503", STORE_DEADLINE, || {
        let (status, body) = daemon.get("/readyz");
        (status == 503 && body.contains("kafka")).then_some(())
    });
    let lines_before = daemon.log_lines().len();
    while down.elapsed() < Duration::from_secs(30) {
        assert_eq!(daemon.get("/healthz").0, 200, "the process stays alive");
        thread::sleep(Duration::from_millis(500));
    }
    let lines_during_outage = daemon.log_lines().len() - lines_before;

    broker.proxy.restore();
    let recovered = recovery(&db, total, Instant::now());
    let tally = Tally::settled(&setup, &db, &daemon, total, Some(recovered));
    wait_for("readiness to turn 200", STORE_DEADLINE, || {
        (daemon.get("/readyz").0 == 200).then_some(())
    });
    tally.print("broker down 30 s");
    eprintln!("[broker down 30 s] {lines_during_outage} log lines during the outage");
    assert_eq!(daemon.stop(), 0);
    tally.assert_exact();
    assert_eq!(tally.restarts, 0.0, "an outage is not a crash");
    assert!(tally.resumed.unwrap() <= RECOVERY_BOUND, "{tally:?}");
    assert!(lines_during_outage <= 60, "{lines_during_outage} lines");
}

#[test]
fn a_processor_killed_three_times_mid_stream_loses_and_repeats_nothing() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__WRITER__BATCH_SIZE", "500");
    let total = 20_000;
    assert!(setup.generate(total as u64, 31).success());
    let mut killed_at = Vec::new();
    for round in 1..=3i64 {
        let mut daemon = setup.spawn_run();
        // Kill it while it is working: once it has stored a share more than the last time.
        let target = round * 4_000;
        wait_for(
            &format!("{target} rows before kill {round}"),
            STORE_DEADLINE,
            || (accounted(&db) >= target).then_some(()),
        );
        daemon.signal(9);
        daemon.wait_exit(Duration::from_secs(30));
        killed_at.push(accounted(&db));
    }
    eprintln!("killed at {killed_at:?} rows");
    let mut daemon = setup.spawn_run();
    let recovered = recovery(&db, total, Instant::now());
    let tally = Tally::settled(&setup, &db, &daemon, total, Some(recovered));
    tally.print("SIGKILL x3, then a restart");
    assert_eq!(daemon.stop(), 0);
    tally.assert_exact();
}

#[test]
fn sigterm_drains_and_commits_so_a_restart_reads_nothing_twice() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__WRITER__BATCH_SIZE", "500");
    let total = 20_000;
    assert!(setup.generate(total as u64, 51).success());
    let mut daemon = setup.spawn_run();
    wait_for("a quarter of the rows", STORE_DEADLINE, || {
        (accounted(&db) >= total / 4).then_some(())
    });
    let asked = Instant::now();
    daemon.signal(15);
    let code = daemon.wait_exit(Duration::from_secs(30));
    let took = asked.elapsed();
    assert_eq!(code, 0, "a graceful stop exits 0");
    assert!(
        took < Duration::from_secs(10),
        "within shutdown.timeout_ms: {took:?}"
    );
    // Everything stored was committed, and nothing was committed that is not stored.
    let at_stop = accounted(&db);
    assert_eq!(committed_total(&setup.group, &setup.topic), at_stop);
    eprintln!("stopped in {took:?} with {at_stop} rows stored and committed");

    let mut daemon = setup.spawn_run();
    wait_for("every row", STORE_DEADLINE, || {
        (accounted(&db) == total).then_some(())
    });
    let tally = Tally::settled(&setup, &db, &daemon, total, None);
    tally.print("SIGTERM + restart");
    assert_eq!(daemon.stop(), 0);
    tally.assert_exact();
    assert_eq!(tally.read_again, 0.0, "the restart read nothing twice");
}

#[test]
fn two_replicas_in_one_group_one_killed_the_survivor_finishes_exactly() {
    let db = TestDb::new();
    let setup = Setup::new(&db).with("HEARTBEAT__WRITER__BATCH_SIZE", "500");
    let total = 60_000;
    let mut survivor = setup.spawn_run_started();
    let mut victim = setup.spawn_run_started();
    // The group has settled with both: the second has partitions of its own.
    wait_for("both replicas to hold partitions", STORE_DEADLINE, || {
        victim
            .records("partitions assigned")
            .last()
            .filter(|r| !r["partitions"].as_str().unwrap_or_default().is_empty())
            .map(|_| ())
    });
    assert!(setup.generate(total as u64, 61).success());
    wait_for("both replicas to store readings", STORE_DEADLINE, || {
        (survivor.metric_sum("heartbeat_readings_stored_total") > 0.0
            && victim.metric_sum("heartbeat_readings_stored_total") > 0.0)
            .then_some(())
    });
    victim.signal(9);
    victim.wait_exit(Duration::from_secs(30));
    let at_kill = accounted(&db);
    let recovered = recovery(&db, total, Instant::now());
    let tally = Tally::settled(&setup, &db, &survivor, total, Some(recovered));
    tally.print("two replicas, one killed");
    eprintln!("killed the second replica at {at_kill} rows");
    assert!(
        logged(&survivor, "partitions assigned") >= 2,
        "the survivor was assigned partitions again after the kill"
    );
    assert_eq!(survivor.stop(), 0);
    tally.assert_exact();
}

#[test]
fn a_write_error_retrying_cannot_cure_goes_to_the_supervisor_and_nothing_is_lost() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    setup.migrate();
    // Not an outage: the database answers, and refuses every reading.
    db.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by a broken trigger'; END $$",
    );
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON readings EXECUTE FUNCTION refuse()");
    let total = 2_000;
    assert!(setup.generate(total as u64, 81).success());
    let mut daemon = setup.spawn_run();
    wait_for("the writer to give up on the batch", STORE_DEADLINE, || {
        daemon
            .records("restarting group")
            .iter()
            .any(|r| r["cause"] == "db_writer stopped")
            .then_some(())
    });
    assert_eq!(daemon.get("/readyz").0, 503);
    assert!(committed_offsets(&setup.group, &setup.topic).is_empty());

    db.execute("DROP TRIGGER refuse ON readings");
    let recovered = recovery(&db, total, Instant::now());
    let tally = Tally::settled(&setup, &db, &daemon, total, Some(recovered));
    tally.print("a refusing trigger, then dropped");
    assert_eq!(daemon.stop(), 0);
    tally.assert_exact();
    assert!(tally.restarts >= 1.0);
}

/// The test-only panic hook of the `fault-injection` feature (`scripts/test.sh` enables it).
#[cfg(feature = "fault-injection")]
mod injected_panics {
    use super::*;

    #[test]
    fn an_actor_that_panics_is_restarted_and_nothing_is_lost() {
        let db = TestDb::new();
        let setup = Setup::new(&db)
            .with("HEARTBEAT__WRITER__BATCH_SIZE", "500")
            .with("HEARTBEAT_TEST_PANIC", "db_writer:2")
            // One writer, so the two panics come one incarnation after the other.
            .with("HEARTBEAT__WRITER__PARALLELISM", "1");
        let total = 10_000;
        assert!(setup.generate(total as u64, 71).success());
        let mut daemon = setup.spawn_run();
        wait_for("every row", STORE_DEADLINE, || {
            (accounted(&db) == total).then_some(())
        });
        wait_for("readiness to be 200 again", STORE_DEADLINE, || {
            (daemon.get("/readyz").0 == 200).then_some(())
        });
        let tally = Tally::settled(&setup, &db, &daemon, total, None);
        tally.print("db_writer panics twice");
        let restarts = daemon.records("restarting group");
        assert_eq!(restarts.len(), 2, "one restart per panic");
        assert!(
            restarts[0]["cause"]
                .as_str()
                .unwrap()
                .contains("db_writer died"),
            "{restarts:?}"
        );
        assert_eq!(
            daemon.metric_sum("heartbeat_actor_restarts_total{actor=\"db_writer\"}"),
            2.0
        );
        assert_eq!(daemon.stop(), 0);
        tally.assert_exact();
    }

    /// A consumer left out of its group without knowing (the local broker did this to a member
    /// that joined around a freeze) used to wait for an assignment for ever, reading nothing.
    /// The subscriber asks the broker after a minute without partitions, finds no member in the
    /// group twice 30 s apart, and restarts the processor with a new consumer, which reads the
    /// rest exactly once.
    #[test]
    fn a_consumer_left_out_of_its_group_is_replaced_and_reads_the_rest() {
        let db = TestDb::new();
        let setup = Setup::new(&db).with("HEARTBEAT_TEST_LEAVE_GROUP", "1");
        let first = 3_000;
        assert!(setup.generate(first as u64, 17).success());
        let mut daemon = setup.spawn_run();
        wait_for("the consumer to leave its group", STORE_DEADLINE, || {
            (!daemon.records("partitions revoked").is_empty()).then_some(())
        });
        // Records that arrive while nobody is in the group.
        let total = first + 2_000;
        assert!(setup.generate(2_000, 18).success());
        // About 90 s without partitions, then the new consumer's join.
        wait_for(
            "every record, after the replacement",
            Duration::from_secs(240),
            || (accounted(&db) == total).then_some(()),
        );
        let replaced = daemon.records(
            "this consumer holds no partition and no member of its group holds one: restarting \
             with a new consumer",
        );
        assert_eq!(replaced.len(), 1, "replaced once");
        let tally = Tally::settled(&setup, &db, &daemon, total, None);
        tally.print("consumer left out of its group");
        assert_eq!(daemon.stop(), 0);
        tally.assert_exact();
    }

    #[test]
    fn sigterm_while_the_generator_backs_off_still_drains_and_commits_the_processor() {
        let db = TestDb::new();
        let setup = Setup::new(&db).with("HEARTBEAT__WRITER__BATCH_SIZE", "500");
        let total = 40_000;
        assert!(setup.generate(total as u64, 91).success());
        // The generator of `run` fails at every start and waits ten minutes before each restart.
        let mut daemon = setup
            .clone()
            .with("HEARTBEAT__GENERATOR__ENABLED", "true")
            .with("HEARTBEAT_TEST_PANIC", "generator:1000000")
            .with("HEARTBEAT__SUPERVISOR__BACKOFF_MIN_MS", "600000")
            .with("HEARTBEAT__SUPERVISOR__BACKOFF_MAX_MS", "600000")
            .spawn_run();
        wait_for("the generator to back off", STORE_DEADLINE, || {
            daemon
                .records("restarting group")
                .iter()
                .any(|r| r["group"] == "generator")
                .then_some(())
        });
        wait_for("a quarter of the rows", STORE_DEADLINE, || {
            (accounted(&db) >= total / 4).then_some(())
        });
        daemon.signal(15);
        let code = daemon.wait_exit(Duration::from_secs(30));
        assert_eq!(code, 0, "a graceful stop exits 0");
        // The processor was drained: everything stored was committed, nothing more.
        let at_stop = accounted(&db);
        assert_eq!(committed_total(&setup.group, &setup.topic), at_stop);
        assert_eq!(
            daemon.records("restarting group").len(),
            1,
            "the generator was not restarted after the stop"
        );
        eprintln!("[SIGTERM during the generator's backoff] {at_stop} of {total} rows stored and committed");
    }

    #[test]
    fn a_panic_that_repeats_past_the_restart_intensity_exits_3() {
        let db = TestDb::new();
        let setup = Setup::new(&db)
            .with("HEARTBEAT_TEST_PANIC", "validator:1000")
            .with("HEARTBEAT__SUPERVISOR__MAX_RESTARTS", "3")
            .with("HEARTBEAT__SUPERVISOR__BACKOFF_MIN_MS", "50")
            .with("HEARTBEAT__SUPERVISOR__BACKOFF_MAX_MS", "200");
        assert!(setup.generate(1_000, 72).success());
        let mut daemon = setup.spawn_run();
        assert_eq!(daemon.wait_exit(STORE_DEADLINE), 3);
        assert_eq!(daemon.records("restarting group").len(), 3);
        assert_eq!(
            daemon
                .records("restart intensity exceeded, giving up")
                .len(),
            1
        );
        assert_eq!(committed_total(&setup.group, &setup.topic), 0);
        eprintln!("[validator panics for ever] exit 3 after 3 restarts");
    }
}
