//! The day partitions of `readings`: created ahead of the data, dropped when expired.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};

use crate::db::DbError;

/// The UTC day of an instant (partitions are per UTC day).
pub fn utc_day(at: &DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// Makes sure a partition of `readings` exists for each day. DDL runs in its own short
/// transactions, serialized by an advisory lock inside the SQL function.
pub fn ensure_day_partitions(
    conn: &mut PgConnection,
    days: &BTreeSet<NaiveDate>,
) -> Result<(), DbError> {
    for day in days {
        let start = day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_default();
        diesel::sql_query("SELECT heartbeat_ensure_day_partition($1)")
            .bind::<Timestamptz, _>(start)
            .execute(conn)
            .map_err(DbError::query("create a day partition of readings"))?;
    }
    Ok(())
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
