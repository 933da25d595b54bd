//! Validation: turns the raw value of a `heartbeats` Kafka record into a [`Reading`] or a
//! [`Rejection`], exactly per SPEC section 4.
//!
//! Owns the rules of the reading message: which fields are read, their types and ranges, the
//! timestamp grammar, the derived `event_id`, and the order in which rejection reasons win.
//! Accepts the record value as bytes (`None` for a null value), the record's reference time
//! (its Kafka timestamp; `None` when it has none, and then no time bound applies) and the
//! configured [`ValidationRules`]. Nothing here reads the clock, so a re-read of a record always
//! gets the same verdict. Emits `Ok(Reading)` or `Err(Rejection)` with one of the eleven
//! [`RejectReason`]s and a short lowercase detail that echoes at most 100 bytes of the
//! input. It never fails otherwise and never panics: bad input is data, not an error.
//!
//! The checks run reason by reason, each across all fields, and the first reason that applies
//! wins, so the verdict does not depend on the order of the fields in the object. Within one
//! reason the detail names the first failing field in the order `customer_id`, `timestamp`,
//! `heart_rate`, `event_id`.
//!
//! One parse pass: the top-level object is walked with serde's map visitor, keeping the raw JSON
//! text of the four fields read (serde_json's `RawValue`, which needs serde_json's `raw_value`
//! feature) and only skipping over the rest. The raw text is what lets us tell the integer
//! literal `72` from `72.0` or `7.2e1`, and compare a 20-digit customer id exactly; serde_json's
//! `Value` would turn both into an `f64` and would also silently keep the last of two repeated
//! keys, which SPEC calls malformed.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::domain::reading::{canonical_timestamp, derive_event_id, Reading};

/// The most bytes of input a detail quotes: enough to recognise the offending value, small
/// enough that a detail stays one short line in a Kafka header and a log line whatever the input.
const ECHO_BYTES: usize = 100;

/// The longest string customer id (SPEC section 4).
const MAX_CUSTOMER_ID_CHARS: usize = 64;

/// The limits of SPEC section 4 that come from configuration (`validation.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationRules {
    /// A value longer than this is `too_large`, before anything else is looked at.
    pub max_message_bytes: usize,
    /// How far the reading's timestamp may be ahead of the record's reference time.
    pub max_future_skew_ms: i64,
    /// The lowest plausible heart rate, inclusive.
    pub min_heart_rate: i64,
    /// The highest plausible heart rate, inclusive.
    pub max_heart_rate: i64,
}

impl Default for ValidationRules {
    /// The defaults of SPEC section 3.
    fn default() -> Self {
        Self {
            max_message_bytes: 65_536,
            max_future_skew_ms: 300_000,
            min_heart_rate: 20,
            max_heart_rate: 250,
        }
    }
}

/// Why a record was rejected, in the order in which the reasons are checked (SPEC section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    TooLarge,
    InvalidUtf8,
    MalformedJson,
    NotAnObject,
    MissingField,
    WrongType,
    InvalidCustomerId,
    InvalidEventId,
    InvalidTimestamp,
    FutureTimestamp,
    ImplausibleHeartRate,
}

impl RejectReason {
    /// Every reason, in the order in which they are checked (and the first one wins).
    pub const ALL: [RejectReason; 11] = [
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::MalformedJson,
        RejectReason::NotAnObject,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::InvalidCustomerId,
        RejectReason::InvalidEventId,
        RejectReason::InvalidTimestamp,
        RejectReason::FutureTimestamp,
        RejectReason::ImplausibleHeartRate,
    ];

