//! The reading: one heart-rate measurement of one customer, as the pipeline stores it.
//!
//! A `Reading` only exists once a record has passed validation (`domain::validation`), so every
//! value in it is already within the contract of SPEC section 4. Its [`Activity`], when known,
//! says what the wearer was doing; the simulator draws the same four from its own schedule.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the wearer was doing when the reading was taken: the optional `activity` of the native
/// format (SPEC section 4), stored in `readings.activity`. Ordered from the least effort to the
/// most. Only the four lowercase words of SPEC are an activity; anything else is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    Sleep,
    Rest,
    /// Awake and moving: walking, chores, light activity (the simulator's light bouts).
    Active,
    Exercise,
}

impl Activity {
    pub const ALL: [Activity; 4] = [
        Activity::Sleep,
        Activity::Rest,
        Activity::Active,
        Activity::Exercise,
    ];

    /// The word of SPEC section 4, as sent and as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Sleep => "sleep",
            Activity::Rest => "rest",
            Activity::Active => "active",
            Activity::Exercise => "exercise",
        }
    }

    /// The activity `word` names: exactly one of SPEC's four lowercase words, else `None`
    /// (unknown). `"REST"` and `"Rest"` are not `rest`: SPEC lists the values, not a spelling.
    pub fn from_word(word: &str) -> Option<Activity> {
        match word {
            "sleep" => Some(Activity::Sleep),
            "rest" => Some(Activity::Rest),
            "active" => Some(Activity::Active),
            "exercise" => Some(Activity::Exercise),
            _ => None,
        }
    }
}

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
    /// What the wearer was doing; `None` when the message did not say (or said something that is
    /// not an activity).
    #[serde(default)]
    pub activity: Option<Activity>,
    /// The device that measured it (SPEC section 4's `device_id`, FHIR's `device`); `None` when
    /// the message did not say (or said something that is not a device id).
    #[serde(default)]
    pub device_id: Option<String>,
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
    /// The reading as the JSON message of SPEC section 4 (`event_id` always present, `activity`
    /// when known).
    pub fn to_json(&self) -> String {
        let mut json = serde_json::json!({
            "event_id": self.event_id.to_string(),
            "customer_id": self.customer_id,
            "timestamp": canonical_timestamp(&self.recorded_at),
            "heart_rate": self.heart_rate,
        });
        if let Some(activity) = self.activity {
            json["activity"] = activity.as_str().into();
        }
        if let Some(device_id) = &self.device_id {
            json["device_id"] = device_id.as_str().into();
        }
        json.to_string()
    }

    /// The reading as a FHIR R4 heart-rate `Observation` (SPEC section 4): `id` is the
    /// `event_id`, the LOINC code 8867-4 in the vital-signs category, the customer as
    /// `Patient/<id>`, the device as `Device/<id>` when known, the rate in UCUM `/min`. FHIR has
    /// no activity, so it is left out; the validator reads this back as the same reading.
    pub fn to_fhir_json(&self) -> String {
        let mut json = serde_json::json!({
            "resourceType": "Observation",
            "id": self.event_id.to_string(),
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
            }]}],
            "code": {"coding": [{
                "system": "http://loinc.org",
                "code": "8867-4",
                "display": "Heart rate",
            }]},
            "subject": {"reference": format!("Patient/{}", self.customer_id)},
            "effectiveDateTime": canonical_timestamp(&self.recorded_at),
            "valueQuantity": {
                "value": self.heart_rate,
                "unit": "beats/minute",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        });
        if let Some(device_id) = &self.device_id {
            json["device"] = serde_json::json!({"reference": format!("Device/{device_id}")});
        }
        json.to_string()
    }

    /// The reading as an Open mHealth `omh:heart-rate` 2.0 data point (SPEC section 4): the
    /// header's `id` is the `event_id` and its `creation_date_time` the measurement time, the
    /// activity as OMH's temporal relationship (sleep is `during sleep` to sleep; rest, active and
    /// exercise are `at rest`, `active` and `during exercise` to physical activity). OMH has no
    /// device, so it is left out.
    pub fn to_omh_json(&self) -> String {
        let timestamp = canonical_timestamp(&self.recorded_at);
        let mut json = serde_json::json!({
            "header": {
                "id": self.event_id.to_string(),
                "creation_date_time": timestamp,
                "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
                "user_id": self.customer_id,
            },
            "body": {
                "heart_rate": {"value": self.heart_rate, "unit": "beats/min"},
                "effective_time_frame": {"date_time": timestamp},
            },
        });
        let (key, word) = match self.activity {
            None => return json.to_string(),
            Some(Activity::Sleep) => ("temporal_relationship_to_sleep", "during sleep"),
            Some(Activity::Rest) => ("temporal_relationship_to_physical_activity", "at rest"),
            Some(Activity::Active) => ("temporal_relationship_to_physical_activity", "active"),
            Some(Activity::Exercise) => (
                "temporal_relationship_to_physical_activity",
                "during exercise",
            ),
        };
        json["body"][key] = word.into();
        json.to_string()
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

    #[test]
    fn each_activity_is_named_by_its_own_word_and_no_other() {
        for activity in Activity::ALL {
            assert_eq!(Activity::from_word(activity.as_str()), Some(activity));
            let json = serde_json::to_string(&activity).unwrap();
            assert_eq!(json, format!("\"{}\"", activity.as_str()));
        }
        for word in ["", "REST", "Sleep", "light", "rest ", "exercising"] {
            assert_eq!(Activity::from_word(word), None, "{word:?}");
        }
    }

    #[test]
    fn the_json_says_the_activity_only_when_it_is_known() {
        let mut reading = Reading {
            event_id: Uuid::nil(),
            customer_id: "CUST-1".to_owned(),
            recorded_at: Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap(),
            heart_rate: 72,
            activity: None,
            device_id: None,
        };
        assert!(
            !reading.to_json().contains("activity"),
            "{}",
            reading.to_json()
        );
        reading.activity = Some(Activity::Sleep);
        let json: serde_json::Value = serde_json::from_str(&reading.to_json()).unwrap();
        assert_eq!(json["activity"], "sleep");
    }

    /// The reading of docs/MESSAGES.md's examples (formats-decisions: the same in all three).
    fn example_reading() -> Reading {
        Reading {
            event_id: Uuid::parse_str("6f1c9a34-0d43-4c6e-9a4b-2a3f3cbd2a11").unwrap(),
            customer_id: "CUST-00042".to_owned(),
            recorded_at: Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()
                + chrono::Duration::milliseconds(250),
            heart_rate: 72,
            activity: Some(Activity::Rest),
            device_id: Some("watch-7".to_owned()),
        }
    }

    #[test]
    fn the_fhir_json_is_a_heart_rate_observation_of_the_reading() {
        let reading = example_reading();
        let json: serde_json::Value = serde_json::from_str(&reading.to_fhir_json()).unwrap();
        assert_eq!(json["resourceType"], "Observation");
        assert_eq!(json["id"], "6f1c9a34-0d43-4c6e-9a4b-2a3f3cbd2a11");
        assert_eq!(json["status"], "final");
        assert_eq!(
            json["category"][0]["coding"][0],
            serde_json::json!({
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
            })
        );
        assert_eq!(json["code"]["coding"][0]["system"], "http://loinc.org");
        assert_eq!(json["code"]["coding"][0]["code"], "8867-4");
        assert_eq!(json["subject"]["reference"], "Patient/CUST-00042");
        assert_eq!(json["device"]["reference"], "Device/watch-7");
        assert_eq!(json["effectiveDateTime"], "2026-11-29T13:00:00.250000Z");
        assert_eq!(
            json["valueQuantity"],
            serde_json::json!({
                "value": 72,
                "unit": "beats/minute",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            })
        );
        assert!(json.get("activity").is_none(), "{json}");
    }

    #[test]
    fn the_fhir_json_names_a_device_only_when_it_is_known() {
        let reading = Reading {
            device_id: None,
            ..example_reading()
        };
        let json: serde_json::Value = serde_json::from_str(&reading.to_fhir_json()).unwrap();
        assert!(json.get("device").is_none(), "{json}");
    }

    #[test]
    fn the_omh_json_is_a_heart_rate_data_point_of_the_reading() {
        let reading = example_reading();
        let json: serde_json::Value = serde_json::from_str(&reading.to_omh_json()).unwrap();
        assert_eq!(
            json["header"],
            serde_json::json!({
                "id": "6f1c9a34-0d43-4c6e-9a4b-2a3f3cbd2a11",
                "creation_date_time": "2026-11-29T13:00:00.250000Z",
                "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
                "user_id": "CUST-00042",
            })
        );
        assert_eq!(
            json["body"],
            serde_json::json!({
                "heart_rate": {"value": 72, "unit": "beats/min"},
                "effective_time_frame": {"date_time": "2026-11-29T13:00:00.250000Z"},
                "temporal_relationship_to_physical_activity": "at rest",
            })
        );
    }

    #[test]
    fn the_omh_json_says_each_activity_as_omh_does_and_nothing_when_unknown() {
        let cases = [
            (
                Some(Activity::Sleep),
                "temporal_relationship_to_sleep",
                "during sleep",
            ),
            (
                Some(Activity::Rest),
                "temporal_relationship_to_physical_activity",
                "at rest",
            ),
            (
                Some(Activity::Active),
                "temporal_relationship_to_physical_activity",
                "active",
            ),
            (
                Some(Activity::Exercise),
                "temporal_relationship_to_physical_activity",
                "during exercise",
            ),
        ];
        for (activity, key, word) in cases {
            let reading = Reading {
                activity,
                ..example_reading()
            };
            let json: serde_json::Value = serde_json::from_str(&reading.to_omh_json()).unwrap();
            let body = json["body"].as_object().unwrap();
            assert_eq!(body[key], word, "{activity:?}");
            assert_eq!(body.len(), 3, "{activity:?}: one relationship only: {json}");
        }
        let reading = Reading {
            activity: None,
            ..example_reading()
        };
        let json: serde_json::Value = serde_json::from_str(&reading.to_omh_json()).unwrap();
        assert_eq!(json["body"].as_object().unwrap().len(), 2, "{json}");
    }
}
