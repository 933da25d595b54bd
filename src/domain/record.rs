//! The units that travel down the pipeline: records as read from Kafka, readings with their
//! source position and class, rejects with their reason, anomalies, and batch positions.
//!
//! Plain data: no actix, rdkafka or diesel here, so every stage can be tested on its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::classification::{AnomalyKind, HeartRateClass};
use super::reading::Reading;
use super::validation::RejectReason;

/// One Kafka record, owned, as the subscriber read it.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Its key and value.
    pub payload: Payload,
    /// The record's own Kafka timestamp, when it has one.
    pub timestamp: Option<DateTime<Utc>>,
    /// The processor's clock when the record was read (for the delay metric only, never for a
    /// verdict).
    pub read_at: DateTime<Utc>,
    /// The generation of the partition's assignment it was read in (`progress`): a record read
    /// before a revocation is told from the copy read again after the reassignment.
    pub generation: u64,
}

/// A record's key and value (each `None` when null) in one allocation: the intake copies every
/// record out of librdkafka's buffer, and two copies were two allocations and two frees per
/// record (the key is needed only when the record is rejected).
#[derive(Debug, Clone, Default)]
pub struct Payload {
    /// The value's bytes, then the key's.
    bytes: Box<[u8]>,
    value_len: Option<usize>,
    key_len: Option<usize>,
}

impl Payload {
    pub fn new(key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        let (k, v) = (key.unwrap_or_default(), value.unwrap_or_default());
        let mut bytes = Vec::with_capacity(k.len() + v.len());
        bytes.extend_from_slice(v);
        bytes.extend_from_slice(k);
        Payload {
            bytes: bytes.into_boxed_slice(),
            value_len: value.map(<[u8]>::len),
            key_len: key.map(<[u8]>::len),
        }
    }

    /// `None` for a record with a null value.
    pub fn value(&self) -> Option<&[u8]> {
        self.value_len.map(|n| &self.bytes[..n])
    }

    pub fn key(&self) -> Option<&[u8]> {
        let start = self.value_len.unwrap_or(0);
        self.key_len.map(|n| &self.bytes[start..start + n])
    }
}

impl SourceRecord {
    /// The instant a reading's timestamp is held to its time bounds against: the record's own
    /// Kafka timestamp, which is the same on every read, so a re-read gets the same verdict.
    /// `None` for a record without one: it is held to no time bound (SPEC section 4). The
    /// processor's clock (`read_at`) is never used, as it differs from one read to the next.
    pub fn reference_time(&self) -> Option<DateTime<Utc>> {
        self.timestamp
    }
}

/// A valid reading with where it came from.
#[derive(Debug, Clone)]
pub struct SourcedReading {
    pub reading: Reading,
    pub partition: i32,
    pub offset: i64,
    /// As [`SourceRecord::generation`].
    pub generation: u64,
}

/// A valid reading with where it came from and its class.
#[derive(Debug, Clone)]
pub struct ClassifiedReading {
    pub reading: Reading,
    pub class: HeartRateClass,
    pub partition: i32,
    pub offset: i64,
    /// The detector found this identity stored or in flight already: the writer adds no row.
    pub known_duplicate: bool,
}

/// A record that broke the contract, with why.
#[derive(Debug, Clone)]
pub struct RejectedRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// The value exactly as read; `None` for a null value.
    pub value: Option<Vec<u8>>,
    pub reason: RejectReason,
    pub detail: String,
    /// As [`SourceRecord::generation`].
    pub generation: u64,
}

impl RejectedRecord {
    /// The value as the `raw` column stores it: empty for a null value.
    pub fn raw(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }
}

/// An anomaly found by the detector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// `None` for `silent`, which belongs to no reading.
    pub event_id: Option<Uuid>,
    pub customer_id: String,
    pub kind: AnomalyKind,
    /// `None` for `silent`.
    pub heart_rate: Option<i16>,
    pub recorded_at: DateTime<Utc>,
    pub details: Details,
}

