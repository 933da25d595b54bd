//! The reading: one heart-rate measurement of one customer, as the pipeline stores it.
//!
//! A `Reading` only exists once a record has passed validation (`domain::validation`), so every
//! value in it is already within the contract of SPEC section 4.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A validated heart-rate reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// The reading's id: given by the producer, or derived with [`derive_event_id`].
    pub event_id: Uuid,
    /// 1-64 characters from `A-Z a-z 0-9 _ - . :`.
    pub customer_id: String,
    /// The measurement time, truncated to microseconds, in UTC.
    pub recorded_at: DateTime<Utc>,
    /// Beats per minute, within the configured plausible range.
    pub heart_rate: i16,
}

/// The canonical text of a timestamp: UTC RFC 3339 with exactly six fraction digits and `Z`.
pub fn canonical_timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The `event_id` of a reading that came without one: the UUIDv5, in the URL namespace, of
/// `"<customer_id>|<canonical timestamp>"` (SPEC section 4). Deterministic, so a replay of the same
/// record derives the same id and deduplicates.
pub fn derive_event_id(customer_id: &str, recorded_at: &DateTime<Utc>) -> Uuid {
    let name = format!("{customer_id}|{}", canonical_timestamp(recorded_at));
    Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes())
}

impl Reading {
    /// The reading as the JSON message of SPEC section 4 (`event_id` always present).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "event_id": self.event_id.to_string(),
            "customer_id": self.customer_id,
            "timestamp": canonical_timestamp(&self.recorded_at),
            "heart_rate": self.heart_rate,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn canonical_timestamp_has_six_fraction_digits_and_z() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()
            + chrono::Duration::milliseconds(250);
        assert_eq!(canonical_timestamp(&at), "2026-11-29T13:00:00.250000Z");
    }
}
