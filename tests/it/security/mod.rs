//! Security (docs/SECURITY.md): Kafka over TLS with mutual TLS, a refused SASL login,
//! PostgreSQL with verify-full, the least-privilege roles, injection strings at the edges, and
//! secrets that never reach any output.
//!
//! Certificates come from a CA each test makes with the `openssl` command. Kafka's TLS is
//! terminated by stunnel4 in front of a private tansu broker (tansu's own TLS listener does not
//! answer librdkafka); the broker advertises stunnel's port. `scripts/build-deps.sh --test`
//! installs both tools; a test without them fails and says so, it never skips.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::broker::{free_port, start_tansu, Proxy};
use crate::helpers::*;

/// Long enough for a group join over TLS plus the work.
const STORE_DEADLINE: Duration = Duration::from_secs(120);
/// How long a refused login or handshake is watched for retries.
const WATCH: Duration = Duration::from_secs(20);

/// A tool the tests need, found on PATH, or a failure that says how to get it.
fn tool(names: &[&str]) -> PathBuf {
    for name in names {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!(
        "{} not found: scripts/build-deps.sh --test installs it (Debian package {})",
        names[0],
        if names[0] == "openssl" {
            "openssl"
        } else {
            "stunnel4"
        }
    );
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA with a server certificate (for 127.0.0.1 and localhost), a client certificate
/// whose key is encrypted with `key_password`, and a second CA that signed neither.
struct Pki {
    dir: tempfile::TempDir,
    key_password: String,
}

impl Pki {
    fn new() -> Pki {
        let openssl = tool(&["openssl"]);
        let dir = tempfile::Builder::new().prefix("hb_pki").tempdir().unwrap();
        let d = dir.path();
        // Readable by the postgres user, which runs the private PostgreSQL server.
        run_ok(Command::new("chmod").arg("755").arg(d));
        let key_password = unique("keypw");
        let ossl = |args: &[&str]| {
            run_ok(Command::new(&openssl).current_dir(d).args(args));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
            args.extend(ec);
            let (key, pem, subj) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN=heartbeat test {ca}"),
            );
            args.extend(["-keyout", &key, "-out", &pem, "-subj", &subj]);
            ossl(&args);
        }
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn) in [("server", "localhost"), ("client", "heartbeat-pipeline")] {
            let mut args = vec!["req", "-nodes"];
            args.extend(ec);
            let (key, csr, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("/CN={cn}"),
            );
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            ossl(&args);
            let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
            ossl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ]);
        }
        let pass = format!("pass:{key_password}");
        ossl(&[
            "pkey",
            "-in",
            "client.key",
            "-aes256",
            "-passout",
            &pass,
            "-out",
            "client-enc.key",
        ]);
        Pki { dir, key_password }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Settings for a client of the TLS broker: `ca` to trust, the client certificate with its
    /// encrypted key, the key's passphrase from the environment.
    fn kafka_tls(&self, setup: Setup, brokers: &str, ca: &str, protocol: &str) -> Setup {
        setup
            .with("HEARTBEAT__KAFKA__BROKERS", brokers)
            .with("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", protocol)
            .with("HEARTBEAT__KAFKA__SSL_CA_FILE", &self.path(ca))
            .with(
                "HEARTBEAT__KAFKA__SSL_CERTIFICATE_FILE",
                &self.path("client.pem"),
            )
            .with(
                "HEARTBEAT__KAFKA__SSL_KEY_FILE",
                &self.path("client-enc.key"),
            )
            .with("HEARTBEAT__KAFKA__SSL_KEY_PASSWORD", &self.key_password)
    }
}

/// A private tansu (memory storage, optionally `--authentication`) reachable only through a
/// front on `port`: stunnel (TLS, client certificates required and checked against the test
/// CA) or a plain counting [`Proxy`]. The broker advertises the front's port.
struct FrontedBroker {
    tansu: Child,
    stunnel: Option<Child>,
    proxy: Option<Proxy>,
    port: u16,
    dir: tempfile::TempDir,
}

