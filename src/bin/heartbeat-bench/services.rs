//! The services a benchmark runs against: admin URLs, fresh databases and topics, and the
//! environment the real `heartbeat-pipeline` binary is started with.

use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// Partitions of the benchmark topics: the default of `kafka.topics.partitions`.
pub(super) const PARTITIONS: i32 = 6;

pub(super) fn admin_url() -> String {
    std::env::var("HEARTBEAT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

pub(super) fn brokers() -> String {
    std::env::var("HEARTBEAT_BENCH_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

pub(super) fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The one bigint, named `n`, that `sql` selects.
pub(super) fn scalar(conn: &mut PgConnection, sql: &str) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<N>(conn).map(|n| n.n)
}

pub(super) fn count(conn: &mut PgConnection) -> i64 {
    scalar(
        conn,
        "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM rejected_readings) AS n",
    )
    .unwrap_or(0)
}

/// A free TCP port on the loopback interface.
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `psql` on `url` with `command`; fails with its stderr.
pub(super) fn psql(url: &str, command: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", command])
        .output()
        .context("run psql (postgresql-client)")?;
    if !out.status.success() {
        bail!("psql {command}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Applies the migrations to the database at `url` with `heartbeat-pipeline migrate`.
pub(super) fn migrate(url: &str) -> anyhow::Result<()> {
    let out = Command::new(pipeline_binary()?)
        .arg("migrate")
        .env("HEARTBEAT__DATABASE__URL", url)
        .env("HEARTBEAT__LOG__LEVEL", "error")
        .output()?;
    if !out.status.success() {
        bail!("migrate: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub(super) fn create_topics(topics: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for r in rt.block_on(admin.create_topics(new.iter(), &AdminOptions::new()))? {
        if let Err((t, e)) = r {
            bail!("cannot create topic {t}: {e}");
        }
    }
    Ok(())
}

/// A new, empty database: its name, URL, and an admin connection to drop it with afterwards.
pub(super) fn fresh_database(prefix: &str) -> anyhow::Result<(String, String, PgConnection)> {
    let db = unique(prefix);
    let mut admin = PgConnection::establish(&admin_url()).context("connect to PostgreSQL")?;
    diesel::sql_query(format!("CREATE DATABASE {db}")).execute(&mut admin)?;
    let server = admin_url()
        .rsplit_once('/')
        .map(|(s, _)| s.to_owned())
        .unwrap_or_default();
    let url = format!("{server}/{db}");
    Ok((db, url, admin))
}

/// The `heartbeat-pipeline` binary built beside this one.
pub(super) fn pipeline_binary() -> anyhow::Result<std::path::PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("heartbeat-pipeline"))
}

/// The environment of a processor or generator run on `topic` into database `url`.
pub(super) fn pipeline_env(cmd: &mut Command, topic: &str, url: &str, group: &str) {
    cmd.env("HEARTBEAT__DATABASE__URL", url)
        .env("HEARTBEAT__KAFKA__BROKERS", brokers())
        .env("HEARTBEAT__KAFKA__GROUP_ID", group)
        .env("HEARTBEAT__KAFKA__TOPICS__READINGS", topic)
        .env(
            "HEARTBEAT__KAFKA__TOPICS__DEAD_LETTER",
            format!("{topic}-dlq"),
        )
        .env(
            "HEARTBEAT__KAFKA__TOPICS__ANOMALIES",
            format!("{topic}-anomalies"),
        )
        .env(
            "HEARTBEAT__KAFKA__TOPICS__ALERTS",
            format!("{topic}-alerts"),
        )
        .env("HEARTBEAT__GENERATOR__ENABLED", "false")
        .env("HEARTBEAT__HTTP__BIND", "127.0.0.1:0")
        .env("HEARTBEAT__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}
