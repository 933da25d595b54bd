//! PostgreSQL: the connection pool, the embedded migrations, the generated schema, the row
//! models and the queries of the writer and `inspect`.
//!
//! All SQL runs through diesel with bound parameters; no value from a record or from the
//! configuration is ever spliced into SQL text.
//!
//! Every connection (the pools of `run`, `migrate`, `inspect`, the probe, storage upkeep) is
//! opened with the URL [`connection_url`] builds from `database.*`: the password and the TLS
//! settings are applied there and nowhere else. Messages from libpq are scrubbed of the
//! password before they are shown (see [`DbError::Connect`]).

pub mod copy;
pub mod models;
pub mod queries;
pub mod schema;
pub mod staging;

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::{sql_query, Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{percent_encode, scrub_secrets, DatabaseSettings, Secret};

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

/// The migrations under `migrations/`, compiled in so the binary migrates any database.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the advisory lock that serializes migrations between processors starting together.
const MIGRATION_LOCK_KEY: i64 = 0x6862_6d69_6772; // "hbmigr"

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `reason` is libpq's message with the credentials scrubbed out.
    #[error("failed to connect to postgres at {target}: {reason} ({hint})")]
    Connect {
        target: String,
        reason: String,
        hint: &'static str,
    },
    #[error("no postgres connection within {timeout_ms} ms ({target}): {reason}")]
    /// `reason` is r2d2's message (with libpq's last one), the credentials scrubbed out.
    Checkout {
        target: String,
        timeout_ms: u128,
        reason: String,
    },
    #[error("failed to apply migrations: {0}")]
    Migrate(String),
    #[error("failed to {op}: {source}")]
    Query {
        op: &'static str,
        source: diesel::result::Error,
    },
    /// The batch's transaction was rolled back: another owner holds these partitions now
    /// (`detector_epochs`). Not an error to retry as it is; the writer drops their rows.
    #[error("partitions {partitions:?} have a new owner; their rows were not written")]
    Fenced { partitions: Vec<i32> },
}

impl DbError {
    /// Whether waiting and trying again can help: connection trouble and conflicts between
    /// transactions can pass; anything else is reported as it is, but the writer still keeps its
    /// batch and retries, since dropping it would lose records.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Connect { .. } | DbError::Checkout { .. } => true,
            DbError::Migrate(_) | DbError::Fenced { .. } => false,
            DbError::Query { source, .. } => matches!(
                source,
                Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection
                        | DatabaseErrorKind::SerializationFailure
                        | DatabaseErrorKind::UnableToSendCommand,
                    _
                ) | Error::BrokenTransactionManager
            ),
        }
    }

    pub fn query(op: &'static str) -> impl FnOnce(diesel::result::Error) -> DbError {
        move |source| DbError::Query { op, source }
    }
}

impl From<diesel::result::Error> for DbError {
    /// An error of a transaction as a whole (begin or commit).
    fn from(source: diesel::result::Error) -> Self {
        DbError::Query {
            op: "run the batch transaction",
            source,
        }
    }
}

/// The URL every connection uses: `database.url` (or what `database.url_file` held) with
/// `database.password` in place of its password, and `database.sslmode` / `database.sslrootcert`
/// added as libpq's URL parameters. A secret, like the URL.
pub fn connection_url(settings: &DatabaseSettings) -> Secret {
    let mut url = settings.url.expose().to_owned();
    if !settings.password.is_empty() {
        url = with_password(&url, &percent_encode(settings.password.expose()));
    }
    for (key, value) in [
        ("sslmode", settings.sslmode.as_str()),
        ("sslrootcert", settings.sslrootcert.as_str()),
    ] {
        if !value.is_empty() {
            let sep = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{sep}{key}={}", percent_encode(value));
        }
    }
    Secret::new(url)
}

