//! Unit tests of validation: examples of each rule here, the table of cases in `table.rs`, the
//! properties in `properties.rs`.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::domain::reading::Reading;

use RejectReason::*;

mod examples;
mod formats;
mod properties;
mod table;

/// The reference time (the Kafka record's timestamp) of every table case.
fn reference() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()
}

fn accept(text: &str) -> Reading {
    validate(
        Some(text.as_bytes()),
        Some(reference()),
        &ValidationRules::default(),
    )
    .unwrap()
    .reading
}

fn reject(text: &str) -> Rejection {
    validate(
        Some(text.as_bytes()),
        Some(reference()),
        &ValidationRules::default(),
    )
    .unwrap_err()
}

// Expected ids computed independently with Python:
// uuid.uuid5(uuid.NAMESPACE_URL, "<customer_id>|<timestamp>")
#[test]
fn derived_event_id_matches_an_independent_uuid5() {
    let reading = accept(
        r#"{"customer_id":"CUST-00042","timestamp":"2026-11-29T13:00:00.250Z","heart_rate":72}"#,
    );
    assert_eq!(
        reading.event_id.to_string(),
        "00be28ad-91e1-53d7-93bb-615698f65c56"
    );
}

#[test]
fn derived_event_id_uses_the_utc_time_of_an_offset_timestamp() {
    // "CUST-7|2026-11-29T13:00:00.500000Z"
    let reading = accept(
        r#"{"customer_id":"CUST-7","timestamp":"2026-11-29T15:00:00.5+02:00","heart_rate":72}"#,
    );
    assert_eq!(
        reading.event_id.to_string(),
        "939b38de-301e-56c4-b123-546c4e168434"
    );
}

#[test]
fn derived_event_id_uses_the_truncated_fraction_and_the_integer_customer_id() {
    // "42|2026-11-29T12:59:59.123456Z"
    let reading = accept(
        r#"{"customer_id":42,"timestamp":"2026-11-29T12:59:59.123456789Z","heart_rate":72}"#,
    );
    assert_eq!(reading.customer_id, "42");
    assert_eq!(
        reading.event_id.to_string(),
        "981671fe-ebdf-5785-af7f-1e3b86cb3e50"
    );
}

