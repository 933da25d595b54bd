//! The counts `inspect` prints, and the alert burden (docs/OPERATIONS.md, "Alert burden"), whose
//! definition the Grafana burden panel (deploy/grafana/dashboards/fleet.json) repeats word for
//! word.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamptz};

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
    /// Customers with an activated open episode: those being paged now.
    #[diesel(sql_type = BigInt)]
    pub paged_customers: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub newest: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub newest_ingested: Option<DateTime<Utc>>,
}

/// The alert burden: activated episodes per customer-day over the 24 hours of reading time up
/// to the newest reading, i.e. the readings with `recorded_at` in (newest - 24 h, newest].
/// `activated` counts the episodes whose `activated_at` falls in that window; `customer_days` is
/// the customers with a reading in it times the span it covers, in days: its newest reading's
/// time less its oldest's (so at most a day, and a ten-minute run is measured over its ten
/// minutes, not a whole day). Reading time, not the clock: a replay of old records gives the
/// same figure.
#[derive(Debug, QueryableByName)]
pub struct Burden {
    #[diesel(sql_type = BigInt)]
    pub activated: i64,
    #[diesel(sql_type = BigInt)]
    pub customers: i64,
    /// The span covered, in days; 0 without readings, or with readings of one instant only.
    #[diesel(sql_type = Double)]
    pub days: f64,
    /// `activated / (customers * days)`; `None` when there are no customer-days to divide by.
    #[diesel(sql_type = Nullable<Double>)]
    pub per_customer_day: Option<f64>,
}

/// The burden's query; the Grafana panel "Alert burden" runs the same.
pub const BURDEN_SQL: &str = "\
WITH newest AS (SELECT max(recorded_at) AS t FROM readings), \
     win AS (SELECT count(DISTINCT r.customer_id) AS customers, \
                    coalesce(extract(epoch FROM max(r.recorded_at) - min(r.recorded_at)), 0)::float8 \
                      / 86400 AS days \
             FROM readings r, newest WHERE r.recorded_at > newest.t - interval '24 hours'), \
     act AS (SELECT count(*) AS activated FROM alerts a, newest \
             WHERE a.activated_at > newest.t - interval '24 hours' AND a.activated_at <= newest.t) \
SELECT act.activated, win.customers, win.days, \
       act.activated / nullif(win.customers * win.days, 0) AS per_customer_day \
FROM act, win";

/// The database summary `inspect` prints.
#[derive(Debug)]
pub struct Summary {
    pub totals: Totals,
    pub classes: Vec<LabelCount>,
    pub anomalies: Vec<LabelCount>,
    pub open_alerts: Vec<LabelCount>,
    /// Open episodes that activated (page a person), by kind.
    pub activated_alerts: Vec<LabelCount>,
    /// Open episodes not activated (yet), by kind.
    pub pending_alerts: Vec<LabelCount>,
    pub burden: Burden,
    pub rejects: Vec<LabelCount>,
    pub top_customers: Vec<LabelCount>,
    /// Alert episode events (the delivery outbox): written, not yet at every receiver, and
    /// acknowledged by each receiver.
    pub delivery: Vec<LabelCount>,
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
                (SELECT count(DISTINCT customer_id) FROM alerts \
                 WHERE resolved_at IS NULL AND activated_at IS NOT NULL) AS paged_customers, \
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
        activated_alerts: label_counts(
            conn,
            "SELECT kind AS label, count(*) AS n FROM alerts \
             WHERE resolved_at IS NULL AND activated_at IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1",
        )?,
        pending_alerts: label_counts(
            conn,
            "SELECT kind AS label, count(*) AS n FROM alerts \
             WHERE resolved_at IS NULL AND activated_at IS NULL GROUP BY 1 ORDER BY 2 DESC, 1",
        )?,
        burden: diesel::sql_query(BURDEN_SQL)
            .get_result(conn)
            .map_err(DbError::query("measure the alert burden"))?,
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
        delivery: label_counts(
            conn,
            "SELECT label, n FROM (\
               SELECT 0 AS o, 'episode events' AS label, count(*) AS n FROM alert_events \
               UNION ALL SELECT 1, 'not yet at every receiver', count(*) FROM alert_events \
                 WHERE done_at IS NULL \
               UNION ALL SELECT 2, 'at ' || receiver, count(*) FROM alert_deliveries \
                 GROUP BY receiver) t ORDER BY o, label",
        )?,
    })
}