impl FrontedBroker {
    fn start(authentication: bool, tls: Option<&Pki>) -> FrontedBroker {
        let stunnel_bin = tls.map(|_| tool(&["stunnel4", "stunnel"]));
        let (broker_port, port) = (free_port(), free_port());
        let dir = tempfile::Builder::new()
            .prefix("hb_tansu")
            .tempdir()
            .unwrap();
        let extra: &[&str] = if authentication {
            &["--authentication"]
        } else {
            &[]
        };
        let (tansu, target) = start_tansu(dir.path(), broker_port, port, extra);
        let (stunnel, proxy) = match (tls, stunnel_bin) {
            (Some(pki), Some(bin)) => {
                let conf = dir.path().join("stunnel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "foreground = yes\npid =\ndebug = notice\noutput = {log}\n\
                         [kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{broker_port}\n\
                         cert = {cert}\nkey = {key}\nCAfile = {ca}\n\
                         requireCert = yes\nverifyChain = yes\n",
                        log = dir.path().join("stunnel.log").display(),
                        cert = pki.path("server.pem"),
                        key = pki.path("server.key"),
                        ca = pki.path("ca.pem"),
                    ),
                )
                .unwrap();
                let child = Command::new(bin)
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start stunnel");
                wait_for("stunnel to listen", Duration::from_secs(30), || {
                    TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
                });
                (Some(child), None)
            }
            _ => (None, Some(Proxy::start(port, target))),
        };
        FrontedBroker {
            tansu,
            stunnel,
            proxy,
            port,
            dir,
        }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn dump(&self) {
        for f in ["tansu.log", "stunnel.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(f)) {
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- {f} (tail) ---");
                for l in &lines[lines.len().saturating_sub(30)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Drop for FrontedBroker {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump();
        }
        for child in [Some(&mut self.tansu), self.stunnel.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every line the daemon logged since `from` whose text contains `needle`.
fn lines_with(daemon: &Daemon, from: usize, needle: &str) -> usize {
    daemon.log_lines()[from..]
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn readings_travel_over_mutual_tls_and_an_untrusted_ca_is_reported_without_a_crash_loop() {
    let pki = Pki::new();
    let broker = FrontedBroker::start(false, Some(&pki));
    let db = TestDb::new();

    // The right CA and a client certificate: end to end over TLS.
    let setup = pki.kafka_tls(Setup::new(&db), &broker.brokers(), "ca.pem", "ssl");
    let mut daemon = setup.spawn_run_started();
    assert!(setup.generate(2_000, 91).success(), "generate over TLS");
    wait_for("2,000 rows over TLS", STORE_DEADLINE, || {
        (accounted(&db.url) == 2_000).then_some(())
    });
    wait_for("readiness over TLS", STORE_DEADLINE, || {
        (daemon.get("/readyz").0 == 200).then_some(())
    });
    assert_eq!(daemon.stop(), 0);

    // The same client without its certificate: stunnel requires one.
    let plain = Setup::new(&db)
        .with("HEARTBEAT__KAFKA__BROKERS", &broker.brokers())
        .with("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "ssl")
        .with("HEARTBEAT__KAFKA__SSL_CA_FILE", &pki.path("ca.pem"));
    let no_cert = plain.spawn_run();
    let body = wait_for(
        "a refused handshake without a client certificate",
        STORE_DEADLINE,
        || {
            let (status, body) = no_cert.get("/readyz");
            (status == 503 && body.contains("last error")).then_some(body)
        },
    );
    eprintln!("[no client certificate] /readyz: {body}");
    assert!(no_cert.records("group started").is_empty());
    drop(no_cert);

    // A CA that did not sign the broker's certificate: a clear error, not ready, no crash.
    let untrusted = pki.kafka_tls(Setup::new(&db), &broker.brokers(), "other-ca.pem", "ssl");
    let mut daemon = untrusted.spawn_run();
    let reason = wait_for("the TLS failure on /readyz", STORE_DEADLINE, || {
        let (status, body) = daemon.get("/readyz");
        (status == 503 && body.contains("certificate verify failed")).then_some(body)
    });
    eprintln!("[untrusted CA] /readyz: {reason}");
    let from = daemon.log_lines().len();
    let started = Instant::now();
    while started.elapsed() < WATCH {
        assert_eq!(daemon.get("/healthz").0, 200, "the process stays up");
        thread::sleep(Duration::from_millis(500));
    }
    let lines = daemon.log_lines().len() - from;
    let handshakes = lines_with(&daemon, 0, "certificate verify failed");
    eprintln!("[untrusted CA] {lines} log lines in {WATCH:?}, {handshakes} naming the failure");
    assert!(handshakes > 0);
    assert!(lines <= 30, "{lines} log lines in {WATCH:?}");
    assert_eq!(
        daemon.metric_sum("heartbeat_actor_restarts_total"),
        0.0,
        "no crash loop"
    );
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_refused_sasl_login_is_reported_and_retried_with_backoff() {
    let broker = FrontedBroker::start(true, None);
    let db = TestDb::new();
    let setup = Setup::new(&db)
        .with("HEARTBEAT__KAFKA__BROKERS", &broker.brokers())
        .with("HEARTBEAT__KAFKA__SECURITY_PROTOCOL", "sasl_plaintext")
        .with("HEARTBEAT__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
        .with("HEARTBEAT__KAFKA__SASL_USERNAME", "heartbeat")
        .with("HEARTBEAT__KAFKA__SASL_PASSWORD", &unique("saslpw"));
    let mut daemon = setup.spawn_run();
    let body = wait_for("the refused login on /readyz", STORE_DEADLINE, || {
        let (status, body) = daemon.get("/readyz");
        (status == 503 && body.contains("SASL authentication error")).then_some(body)
    });
    eprintln!("[refused SASL login] /readyz: {body}");
    assert!(lines_with(&daemon, 0, "SASL authentication error") > 0);

    let proxy = broker.proxy.as_ref().unwrap();
    let (connects_before, lines_before) = (
        proxy.accepted.load(Ordering::SeqCst),
        daemon.log_lines().len(),
    );
    let started = Instant::now();
    while started.elapsed() < WATCH {
        assert_eq!(daemon.get("/healthz").0, 200, "the process stays up");
        assert_eq!(daemon.get("/readyz").0, 503, "never ready without a login");
        thread::sleep(Duration::from_millis(500));
    }
    let connects = proxy.accepted.load(Ordering::SeqCst) - connects_before;
    let lines = daemon.log_lines().len() - lines_before;
    eprintln!("[refused SASL login] {connects} connections and {lines} log lines in {WATCH:?}");
    // librdkafka reconnects with backoff (reconnect.backoff.max.ms 2 s per client): a spin
    // would be hundreds.
    assert!(connects <= 60, "{connects} connections in {WATCH:?}");
    assert!(lines <= 30, "{lines} log lines in {WATCH:?}");
    assert_eq!(daemon.stop(), 0);
}

/// A PostgreSQL server with TLS on, its certificate from `pki`.
fn tls_postgres(pki: &Pki) -> PrivatePostgres {
    PrivatePostgres::start_with(|dir| {
        for f in ["server.pem", "server.key"] {
            let to = dir.join(f);
            std::fs::copy(pki.dir.path().join(f), &to).unwrap();
            run_ok(Command::new("chown").arg("postgres:").arg(&to));
            run_ok(Command::new("chmod").arg("600").arg(&to));
        }
        format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        )
    })
}

#[test]
fn postgres_verify_full_connects_with_the_right_ca_and_fails_clearly_with_another() {
    let pki = Pki::new();
    let pg = tls_postgres(&pki);
    let mut admin = PgConnection::establish(&pg.url("postgres")).expect("private pg");
    diesel::sql_query("CREATE DATABASE heartbeat")
        .execute(&mut admin)
        .unwrap();
    let setup = Setup {
        db_url: pg.url("heartbeat"),
        ..Setup::new_without_db()
    }
    .with("HEARTBEAT__DATABASE__SSLMODE", "verify-full");

    // The right CA: migrate, then store readings.
    let right = setup
        .clone()
        .with("HEARTBEAT__DATABASE__SSLROOTCERT", &pki.path("ca.pem"));
    let out = right.command(&["migrate"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut daemon = right.spawn_run_started();
    assert!(right.generate(500, 17).success());
    wait_for("500 rows over TLS", STORE_DEADLINE, || {
        (accounted(&pg.url("heartbeat")) == 500).then_some(())
    });
    // Every connection of the processor uses TLS (the server would take plain ones too).
    #[derive(QueryableByName)]
    struct Tls {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        tls: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        plain: i64,
    }
    let t: Tls = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE s.ssl) AS tls, count(*) FILTER (WHERE NOT s.ssl) AS plain \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = 'heartbeat' AND a.backend_type = 'client backend'",
    )
    .get_result(&mut admin)
    .unwrap();
    assert!(t.tls > 0 && t.plain == 0, "tls {} plain {}", t.tls, t.plain);
    assert_eq!(daemon.stop(), 0);

    // Another CA: `migrate` exits 1 naming the cause and the keys to check ...
    let wrong = setup.with(
        "HEARTBEAT__DATABASE__SSLROOTCERT",
        &pki.path("other-ca.pem"),
    );
    let out = wrong.command(&["migrate"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("certificate verify failed") && err.contains("database.sslrootcert"),
        "{err}"
    );
    // ... and `run` waits, not ready, saying why (SPEC: it never exits because PostgreSQL is
    // unreachable; a server whose certificate is fixed is reachable again without a restart).
    let mut daemon = wrong.spawn_run();
    wait_for("the verify failure in the log", STORE_DEADLINE, || {
        (lines_with(&daemon, 0, "certificate verify failed") > 0).then_some(())
    });
    let (status, body) = daemon.get("/readyz");
    assert!(status == 503 && body.contains("postgresql"), "{body}");
    assert_eq!(daemon.get("/healthz").0, 200);
    assert_eq!(daemon.stop(), 0);
}

/// A login role of a test's own, member of `group`, dropped at the end.
struct Login {
    name: String,
    password: String,
}

impl Login {
    fn create(group: &str) -> Login {
        let login = Login {
            name: unique("hb_login"),
            password: unique("pw"),
        };
        let mut admin = PgConnection::establish(&admin_url()).unwrap();
        diesel::sql_query(format!(
            "CREATE ROLE {} LOGIN PASSWORD '{}' IN ROLE {group}",
            login.name, login.password
        ))
        .execute(&mut admin)
        .unwrap();
        login
    }

    /// `db`'s URL with this login.
    fn url(&self, db: &TestDb) -> String {
        let (_, rest) = db.url.split_once('@').unwrap();
        format!("postgres://{}:{}@{rest}", self.name, self.password)
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&admin_url()) {
            let _ =
                diesel::sql_query(format!("DROP ROLE IF EXISTS {}", self.name)).execute(&mut admin);
        }
    }
}

fn migrate(db: &TestDb) {
    let out = Setup::new(db).command(&["migrate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The error of `sql` run as `url`, or None if it succeeded.
fn refused(url: &str, sql: &str) -> Option<String> {
    let mut c = PgConnection::establish(url).unwrap();
    diesel::sql_query(sql)
        .execute(&mut c)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn the_writer_cannot_change_the_schema_and_the_reader_cannot_write() {
    let db = TestDb::new();
    migrate(&db);
    let (writer, reader) = (
        Login::create("heartbeat_writer"),
        Login::create("heartbeat_reader"),
    );
    let (w, r) = (writer.url(&db), reader.url(&db));
    let row = "INSERT INTO readings (event_id, customer_id, recorded_at, heart_rate, class, \
               kafka_partition, kafka_offset) VALUES (gen_random_uuid(), 'c', \
               now() - interval '5 days', 70, 'normal', 0, 0)";

    // The writer: creates a day partition (through the owner's function) and inserts ...
    assert_eq!(
        refused(
            &w,
            "SELECT heartbeat_ensure_day_partition(now() - interval '5 days')"
        ),
        None
    );
    assert_eq!(refused(&w, row), None);
    assert_eq!(refused(&w, "SELECT count(*) FROM readings"), None);
    // ... but changes no schema, deletes no reading, drops no day.
    for sql in [
        "DROP TABLE readings",
        "DROP TABLE alerts",
        "ALTER TABLE readings ADD COLUMN x int",
        "ALTER TABLE anomalies DROP COLUMN details",
        "TRUNCATE rejected_readings",
        "DELETE FROM readings",
        "UPDATE readings SET heart_rate = 1",
        "CREATE TABLE x (a int)",
        "SELECT heartbeat_drop_expired_partitions(0)",
        "CREATE ROLE y",
    ] {
        let e = refused(&w, sql).unwrap_or_else(|| panic!("the writer could run: {sql}"));
        assert!(
            e.contains("permission denied") || e.contains("must be owner"),
            "{sql}: {e}"
        );
    }
    // A partition made by the function is the owner's, readable by both roles.
    let part = db.count(
        "SELECT count(*) AS n FROM pg_tables WHERE tablename LIKE 'readings_2%' \
         AND tableowner = current_user",
    );
    assert!(part >= 1);

    // The reader: reads everything, writes nothing.
    assert_eq!(refused(&r, "SELECT count(*) FROM readings"), None);
    assert_eq!(refused(&r, "SELECT count(*) FROM alerts"), None);
    for sql in [
        row,
        "INSERT INTO alerts (customer_id, kind, opened_at, last_seen_at) VALUES ('c', 'k', now(), now())",
        "UPDATE alerts SET readings = 0",
        "DELETE FROM rejected_readings",
        "DROP TABLE readings",
        "SELECT heartbeat_ensure_day_partition(now() + interval '9 days')",
    ] {
        let e = refused(&r, sql).unwrap_or_else(|| panic!("the reader could run: {sql}"));
        assert!(
            e.contains("permission denied") || e.contains("must be owner"),
            "{sql}: {e}"
        );
    }
}

#[test]
fn the_pipeline_runs_as_a_writer_login_on_a_database_its_owner_migrated() {
    let db = TestDb::new();
    migrate(&db);
    let writer = Login::create("heartbeat_writer");
    let setup = Setup {
        db_url: writer.url(&db),
        ..Setup::new_without_db()
    }
    .with("HEARTBEAT__GENERATOR__FAULT_RATE", "0.05");
    // Nothing pending: `migrate` as the writer succeeds without changing anything.
    let out = setup.command(&["migrate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut daemon = setup.spawn_run_started();
    assert!(setup.generate(3_000, 5).success());
    wait_for("3,000 rows stored by the writer", STORE_DEADLINE, || {
        (accounted(&db.url) == 3_000).then_some(())
    });
    assert!(db.count("SELECT count(*) AS n FROM anomalies") > 0);
    wait_for(
        "the writer's retention warning",
        Duration::from_secs(30),
        || {
            (!daemon.records("retention skipped: this database role may not drop partitions (a heartbeat_writer login); run retention as the owner (docs/SECURITY.md) or set storage.retention_days = 0").is_empty()).then_some(())
        },
    );
    assert_eq!(daemon.metric_sum("heartbeat_actor_restarts_total"), 0.0);
    assert_eq!(daemon.stop(), 0);
}

/// Publishes each value as one record (keyed by `key`) and waits until all are acknowledged.
fn publish_raw(topic: &str, records: &[(&str, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for (key, value) in records {
        producer
            .send(BaseRecord::to(topic).key(*key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn injection_strings_are_stored_verbatim_or_rejected_verbatim_and_break_nothing() {
    let db = TestDb::new();
    // Config values with quotes and SQL: the group id is free text.
    let mut setup = Setup::new(&db);
    setup.group = format!("{}'); DROP TABLE readings;--\"", setup.group);
    let mut daemon = setup.spawn_run_started();

    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let valid = [
        "x--1",
        "a:b.c",
        "1.0e-3",
        "_:-.",
        "OR-1-1",
        "--",
        "select.from:readings",
    ];
    let invalid = [
        "'); DROP TABLE readings;--",
        "Robert'); DROP TABLE rejected_readings; --",
        "1 OR 1=1",
        "x\\u0000y",
        "$1",
        "a\"b",
    ];
    let mut records: Vec<(&str, Vec<u8>)> = Vec::new();
    for id in valid {
        let value = format!(r#"{{"customer_id":"{id}","timestamp":"{now}","heart_rate":72}}"#);
        records.push((id, value.into_bytes()));
    }
    let mut raws = Vec::new();
    for id in invalid {
        let id = id.replace('"', "\\\"");
        let value = format!(r#"{{"customer_id":"{id}","timestamp":"{now}","heart_rate":72}}"#);
        raws.push(value.clone().into_bytes());
        records.push(("k", value.into_bytes()));
    }
    // Bytes that are no text at all, with a quote and a NUL.
    let junk = b"\xff\x00'; DROP TABLE readings;--\xfe".to_vec();
    raws.push(junk.clone());
    records.push(("k", junk));
    // A customer id as a JSON integer is stored as its decimal string.
    records.push((
        "n",
        format!(r#"{{"customer_id":18446744073709551615,"timestamp":"{now}","heart_rate":72}}"#)
            .into_bytes(),
    ));
    publish_raw(&setup.topic, &records);

    let total = records.len() as i64;
    wait_for("every record stored or rejected", STORE_DEADLINE, || {
        (accounted(&db.url) == total).then_some(())
    });

    #[derive(QueryableByName)]
    struct Customer {
        #[diesel(sql_type = Text)]
        customer_id: String,
    }
    let stored: BTreeSet<String> = diesel::sql_query("SELECT customer_id FROM readings")
        .load::<Customer>(&mut db.conn())
        .unwrap()
        .into_iter()
        .map(|c| c.customer_id)
        .collect();
    let mut expected: BTreeSet<String> = valid.iter().map(|s| s.to_string()).collect();
    expected.insert("18446744073709551615".to_owned());
    assert_eq!(stored, expected);

    #[derive(QueryableByName)]
    struct Rejected {
        #[diesel(sql_type = Bytea)]
        raw: Vec<u8>,
        #[diesel(sql_type = Text)]
        reason: String,
    }
    let rejected = diesel::sql_query("SELECT raw, reason FROM rejected_readings")
        .load::<Rejected>(&mut db.conn())
        .unwrap();
    assert_eq!(rejected.len(), raws.len());
    for raw in &raws {
        let row = rejected
            .iter()
            .find(|r| &r.raw == raw)
            .unwrap_or_else(|| panic!("{:?} not stored verbatim", String::from_utf8_lossy(raw)));
        let want = if raw.starts_with(b"{") {
            "invalid_customer_id"
        } else {
            "invalid_utf8"
        };
        assert_eq!(row.reason, want, "{:?}", String::from_utf8_lossy(raw));
    }
    // Every table is still there.
    for table in [
        "readings",
        "rejected_readings",
        "anomalies",
        "alerts",
        "detector_state",
    ] {
        db.count(&format!("SELECT count(*) AS n FROM {table}"));
    }
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn http_serves_health_and_metrics_only() {
    let db = TestDb::new();
    let setup = Setup::new(&db);
    let mut daemon = setup.spawn_run_started();
    for path in [
        "/",
        "/config",
        "/readings",
        "/debug",
        "/metrics/../config",
        "/env",
    ] {
        assert_eq!(daemon.get(path).0, 404, "{path}");
    }
    assert_eq!(daemon.get("/metrics").0, 200);
    assert_eq!(daemon.stop(), 0);
}

/// Every output of one command: exit code, stdout, stderr.
fn all_output(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails naming where a secret showed up (the secret itself is not printed).
fn assert_clean(what: &str, text: &str, secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        let encoded: String = secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        for form in [secret.to_string(), encoded] {
            if let Some(at) = text.find(&form) {
                let line = text[..at].lines().count();
                panic!("{name} appears in {what} (line {line})");
            }
        }
    }
}

#[test]
fn no_secret_reaches_stdout_stderr_the_log_file_or_an_error_chain() {
    let pki = Pki::new();
    let tls_broker = FrontedBroker::start(false, Some(&pki));
    let sasl_broker = FrontedBroker::start(true, Some(&pki));
    let db = TestDb::new();
    migrate(&db);
    let writer = Login::create("heartbeat_writer");
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, format!("{content}\n")).unwrap();
        p.to_str().unwrap().to_owned()
    };
    // Characters that need percent-encoding in a URL, so both forms are looked for.
    let wrong_db = format!("{}/w@:?#", unique("wrongdb"));
    let sasl = unique("saslpw");
    let secrets = [
        ("the database password", writer.password.as_str()),
        ("a wrong database password", wrong_db.as_str()),
        ("the SASL password", sasl.as_str()),
        ("the key passphrase", pki.key_password.as_str()),
    ];
    let db_pw_file = file("db", &writer.password);
    let sasl_file = file("sasl", &sasl);
    let key_pw_file = file("keypw", &pki.key_password);
    let host_db = db.url.split_once('@').unwrap().1.to_owned();
    let user_url = format!("postgres://{}@{host_db}", writer.name);
    let log_file = files.path().join("heartbeat.log");

    // check-config with every secret set, from the environment and from files.
    let base = Setup {
        db_url: user_url.clone(),
        ..Setup::new_without_db()
    }
    .with("HEARTBEAT__LOG__FILE", log_file.to_str().unwrap());
    let sasl_setup = pki
        .kafka_tls(base.clone(), &sasl_broker.brokers(), "ca.pem", "sasl_ssl")
        .with("HEARTBEAT__KAFKA__SASL_USERNAME", "heartbeat")
        .with("HEARTBEAT__KAFKA__SASL_PASSWORD_FILE", &sasl_file);
    let out = sasl_setup
        .clone()
        .with("HEARTBEAT__DATABASE__PASSWORD", &writer.password)
        .command(&["check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_clean("check-config", &all_output(&out), &secrets);

    // A wrong password in the URL, and one from the environment: migrate and inspect fail.
    let wrong_url = format!(
        "postgres://{}:{}@{host_db}",
        writer.name,
        wrong_db
            .replace('/', "%2F")
            .replace('@', "%40")
            .replace(':', "%3A")
            .replace('?', "%3F")
            .replace('#', "%23")
    );
    let out = Setup {
        db_url: wrong_url,
        ..base.clone()
    }
    .command(&["migrate"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        all_output(&out).contains("password authentication failed"),
        "{}",
        all_output(&out)
    );
    assert_clean("migrate with a wrong password", &all_output(&out), &secrets);
    let out = base
        .clone()
        .with("HEARTBEAT__DATABASE__PASSWORD", &wrong_db)
        .command(&["inspect"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_clean("inspect with a wrong password", &all_output(&out), &secrets);

    // run: a wrong database password and a refused SASL login inside mutual TLS.
    let mut daemon = sasl_setup
        .clone()
        .with("HEARTBEAT__DATABASE__PASSWORD", &wrong_db)
        .spawn_run();
    wait_for("both failures in the log", STORE_DEADLINE, || {
        (lines_with(&daemon, 0, "password authentication failed") > 0
            && lines_with(&daemon, 0, "SASL authentication error") > 0)
            .then_some(())
    });
    let (_, readyz) = daemon.get("/readyz");
    assert_eq!(daemon.stop(), 0);
    assert_clean(
        "run's log (failing)",
        &daemon.log_lines().join("\n"),
        &secrets,
    );
    assert_clean("/readyz", &readyz, &secrets);

    // run: everything right (database password and key passphrase from files), with an
    // injected panic in the writer on the way.
    let good = pki
        .kafka_tls(base.clone(), &tls_broker.brokers(), "ca.pem", "ssl")
        .with("HEARTBEAT__KAFKA__SSL_KEY_PASSWORD", "")
        .with("HEARTBEAT__KAFKA__SSL_KEY_PASSWORD_FILE", &key_pw_file)
        .with("HEARTBEAT__DATABASE__PASSWORD_FILE", &db_pw_file)
        .with("HEARTBEAT_TEST_PANIC", "db_writer:1");
    let mut daemon = good.spawn_run_started();
    let out = good
        .command(&["generate", "--count", "300", "--rate", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    assert_clean("generate", &all_output(&out), &secrets);
    wait_for("300 rows", STORE_DEADLINE, || {
        (accounted(&db.url) == 300).then_some(())
    });
    assert!(
        daemon.metric_sum("heartbeat_actor_restarts_total") >= 1.0,
        "the panic happened"
    );
    let (_, metrics) = daemon.get("/metrics");
    assert_eq!(daemon.stop(), 0);
    let log = daemon.log_lines().join("\n");
    assert!(log.contains("injected fault"), "the panic is in the log");
    assert_clean("run's log (working)", &log, &secrets);
    assert_clean("/metrics", &metrics, &secrets);
    let file_log = std::fs::read_to_string(&log_file).unwrap();
    assert!(file_log.lines().count() > 10);
    assert_clean("log.file", &file_log, &secrets);
}
