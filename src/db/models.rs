//! Rows as the writer stores them (diesel's inserts, or COPY's binary format through
//! `db::copy`) and reads them back. Borrowed fields, so a batch is written without copying it.

use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::sql_types::Jsonb;
use uuid::Uuid;

use super::copy::BinaryRows;
use super::schema::{anomalies, detector_state, rejected_readings};
use crate::domain::record::Details;
use crate::domain::rfc3339;

/// A reading as the writer stores it: COPYed straight into `readings` when no row can conflict,
/// or into the staging table first (see `db::staging`); both take these columns in this order.
#[derive(Debug)]
pub struct NewReading<'a> {
    pub event_id: Uuid,
    pub customer_id: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub heart_rate: i16,
    pub class: &'static str,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    /// `Activity::as_str`, or `None` (null) when unknown: a static word, nothing to allocate per
    /// row.
    pub activity: Option<&'static str>,
    /// The device that measured it (`Reading::device_id`), `None` (null) when unknown; borrowed
    /// from the reading like `customer_id`.
    pub device_id: Option<&'a str>,
}

impl NewReading<'_> {
    /// event_id, customer_id, recorded_at, heart_rate, class, kafka_partition, kafka_offset,
    /// activity, device_id.
    pub const COLUMNS: i16 = 9;

    /// Appends the row in COPY's binary format.
    pub fn encode(&self, rows: &mut BinaryRows) {
        rows.row(Self::COLUMNS);
        rows.uuid(&self.event_id);
        rows.text(self.customer_id);
        rows.timestamptz(self.recorded_at);
        rows.int2(self.heart_rate);
        rows.text(self.class);
        rows.int4(self.kafka_partition);
        rows.int8(self.kafka_offset);
        rows.opt_text(self.activity);
        rows.opt_text(self.device_id);
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
/// `db::staging`) when it may be stored already, else straight into `anomalies` with its id (as
/// a [`StoredAnomaly`]).
#[derive(Debug)]
pub struct NewAnomaly<'a> {
    pub event_id: Option<Uuid>,
    pub customer_id: &'a str,
    pub kind: &'static str,
    pub heart_rate: Option<i16>,
    pub recorded_at: DateTime<Utc>,
    pub details: &'a Details,
}

impl NewAnomaly<'_> {
    /// event_id, customer_id, kind, heart_rate, recorded_at, details: `anomalies_stage`.
    pub const COLUMNS: i16 = 6;

    /// Appends the row in COPY's binary format.
    pub fn encode(&self, rows: &mut BinaryRows) -> serde_json::Result<()> {
        rows.row(Self::COLUMNS);
        rows.opt_uuid(self.event_id.as_ref());
        rows.text(self.customer_id);
        rows.text(self.kind);
        rows.opt_int2(self.heart_rate);
        rows.timestamptz(self.recorded_at);
        rows.jsonb(self.details)
    }
}

/// Details read back from the database (a `jsonb`), as [`Details::Json`].
#[derive(diesel::deserialize::FromSqlRow)]
pub struct DetailsFromDb(serde_json::Value);

impl From<DetailsFromDb> for Details {
    fn from(d: DetailsFromDb) -> Details {
        Details::Json(d.0)
    }
}

impl diesel::deserialize::FromSql<Jsonb, Pg> for DetailsFromDb {
    fn from_sql(value: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        <serde_json::Value as diesel::deserialize::FromSql<Jsonb, Pg>>::from_sql(value)
            .map(DetailsFromDb)
    }
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
/// RFC 3339). The direct path COPYs it with its id and time ([`StoredAnomaly::encode`]).
#[derive(Debug, Clone, PartialEq, QueryableByName, serde::Serialize)]
#[diesel(table_name = anomalies)]
pub struct StoredAnomaly {
    pub id: i64,
    pub event_id: Option<Uuid>,
    pub customer_id: String,
    pub kind: String,
    pub heart_rate: Option<i16>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub recorded_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub detected_at: DateTime<Utc>,
    #[diesel(deserialize_as = DetailsFromDb)]
    pub details: Details,
}

impl StoredAnomaly {
    /// id, event_id, customer_id, kind, heart_rate, recorded_at, detected_at, details:
    /// `anomalies`.
    pub const COLUMNS: i16 = 8;

    /// Appends the row in COPY's binary format.
    pub fn encode(&self, rows: &mut BinaryRows) -> serde_json::Result<()> {
        rows.row(Self::COLUMNS);
        rows.int8(self.id);
        rows.opt_uuid(self.event_id.as_ref());
        rows.text(&self.customer_id);
        rows.text(&self.kind);
        rows.opt_int2(self.heart_rate);
        rows.timestamptz(self.recorded_at);
        rows.timestamptz(self.detected_at);
        rows.jsonb(&self.details)
    }
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
