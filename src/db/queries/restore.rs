//! What a new owner of a partition loads: the saved detector states, the stored readings they do
//! not hold yet, the identities already stored, and the database clock.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgConnection, PgValue};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use uuid::Uuid;

use super::batch::ROWS_PER_STATEMENT;
use crate::db::models::SavedState;
use crate::db::schema::{detector_state, readings};
use crate::db::DbError;
use crate::domain::reading::Activity;

/// The saved detector states of `customers` (those that have one).
pub fn load_states(
    conn: &mut PgConnection,
    customers: &[String],
) -> Result<Vec<SavedState>, DbError> {
    detector_state::table
        .filter(detector_state::customer_id.eq_any(customers))
        .select(SavedState::as_select())
        .load(conn)
        .map_err(DbError::query("load detector state"))
}

/// `at` minus `span`, saturating at the earliest instant chrono can hold: a look-back longer than
/// the clock goes back means everything.
fn look_back(at: DateTime<Utc>, span: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(span)
        .ok()
        .and_then(|span| at.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The saved detector states of the customers of `partitions` that were active within the last
/// `active_within` (those quiet for longer are forgotten, SPEC section 5, and loaded again by
/// [`load_states`] when they send), at most `limit` of them, the most recently saved first (the
/// detector's memory budget; the others are loaded when they send).
pub fn load_partition_states(
    conn: &mut PgConnection,
    partitions: &[i32],
    active_within: std::time::Duration,
    limit: usize,
) -> Result<Vec<SavedState>, DbError> {
    let since = look_back(Utc::now(), active_within);
    detector_state::table
        .filter(detector_state::kafka_partition.eq_any(partitions))
        .filter(detector_state::updated_at.gt(since))
        .order(detector_state::updated_at.desc())
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .select(SavedState::as_select())
        .load(conn)
        .map_err(DbError::query("load detector state of partitions"))
}

/// PostgreSQL's clock now: every transaction that starts after this returns has a `now()` (and so
/// stores readings with an `ingested_at`) at or after it.
pub fn database_clock(conn: &mut PgConnection) -> Result<DateTime<Utc>, DbError> {
    #[derive(QueryableByName)]
    struct Clock {
        #[diesel(sql_type = Timestamptz)]
        now: DateTime<Utc>,
    }
    diesel::sql_query("SELECT clock_timestamp() AS now")
        .get_result::<Clock>(conn)
        .map(|c| c.now)
        .map_err(DbError::query("read the database clock"))
}

/// A stored reading that a saved detector state may not hold yet.
#[derive(Debug, Clone, QueryableByName)]
pub struct TailReading {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub customer_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub recorded_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    pub heart_rate: i16,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub kafka_partition: i32,
    #[diesel(sql_type = BigInt)]
    pub kafka_offset: i64,
    /// `readings.activity`: a replay counts readings toward an alert as the first pass did.
    #[diesel(sql_type = Nullable<Text>, deserialize_as = StoredActivity)]
    pub activity: Option<Activity>,
}

/// `readings.activity` as read back, without allocating a string per row: one of the four words,
/// else (null, or text some other writer put there) unknown, never an error that would stop a
/// partition's restore.
struct StoredActivity(Option<Activity>);

impl From<StoredActivity> for Option<Activity> {
    fn from(stored: StoredActivity) -> Self {
        stored.0
    }
}

impl FromSql<Nullable<Text>, Pg> for StoredActivity {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        Self::from_nullable_sql(Some(value))
    }

    fn from_nullable_sql(value: Option<PgValue<'_>>) -> deserialize::Result<Self> {
        Ok(StoredActivity(value.and_then(|v| {
            std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(Activity::from_word)
        })))
    }
}

/// The readings of each partition stored at or after its bound (`None`: every one stored), in
/// the order they were observed: per partition, by offset. Which of them a saved state misses is
/// the caller's to decide (`CustomerState::misses`); the bound (a checkpoint's `replay_from`)
/// only limits the scan, through the BRIN index on `ingested_at`.
pub fn load_tails(
    conn: &mut PgConnection,
    bounds: &[(i32, Option<DateTime<Utc>>)],
) -> Result<Vec<TailReading>, DbError> {
    let since: HashMap<i32, DateTime<Utc>> = bounds
        .iter()
        .filter_map(|(p, b)| Some((*p, (*b)?)))
        .collect();
    let unbounded: Vec<i32> = bounds
        .iter()
        .filter(|(_, b)| b.is_none())
        .map(|(p, _)| *p)
        .collect();
    let mut out: Vec<TailReading> = Vec::new();
    if let Some(earliest) = since.values().min().copied() {
        let parts: Vec<i32> = since.keys().copied().collect();
        // One scan from the earliest bound, exact per partition.
        let rows: Vec<TailRow> = diesel::sql_query(
            "SELECT event_id, customer_id, recorded_at, heart_rate, kafka_partition, \
             kafka_offset, activity, ingested_at FROM readings \
             WHERE ingested_at >= $1 AND kafka_partition = ANY($2)",
        )
        .bind::<Timestamptz, _>(earliest)
        .bind::<Array<Integer>, _>(&parts)
        .load(conn)
        .map_err(DbError::query(
            "load the readings stored since the detector checkpoint",
        ))?;
        out.extend(
            rows.into_iter()
                .filter(|r| {
                    since
                        .get(&r.reading.kafka_partition)
                        .is_some_and(|s| r.ingested_at >= *s)
                })
                .map(|r| r.reading),
        );
    }
    if !unbounded.is_empty() {
        let rows: Vec<TailReading> = diesel::sql_query(
            "SELECT event_id, customer_id, recorded_at, heart_rate, kafka_partition, \
             kafka_offset, activity FROM readings WHERE kafka_partition = ANY($1)",
        )
        .bind::<Array<Integer>, _>(&unbounded)
        .load(conn)
        .map_err(DbError::query(
            "load the readings of partitions without a detector checkpoint",
        ))?;
        out.extend(rows);
    }
    out.sort_by_key(|r| (r.kafka_partition, r.kafka_offset));
    Ok(out)
}

#[derive(QueryableByName)]
struct TailRow {
    #[diesel(embed)]
    reading: TailReading,
    #[diesel(sql_type = Timestamptz)]
    ingested_at: DateTime<Utc>,
}

/// Which of `ids` (event_id, recorded_at) are already stored in `readings`.
pub fn stored_identities(
    conn: &mut PgConnection,
    ids: &[(Uuid, DateTime<Utc>)],
) -> Result<HashSet<(Uuid, DateTime<Utc>)>, DbError> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let event_ids: Vec<Uuid> = chunk.iter().map(|(e, _)| *e).collect();
        let times: Vec<DateTime<Utc>> = chunk.iter().map(|(_, t)| *t).collect();
        let min = times.iter().min().copied().unwrap_or_default();
        let max = times.iter().max().copied().unwrap_or_default();
        // The time range lets PostgreSQL prune day partitions; the pair check is exact.
        let rows: Vec<(Uuid, DateTime<Utc>)> = readings::table
            .filter(readings::event_id.eq_any(&event_ids))
            .filter(readings::recorded_at.between(min, max))
            .select((readings::event_id, readings::recorded_at))
            .load(conn)
            .map_err(DbError::query("look up stored readings"))?;
        let wanted: HashSet<(Uuid, DateTime<Utc>)> = chunk.iter().copied().collect();
        found.extend(rows.into_iter().filter(|id| wanted.contains(id)));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};

    #[test]
    fn a_look_back_saturates_instead_of_panicking() {
        let now = Utc::now();
        assert_eq!(
            super::look_back(now, Duration::from_secs(1)),
            now - TimeDelta::seconds(1)
        );
        for span in [Duration::from_millis(9_000_000_000_000_000), Duration::MAX] {
            assert_eq!(super::look_back(now, span), DateTime::<Utc>::MIN_UTC);
        }
    }
}
