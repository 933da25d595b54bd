//! The writer's transaction and the summaries of `inspect`.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use uuid::Uuid;

use super::models::{NewAnomaly, NewReading, NewRejected};
use super::schema::{anomalies, readings, rejected_readings};
use super::DbError;
use crate::domain::classification::AnomalyKind;
use crate::domain::record::{Anomaly, ClassifiedReading, RejectedRecord};

/// Rows per INSERT statement: PostgreSQL binds at most 65,535 parameters per statement and a
/// reading takes 7, so stay well under 9,362 rows.
const ROWS_PER_STATEMENT: usize = 4_000;

/// What one batch did to the tables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Readings inserted (new identities).
    pub stored: u64,
    /// Valid readings whose identity was already stored (or repeated within the batch).
    pub duplicates: u64,
    /// Reject rows inserted (a record read again adds none).
    pub rejected: u64,
    /// Anomalies inserted, by kind.
    pub anomalies: HashMap<AnomalyKind, u64>,
}

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

/// Stores one batch in one transaction: its readings (first copy of an identity wins), the
/// anomalies of the readings that were new, and its rejects. Either all of it commits or none.
pub fn persist_batch(
    conn: &mut PgConnection,
    readings_in: &[ClassifiedReading],
    rejects_in: &[RejectedRecord],
    anomalies_in: &[Anomaly],
) -> Result<BatchOutcome, DbError> {
    // The first copy of an identity within the batch wins, as across batches.
    let mut seen = HashSet::with_capacity(readings_in.len());
    let rows: Vec<NewReading<'_>> = readings_in
        .iter()
        .filter(|r| seen.insert((r.reading.event_id, r.reading.recorded_at)))
        .map(|r| NewReading {
            event_id: r.reading.event_id,
            customer_id: &r.reading.customer_id,
            recorded_at: r.reading.recorded_at,
            heart_rate: r.reading.heart_rate,
            class: r.class.as_str(),
            kafka_partition: r.partition,
            kafka_offset: r.offset,
        })
        .collect();
    let rejects: Vec<NewRejected<'_>> = rejects_in
        .iter()
        .map(|r| NewRejected {
            raw: r.raw(),
            reason: r.reason.as_str(),
            detail: &r.detail,
            kafka_topic: &r.topic,
            kafka_partition: r.partition,
            kafka_offset: r.offset,
        })
        .collect();

    conn.transaction::<_, DbError, _>(|conn| {
        let mut inserted: HashSet<(Uuid, DateTime<Utc>)> = HashSet::with_capacity(rows.len());
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<(Uuid, DateTime<Utc>)> = diesel::insert_into(readings::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .returning((readings::event_id, readings::recorded_at))
                .get_results(conn)
                .map_err(DbError::query("insert readings"))?;
            inserted.extend(ids);
        }

        // A duplicate changes no anomaly: only readings stored now may add one.
        let new_anomalies: Vec<NewAnomaly<'_>> = anomalies_in
            .iter()
            .filter(|a| match a.event_id {
                Some(id) => inserted.contains(&(id, a.recorded_at)),
                None => true,
            })
            .map(|a| NewAnomaly {
                event_id: a.event_id,
                customer_id: &a.customer_id,
                kind: a.kind.as_str(),
                heart_rate: a.heart_rate,
                recorded_at: a.recorded_at,
                details: &a.details,
            })
            .collect();
        let mut anomalies_by_kind = HashMap::new();
        for chunk in new_anomalies.chunks(ROWS_PER_STATEMENT) {
            let kinds: Vec<String> = diesel::insert_into(anomalies::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .returning(anomalies::kind)
                .get_results(conn)
                .map_err(DbError::query("insert anomalies"))?;
            for kind in kinds {
                if let Some(k) = AnomalyKind::ALL.iter().find(|k| k.as_str() == kind) {
                    *anomalies_by_kind.entry(*k).or_insert(0) += 1;
                }
            }
        }

        let mut rejected = 0;
        for chunk in rejects.chunks(ROWS_PER_STATEMENT) {
            rejected += diesel::insert_into(rejected_readings::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(conn)
                .map_err(DbError::query("insert rejected readings"))?
                as u64;
        }

        Ok(BatchOutcome {
            stored: inserted.len() as u64,
            duplicates: (readings_in.len() - inserted.len()) as u64,
            rejected,
            anomalies: anomalies_by_kind,
        })
    })
}

#[derive(Debug, QueryableByName)]
pub struct LabelCount {
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

#[derive(Debug, QueryableByName)]
pub struct Totals {
    #[diesel(sql_type = BigInt)]
    pub readings: i64,
    #[diesel(sql_type = BigInt)]
    pub rejected: i64,
    #[diesel(sql_type = BigInt)]
    pub anomalies: i64,
    #[diesel(sql_type = BigInt)]
    pub open_alerts: i64,
    #[diesel(sql_type = BigInt)]
    pub customers: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub newest: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub newest_ingested: Option<DateTime<Utc>>,
}

/// The database summary `inspect` prints.
#[derive(Debug)]
pub struct Summary {
    pub totals: Totals,
    pub classes: Vec<LabelCount>,
    pub anomalies: Vec<LabelCount>,
    pub open_alerts: Vec<LabelCount>,
    pub rejects: Vec<LabelCount>,
    pub top_customers: Vec<LabelCount>,
}

fn label_counts(conn: &mut PgConnection, sql: &str) -> Result<Vec<LabelCount>, DbError> {
    diesel::sql_query(sql)
        .load(conn)
        .map_err(DbError::query("summarize the tables"))
}

pub fn summary(conn: &mut PgConnection) -> Result<Summary, DbError> {
    let totals: Totals = diesel::sql_query(
        "SELECT (SELECT count(*) FROM readings) AS readings, \
                (SELECT count(*) FROM rejected_readings) AS rejected, \
                (SELECT count(*) FROM anomalies) AS anomalies, \
                (SELECT count(*) FROM alerts WHERE resolved_at IS NULL) AS open_alerts, \
                (SELECT count(DISTINCT customer_id) FROM readings) AS customers, \
                (SELECT max(recorded_at) FROM readings) AS newest, \
                (SELECT max(ingested_at) FROM readings) AS newest_ingested",
    )
    .get_result(conn)
    .map_err(DbError::query("count the tables"))?;
    Ok(Summary {
        totals,
        classes: label_counts(
            conn,
            "SELECT class AS label, count(*) AS n FROM readings GROUP BY 1 ORDER BY 2 DESC",
        )?,
        anomalies: label_counts(
            conn,
            "SELECT kind AS label, count(*) AS n FROM anomalies GROUP BY 1 ORDER BY 2 DESC",
        )?,
        open_alerts: label_counts(
            conn,
            "SELECT kind AS label, count(*) AS n FROM alerts WHERE resolved_at IS NULL \
             GROUP BY 1 ORDER BY 2 DESC",
        )?,
        rejects: label_counts(
            conn,
            "SELECT reason AS label, count(*) AS n FROM rejected_readings GROUP BY 1 \
             ORDER BY 2 DESC",
        )?,
        top_customers: label_counts(
            conn,
            "SELECT customer_id AS label, count(*) AS n FROM anomalies GROUP BY 1 \
             ORDER BY 2 DESC, 1 LIMIT 10",
        )?,
    })
}
