//! Serde for an `f64` that must come back bit for bit: written as a JSON string holding Rust's
//! shortest round-trip decimal text (`"70.35000000000001"`), read back with `str::parse`, which
//! rounds correctly.
//!
//! Why not a JSON number: serde_json parses numbers with a fast algorithm that is off by one unit
//! in the last place for a few percent of such values unless its `float_roundtrip` feature is on,
//! and a state loaded from a `jsonb` column through `serde_json::Value` takes that path too. A
//! baseline one ulp off could judge a later reading differently from the run that never restarted.
//! A string also survives NaN and infinity, which a JSON number cannot hold. Numbers are still
//! accepted on input (a hand-written state), at serde_json's precision.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_any(ExactF64)
}

struct ExactF64;

impl Visitor<'_> for ExactF64 {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, or a string holding one")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        v.parse()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
}
