//! [`validate`]: the checks, reason by reason, each across all fields; the first reason that
//! applies wins.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use super::accepted::{IgnoredFields, Validated};
use super::detail::Echo;
use super::document::{CustomerRule, Document, EventIdRule, Part};
use super::fields::{
    customer_id_checked, customer_id_from_integer, customer_id_from_string, decode_string,
    json_kind, parse_hyphenated_uuid, string_text, Raw,
};
use super::parse::{parse, Malformed, Parsed};
use super::rules::{RejectReason, Rejection, ValidationRules};
use super::timestamp::parse_timestamp;
use crate::domain::reading::{canonical_timestamp, derive_event_id, Reading};

/// Validates one record value.
///
/// `value`: the Kafka record value (`None` = null value). `reference_time`: the Kafka record's
/// own timestamp, which the reading's timestamp is held to `future_timestamp` against; `None`
/// for a record without one, which is held to no time bound (SPEC section 4). Taking it as an
/// argument (rather than reading the clock here) is what makes a re-read give the same verdict.
/// An accepted record also says which optional fields had a value that was ignored.
pub fn validate(
    value: Option<&[u8]>,
    reference_time: Option<DateTime<Utc>>,
    rules: &ValidationRules,
) -> Result<Validated, Rejection> {
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
        // SPEC: the JSON text `null` is valid JSON, so not_an_object (unlike a Kafka null value).
        Ok(Parsed::Null) => {
            return Err(Rejection::new(
                NotAnObject,
                "expected a JSON object, got null".to_owned(),
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

    let document = Document::new(&fields)
        .map_err(|key| Rejection::new(MalformedJson, format!("repeated key \"{}\"", Echo(&key))))?;
    judge(document, reference_time, rules)
}

/// The checks after the parse, reason by reason, over the parts of a document (taken, so that an
/// accepted reading keeps the device id found, and a rejection the detail, without a copy).
fn judge(
    document: Document<'_>,
    reference_time: Option<DateTime<Utc>>,
    rules: &ValidationRules,
) -> Result<Validated, Rejection> {
    use RejectReason::*;

    // unsupported_observation: a FHIR or Open mHealth record that is not of a heart rate.
    if let Some(detail) = document.unsupported {
        return Err(Rejection::new(UnsupportedObservation, detail));
    }

    // missing_field: a JSON null counts as missing.
    for (part, _, required) in document.parts() {
        if let (Part::Missing { path, null, also }, true) = (part, required) {
            let what = if null { "null" } else { "missing" };
            return Err(Rejection::new(
                MissingField,
                format!("{path}: required field is {what}{also}{}", document.hint),
            ));
        }
    }

    // wrong_type: of each part there, and of what encloses it.
    for (part, kind, _) in document.parts() {
        match part {
            Part::NotAnObject { path, raw } => {
                return Err(wrong_type(path, "an object", raw));
            }
            Part::Found { path, raw } if !kind.admits(raw) => {
                return Err(wrong_type(path, kind.expected(), raw));
            }
            _ => {}
        }
    }
    // Every required part is there, of its type, from here on.
    let (customer_path, customer_raw) = found(document.customer)?;
    let (timestamp_path, timestamp_raw) = found(document.timestamp)?;
    let (heart_rate_path, heart_rate_raw) = found(document.heart_rate)?;

    // invalid_customer_id.
    let customer_id = customer_id(document.customer_rule, customer_path, customer_raw)?;

    // invalid_event_id.
    let given_event_id = match (document.event_id, document.event_id_rule) {
        (Part::Found { path, raw }, rule) => {
            let uuid = string_text(raw).as_deref().and_then(parse_hyphenated_uuid);
            match (uuid, rule) {
                (Some(uuid), _) => Some(uuid),
                // A FHIR id that is not a UUID is the server's name for the resource, not the
                // reading's identity: the identity is derived.
                (None, EventIdRule::IfUuid) => None,
                (None, _) => {
                    return Err(Rejection::new(
                        InvalidEventId,
                        format!(
                            "{path}: expected a uuid in the hyphenated 8-4-4-4-12 form, got {}",
                            Echo(raw.get())
                        ),
                    ))
                }
            }
        }
        _ => None,
    };

    // invalid_timestamp.
    let recorded_at = string_text(timestamp_raw)
        .ok_or("not a valid unicode string")
        .and_then(|text| parse_timestamp(&text))
        .map_err(|what| {
            Rejection::new(
                InvalidTimestamp,
                format!(
                    "{timestamp_path}: {what}, got {}",
                    Echo(timestamp_raw.get())
                ),
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
                    "{timestamp_path}: {} is {} ms ahead of the record time {}, over the limit \
                     of {} ms",
                    canonical_timestamp(&recorded_at),
                    ahead_ns / 1_000_000,
                    canonical_timestamp(&reference_time),
                    rules.max_future_skew_ms
                ),
            ));
        }
    }

    // stale_timestamp: exactly at the bound is accepted; 0 days is no bound.
    if let (Some(reference_time), days @ 1..) = (reference_time, rules.max_age_days) {
        let behind_ns = instant_ns(&reference_time) - instant_ns(&recorded_at);
        if behind_ns > i128::from(days) * NANOS_PER_DAY {
            return Err(Rejection::new(
                StaleTimestamp,
                format!(
                    "{timestamp_path}: {} is {} days behind the record time {}, over the limit \
                     of {} days",
                    canonical_timestamp(&recorded_at),
                    behind_ns / NANOS_PER_DAY,
                    canonical_timestamp(&reference_time),
                    days
                ),
            ));
        }
    }

    // implausible_heart_rate, on the number rounded to an integer, halves away from zero: a
    // number beyond i64 is out of any configurable range; a range configured wider than
    // `smallint` cannot be stored, so it is refused here too.
    let heart_rate = rounded(heart_rate_raw.get())
        .filter(|bpm| (rules.min_heart_rate..=rules.max_heart_rate).contains(bpm))
        .and_then(|bpm| i16::try_from(bpm).ok())
        .ok_or_else(|| {
            Rejection::new(
                ImplausibleHeartRate,
                format!(
                    "{heart_rate_path}: {} is outside {}..={}",
                    Echo(heart_rate_raw.get()),
                    rules.min_heart_rate,
                    rules.max_heart_rate
                ),
            )
        })?;

    // The optional context: never a reason to reject; a value that is not one of its own is
    // unknown, and noted as ignored.
    let mut ignored = IgnoredFields::default();
    let activity = document.activity.unwrap_or_else(|field| {
        ignored.insert(field);
        None
    });
    let device_id = document.device.unwrap_or_else(|field| {
        ignored.insert(field);
        None
    });

    let event_id = given_event_id.unwrap_or_else(|| derive_event_id(&customer_id, &recorded_at));
    Ok(Validated {
        reading: Reading {
            event_id,
            customer_id,
            recorded_at,
            heart_rate,
            activity,
            device_id,
        },
        ignored,
    })
}

/// The path and raw text of a required part, known to be found once missing_field and
/// wrong_type have passed; should it not be, it is missing, rather than a panic.
fn found(part: Part<'_>) -> Result<(&'static str, &RawValue), Rejection> {
    match part {
        Part::Found { path, raw } => Ok((path, raw)),
        Part::Missing { path, .. } | Part::NotAnObject { path, .. } => Err(Rejection::new(
            RejectReason::MissingField,
            format!("{path}: required field is missing"),
        )),
    }
}

/// The customer id of a customer part that has its type.
pub(super) fn customer_id(
    rule: CustomerRule,
    path: &'static str,
    raw: &RawValue,
) -> Result<String, Rejection> {
    match (rule, Raw::classify(raw)) {
        (CustomerRule::Direct, Raw::Integer(digits)) => customer_id_from_integer(path, digits, raw),
        (CustomerRule::PatientReference, Raw::String(quoted)) => {
            let reference = decode_string(quoted).unwrap_or_default();
            let id = patient_id(&reference).ok_or_else(|| {
                Rejection::new(
                    RejectReason::InvalidCustomerId,
                    format!(
                        "{path}: expected a reference Patient/<id>, got {}",
                        Echo(raw.get())
                    ),
                )
            })?;
            customer_id_checked(path, id.into(), raw)
        }
        (_, Raw::String(quoted)) => customer_id_from_string(path, quoted, raw),
        _ => Err(wrong_type(path, rule.kind().expected(), raw)),
    }
}

/// The id of a FHIR reference to a patient: `Patient/<id>`, or an absolute URL ending in
/// `/Patient/<id>`, either with a version `/_history/<v>` after it that is dropped. Any other
/// reference (`Group/1`, `#contained`, `urn:uuid:...`, a conditional `Patient?identifier=...`)
/// names no patient id.
fn patient_id(reference: &str) -> Option<&str> {
    // A reference without a `_` (the usual one: a FHIR id has none) has no `/_history/`: a byte
    // search spares it the substring search.
    let unversioned = match reference
        .contains('_')
        .then(|| reference.find("/_history/"))
        .flatten()
    {
        Some(at) => &reference[..at],
        None => reference,
    };
    let id = match unversioned.strip_prefix("Patient/") {
        Some(id) => id,
        None if unversioned.contains("://") => unversioned.rsplit_once("/Patient/")?.1,
        None => return None,
    };
    (!id.is_empty() && !id.contains(['/', '?', '#'])).then_some(id)
}

fn wrong_type(path: &str, expected: &str, raw: &RawValue) -> Rejection {
    Rejection::new(
        RejectReason::WrongType,
        format!("{path}: expected {expected}, got {}", Echo(raw.get())),
    )
}

const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// An instant as nanoseconds since the epoch, wide enough for any `DateTime<Utc>`.
fn instant_ns(at: &DateTime<Utc>) -> i128 {
    i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos())
}

