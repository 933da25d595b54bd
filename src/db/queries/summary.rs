//! The counts `inspect` prints.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};

use crate::db::DbError;

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
