//! The standards' own examples and real producers' output (tests/data/formats/, sources in its
//! README.md), with the verdict SPEC section 4 gives each. Every example is years old, so they
//! are validated without a Kafka timestamp (no age bound), as a replay of an export would be
//! with `validation.max_age_days = 0`; the age bound has its own cases.
//!
//! Some official examples are rejected as SPEC is written, and these tests say so on purpose:
//! HL7's headline heart-rate example has a date without a time, and Open mHealth bodies carry no
//! user. docs/MESSAGES.md lists what a producer must add.

use serde_json::{json, Value};

use super::*;
use crate::domain::reading::{canonical_timestamp, Activity};

macro_rules! example {
    ($file:literal) => {
        include_str!(concat!("../../../../tests/data/formats/", $file))
    };
}

fn verdict(text: &str) -> Result<Validated, Rejection> {
    validate(Some(text.as_bytes()), None, &ValidationRules::default())
}

/// An Open mHealth body from the schema's test data, in a data point with a user.
fn data_point(body: &str, id: &str) -> String {
    let body: Value = serde_json::from_str(body).unwrap();
    json!({
        "header": {
            "id": id,
            "creation_date_time": "2013-02-05T07:25:00Z",
            "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "1.0"},
            "user_id": "user1432"
        },
        "body": body
    })
    .to_string()
}

const OMH_ID: &str = "123e4567-e89b-12d3-a456-426655440000";

fn accepted(text: &str) -> Reading {
    match verdict(text) {
        Ok(validated) => validated.reading,
        Err(rejection) => panic!("rejected: {rejection}"),
    }
}

fn rejected(text: &str) -> (RejectReason, String) {
    let rejection = verdict(text).expect_err("accepted");
    (rejection.reason, rejection.detail)
}

#[test]
fn hl7s_heart_rate_example_has_a_date_only_and_is_rejected_as_spec_is_written() {
    let text = example!("fhir-heart-rate.json");
    let (reason, detail) = rejected(text);
    assert_eq!(reason, InvalidTimestamp);
    assert!(detail.starts_with("effectiveDateTime:"), "{detail}");

    // With a full time it is the reading the example means: 44 bpm of Patient/example, the unit
    // accepted through its UCUM code `/min` (its text is `beats/minute`), the id `heart-rate`
    // not a UUID, so the event id derived.
    let mut full: Value = serde_json::from_str(text).unwrap();
    full["effectiveDateTime"] = json!("1999-07-02T09:30:00Z");
    let reading = accepted(&full.to_string());
    assert_eq!(reading.customer_id, "example");
    assert_eq!(reading.heart_rate, 44);
    assert_eq!(
        canonical_timestamp(&reading.recorded_at),
        "1999-07-02T09:30:00.000000Z"
    );
    assert_eq!(
        reading.event_id,
        crate::domain::reading::derive_event_id("example", &reading.recorded_at)
    );
}

#[test]
fn hl7s_other_observations_are_unsupported() {
    for (name, text, path) in [
        (
            "blood pressure panel",
            example!("fhir-bloodpressure.json"),
            "code.coding",
        ),
        (
            "cancelled blood pressure",
            example!("fhir-bloodpressure-cancel.json"),
            "code.coding",
        ),
        (
            "temperature entered in error",
            example!("fhir-f202-temperature.json"),
            "code.coding",
        ),
        (
            "mean arterial pressure",
            example!("fhir-map-sitting.json"),
            "code.coding",
        ),
        (
            "respiratory rate in /min",
            example!("fhir-respiratory-rate.json"),
            "code.coding",
        ),
        (
            "oxygen saturation",
            example!("fhir-satO2.json"),
            "code.coding",
        ),
        (
            "vital signs panel",
            example!("fhir-vitals-panel.json"),
            "code.coding",
        ),
    ] {
        let (reason, detail) = rejected(text);
        assert_eq!(reason, UnsupportedObservation, "{name}: {detail}");
        assert!(detail.starts_with(path), "{name}: {detail}");
    }
}

#[test]
fn a_google_healthcare_api_request_is_a_reading() {
    let reading = accepted(example!(
        "fhir-realworld-google-healthcare-api-heart-rate.json"
    ));
    assert_eq!(reading.customer_id, "PATIENT_ID");
    assert_eq!(reading.heart_rate, 80);
    // Derived, as computed independently with Python's uuid5.
    assert_eq!(
        reading.event_id.to_string(),
        "656ff952-86d2-5ed2-9155-fb86900cba34"
    );
}

#[test]
fn healthkit_on_fhir_output_has_no_subject() {
    let text = example!("fhir-realworld-healthkitonfhir-heart-rate.json");
    let (reason, detail) = rejected(text);
    assert_eq!(reason, MissingField);
    assert!(detail.starts_with("subject.reference"), "{detail}");
    // With a subject, its year 1885 is before 1970.
    let mut with_subject: Value = serde_json::from_str(text).unwrap();
    with_subject["subject"] = json!({"reference": "Patient/P1"});
    assert_eq!(rejected(&with_subject.to_string()).0, InvalidTimestamp);
}

