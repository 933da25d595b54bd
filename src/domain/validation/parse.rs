//! Parsing objects: one pass over an object with serde's map visitor, keeping the raw JSON text
//! of the keys read and only skipping over the rest. The top level is walked once with every key
//! any of the three formats reads; a nested object a format reads (FHIR's `subject`, Open
//! mHealth's `header`) is walked the same way from its raw text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top-level keys read, by any format: the native fields, the keys that tell the formats
/// apart, and FHIR's fields (Open mHealth reads only `header` and `body` at the top).
#[derive(Clone, Copy)]
pub(super) enum Top {
    CustomerId,
    Timestamp,
    HeartRate,
    EventId,
    Activity,
    DeviceId,
    ResourceType,
    Header,
    Body,
    Id,
    Status,
    Code,
    Subject,
    Device,
    EffectiveDateTime,
    EffectiveInstant,
    EffectivePeriod,
    ValueQuantity,
}

/// The names of [`Top`]'s keys, in its order.
const TOP_KEYS: [&str; 18] = [
    "customer_id",
    "timestamp",
    "heart_rate",
    "event_id",
    "activity",
    "device_id",
    "resourceType",
    "header",
    "body",
    "id",
    "status",
    "code",
    "subject",
    "device",
    "effectiveDateTime",
    "effectiveInstant",
    "effectivePeriod",
    "valueQuantity",
];

/// The raw JSON text of the keys of an object that were read (`None`: absent), in the order of
/// the key list they were walked with.
pub(super) struct Fields<'a, const N: usize>([Option<&'a RawValue>; N]);

impl<'a, const N: usize> Fields<'a, N> {
    pub(super) fn at(&self, index: usize) -> Option<&'a RawValue> {
        self.0[index]
    }
}

impl<'a> Fields<'a, 18> {
    pub(super) fn get(&self, key: Top) -> Option<&'a RawValue> {
        self.0[key as usize]
    }
}

// The object is the usual case and lives on the stack for one record; boxing it would cost an
// allocation per record to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
pub(super) enum Parsed<'a> {
    Object(Fields<'a, 18>),
    /// The JSON literal `null`: well-formed JSON, not an object (a Kafka null value is no text).
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
    let walked = de::Deserializer::deserialize_map(
        &mut de,
        ObjectVisitor {
            keys: &TOP_KEYS,
            top: true,
        },
    )
    .map_err(Malformed::Syntax)?;
    de.end().map_err(Malformed::Syntax)?;
    if let Some(key) = walked.repeated {
        return Err(Malformed::RepeatedKey(key.into_owned()));
    }
    Ok(Parsed::Object(walked.fields))
}

/// The keys `keys` of a nested value already known to be well-formed JSON: `Ok(None)` when it
/// is not an object, `Err` with the key when the object repeats one (malformed, as at the top).
pub(super) fn nested<'a, const N: usize>(
    raw: &'a RawValue,
    keys: &'static [&'static str; N],
) -> Result<Option<Fields<'a, N>>, String> {
    if !raw.get().starts_with('{') {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    // The text is one well-formed JSON object, so walking it again cannot fail; should it, the
    // value is treated as not an object, which only ever makes a verdict stricter.
    let Ok(walked) = de::Deserializer::deserialize_map(&mut de, ObjectVisitor { keys, top: false })
    else {
        return Ok(None);
    };
    match walked.repeated {
        Some(key) => Err(key.into_owned()),
        None => Ok(Some(walked.fields)),
    }
}

struct Walked<'a, const N: usize> {
    fields: Fields<'a, N>,
    /// The first repeated key seen. Reported only once the whole value is known to be
    /// well-formed JSON, so a syntax error later in the value is reported as such.
    repeated: Option<Cow<'a, str>>,
}

struct ObjectVisitor<const N: usize> {
    keys: &'static [&'static str; N],
    /// The top level, whose keys are [`TOP_KEYS`].
    top: bool,
}

impl<const N: usize> ObjectVisitor<N> {
    /// Where the value of `key` goes, `None` for a key not read. The top level's eighteen keys
    /// are matched by a `match` (a jump on the length, then one comparison), the few keys of a
    /// nested object by a scan.
    fn slot(&self, key: &str) -> Option<usize> {
        if self.top {
            return top_slot(key);
        }
        self.keys.iter().position(|k| *k == key)
    }
}

/// The [`Top`] index of a top-level key.
fn top_slot(key: &str) -> Option<usize> {
    let top = match key {
        "customer_id" => Top::CustomerId,
        "timestamp" => Top::Timestamp,
        "heart_rate" => Top::HeartRate,
        "event_id" => Top::EventId,
        "activity" => Top::Activity,
        "device_id" => Top::DeviceId,
        "resourceType" => Top::ResourceType,
        "header" => Top::Header,
        "body" => Top::Body,
        "id" => Top::Id,
        "status" => Top::Status,
        "code" => Top::Code,
        "subject" => Top::Subject,
        "device" => Top::Device,
        "effectiveDateTime" => Top::EffectiveDateTime,
        "effectiveInstant" => Top::EffectiveInstant,
        "effectivePeriod" => Top::EffectivePeriod,
        "valueQuantity" => Top::ValueQuantity,
        _ => return None,
    };
    Some(top as usize)
}

impl<'de, const N: usize> Visitor<'de> for ObjectVisitor<N> {
    type Value = Walked<'de, N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields([None; N]);
        let mut repeated = None;
        // Keys not read, kept only to find repeats among them: the first one alone, the rest in
        // a vector, so an object with one key not read (the usual FHIR or Open mHealth object)
        // allocates nothing.
        let mut first_other: Option<Cow<'de, str>> = None;
        let mut others: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            let Some(slot) = self.slot(&key) else {
                map.next_value::<IgnoredAny>()?;
                match first_other {
                    None => first_other = Some(key),
                    Some(_) => others.push(key),
                }
                continue;
            };
            let raw: &'de RawValue = map.next_value()?;
            if fields.0[slot].replace(raw).is_some() && repeated.is_none() {
                repeated = Some(key);
            }
        }
        if repeated.is_none() && !others.is_empty() {
            others.extend(first_other);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_level_match_places_each_key_where_the_key_list_does() {
        for (index, key) in TOP_KEYS.iter().enumerate() {
            assert_eq!(top_slot(key), Some(index), "{key}");
        }
        assert_eq!(top_slot("customer"), None);
        assert_eq!(top_slot("Customer_id"), None);
    }
}