    /// The reason's name as SPEC spells it: the `reason` column, the `error.reason` header and
    /// the `reason` label of `heartbeat_rejects_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::InvalidCustomerId => "invalid_customer_id",
            RejectReason::InvalidEventId => "invalid_event_id",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::ImplausibleHeartRate => "implausible_heart_rate",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that broke a rule: the reason that won and a short, lowercase detail naming the field
/// and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: String) -> Self {
        Self { reason, detail }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Validates one record value.
///
/// `value`: the Kafka record value (`None` = null value). `reference_time`: the Kafka record's
/// own timestamp, which the reading's timestamp is held to `future_timestamp` against; `None`
/// for a record without one, which is held to no time bound (SPEC section 4). Taking it as an
/// argument (rather than reading the clock here) is what makes a re-read give the same verdict.
pub fn validate(
    value: Option<&[u8]>,
    reference_time: Option<DateTime<Utc>>,
    rules: &ValidationRules,
) -> Result<Reading, Rejection> {
    use RejectReason::*;

    // too_large: the value alone, before a single byte of it is decoded.
    let bytes = match value {
        Some(bytes) if bytes.len() > rules.max_message_bytes => {
            return Err(Rejection::new(
                TooLarge,
                format!(
                    "value is {} bytes, over the limit of {} bytes",
                    bytes.len(),
                    rules.max_message_bytes
                ),
            ))
        }
        Some(bytes) => bytes,
        // A null value is malformed_json: it goes through the parse as no bytes at all.
        None => &[],
    };

    // invalid_utf8.
    let text = std::str::from_utf8(bytes).map_err(|err| {
        Rejection::new(
            InvalidUtf8,
            format!(
                "value is not valid utf-8 (first bad byte at offset {})",
                err.valid_up_to()
            ),
        )
    })?;

    // malformed_json and not_an_object: one parse of the whole value.
    let fields = match parse(text) {
        Ok(Parsed::Object(fields)) => fields,
        Ok(Parsed::Null) => {
            return Err(Rejection::new(
                MalformedJson,
                "value is the JSON literal null".to_owned(),
            ))
        }
        Ok(Parsed::Other(raw)) => {
            return Err(Rejection::new(
                NotAnObject,
                format!("expected a JSON object, got {}", json_kind(raw)),
            ))
        }
        Err(Malformed::Empty) => {
            let detail = if value.is_none() {
                "the record value is null"
            } else {
                "value is empty"
            };
            return Err(Rejection::new(MalformedJson, detail.to_owned()));
        }
        Err(Malformed::Syntax(err)) => {
            return Err(Rejection::new(
                MalformedJson,
                format!("invalid json: {err}"),
            ))
        }
        Err(Malformed::RepeatedKey(key)) => {
            return Err(Rejection::new(
                MalformedJson,
                format!("repeated key \"{}\"", Echo(&key)),
            ))
        }
    };

    // missing_field: a JSON null counts as missing.
    let customer_raw = required("customer_id", fields.customer_id)?;
    let timestamp_raw = required("timestamp", fields.timestamp)?;
    let heart_rate_raw = required("heart_rate", fields.heart_rate)?;

    // wrong_type.
    let customer = match Raw::classify(customer_raw) {
        Raw::Integer(digits) => CustomerId::Integer(digits),
        Raw::String(quoted) => CustomerId::String(quoted),
        _ => {
            return Err(wrong_type(
                "customer_id",
                "a string or a JSON integer",
                customer_raw,
            ))
        }
    };
    let Raw::String(timestamp_quoted) = Raw::classify(timestamp_raw) else {
        return Err(wrong_type("timestamp", "a string", timestamp_raw));
    };
    let Raw::Integer(heart_rate_digits) = Raw::classify(heart_rate_raw) else {
        return Err(wrong_type("heart_rate", "a JSON integer", heart_rate_raw));
    };
    // event_id is optional, and null is the same as absent.
    let event = match fields.event_id {
        None => None,
        Some(raw) => match Raw::classify(raw) {
            Raw::Null => None,
            Raw::String(quoted) => Some((quoted, raw)),
            _ => return Err(wrong_type("event_id", "a string", raw)),
        },
    };

    // invalid_customer_id.
    let customer_id = match customer {
        CustomerId::Integer(digits) => customer_id_from_integer(digits, customer_raw)?,
        CustomerId::String(quoted) => customer_id_from_string(quoted, customer_raw)?,
    };

    // invalid_event_id.
    let given_event_id = match event {
        Some((quoted, event_raw)) => Some(
            decode_string(quoted)
                .as_deref()
                .and_then(parse_hyphenated_uuid)
                .ok_or_else(|| {
                    Rejection::new(
                        InvalidEventId,
                        format!(
                            "event_id: expected a uuid in the hyphenated \
                             8-4-4-4-12 form, got {}",
                            Echo(event_raw.get())
                        ),
                    )
                })?,
        ),
        None => None,
    };

    // invalid_timestamp.
    let recorded_at = decode_string(timestamp_quoted)
        .ok_or("not a valid unicode string")
        .and_then(|text| parse_timestamp(&text))
        .map_err(|what| {
            Rejection::new(
                InvalidTimestamp,
                format!("timestamp: {what}, got {}", Echo(timestamp_raw.get())),
            )
        })?;

    // future_timestamp: exactly at the bound is accepted. Compared in i128 nanoseconds so that no
    // configured skew or pair of instants can overflow. A record without a Kafka timestamp has
    // nothing stable to be measured against, so it is held to no bound.
    if let Some(reference_time) = reference_time {
        let ahead_ns = instant_ns(&recorded_at) - instant_ns(&reference_time);
        if ahead_ns > i128::from(rules.max_future_skew_ms) * 1_000_000 {
            return Err(Rejection::new(
                FutureTimestamp,
                format!(
                    "timestamp: {} is {} ms ahead of the record time {}, over the limit of {} ms",
                    canonical_timestamp(&recorded_at),
                    ahead_ns / 1_000_000,
                    canonical_timestamp(&reference_time),
                    rules.max_future_skew_ms
                ),
            ));
        }
    }

    // implausible_heart_rate: a literal too long for i64 is out of any configurable range; a
    // range configured wider than `smallint` cannot be stored, so it is refused here too.
    let heart_rate = heart_rate_digits
        .parse::<i64>()
        .ok()
        .filter(|bpm| (rules.min_heart_rate..=rules.max_heart_rate).contains(bpm))
        .and_then(|bpm| i16::try_from(bpm).ok())
        .ok_or_else(|| {
            Rejection::new(
                ImplausibleHeartRate,
                format!(
                    "heart_rate: {} is outside {}..={}",
                    Echo(heart_rate_digits),
                    rules.min_heart_rate,
                    rules.max_heart_rate
                ),
            )
        })?;

    let event_id = given_event_id.unwrap_or_else(|| derive_event_id(&customer_id, &recorded_at));
    Ok(Reading {
        event_id,
        customer_id,
        recorded_at,
        heart_rate,
    })
}

/// The raw text of a required field, or missing_field when it is absent or null.
fn required<'a>(name: &str, raw: Option<&'a RawValue>) -> Result<&'a RawValue, Rejection> {
    match raw {
        None => Err(Rejection::new(
            RejectReason::MissingField,
            format!("{name}: required field is missing"),
        )),
        Some(raw) if raw.get() == "null" => Err(Rejection::new(
            RejectReason::MissingField,
            format!("{name}: required field is null"),
        )),
        Some(raw) => Ok(raw),
    }
}

