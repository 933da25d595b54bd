//! PostgreSQL: the connection pool, the embedded migrations, the generated schema, the row
//! models and the queries of the writer and `inspect`.
//!
//! All SQL runs through diesel with bound parameters; no value from a record or from the
//! configuration is ever spliced into SQL text.

pub mod models;
pub mod queries;
pub mod schema;
pub mod staging;

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::{sql_query, Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{DatabaseSettings, Secret};

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

/// The migrations under `migrations/`, compiled in so the binary migrates any database.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the advisory lock that serializes migrations between processors starting together.
const MIGRATION_LOCK_KEY: i64 = 0x6862_6d69_6772; // "hbmigr"

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("failed to connect to postgres at {target}: {source} (is it running, and is database.url right?)")]
    Connect {
        target: String,
        source: diesel::ConnectionError,
    },
    #[error("no postgres connection within {timeout_ms} ms ({target}): {source}")]
    Checkout {
        target: String,
        timeout_ms: u128,
        source: diesel::r2d2::PoolError,
    },
    #[error("failed to apply migrations: {0}")]
    Migrate(String),
    #[error("failed to {op}: {source}")]
    Query {
        op: &'static str,
        source: diesel::result::Error,
    },
}

impl DbError {
    /// Whether waiting and trying again can help: connection trouble and conflicts between
    /// transactions can pass; anything else is reported as it is, but the writer still keeps its
    /// batch and retries, since dropping it would lose records.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Connect { .. } | DbError::Checkout { .. } => true,
            DbError::Migrate(_) => false,
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
    let manager = ConnectionManager::<PgConnection>::new(settings.url.expose());
    Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(0))
        .connection_timeout(crate::config::millis(settings.connect_timeout_ms))
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
        source,
    })
}

/// One direct connection (commands that run a few queries and exit).
pub fn connect(settings: &DatabaseSettings) -> Result<PgConnection, DbError> {
    PgConnection::establish(settings.url.expose()).map_err(|source| DbError::Connect {
        target: target(&settings.url),
        source,
    })
}

/// Applies the pending migrations under an advisory lock, so processors that start together
/// migrate once. Returns the versions applied.
pub fn migrate(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(conn)
        .map_err(DbError::query("take the migration lock"))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect::<Vec<_>>())
        .map_err(|e| DbError::Migrate(e.to_string()));
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

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff(0, min, max), min);
        assert_eq!(backoff(3, min, max), Duration::from_millis(800));
        assert_eq!(backoff(40, min, max), max);
    }
}
