//! PostgreSQL with verify-full, and the least-privilege roles: the writer cannot change the
//! schema, the reader cannot write, and the pipeline runs as a writer login.

use std::process::Command;
use std::time::Duration;

use diesel::prelude::*;

use crate::helpers::*;

use super::{lines_with, run_ok, Pki, STORE_DEADLINE};

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
pub(super) struct Login {
    pub(super) name: String,
    pub(super) password: String,
}

impl Login {
    pub(super) fn create(group: &str) -> Login {
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
    Setup::new(&db).migrate();
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
    Setup::new(&db).migrate();
    let writer = Login::create("heartbeat_writer");
    let setup = Setup {
        db_url: writer.url(&db),
        ..Setup::new_without_db()
    }
    .with("HEARTBEAT__GENERATOR__FAULT_RATE", "0.05");
    // Nothing pending: `migrate` as the writer succeeds without changing anything.
    setup.migrate();

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