fn wrong_type(field: &str, expected: &str, raw: &RawValue) -> Rejection {
    Rejection::new(
        RejectReason::WrongType,
        format!("{field}: expected {expected}, got {}", Echo(raw.get())),
    )
}

/// An instant as nanoseconds since the epoch, wide enough for any `DateTime<Utc>`.
fn instant_ns(at: &DateTime<Utc>) -> i128 {
    i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos())
}

// ---------------------------------------------------------------------------------------------
// Parsing the top level

/// The four fields read, as raw JSON text borrowed from the value.
#[derive(Default)]
struct Fields<'a> {
    customer_id: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    heart_rate: Option<&'a RawValue>,
    event_id: Option<&'a RawValue>,
}

enum Parsed<'a> {
    Object(Fields<'a>),
    /// The JSON literal `null`, which SPEC counts as malformed rather than as not an object.
    Null,
    /// Any other well-formed JSON value, as raw text.
    Other(&'a str),
}

enum Malformed {
    /// No bytes, or only whitespace.
    Empty,
    Syntax(serde_json::Error),
    RepeatedKey(String),
}

fn parse(text: &str) -> Result<Parsed<'_>, Malformed> {
    let start = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if start.is_empty() {
        return Err(Malformed::Empty);
    }
    if !start.starts_with('{') {
        // Skipped rather than deserialized, so that a well-formed number too large for an f64
        // (`1e400`) is not_an_object, as the grammar says, and not a parse error.
        let raw: &RawValue = serde_json::from_str(text).map_err(Malformed::Syntax)?;
        return Ok(if raw.get() == "null" {
            Parsed::Null
        } else {
            Parsed::Other(raw.get())
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let walked =
        de::Deserializer::deserialize_map(&mut de, ObjectVisitor).map_err(Malformed::Syntax)?;
    de.end().map_err(Malformed::Syntax)?;
    if let Some(key) = walked.repeated {
        return Err(Malformed::RepeatedKey(key.into_owned()));
    }
    Ok(Parsed::Object(walked.fields))
}

struct Walked<'a> {
    fields: Fields<'a>,
    /// The first repeated key seen. Reported only once the whole value is known to be
    /// well-formed JSON, so a syntax error later in the value is reported as such.
    repeated: Option<Cow<'a, str>>,
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Walked<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        let mut repeated = None;
        // Keys this module does not read, kept only to find repeats among them. Usually there
        // are none, and then nothing is allocated.
        let mut others: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            let slot = match key.as_ref() {
                "customer_id" => &mut fields.customer_id,
                "timestamp" => &mut fields.timestamp,
                "heart_rate" => &mut fields.heart_rate,
                "event_id" => &mut fields.event_id,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    others.push(key);
                    continue;
                }
            };
            let raw: &'de RawValue = map.next_value()?;
            if slot.replace(raw).is_some() && repeated.is_none() {
                repeated = Some(key);
            }
        }
        if repeated.is_none() {
            repeated = first_repeat(others);
        }
        Ok(Walked { fields, repeated })
    }
}

