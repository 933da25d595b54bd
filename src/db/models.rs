//! Rows as diesel inserts them. Borrowed fields, so a batch is written without copying it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{anomalies, detector_state, readings, rejected_readings};
use super::staging::{anomalies_stage, readings_stage};

/// A reading as the writer stores it, for one table: COPYed straight into `readings` when no
/// row can conflict, or into the staging table first (see `db::staging`).
macro_rules! new_reading {
    ($name:ident, $table:ident) => {
        #[derive(Debug, Insertable)]
        #[diesel(table_name = $table)]
        #[diesel(treat_none_as_default_value = false)]
        pub struct $name<'a> {
            pub event_id: Uuid,
            pub customer_id: &'a str,
            pub recorded_at: DateTime<Utc>,
            pub heart_rate: i16,
            pub class: &'static str,
            pub kafka_partition: i32,
            pub kafka_offset: i64,
            /// `Activity::as_str`, or `None` (null) when unknown: a static word, nothing to
            /// allocate per row.
            pub activity: Option<&'static str>,
            /// The device that measured it (`Reading::device_id`), `None` (null) when unknown;
            /// borrowed from the reading like `customer_id`.
            pub device_id: Option<&'a str>,
        }
    };
}
new_reading!(NewReading, readings);
new_reading!(StagedReading, readings_stage);

impl<'a> From<&NewReading<'a>> for StagedReading<'a> {
    fn from(r: &NewReading<'a>) -> Self {
        StagedReading {
            event_id: r.event_id,
            customer_id: r.customer_id,
            recorded_at: r.recorded_at,
            heart_rate: r.heart_rate,
            class: r.class,
            kafka_partition: r.kafka_partition,
            kafka_offset: r.kafka_offset,
            activity: r.activity,
            device_id: r.device_id,
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = rejected_readings)]
pub struct NewRejected<'a> {
    pub raw: &'a [u8],
    pub reason: &'static str,
    pub detail: &'a str,
    pub kafka_topic: &'a str,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

/// An anomaly a batch found, before it is stored; COPYed into the staging table (see
/// `db::staging`) when it may be stored already, else straight into `anomalies` with its id.
#[derive(Debug, Insertable)]
#[diesel(table_name = anomalies_stage)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewAnomaly<'a> {
    pub event_id: Option<Uuid>,
    pub customer_id: &'a str,
    pub kind: &'static str,
    pub heart_rate: Option<i16>,
    pub recorded_at: DateTime<Utc>,
    pub details: &'a serde_json::Value,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = detector_state)]
pub struct SavedState {
    pub customer_id: String,
    pub kafka_partition: i32,
    /// The state's JSON text, as PostgreSQL sends a `jsonb`: parsed by the detector straight into
    /// its state. (A `serde_json::Value` of each first was some 1.5 KiB per state: a takeover of
    /// 100,000 customers held 150 MiB of them.)
    #[diesel(deserialize_as = JsonText)]
    pub state: String,
}

/// A `jsonb` value's text: PostgreSQL's binary form of `jsonb` is a version byte (1) and the text.
#[derive(diesel::deserialize::FromSqlRow)]
pub struct JsonText(String);

impl From<JsonText> for String {
    fn from(text: JsonText) -> String {
        text.0
    }
}

impl diesel::deserialize::FromSql<diesel::sql_types::Jsonb, diesel::pg::Pg> for JsonText {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((1, text)) => Ok(JsonText(std::str::from_utf8(text)?.to_owned())),
            _ => Err("unsupported jsonb encoding (not version 1)".into()),
        }
    }
}

/// An anomaly row as stored, for the anomalies topic (the value is this row as JSON, times in UTC
/// RFC 3339). Insertable as it is: the direct path COPYs it with its id and time.
#[derive(Debug, Clone, PartialEq, QueryableByName, Insertable, serde::Serialize)]
#[diesel(table_name = anomalies)]
#[diesel(treat_none_as_default_value = false)]
pub struct StoredAnomaly {
    pub id: i64,
    pub event_id: Option<Uuid>,
    pub customer_id: String,
    pub kind: String,
    pub heart_rate: Option<i16>,
    pub recorded_at: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
    pub details: serde_json::Value,
}

/// A customer's own alert rules (`alert_rules`, SPEC section 5), as `heartbeat-pipeline rules`
/// reads and writes them; `None` thresholds are the fleet bands.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = super::schema::alert_rules)]
pub struct AlertRule {
    pub customer_id: String,
    pub critical_low_below: Option<i32>,
    pub low_below: Option<i32>,
    pub high_above: Option<i32>,
    pub critical_high_above: Option<i32>,
    pub muted_until: Option<DateTime<Utc>>,
    pub note: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl AlertRule {
    /// The thresholds of this row, as the domain's rules read them.
    pub fn thresholds(&self) -> crate::domain::rules::Thresholds {
        crate::domain::rules::Thresholds {
            critical_low_below: self.critical_low_below.map(i64::from),
            low_below: self.low_below.map(i64::from),
            high_above: self.high_above.map(i64::from),
            critical_high_above: self.critical_high_above.map(i64::from),
        }
    }
}
