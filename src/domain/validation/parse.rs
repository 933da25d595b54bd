//! Parsing the top level: one pass over the object with serde's map visitor, keeping the raw
//! JSON text of the five fields read and only skipping over the rest.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The five fields read, as raw JSON text borrowed from the value.
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) customer_id: Option<&'a RawValue>,
    pub(super) timestamp: Option<&'a RawValue>,
    pub(super) heart_rate: Option<&'a RawValue>,
    pub(super) event_id: Option<&'a RawValue>,
    pub(super) activity: Option<&'a RawValue>,
    pub(super) device_id: Option<&'a RawValue>,
}

pub(super) enum Parsed<'a> {
    Object(Fields<'a>),
    /// The JSON literal `null`, which SPEC counts as malformed rather than as not an object.
    Null,
    /// Any other well-formed JSON value, as raw text.
    Other(&'a str),
}

pub(super) enum Malformed {
    /// No bytes, or only whitespace.
    Empty,
    Syntax(serde_json::Error),
    RepeatedKey(String),
}

pub(super) fn parse(text: &str) -> Result<Parsed<'_>, Malformed> {
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
                "activity" => &mut fields.activity,
                "device_id" => &mut fields.device_id,
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