/// The first key (in sorted order) that occurs twice. Sorting keeps a hostile value with
/// thousands of keys at n log n.
fn first_repeat(mut keys: Vec<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    if keys.len() < 2 {
        return None;
    }
    keys.sort_unstable();
    // `windows(2)` yields slices of exactly two, so both indexes exist.
    let at = keys.windows(2).position(|pair| pair[0] == pair[1])?;
    Some(keys.swap_remove(at))
}

/// An object key, decoded, borrowed from the input unless it holds escapes. Keys are compared
/// decoded, so `"heart\u005frate"` is `heart_rate` (and repeats it).
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(key)))
    }
}

// ---------------------------------------------------------------------------------------------
// Field values

/// A field's raw JSON text, classified by its first byte. The value is known to be well-formed
/// JSON, so the first byte decides its type.
enum Raw<'a> {
    Null,
    Bool,
    /// An integer literal: optional `-`, digits, no fraction, no exponent.
    Integer(&'a str),
    /// A number with a fraction or an exponent.
    Float,
    /// A string, with its quotes and escapes as written.
    String(&'a str),
    Array,
    Object,
}

impl<'a> Raw<'a> {
    fn classify(raw: &'a RawValue) -> Raw<'a> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'n') => Raw::Null,
            Some(b't' | b'f') => Raw::Bool,
            Some(b'"') => Raw::String(text),
            Some(b'[') => Raw::Array,
            Some(b'{') => Raw::Object,
            _ if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) => Raw::Float,
            _ => Raw::Integer(text),
        }
    }
}

/// A customer id of the right type: a string literal or an integer literal, as written.
enum CustomerId<'a> {
    Integer(&'a str),
    String(&'a str),
}

/// What a well-formed JSON value is, for a not_an_object detail.
fn json_kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

/// The text of a JSON string literal (quotes included). Borrowed when it has no escapes, the
/// common case. `None` when it cannot be a Rust string: an escape naming a lone UTF-16
/// surrogate, which JSON's grammar allows; SPEC's string fields are ASCII, so such a string is
/// simply an invalid value of its field.
fn decode_string(quoted: &str) -> Option<Cow<'_, str>> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        // Well-formed JSON without a backslash: the characters are the text.
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
}

