//! A fresh database per test, row counts, and a private PostgreSQL cluster.

use std::process::Command;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::{admin_url, unique};

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

/// A migrated database (by the real binary) with today's day partition, and a connection with
/// the writer's staging tables, as the writer's pool makes for each of its connections: for
/// driving the writer's batch path through the library where the binary cannot force it.
pub fn writer_db() -> (TestDb, PgConnection) {
    let db = TestDb::new();
    super::Setup::new(&db).migrate();
    db.execute("SELECT heartbeat_ensure_day_partition(now())");
    let mut conn = db.conn();
    for sql in heartbeat_pipeline::db::staging::CREATE_STAGING {
        diesel::sql_query(sql).execute(&mut conn).expect(sql);
    }
    (db, conn)
}

/// Persists a batch of readings alone, as the writer does.
pub fn persist_readings(
    conn: &mut PgConnection,
    readings: &[heartbeat_pipeline::domain::record::ClassifiedReading],
) -> heartbeat_pipeline::db::queries::BatchOutcome {
    use heartbeat_pipeline::db::queries::{persist_batch, BatchRows};
    persist_batch(
        conn,
        BatchRows {
            readings,
            rejects: &[],
            anomalies: &[],
            alerts: &[],
            events: &[],
            states: &[],
            checkpoints: &[],
            fence: &[],
        },
    )
    .expect("persist the batch")
}