/// `url` with the password of its user info replaced by `password` (already encoded); a URL
/// without user info gets the password for the default user name, which libpq then takes from
/// the environment (PGUSER) or the OS user.
fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap_or(""), host),
        None => ("", authority),
    };
    format!("{scheme}://{user}:{password}@{host}{tail}")
}

/// libpq's message about a failed connection, with the password (as given and as encoded in the
/// URL) and the whole connection URL replaced by `<redacted>`; and a hint for the operator.
fn connect_error(settings: &DatabaseSettings, error: &diesel::ConnectionError) -> DbError {
    let reason = scrub_secrets(error.to_string().trim_end(), &credentials(settings));
    let lower = reason.to_ascii_lowercase();
    let hint = if lower.contains("certificate")
        || lower.contains("ssl")
        || lower.contains("tls")
        || lower.contains("root.crt")
    {
        "check database.sslmode and database.sslrootcert: the server's certificate must chain to \
         that CA and, for verify-full, name the host in database.url"
    } else if lower.contains("password") || lower.contains("authentication") {
        "check the user and database.password (or the password in database.url)"
    } else {
        "is it running, and is database.url right?"
    };
    DbError::Connect {
        target: target(&settings.url),
        reason,
        hint,
    }
}

/// What a message must never show: the URLs and the password, as given and as encoded.
fn credentials(settings: &DatabaseSettings) -> Vec<String> {
    vec![
        connection_url(settings).expose().to_owned(),
        settings.url.expose().to_owned(),
        settings.password.expose().to_owned(),
        url_password(settings.url.expose()),
    ]
}

