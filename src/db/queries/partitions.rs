//! The day partitions of `readings`: created ahead of the data and on demand for every day a batch
//! touches (in bulk: a batch may span thousands of days), dropped when expired.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Date, Text};

use crate::db::DbError;

/// The UTC day of an instant (partitions are per UTC day).
pub fn utc_day(at: &DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// Missing days per creating statement. Each partition made holds an ACCESS EXCLUSIVE lock on
/// `readings` (every reader and writer of the table waits) and about six entries of the shared
/// lock table (64 per connection by default) until its transaction commits. Measured here a
/// partition takes 10-40 ms to create (two fsyncs, see migration 000027): 32 bound a statement to
/// about a second of locks at worst and 200 lock entries, while the commit and the round trip (a
/// few ms each on a busy disk) are paid once per 32 days instead of once per day.
const DAYS_PER_STATEMENT: usize = 32;

#[derive(Debug, QueryableByName)]
struct Missing {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
}

/// Makes sure a partition of `readings` exists for each day: one query finds the days without
/// one (the writer asks for every day it does not know yet, also right after a start), then the
/// missing ones are made [`DAYS_PER_STATEMENT`] at a time, each statement its own short
/// transaction serialized by the advisory lock inside the SQL function. Returns how many were
/// made (another processor may have made some meanwhile: those are not counted).
pub fn ensure_day_partitions(
    conn: &mut PgConnection,
    days: &BTreeSet<NaiveDate>,
) -> Result<usize, DbError> {
    if days.is_empty() {
        return Ok(0);
    }
    let wanted: Vec<NaiveDate> = days.iter().copied().collect();
    let missing: Vec<Missing> =
        diesel::sql_query("SELECT heartbeat_missing_day_partitions($1) AS day")
            .bind::<Array<Date>, _>(&wanted)
            .load(conn)
            .map_err(DbError::query("look up the day partitions of readings"))?;
    let missing: Vec<NaiveDate> = missing.into_iter().map(|m| m.day).collect();
    let mut created = 0;
    for chunk in missing.chunks(DAYS_PER_STATEMENT) {
        let made: Created =
            diesel::sql_query("SELECT count(*) AS n FROM heartbeat_ensure_day_partitions($1)")
                .bind::<Array<Date>, _>(chunk)
                .get_result(conn)
                .map_err(DbError::query("create day partitions of readings"))?;
        created += usize::try_from(made.n).unwrap_or_default();
    }
    Ok(created)
}

#[derive(Debug, QueryableByName)]
struct Created {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(Debug, QueryableByName)]
struct Dropped {
    #[diesel(sql_type = Text)]
    heartbeat_drop_expired_partitions: String,
}

/// Drops the day partitions of `readings` older than `keep_days` days (retention); returns their
/// names.
pub fn drop_expired_partitions(
    conn: &mut PgConnection,
    keep_days: i32,
) -> Result<Vec<String>, DbError> {
    let dropped: Vec<Dropped> = diesel::sql_query("SELECT heartbeat_drop_expired_partitions($1)")
        .bind::<diesel::sql_types::Integer, _>(keep_days)
        .load(conn)
        .map_err(DbError::query("drop expired partitions"))?;
    Ok(dropped
        .into_iter()
        .map(|d| d.heartbeat_drop_expired_partitions)
        .collect())
}