/// An anomaly's `details` (SPEC section 5), typed: the detector raises one for about one reading
/// in four, and a `serde_json::Value` of each was a map and two strings to allocate, clone with
/// the stored row and free again. As JSON it is an object with its keys in order, as a
/// `serde_json::Value` of it would print (`{"delta":35,"previous":70}`).
#[derive(Debug, Clone)]
pub enum Details {
    /// critical_low, bradycardia, tachycardia, critical_high: `{"class"}`, the reading's class.
    Class(HeartRateClass),
    /// spike: `{"delta", "previous"}`, the change from the previous reading and that reading.
    Spike { previous: i16, delta: i32 },
    /// deviation: `{"baseline", "stddev", "z"}`, the baseline before the reading.
    Deviation { baseline: f64, stddev: f64, z: f64 },
    /// silent: `{"last_heart_rate"}`, the customer's last reading (`null` when none).
    Silent { last_heart_rate: Option<i16> },
    /// Details as read back from the database.
    Json(serde_json::Value),
}

impl Details {
    /// The details as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Details::Json(v) => v.clone(),
            typed => serde_json::to_value(typed).unwrap_or_default(),
        }
    }
}

/// Equal when their JSON is: the typed details of a new anomaly equal the same details read back.
impl PartialEq for Details {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

impl PartialEq<serde_json::Value> for Details {
    fn eq(&self, other: &serde_json::Value) -> bool {
        self.to_value() == *other
    }
}

impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Details::Class(class) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("class", class.as_str())?;
                map.end()
            }
            Details::Spike { previous, delta } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("delta", delta)?;
                map.serialize_entry("previous", previous)?;
                map.end()
            }
            Details::Deviation {
                baseline,
                stddev,
                z,
            } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("baseline", baseline)?;
                map.serialize_entry("stddev", stddev)?;
                map.serialize_entry("z", z)?;
                map.end()
            }
            Details::Silent { last_heart_rate } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("last_heart_rate", last_heart_rate)?;
                map.end()
            }
            Details::Json(v) => v.serialize(serializer),
        }
    }
}

/// A customer's detector state as saved with a batch: the JSON text of `detector::CustomerState`
/// (text, not a `serde_json::Value`: a state of some 350 bytes of text is a tree of maps and
/// strings of about 1.5 KiB as a value, and a checkpoint of 100,000 customers holds them all).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSnapshot {
    pub customer_id: String,
    pub partition: i32,
    pub state: String,
}

/// A point of a partition every saved detector state has reached (`detector_checkpoints`): each
/// customer's saved state holds all of its readings of the partition at or before `offset`, and
/// every reading of the partition a saved state misses was stored at or after `replay_from`
/// (PostgreSQL's clock). Valid once the batch that saved the partition's changed states has
/// committed together with every batch before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCheckpoint {
    pub partition: i32,
    /// The epoch of the owner that took it.
    pub epoch: i64,
    /// The last offset of the partition observed; `None` before the first.
    pub offset: Option<i64>,
    pub replay_from: DateTime<Utc>,
}

/// Per (topic, partition), the offset after the last record of a batch: the offset to commit once
/// the batch is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchPositions(pub BTreeMap<(Arc<str>, i32), i64>);