#[test]
fn details_name_the_field_and_what_was_wrong() {
    let detail = |text: &str| reject(text).detail;
    assert_eq!(
        detail(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":"72"}"#),
        "heart_rate: expected a JSON number, got \"72\""
    );
    assert_eq!(
        detail(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z"}"#),
        "heart_rate: required field is missing"
    );
    assert_eq!(
        detail(r#"{"customer_id":null,"timestamp":"2026-11-29T12:00:00Z","heart_rate":72}"#),
        "customer_id: required field is null"
    );
    assert_eq!(
        detail(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":300}"#),
        "heart_rate: 300 is outside 20..=250"
    );
    assert_eq!(
        detail(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00","heart_rate":72}"#),
        r#"timestamp: missing utc offset (Z or +HH:MM), got "2026-11-29T12:00:00""#
    );
    assert_eq!(detail(r#"{"a":1,"a":2}"#), r#"repeated key "a""#);
    assert_eq!(detail("[1]"), "expected a JSON object, got an array");
    assert!(detail("{").starts_with("invalid json: "));
    assert_eq!(
        detail(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T13:05:01Z","heart_rate":72}"#),
        "timestamp: 2026-11-29T13:05:01.000000Z is 301000 ms ahead of the record time \
         2026-11-29T13:00:00.000000Z, over the limit of 300000 ms"
    );
    let too_large = validate(
        Some(&[b' '; 10]),
        Some(reference()),
        &ValidationRules {
            max_message_bytes: 9,
            ..Default::default()
        },
    );
    assert_eq!(
        too_large.unwrap_err().detail,
        "value is 10 bytes, over the limit of 9 bytes"
    );
    let not_utf8 = validate(
        Some(b"{\"a\xc3\x28"),
        Some(reference()),
        &ValidationRules::default(),
    );
    assert_eq!(
        not_utf8.unwrap_err().detail,
        "value is not valid utf-8 (first bad byte at offset 3)"
    );
}

#[test]
fn details_quote_at_most_a_hundred_bytes_cut_on_a_character_boundary() {
    let long = "é".repeat(1_000);
    let rejection = reject(&format!(
        r#"{{"customer_id":"{long}","timestamp":"2026-11-29T12:00:00Z","heart_rate":72}}"#
    ));
    assert_eq!(rejection.reason, InvalidCustomerId);
    assert!(rejection.detail.len() < 200, "{}", rejection.detail);
    assert!(rejection.detail.ends_with("..."));
}

#[test]
fn details_escape_control_characters() {
    let rejection = reject("{\"a\\u0000\":1,\"a\\u0000\":2}");
    assert_eq!(rejection.reason, MalformedJson);
    assert!(!rejection.detail.contains('\0'), "{:?}", rejection.detail);
    assert_eq!(rejection.detail, r#"repeated key "a\u{0}""#);
}

#[test]
fn reasons_are_named_as_in_the_spec_and_listed_in_check_order() {
    let names: Vec<String> = RejectReason::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "too_large",
            "invalid_utf8",
            "malformed_json",
            "not_an_object",
            "unsupported_observation",
            "missing_field",
            "wrong_type",
            "invalid_customer_id",
            "invalid_event_id",
            "invalid_timestamp",
            "future_timestamp",
            "stale_timestamp",
            "implausible_heart_rate",
        ]
    );
    assert_eq!(ImplausibleHeartRate.as_str(), "implausible_heart_rate");
}

#[test]
fn default_rules_are_the_spec_defaults() {
    assert_eq!(
        ValidationRules::default(),
        ValidationRules {
            max_message_bytes: 65_536,
            max_future_skew_ms: 300_000,
            max_age_days: 30,
            min_heart_rate: 20,
            max_heart_rate: 250
        }
    );
}

#[test]
fn configured_rules_are_honoured() {
    let rules = ValidationRules {
        max_message_bytes: 1_000,
        max_future_skew_ms: 0,
        max_age_days: 0,
        min_heart_rate: 30,
        max_heart_rate: 40,
    };
    let check = |text: &str| {
        validate(Some(text.as_bytes()), Some(reference()), &rules).map_err(|r| r.reason)
    };
    assert!(
        check(r#"{"customer_id":"C","timestamp":"2026-11-29T13:00:00Z","heart_rate":30}"#).is_ok()
    );
    assert_eq!(
        check(r#"{"customer_id":"C","timestamp":"2026-11-29T13:00:00.000001Z","heart_rate":30}"#),
        Err(FutureTimestamp)
    );
    assert_eq!(
        check(r#"{"customer_id":"C","timestamp":"2026-11-29T13:00:00Z","heart_rate":41}"#),
        Err(ImplausibleHeartRate)
    );
    // A range wider than the smallint column is refused rather than wrapped.
    let wide = ValidationRules {
        min_heart_rate: i64::MIN,
        max_heart_rate: i64::MAX,
        max_future_skew_ms: i64::MAX,
        ..rules
    };
    let text = r#"{"customer_id":"C","timestamp":"2026-11-29T13:00:00Z","heart_rate":40000}"#;
    assert_eq!(
        validate(Some(text.as_bytes()), Some(reference()), &wide).map_err(|r| r.reason),
        Err(ImplausibleHeartRate)
    );
    let negative_skew = ValidationRules {
        max_future_skew_ms: i64::MIN,
        ..rules
    };
    let text = r#"{"customer_id":"C","timestamp":"1970-01-01T00:00:00Z","heart_rate":30}"#;
    assert_eq!(
        validate(Some(text.as_bytes()), Some(reference()), &negative_skew).map_err(|r| r.reason),
        Err(FutureTimestamp)
    );
}

#[test]
fn a_key_that_is_not_valid_unicode_is_malformed() {
    assert_eq!(reject(r#"{"\ud800":1}"#).reason, MalformedJson);
}

proptest::proptest! {
    /// A heart rate given with three decimals, plain or with an exponent, rounds as integer
    /// arithmetic says: halves away from zero.
    #[test]
    fn a_decimal_heart_rate_rounds_half_away_from_zero(thousandths in 0i64..1_000_000, negative: bool) {
        let plain = format!("{}{}.{:03}", if negative { "-" } else { "" }, thousandths / 1000, thousandths % 1000);
        let scaled = format!("{}{}e-3", if negative { "-" } else { "" }, thousandths);
        let magnitude = (thousandths + 500) / 1000;
        let want = if negative { -magnitude } else { magnitude };
        proptest::prop_assert_eq!(super::validate::rounded(&plain), Some(want), "{}", plain);
        proptest::prop_assert_eq!(super::validate::rounded(&scaled), Some(want), "{}", scaled);
    }

    /// A hyphenated UUID parses to itself in either case, and one byte changed to anything that
    /// is not a digit of its place (a hex digit, or the hyphen) makes it no UUID, as
    /// `uuid::Uuid::parse_str` says of the 36-character form.
    #[test]
    fn a_hyphenated_uuid_is_parsed_exactly(n: u128, at in 0usize..36, byte: u8, upper: bool) {
        let id = uuid::Uuid::from_u128(n);
        let text = if upper { id.hyphenated().to_string().to_uppercase() } else { id.hyphenated().to_string() };
        proptest::prop_assert_eq!(super::fields::parse_hyphenated_uuid(&text), Some(id));
        let mut bytes = text.into_bytes();
        bytes[at] = byte;
        if let Ok(changed) = std::str::from_utf8(&bytes) {
            let want = uuid::Uuid::parse_str(changed).ok().filter(|_| changed.len() == 36);
            proptest::prop_assert_eq!(super::fields::parse_hyphenated_uuid(changed), want, "{}", changed);
        }
    }

    /// An integer literal is itself, by the fast path (up to 18 digits) and by the exact one
    /// (19 digits), and one past i64 is none.
    #[test]
    fn an_integer_heart_rate_is_itself(n in -i64::MAX..=i64::MAX) {
        proptest::prop_assert_eq!(super::validate::rounded(&n.to_string()), Some(n));
        let past = format!("{}0", n.unsigned_abs());
        if n.unsigned_abs() > i64::MAX as u64 / 10 {
            proptest::prop_assert_eq!(super::validate::rounded(&past), None);
        }
    }
}
