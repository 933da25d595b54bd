//! [`validate`]: the checks, reason by reason, each across all fields; the first reason that
//! applies wins.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use super::accepted::{IgnoredFields, Validated};
use super::detail::Echo;
use super::fields::{
    activity, customer_id_from_integer, customer_id_from_string, decode_string, device_id,
    json_kind, parse_hyphenated_uuid, CustomerId, Raw,
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
    let heart_rate_digits = match Raw::classify(heart_rate_raw) {
        Raw::Integer(_) | Raw::Float => heart_rate_raw.get(),
        _ => return Err(wrong_type("heart_rate", "a JSON number", heart_rate_raw)),
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

    // stale_timestamp: exactly at the bound is accepted; 0 days is no bound.
    if let (Some(reference_time), days @ 1..) = (reference_time, rules.max_age_days) {
        let behind_ns = instant_ns(&reference_time) - instant_ns(&recorded_at);
        if behind_ns > i128::from(days) * NANOS_PER_DAY {
            return Err(Rejection::new(
                StaleTimestamp,
                format!(
                    "timestamp: {} is {} days behind the record time {}, over the limit of {} days",
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
    let heart_rate = rounded(heart_rate_digits)
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

    // The optional context: never a reason to reject, so looked at only once the record is
    // accepted; a value that is not one of its own is unknown, and noted as ignored.
    let mut ignored = IgnoredFields::default();
    let activity = activity(fields.activity).unwrap_or_else(|field| {
        ignored.insert(field);
        None
    });
    let device_id = device_id(fields.device_id).unwrap_or_else(|field| {
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