impl BatchPositions {
    /// Notes that the record at `offset` is part of the batch.
    pub fn include(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        let next = self
            .0
            .entry((topic.clone(), partition))
            .or_insert(offset + 1);
        if *next < offset + 1 {
            *next = offset + 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validation::{validate, ValidationRules};
    use chrono::TimeZone;

    fn record(
        value: &str,
        timestamp: Option<DateTime<Utc>>,
        read_at: DateTime<Utc>,
    ) -> SourceRecord {
        SourceRecord {
            topic: Arc::from("heartbeats"),
            partition: 0,
            offset: 0,
            payload: Payload::new(None, Some(value.as_bytes())),
            timestamp,
            read_at,
            generation: 1,
        }
    }

    #[test]
    fn a_payload_gives_back_its_key_and_value_null_or_empty_alike() {
        for (key, value) in [
            (Some(&b"CUST-1"[..]), Some(&b"{}"[..])),
            (None, Some(&b"{}"[..])),
            (Some(&b"CUST-1"[..]), None),
            (None, None),
            (Some(&b""[..]), Some(&b""[..])),
        ] {
            let p = Payload::new(key, value);
            assert_eq!((p.key(), p.value()), (key, value));
        }
    }

    #[test]
    fn a_record_without_a_kafka_timestamp_gets_the_same_verdict_whenever_it_is_read() {
        // Far ahead of any read: only a clock could make it "future", and no clock may.
        let value =
            r#"{"customer_id":"CUST-1","timestamp":"2999-01-01T00:00:00Z","heart_rate":72}"#;
        let rules = ValidationRules::default();
        for read_at in [
            Utc.with_ymd_and_hms(1971, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2999, 1, 1, 0, 0, 0).unwrap(),
        ] {
            let r = record(value, None, read_at);
            let verdict = validate(r.payload.value(), r.reference_time(), &rules);
            assert!(verdict.is_ok(), "read at {read_at}: {verdict:?}");
        }
    }

    #[test]
    fn a_record_with_a_kafka_timestamp_is_judged_against_it_not_the_read_time() {
        let value =
            r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T13:05:01Z","heart_rate":72}"#;
        let sent = Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap();
        let rules = ValidationRules::default();
        for read_at in [sent, sent + chrono::TimeDelta::days(365)] {
            let r = record(value, Some(sent), read_at);
            let verdict = validate(r.payload.value(), r.reference_time(), &rules);
            assert_eq!(
                verdict.map_err(|e| e.reason),
                Err(crate::domain::validation::RejectReason::FutureTimestamp),
                "read at {read_at}"
            );
        }
    }

    #[test]
    fn typed_details_print_the_json_the_anomalies_topic_has_always_carried() {
        // The text of the `serde_json::Value` each replaced, keys in order.
        let cases = [
            (Details::Class(HeartRateClass::Low), r#"{"class":"low"}"#),
            (
                Details::Class(HeartRateClass::CriticalHigh),
                r#"{"class":"critical_high"}"#,
            ),
            (
                Details::Spike {
                    previous: 70,
                    delta: -35,
                },
                r#"{"delta":-35,"previous":70}"#,
            ),
            (
                Details::Deviation {
                    baseline: 70.0,
                    stddev: 3.0,
                    z: 4.25,
                },
                r#"{"baseline":70.0,"stddev":3.0,"z":4.25}"#,
            ),
            (
                Details::Silent {
                    last_heart_rate: Some(71),
                },
                r#"{"last_heart_rate":71}"#,
            ),
            (
                Details::Silent {
                    last_heart_rate: None,
                },
                r#"{"last_heart_rate":null}"#,
            ),
        ];
        for (details, text) in cases {
            assert_eq!(serde_json::to_string(&details).unwrap(), text);
            let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(details, parsed, "{text}");
            assert_eq!(
                details,
                Details::Json(parsed),
                "{text}: typed equals read back"
            );
        }
        assert_ne!(
            Details::Class(HeartRateClass::Low),
            Details::Class(HeartRateClass::High)
        );
    }

    #[test]
    fn positions_keep_the_offset_after_the_highest_record_per_partition() {
        let topic: Arc<str> = Arc::from("t");
        let mut p = BatchPositions::default();
        p.include(&topic, 0, 5);
        p.include(&topic, 0, 3);
        p.include(&topic, 1, 0);
        assert_eq!(p.0[&(topic.clone(), 0)], 6);
        assert_eq!(p.0[&(topic, 1)], 1);
    }
}