fn customer_id_from_integer(digits: &str, raw: &RawValue) -> Result<String, Rejection> {
    // JSON forbids leading zeros, so the digits are already the canonical decimal string; `-0`
    // is the integer zero. u64 parsing is exact, so 2^64 is refused without rounding.
    let magnitude = digits.strip_prefix('-');
    match magnitude {
        Some(rest) if rest.bytes().all(|b| b == b'0') => Ok("0".to_owned()),
        None if digits.parse::<u64>().is_ok() => Ok(digits.to_owned()),
        _ => Err(Rejection::new(
            RejectReason::InvalidCustomerId,
            format!(
                "customer_id: integer outside 0..=18446744073709551615, got {}",
                Echo(raw.get())
            ),
        )),
    }
}

fn customer_id_from_string(quoted: &str, raw: &RawValue) -> Result<String, Rejection> {
    let invalid = |what: &str| {
        Rejection::new(
            RejectReason::InvalidCustomerId,
            format!("customer_id: {what}, got {}", Echo(raw.get())),
        )
    };
    let text = decode_string(quoted).ok_or_else(|| invalid("not a valid unicode string"))?;
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if !text.bytes().all(is_customer_id_byte) {
        return Err(invalid("only A-Z a-z 0-9 _ - . : are allowed"));
    }
    // Every allowed character is one byte, so the byte length is the character count.
    if text.len() > MAX_CUSTOMER_ID_CHARS {
        return Err(invalid("longer than 64 characters"));
    }
    Ok(text.into_owned())
}

fn is_customer_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

