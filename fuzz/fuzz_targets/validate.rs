//! Fuzz target `validate`: arbitrary bytes into the validator and into `customer_key`, checking
//! what must hold for every input (SPEC section 4), not just that nothing panics.
//!
//! Input: one selector byte, then the Kafka record value. The selector's bit 0 gives the
//! record a Kafka timestamp ([`REFERENCE`]) or none; bit 1 picks the default rules or
//! `max_age_days = 0` (no bound). An input of no bytes at all is a null value (a tombstone).
//! The seed corpus (fuzz/corpus/validate/, its README) is written the same way: a digit `0`-`3`
//! and then the JSON.
//!
//! Invariants, each an `assert!` that libFuzzer reports as a crash with the input saved in
//! fuzz/artifacts/validate/:
//! - no panic, in `validate` or `customer_key`;
//! - validating the same input twice gives the same verdict (nothing reads the clock);
//! - an accepted reading: heart rate within the rules' range, customer id and device id of
//!   1-64 characters of the customer-id set, a timestamp truncated to microseconds, from 1970 on
//!   and within the rules' bounds of the reference time; `customer_key` names its customer; and
//!   its own encodings (native, FHIR, OMH: `Reading::to_json` and friends) are accepted as the
//!   same reading, except what a format cannot say (FHIR has no activity, OMH no device);
//! - a rejection: a detail that is not empty, at most [`MAX_DETAIL_BYTES`] and without NUL;
//! - `customer_key`, when it names a customer, names a valid customer id.
#![no_main]

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use heartbeat_pipeline::domain::reading::Reading;
use heartbeat_pipeline::domain::validation::{customer_key, validate, ValidationRules};
use libfuzzer_sys::fuzz_target;

/// The Kafka timestamp of a record when the selector gives it one: a second after the
/// examples' reading time (formats-decisions, docs/MESSAGES.md), so that they are accepted and
/// the fuzzer starts next to both time bounds.
fn reference() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 1).unwrap()
}

/// A detail quotes at most 100 bytes of input (escapes included) plus its own words, and may
/// quote more than one value: a few hundred bytes is already generous.
const MAX_DETAIL_BYTES: usize = 512;

fuzz_target!(|data: &[u8]| {
    let (value, reference_time, rules) = match data.split_first() {
        None => (None, None, ValidationRules::default()),
        Some((selector, value)) => {
            let reference_time = (selector & 1 != 0).then(reference);
            let mut rules = ValidationRules::default();
            if selector & 2 != 0 {
                rules.max_age_days = 0;
            }
            (Some(value), reference_time, rules)
        }
    };

    let verdict = validate(value, reference_time, &rules);
    assert_eq!(
        verdict,
        validate(value, reference_time, &rules),
        "same input, another verdict"
    );
    let key = value.and_then(customer_key);
    if let Some(key) = &key {
        assert!(
            is_id(key),
            "customer_key named an invalid customer id {key:?}"
        );
    }

    match verdict {
        Ok(validated) => {
            let reading = &validated.reading;
            check_reading(reading, reference_time, &rules);
            assert_eq!(
                key.as_deref(),
                Some(reading.customer_id.as_str()),
                "customer_key disagrees with the accepted reading"
            );
            round_trip(reading, reference_time, &rules);
        }
        Err(rejection) => {
            let detail = &rejection.detail;
            assert!(!detail.is_empty(), "{}: empty detail", rejection.reason);
            assert!(
                detail.len() <= MAX_DETAIL_BYTES,
                "{}: detail of {} bytes",
                rejection.reason,
                detail.len()
            );
            assert!(
                !detail.contains('\0'),
                "{}: NUL in detail",
                rejection.reason
            );
        }
    }
});

/// What every accepted reading is, whatever the input was.
fn check_reading(
    reading: &Reading,
    reference_time: Option<DateTime<Utc>>,
    rules: &ValidationRules,
) {
    let rate = i64::from(reading.heart_rate);
    assert!(
        (rules.min_heart_rate..=rules.max_heart_rate).contains(&rate),
        "heart rate {rate} accepted"
    );
    assert!(
        is_id(&reading.customer_id),
        "customer id {:?}",
        reading.customer_id
    );
    if let Some(device_id) = &reading.device_id {
        assert!(is_id(device_id), "device id {device_id:?}");
    }
    let at = reading.recorded_at;
    assert_eq!(
        at.timestamp_subsec_nanos() % 1_000,
        0,
        "{at} not truncated to microseconds"
    );
    // The year rule is on the year as written, so 1970-01-01T00:00:00+01:00 is 1969 in UTC.
    assert!(
        at >= Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap(),
        "{at} is before 1970 in any zone"
    );
    if let Some(reference) = reference_time {
        assert!(
            at <= reference + Duration::milliseconds(rules.max_future_skew_ms),
            "{at} accepted, too far ahead of {reference}"
        );
        if rules.max_age_days > 0 {
            assert!(
                at >= reference - Duration::days(i64::from(rules.max_age_days)),
                "{at} accepted, too far behind {reference}"
            );
        }
    }
}

/// An accepted reading, encoded in each format, is accepted again as the same reading.
///
/// Except a reading whose UTC year is outside 1970-9999: the year rule is on the year as
/// written, so `1970-01-01T00:00:00+01:00` and `9999-12-31T23:00:00-05:00` are accepted (the
/// second only without a reference time), but their UTC forms are not timestamps of the grammar.
fn round_trip(reading: &Reading, reference_time: Option<DateTime<Utc>>, rules: &ValidationRules) {
    if !(1970..=9999).contains(&reading.recorded_at.year()) {
        return;
    }
    let fhir = Reading {
        activity: None,
        ..reading.clone()
    };
    let omh = Reading {
        device_id: None,
        ..reading.clone()
    };
    for (format, encoded, expected) in [
        ("native", reading.to_json(), reading),
        ("fhir", reading.to_fhir_json(), &fhir),
        ("omh", reading.to_omh_json(), &omh),
    ] {
        match validate(Some(encoded.as_bytes()), reference_time, rules) {
            Ok(again) => assert_eq!(&again.reading, expected, "{format}: {encoded}"),
            Err(rejection) => panic!("{format}: {encoded} rejected: {rejection}"),
        }
        assert_eq!(
            customer_key(encoded.as_bytes()).as_deref(),
            Some(reading.customer_id.as_str()),
            "{format}: customer_key of {encoded}"
        );
    }
}

/// SPEC section 4's customer-id rule (and the device id's): 1-64 characters from
/// `A-Z a-z 0-9 _ - . :`. Written out here rather than taken from the crate, so the check does
/// not share a bug with what it checks.
fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}
