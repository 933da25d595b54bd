//! Rows as diesel inserts them. Borrowed fields, so a batch is written without copying it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{anomalies, readings, rejected_readings};

#[derive(Debug, Insertable)]
#[diesel(table_name = readings)]
pub struct NewReading<'a> {
    pub event_id: Uuid,
    pub customer_id: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub heart_rate: i16,
    pub class: &'static str,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
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

#[derive(Debug, Insertable)]
#[diesel(table_name = anomalies)]
pub struct NewAnomaly<'a> {
    pub event_id: Option<Uuid>,
    pub customer_id: &'a str,
    pub kind: &'static str,
    pub heart_rate: Option<i16>,
    pub recorded_at: DateTime<Utc>,
    pub details: &'a serde_json::Value,
}
