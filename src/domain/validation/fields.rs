//! Field values: a field's raw JSON text classified by its first byte, strings decoded, and the
//! customer id, event id and activity rules.

use std::borrow::Cow;

use serde_json::value::RawValue;
use uuid::Uuid;

use super::detail::Echo;
use super::rules::{RejectReason, Rejection};

/// The longest string customer id (SPEC section 4).
const MAX_CUSTOMER_ID_CHARS: usize = 64;

/// A field's raw JSON text, classified by its first byte. The value is known to be well-formed
/// JSON, so the first byte decides its type.
pub(super) enum Raw<'a> {
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
    pub(super) fn classify(raw: &'a RawValue) -> Raw<'a> {
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

/// What a well-formed JSON value is, for a not_an_object detail.
pub(super) fn json_kind(raw: &str) -> &'static str {
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
pub(super) fn decode_string(quoted: &str) -> Option<Cow<'_, str>> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        // Well-formed JSON without a backslash: the characters are the text.
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
}

/// The text of `raw` when it is a JSON string, decoded.
pub(super) fn string_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    match Raw::classify(raw) {
        Raw::String(quoted) => decode_string(quoted),
        _ => None,
    }
}

pub(super) fn customer_id_from_integer(
    path: &str,
    digits: &str,
    raw: &RawValue,
) -> Result<String, Rejection> {
    // JSON forbids leading zeros, so the digits are already the canonical decimal string; `-0`
    // is the integer zero. u64 parsing is exact, so 2^64 is refused without rounding.
    let magnitude = digits.strip_prefix('-');
    match magnitude {
        Some(rest) if rest.bytes().all(|b| b == b'0') => Ok("0".to_owned()),
        None if digits.parse::<u64>().is_ok() => Ok(digits.to_owned()),
        _ => Err(Rejection::new(
            RejectReason::InvalidCustomerId,
            format!(
                "{path}: integer outside 0..=18446744073709551615, got {}",
                Echo(raw.get())
            ),
        )),
    }
}

pub(super) fn customer_id_from_string(
    path: &str,
    quoted: &str,
    raw: &RawValue,
) -> Result<String, Rejection> {
    let text = decode_string(quoted).ok_or_else(|| {
        Rejection::new(
            RejectReason::InvalidCustomerId,
            format!(
                "{path}: not a valid unicode string, got {}",
                Echo(raw.get())
            ),
        )
    })?;
    customer_id_checked(path, text, raw)
}

/// A customer id's text, by the customer-id rule; `raw` is what the detail quotes.
pub(super) fn customer_id_checked(
    path: &str,
    text: Cow<'_, str>,
    raw: &RawValue,
) -> Result<String, Rejection> {
    let invalid = |what: &str| {
        Rejection::new(
            RejectReason::InvalidCustomerId,
            format!("{path}: {what}, got {}", Echo(raw.get())),
        )
    };
    match customer_id_fault(&text) {
        Some(CustomerIdFault::Empty) => Err(invalid("empty")),
        Some(CustomerIdFault::Character) => Err(invalid("only A-Z a-z 0-9 _ - . : are allowed")),
        Some(CustomerIdFault::TooLong) => Err(invalid("longer than 64 characters")),
        None => Ok(text.into_owned()),
    }
}

/// What is wrong with a customer id given as text, by SPEC section 4's rule: 1 to 64 characters
/// from `A-Z a-z 0-9 _ - . :`. The one statement of that rule; readings and the `rules` command
/// word their own messages around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerIdFault {
    Empty,
    /// A character outside the set.
    Character,
    /// More than 64 characters.
    TooLong,
}

/// The fault of `id` by the customer-id rule, `None` when it is a valid id.
pub fn customer_id_fault(id: &str) -> Option<CustomerIdFault> {
    if id.is_empty() {
        Some(CustomerIdFault::Empty)
    } else if !id.bytes().all(is_customer_id_byte) {
        Some(CustomerIdFault::Character)
    } else if id.len() > MAX_CUSTOMER_ID_CHARS {
        // Every allowed character is one byte, so the byte length is the character count.
        Some(CustomerIdFault::TooLong)
    } else {
        None
    }
}

pub(super) fn is_customer_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

/// A UUID in the 36-character hyphenated form only, any case. `Uuid::parse_str` alone would
/// also take the simple, braced and `urn:uuid:` forms, which SPEC does not. One pass over the
/// bytes, shape and value together.
pub(super) fn parse_hyphenated_uuid(text: &str) -> Option<Uuid> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut value: u128 = 0;
    for (at, &b) in bytes.iter().enumerate() {
        if matches!(at, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        let digit = HEX_DIGITS[usize::from(b)];
        if digit > 15 {
            return None;
        }
        value = (value << 4) | u128::from(digit);
    }
    Some(Uuid::from_u128(value))
}

/// Each byte's value as a hexadecimal digit, 0xff for a byte that is none: a look-up per digit
/// (`char::to_digit` branched for each; an event id has 32 digits and every reading one).
static HEX_DIGITS: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// A device id (SPEC section 4's `device_id`, FHIR's `Device/<id>`): 1-64 characters from the
/// customer-id set, else `None`.
pub(super) fn device_id_text(text: &str) -> Option<String> {
    customer_id_fault(text).is_none().then(|| text.to_owned())
}