/// A JSON number literal (`-? int frac? exp?`, as serde_json checked it) rounded to the nearest
/// integer, halves away from zero, exactly: from its decimal digits, not through an `f64` (which
/// would make `72.49999999999999999` a half). `None` beyond i64.
pub(super) fn rounded(literal: &str) -> Option<i64> {
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    // The usual heart rate, a plain integer of at most 18 digits, fits without a check.
    if !unsigned.is_empty() && unsigned.len() <= 18 && unsigned.bytes().all(|b| b.is_ascii_digit())
    {
        let magnitude = unsigned
            .bytes()
            .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
        return Some(if negative { -magnitude } else { magnitude });
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], unsigned[i + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    if digits.iter().all(|d| *d == 0) {
        return Some(0);
    }
    // Where the decimal point falls among `digits` (may be before the first or past the last).
    let point = i64::try_from(int.len()).ok()?.checked_add(exponent)?;
    // i64 has 19 digits; the leading digits may be zeros, so count from the first non-zero one.
    let leading_zeros = digits.iter().take_while(|d| **d == 0).count() as i64;
    if point - leading_zeros > 19 {
        return None;
    }
    let digit = |i: i64| -> i64 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or(0, |d| i64::from(*d))
    };
    let mut magnitude: i64 = 0;
    for i in 0..point.max(0) {
        magnitude = magnitude.checked_mul(10)?.checked_add(digit(i))?;
    }
    if digit(point) >= 5 && point >= 0 {
        magnitude = magnitude.checked_add(1)?;
    }
    Some(if negative { -magnitude } else { magnitude })
}