/// The password in a URL's user info, decoded as libpq would, or empty.
fn url_password(url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return String::new();
    };
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return String::new();
    };
    let Some((_, password)) = userinfo.split_once(':') else {
        return String::new();
    };
    percent_decode(password)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host:port/database` of a URL, for messages (never the credentials).
pub fn target(url: &Secret) -> String {
    let redacted = url.redacted();
    match redacted.rsplit_once('@') {
        Some((_, rest)) => rest.to_owned(),
        None => redacted,
    }
}

/// A pool that connects lazily: building it never fails because PostgreSQL is down, so the
/// daemon can start and wait for it.
pub fn pool(settings: &DatabaseSettings, size: u32) -> PgPool {
    let manager = ConnectionManager::<PgConnection>::new(connection_url(settings).expose());
    Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(0))
        .connection_timeout(settings.connect_timeout_ms)
        // The writer logs failures itself, once and rate-limited; r2d2's handler would log every
        // attempt during an outage.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .connection_customizer(Box::new(staging::StagingTables))
        .build_unchecked(manager)
}

/// Takes a connection from `pool`, mapping a timeout to a clear error.
pub fn checkout(
    pool: &PgPool,
    settings: &DatabaseSettings,
) -> Result<diesel::r2d2::PooledConnection<ConnectionManager<PgConnection>>, DbError> {
    pool.get().map_err(|source| DbError::Checkout {
        target: target(&settings.url),
        timeout_ms: pool.connection_timeout().as_millis(),
        reason: scrub_secrets(&source.to_string(), &credentials(settings)),
    })
}

/// One direct connection (commands that run a few queries and exit).
pub fn connect(settings: &DatabaseSettings) -> Result<PgConnection, DbError> {
    PgConnection::establish(connection_url(settings).expose())
        .map_err(|e| connect_error(settings, &e))
}

/// Versions of the embedded migrations the database has not applied, or `None` when its
/// bookkeeping table cannot be read (a fresh database).
fn pending_versions(conn: &mut PgConnection) -> Option<Vec<String>> {
    use diesel::migration::MigrationSource;
    use diesel::sql_types::Text;
    #[derive(diesel::QueryableByName)]
    struct Applied {
        #[diesel(sql_type = Text)]
        version: String,
    }
    let applied: Vec<Applied> = sql_query("SELECT version FROM __diesel_schema_migrations")
        .load(conn)
        .ok()?;
    let embedded = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).ok()?;
    Some(
        embedded
            .iter()
            .map(|m| m.name().version().to_string())
            .filter(|v| !applied.iter().any(|a| &a.version == v))
            .collect(),
    )
}

/// Applies the pending migrations under an advisory lock, so processors that start together
/// migrate once. Returns the versions applied.
///
/// When nothing is pending it changes nothing and needs no privilege but reading the
/// bookkeeping table: so a processor running as `heartbeat_writer`, which may not create
/// tables, starts on a database its owner migrated (diesel's own check would try to create the
/// bookkeeping table first, which the writer may not).
pub fn migrate(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    if pending_versions(conn).is_some_and(|p| p.is_empty()) {
        return Ok(Vec::new());
    }
    sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(conn)
        .map_err(DbError::query("take the migration lock"))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect::<Vec<_>>())
        .map_err(|e| {
            let e = e.to_string();
            if e.contains("permission denied") || e.contains("must be owner") {
                DbError::Migrate(format!(
                    "{e} (migrations need the database's owner, not a heartbeat_writer login: \
                     run `heartbeat-pipeline migrate` with the owner's credentials; see \
                     docs/SECURITY.md)"
                ))
            } else {
                DbError::Migrate(e)
            }
        });
    let unlocked = sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(conn)
        .map_err(DbError::query("release the migration lock"));
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

/// Whether PostgreSQL answers a trivial query on `conn`.
pub fn ping(conn: &mut PgConnection) -> bool {
    sql_query("SELECT 1").execute(conn).is_ok()
}

/// How long to wait before retry `attempt` (0-based): doubling from `min` up to `max`.
pub fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_never_shows_credentials() {
        let url = Secret::new("postgres://u:pw@db.example:5432/hb");
        assert_eq!(target(&url), "db.example:5432/hb");
    }

    fn settings(url: &str) -> DatabaseSettings {
        DatabaseSettings {
            url: Secret::new(url),
            url_file: String::new(),
            password: Secret::new(""),
            password_file: String::new(),
            sslmode: crate::config::SslMode::Unset,
            sslrootcert: String::new(),
            pool_size: 1,
            connect_timeout_ms: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn the_connection_url_carries_the_password_and_tls_settings() {
        let mut s = settings("postgres://app:old@db:5432/hb");
        assert_eq!(connection_url(&s).expose(), "postgres://app:old@db:5432/hb");
        s.password = Secret::new("n3w p@ss/:?&");
        s.sslmode = crate::config::SslMode::VerifyFull;
        s.sslrootcert = "/etc/ssl/pg ca.pem".into();
        assert_eq!(
            connection_url(&s).expose(),
            "postgres://app:n3w%20p%40ss%2F%3A%3F%26@db:5432/hb?sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fssl%2Fpg%20ca.pem"
        );
        let mut s = settings("postgresql://db/hb?application_name=x");
        s.password = Secret::new("pw");
        s.sslmode = crate::config::SslMode::Require;
        assert_eq!(
            connection_url(&s).expose(),
            "postgresql://:pw@db/hb?application_name=x&sslmode=require"
        );
    }

    #[test]
    fn a_connection_error_never_shows_the_password() {
        let mut s = settings("postgres://app:url%2Fpw@127.0.0.1:1/hb");
        let e = diesel::ConnectionError::BadConnection(
            "invalid URI postgres://app:url%2Fpw@127.0.0.1:1/hb, url/pw, set-pw".into(),
        );
        s.password = Secret::new("set-pw");
        let shown = connect_error(&s, &e).to_string();
        assert!(
            !shown.contains("url/pw") && !shown.contains("url%2Fpw") && !shown.contains("set-pw"),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:1/hb"), "{shown}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff(0, min, max), min);
        assert_eq!(backoff(3, min, max), Duration::from_millis(800));
        assert_eq!(backoff(40, min, max), max);
    }
}