/// A UUID in the 36-character hyphenated form only, any case. `Uuid::parse_str` alone would
/// also take the simple, braced and `urn:uuid:` forms, which SPEC does not.
fn parse_hyphenated_uuid(text: &str) -> Option<Uuid> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let shape_ok = bytes.iter().enumerate().all(|(at, b)| match at {
        8 | 13 | 18 | 23 => *b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    if !shape_ok {
        return None;
    }
    Uuid::try_parse(text).ok()
}

// ---------------------------------------------------------------------------------------------
// Timestamps

/// Parses `YYYY-MM-DDTHH:MM:SS[.f]` then `Z` or `±HH:MM` (`T` and `Z` in either case, 1 to 9
/// fraction digits, seconds 00-59, year as written 1970 or later) into UTC, truncating the
/// fraction to microseconds. The error says what is wrong, for the detail.
fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, &'static str> {
    const SHAPE: &str = "expected YYYY-MM-DDTHH:MM:SS[.f] then Z or +HH:MM";
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied();

    let year = digits(b, 0, 4).ok_or(SHAPE)?;
    let month = (at(4) == Some(b'-'))
        .then(|| digits(b, 5, 2))
        .flatten()
        .ok_or(SHAPE)?;
    let day = (at(7) == Some(b'-'))
        .then(|| digits(b, 8, 2))
        .flatten()
        .ok_or(SHAPE)?;
    if !matches!(at(10), Some(b'T' | b't')) {
        return Err(SHAPE);
    }
    let hour = digits(b, 11, 2).ok_or(SHAPE)?;
    let minute = (at(13) == Some(b':'))
        .then(|| digits(b, 14, 2))
        .flatten()
        .ok_or(SHAPE)?;
    let second = (at(16) == Some(b':'))
        .then(|| digits(b, 17, 2))
        .flatten()
        .ok_or(SHAPE)?;

    let mut pos = 19;
    let mut micros = 0u32;
    if at(pos) == Some(b'.') {
        pos += 1;
        let count = b
            .get(pos..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=9).contains(&count) {
            return Err("the fraction of a second must have 1 to 9 digits");
        }
        // Digits beyond microseconds are dropped, not rounded (SPEC section 4).
        for i in 0..6 {
            let digit = if i < count {
                at(pos + i).map_or(0, |d| d - b'0')
            } else {
                0
            };
            micros = micros * 10 + u32::from(digit);
        }
        pos += count;
    }

    let offset_seconds: i64 = match at(pos) {
        Some(b'Z' | b'z') => {
            pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let hours = digits(b, pos + 1, 2).ok_or(SHAPE)?;
            let minutes = (at(pos + 3) == Some(b':'))
                .then(|| digits(b, pos + 4, 2))
                .flatten()
                .ok_or(SHAPE)?;
            if hours > 23 || minutes > 59 {
                return Err("utc offset out of range");
            }
            pos += 6;
            let magnitude = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        None => return Err("missing utc offset (Z or +HH:MM)"),
        Some(_) => return Err(SHAPE),
    };
    if pos != b.len() {
        return Err("unexpected characters after the utc offset");
    }

    if year < 1970 {
        return Err("year before 1970");
    }
    if hour > 23 || minute > 59 {
        return Err("time of day out of range");
    }
    if second > 59 {
        return Err("seconds out of range (00-59)");
    }
    let date = i32::try_from(year)
        .ok()
        .and_then(|year| NaiveDate::from_ymd_opt(year, month, day))
        .ok_or("not a calendar date")?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
        .ok_or("time of day out of range")?;
    NaiveDateTime::new(date, time)
        .checked_sub_signed(TimeDelta::seconds(offset_seconds))
        .map(|utc| utc.and_utc())
        .ok_or("out of range")
}

/// The number written with exactly `len` ASCII digits at `start`, if there are.
fn digits(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    let field = bytes.get(start..start.checked_add(len)?)?;
    field.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

// ---------------------------------------------------------------------------------------------
// Details

/// Input quoted into a detail: at most [`ECHO_BYTES`] bytes, cut on a character boundary and
/// marked with `...`, control characters escaped (a detail lands in a `text` column, which takes
/// no NUL, and in a Kafka header and a log line).
struct Echo<'a>(&'a str);

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut used = 0;
        for c in self.0.chars() {
            let width = if c.is_control() {
                c.escape_default().count()
            } else {
                c.len_utf8()
            };
            if used + width > ECHO_BYTES {
                return f.write_str("...");
            }
            used += width;
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use proptest::test_runner::Config as ProptestConfig;

    use RejectReason::*;

    /// The reference time (the Kafka record's timestamp) of every table case.
    fn reference() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 0).unwrap()
    }

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
            ("heart rate 72.0 is the wrong type", hr("72.0"), Reject(WrongType)),
            ("heart rate 7.2e1 is the wrong type", hr("7.2e1"), Reject(WrongType)),
            ("heart rate 72e0 is the wrong type", hr("72E0"), Reject(WrongType)),
            ("heart rate 72.5 is the wrong type", hr("72.5"), Reject(WrongType)),
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
            ("february 29 of a leap year is accepted", ts("2024-02-29T12:00:00Z"), ok("CUST-1", "2024-02-29T12:00:00.000000Z", 72)),
            ("year 1969 is invalid", ts("1969-12-31T23:59:59Z"), Reject(InvalidTimestamp)),
            ("the epoch is accepted", ts("1970-01-01T00:00:00Z"), ok("CUST-1", "1970-01-01T00:00:00.000000Z", 72)),
            ("year 1970 as written is accepted before the epoch in utc", ts("1970-01-01T00:30:00+01:00"), ok("CUST-1", "1969-12-31T23:30:00.000000Z", 72)),
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
            ("json null is malformed", v(" null "), Reject(MalformedJson)),
            ("invalid utf-8 is rejected", Some(b"{\"customer_id\":\"CUST-\xff\"}".to_vec()), Reject(InvalidUtf8)),
            ("a byte order mark is malformed", v("\u{feff}{}"), Reject(MalformedJson)),
            ("value of exactly the limit is accepted", padded_to(65_536), ok("CUST-1", NOON, 72)),
            ("value one byte over the limit is too large", padded_to(65_537), Reject(TooLarge)),
            ("too large wins over invalid utf-8", Some(vec![0xff; 70_000]), Reject(TooLarge)),
            ("top level array is not an object", v(r#"[{"customer_id":"CUST-1"}]"#), Reject(NotAnObject)),
            ("top level string is not an object", v(r#""CUST-1""#), Reject(NotAnObject)),
            ("top level huge number is not an object", v("1e400"), Reject(NotAnObject)),
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
                msg(r#""CUST-1""#, r#""yesterday""#, "72.5"),
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
                (Accept(customer, at, bpm, id), Ok(reading)) => {
                    reading.customer_id == *customer
                        && canonical_timestamp(&reading.recorded_at) == *at
                        && reading.heart_rate == *bpm
                        && id.iter().all(|id| reading.event_id.to_string() == *id)
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

    fn accept(text: &str) -> Reading {
        validate(
            Some(text.as_bytes()),
            Some(reference()),
            &ValidationRules::default(),
        )
        .unwrap()
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
            detail(
                r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72.5}"#
            ),
            "heart_rate: expected a JSON integer, got 72.5"
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
            detail(
                r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":300}"#
            ),
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
            detail(
                r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T13:05:01Z","heart_rate":72}"#
            ),
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
                "missing_field",
                "wrong_type",
                "invalid_customer_id",
                "invalid_event_id",
                "invalid_timestamp",
                "future_timestamp",
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
            min_heart_rate: 30,
            max_heart_rate: 40,
        };
        let check = |text: &str| {
            validate(Some(text.as_bytes()), Some(reference()), &rules).map_err(|r| r.reason)
        };
        assert!(
            check(r#"{"customer_id":"C","timestamp":"2026-11-29T13:00:00Z","heart_rate":30}"#)
                .is_ok()
        );
        assert_eq!(
            check(
                r#"{"customer_id":"C","timestamp":"2026-11-29T13:00:00.000001Z","heart_rate":30}"#
            ),
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
            validate(Some(text.as_bytes()), Some(reference()), &negative_skew)
                .map_err(|r| r.reason),
            Err(FutureTimestamp)
        );
    }

    #[test]
    fn a_key_that_is_not_valid_unicode_is_malformed() {
        assert_eq!(reject(r#"{"\ud800":1}"#).reason, MalformedJson);
    }

    // ---- properties --------------------------------------------------------------------------

    /// The raw-bytes property runs 10 000 cases unless `PROPTEST_CASES` says otherwise (proptest's
    /// own default is 256, which is too few for a parser facing arbitrary input). CI sets
    /// `PROPTEST_CASES=10000` explicitly.
    fn raw_bytes_config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(10_000);
        ProptestConfig {
            cases,
            ..ProptestConfig::default()
        }
    }

    /// A JSON fragment of any type, biased towards values near the rules' edges.
    fn fragment() -> impl Strategy<Value = String> {
        let quoted = |s: String| serde_json::to_string(&s).unwrap();
        let timestamp = (
            1960u32..2200,
            0u32..14,
            0u32..33,
            prop_oneof![Just("T"), Just("t"), Just(" "), Just("")],
            0u32..26,
            0u32..62,
            0u32..62,
            prop::option::of("[0-9]{0,11}"),
            prop_oneof![
                Just("Z"),
                Just("z"),
                Just(""),
                Just("+02:00"),
                Just("-23:59"),
                Just("+24:00"),
                Just("+0100"),
                Just("Zx")
            ],
        )
            .prop_map(move |(y, mo, d, sep, h, mi, s, frac, off)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                quoted(format!(
                    "{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{off}"
                ))
            });
        let uuid_like = (any::<u128>(), 0u8..5).prop_map(move |(n, form)| {
            let id = Uuid::from_u128(n);
            quoted(match form {
                0 => id.hyphenated().to_string(),
                1 => id.hyphenated().to_string().to_uppercase(),
                2 => id.simple().to_string(),
                3 => id.braced().to_string(),
                _ => id.urn().to_string(),
            })
        });
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (-10i64..300).prop_map(|n| n.to_string()),
            "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,3})?([eE][-+]?[0-9]{1,3})?",
            any::<f64>().prop_filter_map("finite", |f| serde_json::to_string(&f)
                .ok()
                .filter(|s| s != "null")),
            "[A-Za-z0-9_.: -]{0,70}".prop_map(quoted),
            any::<String>().prop_map(quoted),
            Just(r#""\ud800""#.to_owned()),
            Just(r#""CUST\u002d1""#.to_owned()),
            timestamp,
            uuid_like,
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec(("[a-z_]{1,6}", inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop_oneof![Just("customer_id"), Just("timestamp"), Just("heart_rate"), Just("event_id")].prop_map(str::to_owned),
            1 => "[a-z_]{1,10}",
            1 => Just(r"heart\u005frate".to_owned()),
        ]
    }

    fn object() -> impl Strategy<Value = String> {
        (
            prop::collection::vec((key(), fragment()), 0..7),
            prop_oneof![Just(""), Just(" "), Just("\n")],
        )
            .prop_map(|(members, ws)| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}"))
                    .collect();
                format!("{ws}{{{}}}{ws}", members.join(","))
            })
    }

    /// What every accepted reading must satisfy, whatever it came from.
    fn assert_within_contract(reading: &Reading, rules: &ValidationRules) {
        assert!((1..=64).contains(&reading.customer_id.len()));
        assert!(reading.customer_id.bytes().all(is_customer_id_byte));
        assert!(
            (rules.min_heart_rate..=rules.max_heart_rate).contains(&i64::from(reading.heart_rate))
        );
        assert_eq!(reading.recorded_at.timestamp_subsec_nanos() % 1_000, 0);
        assert!(
            reading.recorded_at <= reference() + TimeDelta::milliseconds(rules.max_future_skew_ms)
        );
    }

    proptest! {
        #![proptest_config(raw_bytes_config())]

        #[test]
        fn any_bytes_get_a_verdict_without_panicking(value in prop::option::of(prop::collection::vec(any::<u8>(), 0..300))) {
            let rules = ValidationRules::default();
            if let Ok(reading) = validate(value.as_deref(), Some(reference()), &rules) {
                assert_within_contract(&reading, &rules);
            }
        }

        #[test]
        fn any_cut_or_flipped_message_gets_a_verdict(cut in 0usize..120, flip in 0usize..120, bit in 0u8..8) {
            let mut bytes = br#"{"event_id":"1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b","customer_id":"CUST-00042","timestamp":"2026-11-29T13:00:00.250+01:00","heart_rate":72}"#.to_vec();
            if let Some(byte) = bytes.get_mut(flip) {
                *byte ^= 1 << bit;
            }
            bytes.truncate(bytes.len().saturating_sub(cut));
            let rules = ValidationRules::default();
            if let Ok(reading) = validate(Some(&bytes), Some(reference()), &rules) {
                assert_within_contract(&reading, &rules);
            }
        }
    }

    proptest! {
        #[test]
        fn json_like_objects_get_a_verdict_without_panicking(text in object()) {
            let rules = ValidationRules::default();
            match validate(Some(text.as_bytes()), Some(reference()), &rules) {
                Ok(reading) => assert_within_contract(&reading, &rules),
                Err(rejection) => prop_assert!(!rejection.detail.is_empty()),
            }
        }

        #[test]
        fn a_valid_reading_round_trips_through_its_json(
            customer_id in "[A-Za-z0-9_.:-]{1,64}",
            micros in 0i64..=1_795_000_000_000_000,
            heart_rate in 20i16..=250,
            event_id in any::<u128>(),
        ) {
            let reading = Reading {
                event_id: Uuid::from_u128(event_id),
                customer_id,
                recorded_at: DateTime::from_timestamp_micros(micros).unwrap(),
                heart_rate,
            };
            let json = reading.to_json();
            prop_assert_eq!(validate(Some(json.as_bytes()), Some(reference()), &ValidationRules::default()), Ok(reading.clone()));

            // Without its event id, the same reading gets the derived one.
            let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
            object.remove("event_id");
            let bare = serde_json::to_string(&object).unwrap();
            let derived = validate(Some(bare.as_bytes()), Some(reference()), &ValidationRules::default()).unwrap();
            prop_assert_eq!(derived.event_id, derive_event_id(&reading.customer_id, &reading.recorded_at));
            prop_assert_eq!(Reading { event_id: reading.event_id, ..derived }, reading);
        }
    }
}
