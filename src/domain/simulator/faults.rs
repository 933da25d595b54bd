//! Faults: malformed record values, one per reject reason in turn, that validation (with the
//! default rules) rejects with exactly that reason.

use chrono::{DateTime, TimeDelta, Utc};

use super::params::TOO_LARGE_BYTES;
use crate::domain::reading::canonical_timestamp;
use crate::domain::validation::RejectReason;

/// A malformed value that validation (with the default rules) rejects with exactly `reason`.
/// `variant` picks one of a few forms of the reason, so the demo exercises more than one path.
pub(super) fn fault_value(
    reason: RejectReason,
    variant: u64,
    id: &str,
    now: DateTime<Utc>,
) -> Option<Vec<u8>> {
    use RejectReason::*;
    let ts = canonical_timestamp(&now);
    let object = |customer: &str, timestamp: &str, heart_rate: &str, extra: &str| {
        format!(
            r#"{{"customer_id":{customer},"timestamp":{timestamp},"heart_rate":{heart_rate}{extra}}}"#
        )
    };
    let id_json = format!("\"{id}\"");
    let ts_json = format!("\"{ts}\"");
    let text = match reason {
        TooLarge => {
            let padding = "x".repeat(TOO_LARGE_BYTES);
            object(
                &id_json,
                &ts_json,
                "72",
                &format!(r#","padding":"{padding}""#),
            )
        }
        InvalidUtf8 => {
            let mut bytes = object(&id_json, &ts_json, "72", "").into_bytes();
            // 0xFF never occurs in UTF-8: put it inside the customer id string.
            bytes.insert(r#"{"customer_id":"CUST"#.len(), 0xFF);
            return Some(bytes);
        }
        MalformedJson => match variant % 3 {
            0 => {
                let mut text = object(&id_json, &ts_json, "72", "");
                text.truncate(text.len() - 2);
                text
            }
            1 => return None,
            _ => object(&id_json, &ts_json, "72", r#","heart_rate":73"#),
        },
        // A FHIR Observation of the respiratory rate: a well-formed observation, but not of a
        // heart rate (LOINC 9279-1), though its unit `/min` is one a heart rate may have.
        UnsupportedObservation => format!(
            r#"{{"resourceType":"Observation","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"9279-1"}}]}},"subject":{{"reference":"Patient/{id}"}},"effectiveDateTime":{ts_json},"valueQuantity":{{"value":16,"unit":"/min"}}}}"#
        ),
        NotAnObject => match variant % 2 {
            0 => format!("[{}]", object(&id_json, &ts_json, "72", "")),
            _ => "72".to_owned(),
        },
        MissingField => match variant % 2 {
            0 => format!(r#"{{"customer_id":{id_json},"timestamp":{ts_json}}}"#),
            _ => object(&id_json, &ts_json, "null", ""),
        },
        WrongType => match variant % 2 {
            0 => object(&id_json, &ts_json, "\"72\"", ""),
            _ => object(&id_json, &ts_json, "[72]", ""),
        },
        InvalidCustomerId => match variant % 2 {
            0 => object(&format!("\"{id} !\""), &ts_json, "72", ""),
            _ => object("\"\"", &ts_json, "72", ""),
        },
        InvalidEventId => object(&id_json, &ts_json, "72", r#","event_id":"not-a-uuid""#),
        InvalidTimestamp => match variant % 2 {
            0 => object(&id_json, "\"29/11/2026 13:00\"", "72", ""),
            _ => object(&id_json, "\"2026-02-30T12:00:00Z\"", "72", ""),
        },
        FutureTimestamp => {
            let later = now
                .checked_add_signed(TimeDelta::hours(1))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            object(
                &id_json,
                &format!("\"{}\"", canonical_timestamp(&later)),
                "72",
                "",
            )
        }
        // Twenty years old: far past the default `validation.max_age_days` (30), and the ten
        // years the integration tests allow.
        StaleTimestamp => {
            let earlier = now
                .checked_sub_signed(TimeDelta::days(7_300))
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            object(
                &id_json,
                &format!("\"{}\"", canonical_timestamp(&earlier)),
                "72",
                "",
            )
        }
        ImplausibleHeartRate => match variant % 2 {
            0 => object(&id_json, &ts_json, "0", ""),
            _ => object(&id_json, &ts_json, "300", ""),
        },
    };
    Some(text.into_bytes())
}
