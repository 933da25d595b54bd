//! Validation: turns the raw value of a `heartbeats` Kafka record, in any of the three formats
//! of SPEC section 4 (native, FHIR R4 Observation, Open mHealth heart-rate data point), into a
//! [`Reading`] or a [`Rejection`], exactly per SPEC section 4.
//!
//! Owns the rules of the reading message: which fields are read, their types and ranges, the
//! timestamp grammar, the derived `event_id`, and the order in which rejection reasons win.
//! Accepts the record value as bytes (`None` for a null value), the record's reference time
//! (its Kafka timestamp; `None` when it has none, and then no time bound applies) and the
//! configured [`ValidationRules`]. Nothing here reads the clock, so a re-read of a record always
//! gets the same verdict. Emits `Ok(Validated)` (the [`Reading`] and the optional fields whose
//! value was ignored) or `Err(Rejection)` with one of the thirteen [`RejectReason`]s and a short
//! lowercase detail that echoes at most 100 bytes of the input. It never fails otherwise and
//! never panics: bad input is data, not an error. An optional field's value that is not one of
//! its own (`"activity":"dancing"`) never rejects: the field is unknown, and [`IgnoredFields`]
//! says so for the validator to count.
//!
//! The checks run reason by reason, each across all fields, and the first reason that applies
//! wins, so the verdict does not depend on the order of the fields in the object. Within one
//! reason the detail names the first failing part, by its path in the message, in the order
//! customer, timestamp, heart rate, event id, then the format's own parts.
//!
//! One parse pass: the top-level object is walked with serde's map visitor, keeping the raw JSON
//! text of the keys any format reads (serde_json's `RawValue`, which needs serde_json's
//! `raw_value` feature) and only skipping over the rest; the nested objects a FHIR or Open
//! mHealth message is read from are walked the same way, from their raw text. The raw text is what lets us round a heart rate
//! exactly from its decimal digits (`72.5` is 73, `72.49999999999999999` is 72, where an `f64`
//! would say 72.5), and compare a 20-digit customer id exactly; serde_json's
//! `Value` would turn both into an `f64` and would also silently keep the last of two repeated
//! keys, which SPEC calls malformed.
//!
//! # Parts
//! - `rules.rs`: [`ValidationRules`], the [`RejectReason`]s in check order, [`Rejection`].
//! - `accepted.rs`: [`Validated`], the [`IgnoredFields`] of an accepted record.
//! - `validate.rs`: [`validate`], the checks reason by reason over a document's parts.
//! - `parse.rs`: the pass over an object, for the keys read.
//! - `document.rs`: the three formats told apart and mapped onto the same parts (each with its
//!   path), and what makes a FHIR or Open mHealth record `unsupported_observation`.
//! - `key.rs`: [`customer_key`], the customer a record names in any format (for `produce`).
//! - `fields.rs`: the raw text of a field, classified, and the customer id, event id and device
//!   id rules.
//! - `timestamp.rs`: the timestamp grammar.
//! - `detail.rs`: input quoted into a detail.
//! - `tests/`: the table of native cases (`table.rs`), of FHIR and Open mHealth cases
//!   (`formats.rs`), the standards' own examples (`examples.rs`, files in tests/data/formats/),
//!   examples (`mod.rs`) and properties (`properties.rs`).
//!
//! [`Reading`]: crate::domain::reading::Reading

mod accepted;
mod detail;
mod document;
mod fields;
mod key;
mod parse;
mod rules;
mod timestamp;
mod validate;

pub use accepted::{IgnoredField, IgnoredFields, Validated};
pub use fields::{customer_id_fault, CustomerIdFault};
pub use key::customer_key;
pub use rules::{RejectReason, Rejection, ValidationRules};
pub use validate::validate;

#[cfg(test)]
mod tests;
