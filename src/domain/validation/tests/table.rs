//! The table of cases: every reject reason and the accepted forms, each with its verdict; and the
//! table of the optional `activity`, which never decides a verdict.

use super::*;
use crate::domain::reading::{canonical_timestamp, Activity};

enum Expect {
    Reject(RejectReason),
    /// The stored fields: customer id, canonical UTC timestamp, heart rate, and the event id
    /// (`None`: not checked here, e.g. derived and checked by its own test).
    Accept(&'static str, &'static str, i16, Option<&'static str>),
}
use Expect::*;

fn ok(customer: &'static str, at: &'static str, bpm: i16) -> Expect {
    Accept(customer, at, bpm, None)
}

fn ok_id(customer: &'static str, at: &'static str, bpm: i16, id: &'static str) -> Expect {
    Accept(customer, at, bpm, Some(id))
}

/// A value from its text.
fn v(text: &str) -> Option<Vec<u8>> {
    Some(text.as_bytes().to_vec())
}

/// A message with the given raw JSON for each field.
fn msg(customer_id: &str, timestamp: &str, heart_rate: &str) -> Option<Vec<u8>> {
    v(&format!(
        r#"{{"customer_id":{customer_id},"timestamp":{timestamp},"heart_rate":{heart_rate}}}"#
    ))
}

/// A message with a good customer id and timestamp and the given raw heart rate.
fn hr(heart_rate: &str) -> Option<Vec<u8>> {
    msg(r#""CUST-1""#, r#""2026-11-29T12:00:00Z""#, heart_rate)
}

/// A message with the given timestamp string and good other fields.
fn ts(timestamp: &str) -> Option<Vec<u8>> {
    msg(r#""CUST-1""#, &format!("\"{timestamp}\""), "72")
}

/// A message with the given raw customer id and good other fields.
fn cid(customer_id: &str) -> Option<Vec<u8>> {
    msg(customer_id, r#""2026-11-29T12:00:00Z""#, "72")
}

/// A message with the given raw event id and good other fields.
fn eid(event_id: &str) -> Option<Vec<u8>> {
    v(&format!(
        r#"{{"event_id":{event_id},"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72}}"#
    ))
}

/// A well-formed message padded with spaces to exactly `len` bytes.
fn padded_to(len: usize) -> Option<Vec<u8>> {
    let mut bytes = hr("72").unwrap();
    bytes.resize(len, b' ');
    Some(bytes)
}

const NOON: &str = "2026-11-29T12:00:00.000000Z";

/// A customer id of exactly 64 characters, using every kind of allowed character.
const ID_64: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

fn cases() -> Vec<(&'static str, Option<Vec<u8>>, Expect)> {
    vec![
        // The SPEC example, and the event id derived when there is none.
        (
            "spec example is accepted with its event id",
            v(r#"{"event_id":"1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b","customer_id":"CUST-00042","timestamp":"2026-11-29T13:00:00.250Z","heart_rate":72}"#),
            ok_id("CUST-00042", "2026-11-29T13:00:00.250000Z", 72, "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"),
        ),
        (
            "absent event id is derived",
            v(r#"{"customer_id":"CUST-00042","timestamp":"2026-11-29T13:00:00.250Z","heart_rate":72}"#),
            ok_id("CUST-00042", "2026-11-29T13:00:00.250000Z", 72, "00be28ad-91e1-53d7-93bb-615698f65c56"),
        ),
        (
            "null event id is derived",
            v(r#"{"event_id":null,"customer_id":"CUST-00042","timestamp":"2026-11-29T13:00:00.250Z","heart_rate":72}"#),
            ok_id("CUST-00042", "2026-11-29T13:00:00.250000Z", 72, "00be28ad-91e1-53d7-93bb-615698f65c56"),
        ),
        // Heart rate.
        ("heart rate 19 is implausible", hr("19"), Reject(ImplausibleHeartRate)),
        ("heart rate 20 is accepted", hr("20"), ok("CUST-1", NOON, 20)),
        ("heart rate 250 is accepted", hr("250"), ok("CUST-1", NOON, 250)),
        ("heart rate 251 is implausible", hr("251"), Reject(ImplausibleHeartRate)),
        ("heart rate 0 is implausible", hr("0"), Reject(ImplausibleHeartRate)),
        ("heart rate minus zero is implausible", hr("-0"), Reject(ImplausibleHeartRate)),
        ("negative heart rate is implausible", hr("-72"), Reject(ImplausibleHeartRate)),
        ("huge heart rate literal is implausible", hr("99999999999999999999"), Reject(ImplausibleHeartRate)),
        ("heart rate 72.0 is 72", hr("72.0"), ok("CUST-1", NOON, 72)),
        ("heart rate 7.2e1 is 72", hr("7.2e1"), ok("CUST-1", NOON, 72)),
        ("heart rate 72E0 is 72", hr("72E0"), ok("CUST-1", NOON, 72)),
        ("heart rate 72.5 rounds away from zero to 73", hr("72.5"), ok("CUST-1", NOON, 73)),
        ("heart rate 72.4999 rounds to 72", hr("72.49999999999999999999"), ok("CUST-1", NOON, 72)),
        ("heart rate 59.5 is 60", hr("59.5"), ok("CUST-1", NOON, 60)),
        ("heart rate 100.5 is 101", hr("100.5"), ok("CUST-1", NOON, 101)),
        ("heart rate 19.5 rounds to 20, accepted", hr("19.5"), ok("CUST-1", NOON, 20)),
        ("heart rate 19.49 rounds to 19, implausible", hr("19.49"), Reject(ImplausibleHeartRate)),
        ("heart rate 250.49 rounds to 250, accepted", hr("250.49"), ok("CUST-1", NOON, 250)),
        ("heart rate 250.5 rounds to 251, implausible", hr("250.5"), Reject(ImplausibleHeartRate)),
        ("heart rate 0.72e2 is 72", hr("0.72e2"), ok("CUST-1", NOON, 72)),
        ("heart rate 7200e-2 is 72", hr("7200e-2"), ok("CUST-1", NOON, 72)),
        ("heart rate 1e400 is implausible", hr("1e400"), Reject(ImplausibleHeartRate)),
        ("heart rate 1e-400 is 0, implausible", hr("1e-400"), Reject(ImplausibleHeartRate)),
        ("heart rate -72.5 is implausible", hr("-72.5"), Reject(ImplausibleHeartRate)),
        ("heart rate true is the wrong type", hr("true"), Reject(WrongType)),
        ("heart rate string is the wrong type", hr(r#""72""#), Reject(WrongType)),
        ("heart rate array is the wrong type", hr("[72]"), Reject(WrongType)),
        ("null heart rate is missing", hr("null"), Reject(MissingField)),
        (
            "absent heart rate is missing",
            v(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z"}"#),
            Reject(MissingField),
        ),
        // Timestamps.
        ("naive timestamp without offset is invalid", ts("2026-11-29T12:00:00"), Reject(InvalidTimestamp)),
        ("naive timestamp with fraction is invalid", ts("2026-11-29T12:00:00.5"), Reject(InvalidTimestamp)),
        ("z timestamp is accepted", ts("2026-11-29T12:00:00Z"), ok("CUST-1", NOON, 72)),
        ("lowercase t and z are accepted", ts("2026-11-29t12:00:00.25z"), ok("CUST-1", "2026-11-29T12:00:00.250000Z", 72)),
        ("plus two hours offset is converted to utc", ts("2026-11-29T14:00:00.5+02:00"), ok("CUST-1", "2026-11-29T12:00:00.500000Z", 72)),
        ("minus offset is converted to utc", ts("2026-11-29T06:30:00-05:30"), ok("CUST-1", NOON, 72)),
        ("minus zero offset is utc", ts("2026-11-29T12:00:00-00:00"), ok("CUST-1", NOON, 72)),
        ("offset crossing midnight changes the date", ts("2026-11-30T01:00:00+13:00"), ok("CUST-1", NOON, 72)),
        ("seven fraction digits are truncated", ts("2026-11-29T12:00:00.1234567Z"), ok("CUST-1", "2026-11-29T12:00:00.123456Z", 72)),
        ("eight fraction digits are truncated", ts("2026-11-29T12:00:00.99999999Z"), ok("CUST-1", "2026-11-29T12:00:00.999999Z", 72)),
        ("nine fraction digits are truncated not rounded", ts("2026-11-29T12:00:00.999999999Z"), ok("CUST-1", "2026-11-29T12:00:00.999999Z", 72)),
        ("one fraction digit is accepted", ts("2026-11-29T12:00:00.1Z"), ok("CUST-1", "2026-11-29T12:00:00.100000Z", 72)),
        ("ten fraction digits are invalid", ts("2026-11-29T12:00:00.1234567890Z"), Reject(InvalidTimestamp)),
        ("a dot without fraction digits is invalid", ts("2026-11-29T12:00:00.Z"), Reject(InvalidTimestamp)),
        ("second 60 is invalid", ts("2026-11-29T12:00:60Z"), Reject(InvalidTimestamp)),
        ("hour 24 is invalid", ts("2026-11-29T24:00:00Z"), Reject(InvalidTimestamp)),
        ("month 13 is invalid", ts("2026-13-01T12:00:00Z"), Reject(InvalidTimestamp)),
        ("february 30 is invalid", ts("2026-02-30T12:00:00Z"), Reject(InvalidTimestamp)),
        ("february 29 of a common year is invalid", ts("2025-02-29T12:00:00Z"), Reject(InvalidTimestamp)),
        // unsupported_observation: the FHIR and Open mHealth cases are in formats.rs.
        ("a fhir respiratory rate is unsupported", v(r#"{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]},"subject":{"reference":"Patient/CUST-1"},"effectiveDateTime":"2026-11-29T12:00:00Z","valueQuantity":{"value":16,"unit":"/min"}}"#), Reject(UnsupportedObservation)),
        ("a fhir heart rate is accepted", v(r#"{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/CUST-1"},"effectiveDateTime":"2026-11-29T12:00:00Z","valueQuantity":{"value":72,"unit":"/min"}}"#), ok("CUST-1", NOON, 72)),
        ("an open mhealth heart rate is accepted", v(r#"{"header":{"id":"1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b","user_id":"CUST-1"},"body":{"heart_rate":{"value":72,"unit":"beats/min"},"effective_time_frame":{"date_time":"2026-11-29T12:00:00Z"}}}"#), ok_id("CUST-1", NOON, 72, "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b")),
        ("year 1969 is invalid", ts("1969-12-31T23:59:59Z"), Reject(InvalidTimestamp)),
        // The dates far from the record time are held to no age bound below (untimed_cases).
        ("february 29 of the leap year 2028 is a date, in the future here", ts("2028-02-29T12:00:00Z"), Reject(FutureTimestamp)),
        ("february 29 of a year that is no leap year is invalid", ts("2026-02-29T12:00:00Z"), Reject(InvalidTimestamp)),
        ("a space for t is invalid", ts("2026-11-29 12:00:00Z"), Reject(InvalidTimestamp)),
        ("offset without colon is invalid", ts("2026-11-29T12:00:00+0200"), Reject(InvalidTimestamp)),
        ("offset hour 24 is invalid", ts("2026-11-29T12:00:00+24:00"), Reject(InvalidTimestamp)),
        ("characters after the offset are invalid", ts("2026-11-29T12:00:00Zx"), Reject(InvalidTimestamp)),
        ("a two digit year is invalid", ts("26-11-29T12:00:00Z"), Reject(InvalidTimestamp)),
        ("an empty timestamp is invalid", ts(""), Reject(InvalidTimestamp)),
        ("a date alone is invalid", ts("2026-11-29"), Reject(InvalidTimestamp)),
        ("a unicode digit is invalid", ts("２026-11-29T12:00:00Z"), Reject(InvalidTimestamp)),
        ("a numeric timestamp is the wrong type", msg(r#""CUST-1""#, "1764417600000", "72"), Reject(WrongType)),
        ("a null timestamp is missing", msg(r#""CUST-1""#, "null", "72"), Reject(MissingField)),
        // Future timestamps, against the record's time of 13:00:00Z and 300 s of skew.
        ("timestamp exactly at the skew bound is accepted", ts("2026-11-29T13:05:00Z"), ok("CUST-1", "2026-11-29T13:05:00.000000Z", 72)),
        ("timestamp a microsecond past the bound is in the future", ts("2026-11-29T13:05:00.000001Z"), Reject(FutureTimestamp)),
        ("nanoseconds past the bound are truncated away", ts("2026-11-29T13:05:00.000000999Z"), ok("CUST-1", "2026-11-29T13:05:00.000000Z", 72)),
        ("offset timestamp past the bound is in the future", ts("2026-11-29T15:05:01+02:00"), Reject(FutureTimestamp)),
        ("far future year is in the future", ts("9999-12-31T23:59:59-23:59"), Reject(FutureTimestamp)),
        // stale_timestamp: at most validation.max_age_days (30) behind the record time.
        ("timestamp exactly 30 days behind is accepted", ts("2026-10-30T13:00:00Z"), ok("CUST-1", "2026-10-30T13:00:00.000000Z", 72)),
        ("timestamp a microsecond over 30 days behind is stale", ts("2026-10-30T12:59:59.999999Z"), Reject(StaleTimestamp)),
        ("offset timestamp over the bound is stale", ts("2026-10-30T14:59:59+02:00"), Reject(StaleTimestamp)),
        ("offset timestamp at the bound is accepted", ts("2026-10-30T15:00:00+02:00"), ok("CUST-1", "2026-10-30T13:00:00.000000Z", 72)),
        ("the epoch is stale", ts("1970-01-01T00:00:00Z"), Reject(StaleTimestamp)),
        ("a stale timestamp beats an implausible heart rate", msg(r#""CUST-1""#, r#""2020-01-01T00:00:00Z""#, "500"), Reject(StaleTimestamp)),
        ("an invalid timestamp beats a stale one", ts("2020-01-01T00:00:00"), Reject(InvalidTimestamp)),
        // Customer ids.
        ("64 character customer id is accepted", cid(&format!("\"{ID_64}\"")), ok(ID_64, NOON, 72)),
        ("65 character customer id is invalid", cid(&format!("\"{ID_64}.\"")), Reject(InvalidCustomerId)),
        ("empty customer id is invalid", cid(r#""""#), Reject(InvalidCustomerId)),
        ("customer id with a space is invalid", cid(r#""CUST 1""#), Reject(InvalidCustomerId)),
        ("customer id with a non ascii letter is invalid", cid(r#""CÜST""#), Reject(InvalidCustomerId)),
        ("customer id with a slash is invalid", cid(r#""a/b""#), Reject(InvalidCustomerId)),
        ("customer id punctuation is accepted", cid(r#""a_b-c.d:E9""#), ok("a_b-c.d:E9", NOON, 72)),
        ("escaped customer id is decoded", cid(r#""CUST\u002d1""#), ok("CUST-1", NOON, 72)),
        ("escaped control character in customer id is invalid", cid(r#""CUST\u0000""#), Reject(InvalidCustomerId)),
        ("lone surrogate in customer id is invalid", cid(r#""\ud800""#), Reject(InvalidCustomerId)),
        ("integer customer id 0 is accepted", cid("0"), ok("0", NOON, 72)),
        ("integer customer id minus zero is zero", cid("-0"), ok("0", NOON, 72)),
        ("integer customer id 42 is accepted", cid("42"), ok("42", NOON, 72)),
        ("integer customer id 2^64-1 is accepted", cid("18446744073709551615"), ok("18446744073709551615", NOON, 72)),
        ("integer customer id 2^64 is invalid", cid("18446744073709551616"), Reject(InvalidCustomerId)),
        ("integer customer id with 30 digits is invalid", cid("100000000000000000000000000000"), Reject(InvalidCustomerId)),
        ("integer customer id -1 is invalid", cid("-1"), Reject(InvalidCustomerId)),
        ("customer id 1.5 is the wrong type", cid("1.5"), Reject(WrongType)),
        ("customer id 1e3 is the wrong type", cid("1e3"), Reject(WrongType)),
        ("customer id 42.0 is the wrong type", cid("42.0"), Reject(WrongType)),
        ("customer id true is the wrong type", cid("true"), Reject(WrongType)),
        ("customer id array is the wrong type", cid(r#"["CUST-1"]"#), Reject(WrongType)),
        ("customer id object is the wrong type", cid(r#"{"id":"CUST-1"}"#), Reject(WrongType)),
        ("null customer id is missing", cid("null"), Reject(MissingField)),
        // Event ids.
        ("uppercase event id is accepted", eid(r#""1B4E28BA-2FA1-4D3B-A3F5-EF19B5A7633B""#), ok_id("CUST-1", NOON, 72, "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b")),
        ("malformed event id is invalid", eid(r#""not-a-uuid""#), Reject(InvalidEventId)),
        ("event id with a bad hex digit is invalid", eid(r#""1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633g""#), Reject(InvalidEventId)),
        ("simple 32 hex event id is invalid", eid(r#""1b4e28ba2fa14d3ba3f5ef19b5a7633b""#), Reject(InvalidEventId)),
        ("braced event id is invalid", eid(r#""{1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b}""#), Reject(InvalidEventId)),
        ("urn event id is invalid", eid(r#""urn:uuid:1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b""#), Reject(InvalidEventId)),
        ("empty event id is invalid", eid(r#""""#), Reject(InvalidEventId)),
        ("numeric event id is the wrong type", eid("5"), Reject(WrongType)),
        // The value as a whole.
        ("empty value is malformed", v(""), Reject(MalformedJson)),
        ("whitespace value is malformed", v(" \n\t"), Reject(MalformedJson)),
        ("null value is malformed", None, Reject(MalformedJson)),
        ("invalid utf-8 is rejected", Some(b"{\"customer_id\":\"CUST-\xff\"}".to_vec()), Reject(InvalidUtf8)),
        ("a byte order mark is malformed", v("\u{feff}{}"), Reject(MalformedJson)),
        ("value of exactly the limit is accepted", padded_to(65_536), ok("CUST-1", NOON, 72)),
        ("value one byte over the limit is too large", padded_to(65_537), Reject(TooLarge)),
        ("too large wins over invalid utf-8", Some(vec![0xff; 70_000]), Reject(TooLarge)),
        ("top level array is not an object", v(r#"[{"customer_id":"CUST-1"}]"#), Reject(NotAnObject)),
        ("top level string is not an object", v(r#""CUST-1""#), Reject(NotAnObject)),
        ("top level huge number is not an object", v("1e400"), Reject(NotAnObject)),
        ("the json text null is valid json and not an object", v("null"), Reject(NotAnObject)),
        ("the json text null with spaces is not an object", v(" null \n"), Reject(NotAnObject)),
        ("truncated object is malformed", v(r#"{"customer_id":"CUST-1","#), Reject(MalformedJson)),
        ("unclosed array is malformed not an object", v("[1,2"), Reject(MalformedJson)),
        ("text after the object is malformed", v(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72} x"#), Reject(MalformedJson)),
        ("two objects are malformed", v(r#"{} {}"#), Reject(MalformedJson)),
        ("single quotes are malformed", v("{'customer_id':'CUST-1'}"), Reject(MalformedJson)),
        (
            "repeated heart rate key is malformed",
            v(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72,"heart_rate":73}"#),
            Reject(MalformedJson),
        ),
        (
            "key repeated through an escape is malformed",
            v(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72,"heart\u005frate":73}"#),
            Reject(MalformedJson),
        ),
        (
            "repeated ignored key is malformed",
            v(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72,"note":1,"note":2}"#),
            Reject(MalformedJson),
        ),
        (
            "repeated key inside an ignored field is ignored",
            v(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72,"meta":{"a":1,"a":2}}"#),
            ok("CUST-1", NOON, 72),
        ),
        (
            "extra fields of every kind are ignored",
            v(r#"{"source":"watch","battery":1e400,"tags":["a",{"b":null}],"customer_id":"CUST-1","nested":{"heart_rate":"x"},"timestamp":"2026-11-29T12:00:00Z","weird":"\ud800","heart_rate":72,"ok":true}"#),
            ok("CUST-1", NOON, 72),
        ),
        (
            "field order does not matter and whitespace is allowed",
            v("\n { \"heart_rate\" : 72 ,\r\n \"timestamp\" : \"2026-11-29T12:00:00Z\" , \"customer_id\" : \"CUST-1\" } \n"),
            ok("CUST-1", NOON, 72),
        ),
        // The order of reasons.
        (
            "missing field wins over wrong type",
            v(r#"{"customer_id":true,"timestamp":"2026-11-29T12:00:00Z"}"#),
            Reject(MissingField),
        ),
        (
            "wrong type wins over invalid timestamp",
            msg(r#""CUST-1""#, r#""yesterday""#, r#""72""#),
            Reject(WrongType),
        ),
        (
            "wrong type of a later field wins over invalid customer id",
            msg(r#""CUST 1""#, r#""2026-11-29T12:00:00Z""#, r#""72""#),
            Reject(WrongType),
        ),
        (
            "invalid customer id wins over invalid event id",
            v(r#"{"event_id":"nope","customer_id":"","timestamp":"2026-11-29T12:00:00Z","heart_rate":72}"#),
            Reject(InvalidCustomerId),
        ),
        (
            "invalid event id wins over invalid timestamp",
            v(r#"{"event_id":"nope","customer_id":"CUST-1","timestamp":"nope","heart_rate":72}"#),
            Reject(InvalidEventId),
        ),
        (
            "invalid timestamp wins over implausible heart rate",
            msg(r#""CUST-1""#, r#""2026-11-29T12:00:00""#, "500"),
            Reject(InvalidTimestamp),
        ),
        (
            "future timestamp wins over implausible heart rate",
            msg(r#""CUST-1""#, r#""2027-01-01T00:00:00Z""#, "500"),
            Reject(FutureTimestamp),
        ),
        (
            "repeated key wins over not reading any field",
            v(r#"{"x":1,"x":2}"#),
            Reject(MalformedJson),
        ),
        ("an empty object is missing fields", v("{}"), Reject(MissingField)),
    ]
}

/// Cases for a record without a Kafka timestamp: it is held to no time bound (SPEC section
/// 4), so only the other rules decide.
fn untimed_cases() -> Vec<(&'static str, Option<Vec<u8>>, Expect)> {
    vec![
        (
            "no kafka timestamp and a far future reading is accepted",
            ts("9999-12-31T23:59:59Z"),
            ok("CUST-1", "9999-12-31T23:59:59.000000Z", 72),
        ),
        (
            "no kafka timestamp and a reading just past any skew is accepted",
            ts("2026-11-29T13:05:00.000001Z"),
            ok("CUST-1", "2026-11-29T13:05:00.000001Z", 72),
        ),
        (
            "no kafka timestamp and february 29 of a leap year is accepted",
            ts("2024-02-29T12:00:00Z"),
            ok("CUST-1", "2024-02-29T12:00:00.000000Z", 72),
        ),
        (
            "no kafka timestamp and year 1970 as written is accepted before the epoch in utc",
            ts("1970-01-01T00:30:00+01:00"),
            ok("CUST-1", "1969-12-31T23:30:00.000000Z", 72),
        ),
        (
            "no kafka timestamp and the epoch is accepted",
            ts("1970-01-01T00:00:00Z"),
            ok("CUST-1", "1970-01-01T00:00:00.000000Z", 72),
        ),
        (
            "no kafka timestamp and a far future implausible reading is implausible",
            msg(r#""CUST-1""#, r#""2999-01-01T00:00:00Z""#, "500"),
            Reject(ImplausibleHeartRate),
        ),
        (
            "no kafka timestamp and an invalid timestamp is still invalid",
            ts("2026-11-29T12:00:00"),
            Reject(InvalidTimestamp),
        ),
    ]
}

#[test]
fn every_table_case_gets_its_verdict() {
    let rules = ValidationRules::default();
    let cases = cases();
    assert!(cases.len() >= 45);
    let timed = cases.iter().map(|case| (case, Some(reference())));
    let untimed = untimed_cases();
    let untimed = untimed.iter().map(|case| (case, None));
    let mut failures = Vec::new();
    for ((name, input, expect), reference) in timed.chain(untimed) {
        let got = validate(input.as_deref(), reference, &rules);
        let good = match (expect, &got) {
            (Reject(reason), Err(rejection)) => rejection.reason == *reason,
            (Accept(customer, at, bpm, id), Ok(Validated { reading, ignored })) => {
                reading.customer_id == *customer
                    && canonical_timestamp(&reading.recorded_at) == *at
                    && reading.heart_rate == *bpm
                    && id.iter().all(|id| reading.event_id.to_string() == *id)
                    // No case of this table says what the wearer was doing.
                    && reading.activity.is_none()
                    && ignored.is_empty()
            }
            _ => false,
        };
        if !good {
            failures.push(format!("{name}: got {got:?}"));
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn the_table_covers_every_reason() {
    for reason in RejectReason::ALL {
        assert!(
            cases()
                .iter()
                .any(|(_, _, expect)| matches!(expect, Reject(r) if *r == reason)),
            "no case for {reason}"
        );
    }
}

/// What a message with a given `activity` becomes.
enum ActivityExpect {
    /// Accepted with this activity (`None`: unknown) and the field ignored or not.
    Stored(Option<Activity>, bool),
    Reject(RejectReason),
}

/// A good message with the given raw JSON for `activity` (`None`: no such member).
fn act(activity: Option<&str>) -> Option<Vec<u8>> {
    let member = activity
        .map(|a| format!(r#","activity":{a}"#))
        .unwrap_or_default();
    v(&format!(
        r#"{{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72{member}}}"#
    ))
}

fn activity_cases() -> Vec<(&'static str, Option<Vec<u8>>, ActivityExpect)> {
    use Activity::*;
    use ActivityExpect::Stored;
    let known = |a| Stored(Some(a), false);
    let unknown = Stored(None, false);
    let ignored = || Stored(None, true);
    vec![
        (
            "absent activity is unknown and not counted",
            act(None),
            unknown,
        ),
        (
            "null activity is unknown and not counted",
            act(Some("null")),
            Stored(None, false),
        ),
        ("rest is rest", act(Some(r#""rest""#)), known(Rest)),
        ("sleep is sleep", act(Some(r#""sleep""#)), known(Sleep)),
        ("active is active", act(Some(r#""active""#)), known(Active)),
        (
            "exercise is exercise",
            act(Some(r#""exercise""#)),
            known(Exercise),
        ),
        (
            "an escaped rest is rest",
            act(Some(r#""\u0072est""#)),
            known(Rest),
        ),
        // SPEC lists four lowercase values: another case is another value.
        (
            "upper case REST is ignored",
            act(Some(r#""REST""#)),
            ignored(),
        ),
        (
            "capitalised Sleep is ignored",
            act(Some(r#""Sleep""#)),
            ignored(),
        ),
        (
            "an unknown word is ignored",
            act(Some(r#""dancing""#)),
            ignored(),
        ),
        (
            "the simulator's old light is ignored",
            act(Some(r#""light""#)),
            ignored(),
        ),
        (
            "rest with a space is ignored",
            act(Some(r#"" rest""#)),
            ignored(),
        ),
        ("an empty string is ignored", act(Some(r#""""#)), ignored()),
        (
            "a lone surrogate is ignored",
            act(Some(r#""\ud800""#)),
            ignored(),
        ),
        ("a number is ignored", act(Some("5")), ignored()),
        ("a fraction is ignored", act(Some("0.5")), ignored()),
        ("true is ignored", act(Some("true")), ignored()),
        ("false is ignored", act(Some("false")), ignored()),
        ("an array is ignored", act(Some(r#"["rest"]"#)), ignored()),
        (
            "an object is ignored",
            act(Some(r#"{"kind":"rest"}"#)),
            ignored(),
        ),
        (
            "a long string is ignored",
            act(Some(&format!("\"{}\"", "r".repeat(10_000)))),
            ignored(),
        ),
        (
            "activity first in the object is read the same",
            v(
                r#"{"activity":"sleep","customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72}"#,
            ),
            known(Sleep),
        ),
        // Never a reason of its own, and never a rescue for a bad record.
        (
            "a repeated activity is malformed",
            v(
                r#"{"activity":"rest","customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72,"activity":"rest"}"#,
            ),
            ActivityExpect::Reject(MalformedJson),
        ),
        (
            "a good activity does not save an implausible heart rate",
            v(
                r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":500,"activity":"rest"}"#,
            ),
            ActivityExpect::Reject(ImplausibleHeartRate),
        ),
        (
            "a bad activity does not change the reason of a bad record",
            v(r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","activity":5}"#),
            ActivityExpect::Reject(MissingField),
        ),
    ]
}

#[test]
fn every_activity_case_gets_its_verdict() {
    let rules = ValidationRules::default();
    let mut failures = Vec::new();
    for (name, input, expect) in activity_cases() {
        let got = validate(input.as_deref(), Some(reference()), &rules);
        let good = match (&expect, &got) {
            (ActivityExpect::Reject(reason), Err(rejection)) => rejection.reason == *reason,
            (ActivityExpect::Stored(activity, counted), Ok(Validated { reading, ignored })) => {
                reading.activity == *activity
                    && ignored.contains(IgnoredField::Activity) == *counted
                    && ignored.iter().count() == usize::from(*counted)
                    && reading.customer_id == "CUST-1"
                    && reading.heart_rate == 72
                    && canonical_timestamp(&reading.recorded_at) == NOON
            }
            _ => false,
        };
        if !good {
            failures.push(format!("{name}: got {got:?}"));
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn the_activity_table_names_every_activity() {
    for activity in Activity::ALL {
        assert!(
            activity_cases().iter().any(|(_, _, expect)| matches!(
                expect,
                ActivityExpect::Stored(Some(a), false) if *a == activity
            )),
            "no case for {activity:?}"
        );
    }
}

/// Fails with every failing case of a table listed, not just the first.
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