#[test]
fn open_mhealths_heart_rate_examples_in_a_data_point() {
    let reading = accepted(&data_point(
        example!("omh-test-heart-rate_1.0_shouldPass_with-everything.json"),
        OMH_ID,
    ));
    assert_eq!(
        (
            reading.customer_id.as_str(),
            reading.heart_rate,
            reading.activity
        ),
        ("user1432", 50, Some(Activity::Rest))
    );
    assert_eq!(reading.event_id.to_string(), OMH_ID);
    assert_eq!(
        canonical_timestamp(&reading.recorded_at),
        "2013-02-05T07:25:00.000000Z"
    );

    for file in [
        example!("omh-test-heart-rate_1.0_shouldPass_with-time-frame.json"),
        example!("omh-test-heart-rate_1.0_shouldPass_with-user-notes.json"),
        example!("omh-test-heart-rate_1.0_shouldPass_with-temporal-relationship-to-physical-activity.json"),
        example!("omh-test-heart-rate_1.1_shouldPass_with-temporal-relationship-to-sleep.json"),
    ] {
        accepted(&data_point(file, OMH_ID));
    }

    // 2.0: 67.5 rounds to 68; "on waking" says nothing of the activity; -08:00 is taken to UTC.
    let reading = accepted(&data_point(
        example!("omh-test-heart-rate_2.0_shouldPass_with-temporal-relationship-to-sleep.json"),
        OMH_ID,
    ));
    assert_eq!((reading.heart_rate, reading.activity), (68, None));
    assert_eq!(
        canonical_timestamp(&reading.recorded_at),
        "2020-02-05T15:25:00.000000Z"
    );
}

#[test]
fn open_mhealths_failing_and_partial_examples() {
    let check = |file: &str, reason: RejectReason, path: &str| {
        let (got, detail) = rejected(&data_point(file, OMH_ID));
        assert_eq!(got, reason, "{detail}");
        assert!(detail.starts_with(path), "{detail}");
    };
    check(
        example!("omh-test-heart-rate_1.0_shouldFail_incorrect-unit.json"),
        UnsupportedObservation,
        "body.heart_rate.unit",
    );
    check(
        example!("omh-test-heart-rate_2.0_shouldFail_incorrect-unit.json"),
        UnsupportedObservation,
        "body.heart_rate.unit",
    );
    check(
        example!("omh-test-heart-rate_1.0_shouldFail_empty-document.json"),
        MissingField,
        "body.effective_time_frame.date_time",
    );
    check(
        example!("omh-test-heart-rate_2.0_shouldFail_missing-effective-time-frame.json"),
        MissingField,
        "body.effective_time_frame.date_time",
    );
    // Valid in 1.0, where only the heart rate is required: a reading without a time is none.
    check(
        example!("omh-test-heart-rate_1.0_shouldPass_heart-rate-only.json"),
        MissingField,
        "body.effective_time_frame.date_time",
    );
    // A minimum over a day is a statistic, not a reading.
    check(
        example!("omh-test-heart-rate_2.0_shouldPass_with-descriptive-statistic.json"),
        UnsupportedObservation,
        "body.descriptive_statistic",
    );
}

#[test]
fn open_mhealths_header_example_is_another_schema() {
    let header: Value =
        serde_json::from_str(example!("omh-test-header_1.1_shouldPass_with-user-id.json")).unwrap();
    let body: Value = serde_json::from_str(example!(
        "omh-test-heart-rate_1.0_shouldPass_with-time-frame.json"
    ))
    .unwrap();
    let text = json!({"header": header.clone(), "body": body.clone()}).to_string();
    // Its schema_id names physical-activity.
    assert_eq!(rejected(&text).0, UnsupportedObservation);
    let mut header = header;
    header["schema_id"]["name"] = json!("heart-rate");
    let reading = accepted(&json!({"header": header, "body": body}).to_string());
    assert_eq!(reading.customer_id, "user1432");
}

#[test]
fn shimmers_fitbit_points_have_no_user_until_one_is_added() {
    let envelope: Value =
        serde_json::from_str(example!("omh-realworld-shimmer-fitbit-heart-rate.json")).unwrap();
    // The envelope itself has a body array and no header: a native message.
    assert_eq!(rejected(&envelope.to_string()).0, MissingField);
    let points = envelope["body"].as_array().unwrap();
    assert!(points.len() > 10);
    for point in points {
        let (reason, detail) = rejected(&point.to_string());
        assert_eq!(reason, MissingField);
        assert!(detail.starts_with("header.user_id"), "{detail}");
        let mut point = point.clone();
        point["header"]["user_id"] = json!("fitbit-user-1");
        let reading = accepted(&point.to_string());
        assert_eq!(
            reading.event_id.to_string(),
            point["header"]["id"].as_str().unwrap()
        );
        assert_eq!(
            i64::from(reading.heart_rate),
            point["body"]["heart_rate"]["value"].as_i64().unwrap()
        );
    }
}
