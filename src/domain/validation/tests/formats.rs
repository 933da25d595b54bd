//! The table of the FHIR R4 and Open mHealth formats (SPEC section 4): every part each reads,
//! missing, null and of the wrong type, named by its path; codes, statuses and units; the effective
//! time forms; the activity and device mappings; and the same reading in all three formats.
//!
//! Cases are built from a good message of each format by changing one part at a path, so each
//! case says exactly what it breaks. A rejection must carry its reason and a detail that begins
//! with the path the case names.

use serde_json::{json, Value};

use super::*;
use crate::domain::reading::{canonical_timestamp, derive_event_id, Activity};

const ID: &str = "6f1c9a34-0d43-4c6e-9a4b-2a3f3cbd2a11";
const AT: &str = "2026-11-29T12:00:00.250Z";
const AT_CANONICAL: &str = "2026-11-29T12:00:00.250000Z";
const D64: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

/// The good FHIR Observation every FHIR case changes.
fn fhir() -> Value {
    json!({
        "resourceType": "Observation",
        "id": ID,
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": "Patient/CUST-1"},
        "device": {"reference": "Device/watch-7"},
        "effectiveDateTime": AT,
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

/// The good Open mHealth data point every OMH case changes.
fn omh() -> Value {
    json!({
        "header": {
            "id": ID,
            "creation_date_time": "2026-11-29T12:00:01Z",
            "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
            "user_id": "CUST-1"
        },
        "body": {
            "heart_rate": {"value": 72, "unit": "beats/min"},
            "effective_time_frame": {"date_time": AT},
            "temporal_relationship_to_physical_activity": "at rest"
        }
    })
}

/// `doc` with the member at the dotted `path` set to `value` (`None`: removed).
fn with(mut doc: Value, path: &str, value: Option<Value>) -> Value {
    let (parents, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let mut node = &mut doc;
    for key in parents.split('.').filter(|k| !k.is_empty()) {
        node = node
            .get_mut(key)
            .unwrap_or_else(|| panic!("no {key} in {path}"));
    }
    let object = node.as_object_mut().expect("an object");
    match value {
        Some(value) => object.insert(leaf.to_owned(), value),
        None => object.remove(leaf),
    };
    doc
}

fn set(doc: Value, path: &str, value: Value) -> Value {
    with(doc, path, Some(value))
}

fn cut(doc: Value, path: &str) -> Value {
    with(doc, path, None)
}

enum Expect {
    /// Rejected for this reason, the detail beginning with this path.
    Reject(RejectReason, &'static str),
    /// Accepted: customer, canonical timestamp, heart rate, event id (`None`: derived).
    Accept(&'static str, &'static str, i16, Option<&'static str>),
    /// Accepted, with this activity and device, and these fields counted as ignored.
    Context(
        Option<Activity>,
        Option<&'static str>,
        &'static [IgnoredField],
    ),
}
use Expect::*;

fn good() -> Expect {
    Accept("CUST-1", AT_CANONICAL, 72, Some(ID))
}

fn bpm(heart_rate: i16) -> Expect {
    Accept("CUST-1", AT_CANONICAL, heart_rate, Some(ID))
}

/// The cases of one required part at `path`: absent, null, and each of `wrong` of another type;
/// `parents` are enclosing objects, absent (the part missing) or not objects (wrong_type there).
fn required_part(
    base: fn() -> Value,
    path: &'static str,
    wrong: &[Value],
) -> Vec<(String, Value, Expect)> {
    let mut cases = vec![
        (
            format!("{path} absent"),
            cut(base(), path),
            Reject(MissingField, path),
        ),
        (
            format!("{path} null"),
            set(base(), path, Value::Null),
            Reject(MissingField, path),
        ),
    ];
    for value in wrong {
        cases.push((
            format!("{path} = {value}"),
            set(base(), path, value.clone()),
            Reject(WrongType, path),
        ));
    }
    cases
}

/// An enclosing object at `parent` of the part at `path`: absent, null and not an object.
fn parent_part(
    base: fn() -> Value,
    parent: &'static str,
    path: &'static str,
) -> Vec<(String, Value, Expect)> {
    vec![
        (
            format!("{parent} absent"),
            cut(base(), parent),
            Reject(MissingField, path),
        ),
        (
            format!("{parent} null"),
            set(base(), parent, Value::Null),
            Reject(MissingField, path),
        ),
        (
            format!("{parent} a string"),
            set(base(), parent, json!("x")),
            Reject(WrongType, parent),
        ),
        (
            format!("{parent} an array"),
            set(base(), parent, json!([])),
            Reject(WrongType, parent),
        ),
    ]
}

fn named(cases: Vec<(&'static str, Value, Expect)>) -> Vec<(String, Value, Expect)> {
    cases
        .into_iter()
        .map(|(n, v, e)| (n.to_owned(), v, e))
        .collect()
}

fn fhir_cases() -> Vec<(String, Value, Expect)> {
    let not_string = [json!(5), json!(true), json!({}), json!([])];
    let not_number = [json!("72"), json!(true), json!([72]), json!({"v": 72})];
    let mut cases = named(vec![
        ("the good observation", fhir(), good()),
        // The parts FHIR reads, and what encloses them.
    ]);
    cases.extend(required_part(fhir, "subject.reference", &not_string));
    cases.extend(parent_part(fhir, "subject", "subject.reference"));
    cases.extend(required_part(fhir, "valueQuantity.value", &not_number));
    cases.extend(parent_part(fhir, "valueQuantity", "valueQuantity.value"));
    cases.extend(required_part(
        fhir,
        "code.coding",
        &[json!("8867-4"), json!({}), json!(5)],
    ));
    cases.extend(parent_part(fhir, "code", "code.coding"));
    cases.extend(named(vec![
        ("effectiveDateTime a number", set(fhir(), "effectiveDateTime", json!(5)), Reject(WrongType, "effectiveDateTime")),
        ("effectiveDateTime absent and no other form", cut(fhir(), "effectiveDateTime"), Reject(MissingField, "effectiveDateTime")),
        ("effectiveDateTime null and no other form", set(fhir(), "effectiveDateTime", Value::Null), Reject(MissingField, "effectiveDateTime")),
        ("status a number", set(fhir(), "status", json!(1)), Reject(WrongType, "status")),
        ("id a number", set(fhir(), "id", json!(7)), Reject(WrongType, "id")),
        // The effective time forms, in SPEC's order.
        ("effectiveInstant alone", set(cut(fhir(), "effectiveDateTime"), "effectiveInstant", json!(AT)), good()),
        ("effectivePeriod.start alone", set(cut(fhir(), "effectiveDateTime"), "effectivePeriod", json!({"start": AT, "end": "2026-11-29T12:01:00Z"})), good()),
        ("effectiveDateTime null falls through to effectivePeriod.start", set(set(fhir(), "effectiveDateTime", Value::Null), "effectivePeriod", json!({"start": AT})), good()),
        ("effectiveDateTime wins over effectiveInstant", set(fhir(), "effectiveInstant", json!("2026-11-29T11:00:00Z")), good()),
        ("effectiveInstant wins over effectivePeriod", set(set(cut(fhir(), "effectiveDateTime"), "effectiveInstant", json!(AT)), "effectivePeriod", json!({"start": "2026-11-29T11:00:00Z"})), good()),
        ("effectivePeriod without a start", set(cut(fhir(), "effectiveDateTime"), "effectivePeriod", json!({"end": AT})), Reject(MissingField, "effectiveDateTime")),
        ("effectivePeriod not an object", set(cut(fhir(), "effectiveDateTime"), "effectivePeriod", json!(AT)), Reject(WrongType, "effectivePeriod")),
        ("effectivePeriod.start a number", set(cut(fhir(), "effectiveDateTime"), "effectivePeriod", json!({"start": 5})), Reject(WrongType, "effectivePeriod.start")),
        ("a date only is invalid", set(fhir(), "effectiveDateTime", json!("2026-11-29")), Reject(InvalidTimestamp, "effectiveDateTime")),
        ("a year and month only is invalid", set(fhir(), "effectiveDateTime", json!("2026-11")), Reject(InvalidTimestamp, "effectiveDateTime")),
        ("a year only is invalid", set(fhir(), "effectiveDateTime", json!("2026")), Reject(InvalidTimestamp, "effectiveDateTime")),
        ("a time without a zone is invalid", set(fhir(), "effectiveDateTime", json!("2026-11-29T12:00:00")), Reject(InvalidTimestamp, "effectiveDateTime")),
        ("a leap second is invalid", set(fhir(), "effectiveDateTime", json!("2026-11-29T23:59:60Z")), Reject(InvalidTimestamp, "effectiveDateTime")),
        ("a partial effectivePeriod.start is invalid", set(cut(fhir(), "effectiveDateTime"), "effectivePeriod", json!({"start": "2026-11-29"})), Reject(InvalidTimestamp, "effectivePeriod.start")),
        ("an effectiveInstant with an offset", set(cut(fhir(), "effectiveDateTime"), "effectiveInstant", json!("2026-11-29T13:00:00.250+01:00")), good()),
        ("an old observation is stale", set(fhir(), "effectiveDateTime", json!("2020-01-01T00:00:00Z")), Reject(StaleTimestamp, "effectiveDateTime")),
        ("a future observation is in the future", set(fhir(), "effectiveDateTime", json!("2026-11-29T14:00:00Z")), Reject(FutureTimestamp, "effectiveDateTime")),
        // code.coding must hold LOINC 8867-4, anywhere among the codings.
        ("the heart rate coding after others", set(fhir(), "code.coding", json!([{"system": "urn:iso:std:iso:11073:10101", "code": "147842"}, {"system": "http://loinc.org", "code": "8867-4"}])), good()),
        ("a respiratory rate is unsupported", set(fhir(), "code.coding", json!([{"system": "http://loinc.org", "code": "9279-1"}])), Reject(UnsupportedObservation, "code.coding")),
        ("a resting heart rate is unsupported", set(fhir(), "code.coding", json!([{"system": "http://loinc.org", "code": "40443-4"}])), Reject(UnsupportedObservation, "code.coding")),
        ("the heart rate code of another system is unsupported", set(fhir(), "code.coding", json!([{"system": "http://snomed.info/sct", "code": "8867-4"}])), Reject(UnsupportedObservation, "code.coding")),
        ("loinc with a trailing slash is unsupported", set(fhir(), "code.coding", json!([{"system": "http://loinc.org/", "code": "8867-4"}])), Reject(UnsupportedObservation, "code.coding")),
        ("no codings is unsupported", set(fhir(), "code.coding", json!([])), Reject(UnsupportedObservation, "code.coding")),
        ("a coding that is not an object is no heart rate coding", set(fhir(), "code.coding", json!(["8867-4"])), Reject(UnsupportedObservation, "code.coding")),
        ("a code as a number is no heart rate coding", set(fhir(), "code.coding", json!([{"system": "http://loinc.org", "code": 88674}])), Reject(UnsupportedObservation, "code.coding")),
        ("an unsupported code beats a missing subject", cut(set(fhir(), "code.coding", json!([{"system": "http://loinc.org", "code": "9279-1"}])), "subject"), Reject(UnsupportedObservation, "code.coding")),
        // status: all but cancelled and entered-in-error.
        ("status cancelled is unsupported", set(fhir(), "status", json!("cancelled")), Reject(UnsupportedObservation, "status")),
        ("status entered-in-error is unsupported", set(fhir(), "status", json!("entered-in-error")), Reject(UnsupportedObservation, "status")),
        ("status preliminary is a reading", set(fhir(), "status", json!("preliminary")), good()),
        ("status amended is a reading", set(fhir(), "status", json!("amended")), good()),
        ("status unknown is a reading", set(fhir(), "status", json!("unknown")), good()),
        ("no status is a reading", cut(fhir(), "status"), good()),
        ("a wrong code is named before a cancelled status", set(set(fhir(), "status", json!("cancelled")), "code.coding", json!([])), Reject(UnsupportedObservation, "code.coding")),
        // The unit: unit or code one of /min, {beats}/min, beats/min, bpm.
        ("unit bpm alone", set(fhir(), "valueQuantity", json!({"value": 72, "unit": "bpm"})), good()),
        ("code /min alone", set(fhir(), "valueQuantity", json!({"value": 72, "code": "/min"})), good()),
        ("unit {beats}/min", set(fhir(), "valueQuantity", json!({"value": 72, "unit": "{beats}/min"})), good()),
        ("unit beats/min", set(fhir(), "valueQuantity", json!({"value": 72, "unit": "beats/min"})), good()),
        ("a listed code saves an unlisted unit", set(fhir(), "valueQuantity", json!({"value": 72, "unit": "count/min", "code": "/min"})), good()),
        ("unit count/min is unsupported", set(fhir(), "valueQuantity", json!({"value": 72, "unit": "count/min"})), Reject(UnsupportedObservation, "valueQuantity")),
        ("unit BPM (another case) is unsupported", set(fhir(), "valueQuantity", json!({"value": 72, "unit": "BPM"})), Reject(UnsupportedObservation, "valueQuantity")),
        ("neither unit nor code is unsupported", set(fhir(), "valueQuantity", json!({"value": 72})), Reject(UnsupportedObservation, "valueQuantity")),
        ("a unit that is a number is unsupported", set(fhir(), "valueQuantity", json!({"value": 72, "unit": 5})), Reject(UnsupportedObservation, "valueQuantity")),
        ("a per-second code is unsupported", set(fhir(), "valueQuantity", json!({"value": 72, "code": "/s"})), Reject(UnsupportedObservation, "valueQuantity")),
        // The heart rate: any JSON number, rounded halves away from zero.
        ("59.5 is 60", set(fhir(), "valueQuantity.value", json!(59.5)), bpm(60)),
        ("100.5 is 101", set(fhir(), "valueQuantity.value", json!(100.5)), bpm(101)),
        ("19.5 is 20, the lowest plausible", set(fhir(), "valueQuantity.value", json!(19.5)), bpm(20)),
        ("19.4 is implausible", set(fhir(), "valueQuantity.value", json!(19.4)), Reject(ImplausibleHeartRate, "valueQuantity.value")),
        ("250.5 is 251, implausible", set(fhir(), "valueQuantity.value", json!(250.5)), Reject(ImplausibleHeartRate, "valueQuantity.value")),
        ("250.4 is 250", set(fhir(), "valueQuantity.value", json!(250.4)), bpm(250)),
        // The customer: subject.reference Patient/<id>.
        ("a versioned reference", set(fhir(), "subject.reference", json!("Patient/CUST-1/_history/3")), good()),
        ("an absolute reference", set(fhir(), "subject.reference", json!("https://fhir.example.org/r4/Patient/CUST-1")), good()),
        ("an absolute versioned reference", set(fhir(), "subject.reference", json!("https://fhir.example.org/r4/Patient/CUST-1/_history/1")), good()),
        ("a group is no patient", set(fhir(), "subject.reference", json!("Group/herd1")), Reject(InvalidCustomerId, "subject.reference")),
        ("a bundle's urn is no patient id", set(fhir(), "subject.reference", json!("urn:uuid:8499029f-70ec-4919-88a9-938d8ad56397")), Reject(InvalidCustomerId, "subject.reference")),
        ("a contained reference is no patient id", set(fhir(), "subject.reference", json!("#p1")), Reject(InvalidCustomerId, "subject.reference")),
        ("a conditional reference is no patient id", set(fhir(), "subject.reference", json!("Patient?identifier=x|1")), Reject(InvalidCustomerId, "subject.reference")),
        ("an empty patient id", set(fhir(), "subject.reference", json!("Patient/")), Reject(InvalidCustomerId, "subject.reference")),
        ("a patient id with a space", set(fhir(), "subject.reference", json!("Patient/CUST 1")), Reject(InvalidCustomerId, "subject.reference")),
        ("a patient id of 65 characters", set(fhir(), "subject.reference", json!(format!("Patient/{}", "a".repeat(65)))), Reject(InvalidCustomerId, "subject.reference")),
        ("a subject with an identifier only", set(fhir(), "subject", json!({"identifier": {"system": "s", "value": "CUST-1"}})), Reject(MissingField, "subject.reference")),
        // The event id: id when it is a UUID, else derived.
        ("an upper case uuid id", set(fhir(), "id", json!(ID.to_uppercase())), good()),
        ("a non-uuid id is the server's: the event id is derived", set(fhir(), "id", json!("heart-rate")), Accept("CUST-1", AT_CANONICAL, 72, None)),
        ("no id: the event id is derived", cut(fhir(), "id"), Accept("CUST-1", AT_CANONICAL, 72, None)),
        // Nested objects repeat no key.
        ("a repeated key in a nested object read is malformed", json!("{\"resourceType\":\"Observation\",\"subject\":{\"reference\":\"Patient/a\",\"reference\":\"Patient/b\"}}"), Reject(MalformedJson, "repeated key")),
        ("a repeated key in a coding is malformed", json!("{\"resourceType\":\"Observation\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\",\"code\":\"9279-1\"}]}}"), Reject(MalformedJson, "repeated key")),
        // The device.
        ("the device", fhir(), Context(None, Some("watch-7"), &[])),
        ("no device", cut(fhir(), "device"), Context(None, None, &[])),
        ("a device metric is no device", set(fhir(), "device.reference", json!("DeviceMetric/example")), Context(None, None, &[IgnoredField::DeviceId])),
        ("a device with a display only", set(fhir(), "device", json!({"display": "Apple Watch"})), Context(None, None, &[IgnoredField::DeviceId])),
        ("a device id with a space", set(fhir(), "device.reference", json!("Device/Byteflies Vital Signs")), Context(None, None, &[IgnoredField::DeviceId])),
        ("a device that is a string", set(fhir(), "device", json!("Device/watch-7")), Context(None, None, &[IgnoredField::DeviceId])),
        // Shapes.
        ("a bundle is read as a native message", json!({"resourceType": "Bundle", "entry": [{"resource": fhir()}]}), Reject(MissingField, "customer_id")),
        ("resourceType Observation makes it FHIR even with native fields", set(fhir(), "customer_id", json!("OTHER")), good()),
    ]));
    cases
}

fn omh_cases() -> Vec<(String, Value, Expect)> {
    let not_string = [json!(5), json!(true), json!({}), json!([])];
    let not_number = [json!("72"), json!(true), json!([72]), json!({"v": 72})];
    let mut cases = named(vec![("the good data point", omh(), good())]);
    cases.extend(required_part(
        omh,
        "header.user_id",
        &[json!(true), json!(1.5), json!({}), json!([])],
    ));
    cases.extend(required_part(omh, "header.id", &not_string));
    cases.extend(required_part(omh, "body.heart_rate.value", &not_number));
    cases.extend(required_part(omh, "body.heart_rate.unit", &not_string));
    cases.extend(required_part(
        omh,
        "body.effective_time_frame.date_time",
        &not_string,
    ));
    cases.extend(named(vec![
        ("body.heart_rate absent", cut(omh(), "body.heart_rate"), Reject(MissingField, "body.heart_rate.value")),
        ("body.heart_rate a number", set(omh(), "body.heart_rate", json!(72)), Reject(WrongType, "body.heart_rate")),
        ("body.effective_time_frame absent", cut(omh(), "body.effective_time_frame"), Reject(MissingField, "body.effective_time_frame.date_time")),
        ("body.effective_time_frame a string", set(omh(), "body.effective_time_frame", json!(AT)), Reject(WrongType, "body.effective_time_frame")),
        ("header.schema_id not an object is not read", set(omh(), "header.schema_id", json!("heart-rate")), good()),
        ("a user id that is an integer", set(omh(), "header.user_id", json!(42)), Accept("42", AT_CANONICAL, 72, Some(ID))),
        ("a user id with a space", set(omh(), "header.user_id", json!("user 1")), Reject(InvalidCustomerId, "header.user_id")),
        ("a header id that is not a uuid", set(omh(), "header.id", json!("3b9b68a2-e0fd-4bdd-ba85-4127a4e8gggg")), Reject(InvalidEventId, "header.id")),
        ("an upper case header id", set(omh(), "header.id", json!(ID.to_uppercase())), good()),
        // The time forms.
        ("a time interval's start", set(omh(), "body.effective_time_frame", json!({"time_interval": {"start_date_time": AT, "duration": {"value": 1, "unit": "min"}}})), good()),
        ("date_time wins over the interval", set(omh(), "body.effective_time_frame", json!({"date_time": AT, "time_interval": {"start_date_time": "2026-11-29T11:00:00Z"}})), good()),
        ("an interval by its end and duration has no start", set(omh(), "body.effective_time_frame", json!({"time_interval": {"end_date_time": AT, "duration": {"value": 1, "unit": "min"}}})), Reject(MissingField, "body.effective_time_frame.date_time")),
        ("an interval by date and part of day has no start", set(omh(), "body.effective_time_frame", json!({"time_interval": {"date": "2026-11-29", "part_of_day": "morning"}})), Reject(MissingField, "body.effective_time_frame.date_time")),
        ("a time interval that is a string", set(omh(), "body.effective_time_frame", json!({"time_interval": AT})), Reject(WrongType, "body.effective_time_frame.time_interval")),
        ("a start that is a number", set(omh(), "body.effective_time_frame", json!({"time_interval": {"start_date_time": 5}})), Reject(WrongType, "body.effective_time_frame.time_interval.start_date_time")),
        ("a time without a zone is invalid", set(omh(), "body.effective_time_frame.date_time", json!("2026-11-29T12:00:00")), Reject(InvalidTimestamp, "body.effective_time_frame.date_time")),
        ("a date only is invalid", set(omh(), "body.effective_time_frame.date_time", json!("2026-11-29")), Reject(InvalidTimestamp, "body.effective_time_frame.date_time")),
        ("an offset is taken to utc", set(omh(), "body.effective_time_frame.date_time", json!("2026-11-29T04:00:00.250-08:00")), good()),
        ("an old data point is stale", set(omh(), "body.effective_time_frame.date_time", json!("2020-02-05T07:25:00-08:00")), Reject(StaleTimestamp, "body.effective_time_frame.date_time")),
        // What is not a heart rate reading.
        ("unit beat/min is unsupported", set(omh(), "body.heart_rate.unit", json!("beat/min")), Reject(UnsupportedObservation, "body.heart_rate.unit")),
        ("another schema is unsupported", set(omh(), "header.schema_id.name", json!("blood-pressure")), Reject(UnsupportedObservation, "header.schema_id.name")),
        ("a descriptive statistic is unsupported", set(omh(), "body.descriptive_statistic", json!("minimum")), Reject(UnsupportedObservation, "body.descriptive_statistic")),
        ("an unsupported unit beats a missing user", cut(set(omh(), "body.heart_rate.unit", json!("beat/min")), "header.user_id"), Reject(UnsupportedObservation, "body.heart_rate.unit")),
        ("no schema id is read as a heart rate", cut(omh(), "header.schema_id"), good()),
        // The heart rate.
        ("67.5 is 68", set(omh(), "body.heart_rate.value", json!(67.5)), bpm(68)),
        ("59.5 is 60", set(omh(), "body.heart_rate.value", json!(59.5)), bpm(60)),
        ("100.5 is 101", set(omh(), "body.heart_rate.value", json!(100.5)), bpm(101)),
        ("19.5 is 20", set(omh(), "body.heart_rate.value", json!(19.5)), bpm(20)),
        ("250.5 is implausible", set(omh(), "body.heart_rate.value", json!(250.5)), Reject(ImplausibleHeartRate, "body.heart_rate.value")),
        ("50.0 is 50", set(omh(), "body.heart_rate.value", json!(50.0)), bpm(50)),
        // The activity.
        ("at rest is rest", omh(), Context(Some(Activity::Rest), None, &[])),
        ("before exercise is rest", set(omh(), "body.temporal_relationship_to_physical_activity", json!("before exercise")), Context(Some(Activity::Rest), None, &[])),
        ("active is active", set(omh(), "body.temporal_relationship_to_physical_activity", json!("active")), Context(Some(Activity::Active), None, &[])),
        ("after exercise is active", set(omh(), "body.temporal_relationship_to_physical_activity", json!("after exercise")), Context(Some(Activity::Active), None, &[])),
        ("during exercise is exercise", set(omh(), "body.temporal_relationship_to_physical_activity", json!("during exercise")), Context(Some(Activity::Exercise), None, &[])),
        ("during sleep is sleep, whatever the physical activity", set(set(omh(), "body.temporal_relationship_to_physical_activity", json!("during exercise")), "body.temporal_relationship_to_sleep", json!("during sleep")), Context(Some(Activity::Sleep), None, &[])),
        ("on waking leaves it to the physical activity", set(omh(), "body.temporal_relationship_to_sleep", json!("on waking")), Context(Some(Activity::Rest), None, &[])),
        ("on waking alone is unknown, and not counted", set(cut(omh(), "body.temporal_relationship_to_physical_activity"), "body.temporal_relationship_to_sleep", json!("on waking")), Context(None, None, &[])),
        ("no relation is unknown", cut(omh(), "body.temporal_relationship_to_physical_activity"), Context(None, None, &[])),
        ("an unknown relation is ignored and counted", set(omh(), "body.temporal_relationship_to_physical_activity", json!("dancing")), Context(None, None, &[IgnoredField::Activity])),
        ("a native activity in the body is not read", set(cut(omh(), "body.temporal_relationship_to_physical_activity"), "body.activity", json!("rest")), Context(None, None, &[])),
        // Shapes.
        ("a header without a body is read as native", cut(omh(), "body"), Reject(MissingField, "customer_id")),
        ("a body that is an array is read as native", set(omh(), "body", json!([])), Reject(MissingField, "customer_id")),
        ("a repeated key in the header is malformed", json!("{\"header\":{\"user_id\":\"a\",\"user_id\":\"b\"},\"body\":{}}"), Reject(MalformedJson, "repeated key")),
        ("an observation with a header and body is FHIR", set(set(fhir(), "header", omh()["header"].clone()), "body", omh()["body"].clone()), good()),
    ]));
    cases
}

fn native_device_cases() -> Vec<(String, Value, Expect)> {
    let native =
        || json!({"event_id": ID, "customer_id": "CUST-1", "timestamp": AT, "heart_rate": 72});
    let ignored: &[IgnoredField] = &[IgnoredField::DeviceId];
    named(vec![
        (
            "a device id is stored",
            set(native(), "device_id", json!("watch-7")),
            Context(None, Some("watch-7"), &[]),
        ),
        (
            "a device id of 64 characters",
            set(native(), "device_id", json!(D64)),
            Context(None, Some(D64), &[]),
        ),
        (
            "a device id of 65 characters is ignored",
            set(native(), "device_id", json!("d".repeat(65))),
            Context(None, None, ignored),
        ),
        (
            "a device id with a space is ignored",
            set(native(), "device_id", json!("has space")),
            Context(None, None, ignored),
        ),
        (
            "an empty device id is ignored",
            set(native(), "device_id", json!("")),
            Context(None, None, ignored),
        ),
        (
            "a number device id is ignored",
            set(native(), "device_id", json!(42)),
            Context(None, None, ignored),
        ),
        (
            "true as device id is ignored",
            set(native(), "device_id", json!(true)),
            Context(None, None, ignored),
        ),
        (
            "an object device id is ignored",
            set(native(), "device_id", json!({})),
            Context(None, None, ignored),
        ),
        (
            "a null device id is unknown, not counted",
            set(native(), "device_id", Value::Null),
            Context(None, None, &[]),
        ),
        (
            "a bad device and a bad activity are both counted",
            set(set(native(), "device_id", json!(1)), "activity", json!("x")),
            Context(
                None,
                None,
                &[IgnoredField::Activity, IgnoredField::DeviceId],
            ),
        ),
        (
            "a bad device id does not save an implausible rate",
            set(
                set(native(), "device_id", json!("ok")),
                "heart_rate",
                json!(500),
            ),
            Reject(ImplausibleHeartRate, "heart_rate"),
        ),
    ])
}

/// A case's value: the JSON of `doc`, or the text itself when `doc` is a JSON string (for
/// values serde_json cannot build, such as repeated keys).
fn bytes(doc: &Value) -> Vec<u8> {
    match doc {
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

#[test]
fn every_format_case_gets_its_verdict() {
    let rules = ValidationRules::default();
    let mut failures = Vec::new();
    let cases: Vec<_> = fhir_cases()
        .into_iter()
        .chain(omh_cases())
        .chain(native_device_cases())
        .collect();
    assert!(cases.len() >= 150, "{} cases", cases.len());
    for (name, doc, expect) in &cases {
        let got = validate(Some(&bytes(doc)), Some(reference()), &rules);
        let good = match (expect, &got) {
            (Reject(reason, path), Err(rejection)) => {
                rejection.reason == *reason && rejection.detail.starts_with(path)
            }
            (Accept(customer, at, bpm, id), Ok(Validated { reading, .. })) => {
                let derived = derive_event_id(customer, &reading.recorded_at).to_string();
                reading.customer_id == *customer
                    && canonical_timestamp(&reading.recorded_at) == *at
                    && reading.heart_rate == *bpm
                    && reading.event_id.to_string() == id.map_or(derived, str::to_owned)
            }
            (Context(activity, device, ignored_fields), Ok(Validated { reading, ignored })) => {
                reading.activity == *activity
                    && reading.device_id.as_deref() == *device
                    && ignored.iter().collect::<Vec<_>>() == *ignored_fields
            }
            _ => false,
        };
        if !good {
            failures.push(format!("{name}: got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_same_reading_in_three_formats_is_one_reading() {
    let native = json!({"event_id": ID, "customer_id": "CUST-1", "timestamp": AT, "heart_rate": 72, "activity": "rest"});
    let rules = ValidationRules::default();
    let reading = |doc: &Value| {
        validate(Some(&bytes(doc)), Some(reference()), &rules)
            .unwrap()
            .reading
    };
    let (n, f, o) = (reading(&native), reading(&fhir()), reading(&omh()));
    // The identity and the measurement agree; the context is what each format can carry.
    for r in [&f, &o] {
        assert_eq!(
            (r.event_id, r.recorded_at, &r.customer_id, r.heart_rate),
            (n.event_id, n.recorded_at, &n.customer_id, n.heart_rate)
        );
    }
    assert_eq!(o.activity, n.activity);
    assert_eq!(f.device_id.as_deref(), Some("watch-7"));

    // Without ids, a native message and a FHIR one without a UUID id derive the same one.
    let bare_native = cut(native, "event_id");
    let bare_fhir = set(fhir(), "id", json!("hr-1"));
    assert_eq!(reading(&bare_native).event_id, reading(&bare_fhir).event_id);
}

#[test]
fn the_reason_order_holds_across_formats() {
    // Each broken twice; the earlier reason of SPEC's order wins.
    let rules = ValidationRules::default();
    let reason = |doc: Value| {
        validate(Some(&bytes(&doc)), Some(reference()), &rules)
            .unwrap_err()
            .reason
    };
    let unsupported = || set(fhir(), "status", json!("cancelled"));
    assert_eq!(
        reason(cut(unsupported(), "valueQuantity")),
        UnsupportedObservation
    );
    assert_eq!(
        reason(set(
            cut(fhir(), "subject"),
            "valueQuantity.value",
            json!("x")
        )),
        MissingField
    );
    assert_eq!(
        reason(set(
            set(fhir(), "subject.reference", json!("Group/1")),
            "valueQuantity.value",
            json!("x")
        )),
        WrongType
    );
    assert_eq!(
        reason(set(
            set(omh(), "header.user_id", json!("a b")),
            "header.id",
            json!("x")
        )),
        InvalidCustomerId
    );
    assert_eq!(
        reason(set(
            set(omh(), "header.id", json!("x")),
            "body.effective_time_frame.date_time",
            json!("x")
        )),
        InvalidEventId
    );
    assert_eq!(
        reason(set(
            set(omh(), "body.effective_time_frame.date_time", json!("x")),
            "body.heart_rate.value",
            json!(500)
        )),
        InvalidTimestamp
    );
}

#[test]
fn customer_key_finds_the_customer_in_every_format() {
    let key = |doc: Value| customer_key(&bytes(&doc));
    assert_eq!(key(fhir()).as_deref(), Some("CUST-1"));
    assert_eq!(key(omh()).as_deref(), Some("CUST-1"));
    assert_eq!(
        key(json!({"customer_id": "CUST-1"})).as_deref(),
        Some("CUST-1")
    );
    assert_eq!(key(json!({"customer_id": 42})).as_deref(), Some("42"));
    assert_eq!(
        key(set(
            fhir(),
            "subject.reference",
            json!("https://x/fhir/Patient/P-9/_history/2")
        ))
        .as_deref(),
        Some("P-9")
    );
    // Whatever else is wrong does not matter to the key.
    assert_eq!(
        key(set(fhir(), "status", json!("cancelled"))).as_deref(),
        Some("CUST-1")
    );
    // No valid customer: unkeyed.
    for doc in [
        json!({"heart_rate": 72}),
        json!({"customer_id": "a b"}),
        set(fhir(), "subject.reference", json!("Group/1")),
        cut(omh(), "header.user_id"),
        json!([1]),
        json!("not json {"),
    ] {
        assert_eq!(key(doc.clone()), None, "{doc}");
    }
    assert_eq!(customer_key(b"\xff"), None);
}
