//! The three formats of SPEC section 4, told apart by shape and mapped onto the same parts: where
//! each part of a reading (customer, time, heart rate, event id, activity, device) is found in a
//! native message, a FHIR R4 Observation or an Open mHealth `omh:heart-rate` data point.
//!
//! A [`Document`] is built before any reason is judged, because it walks the nested objects a
//! format reads, and a repeated key in one of them is `malformed_json`, the earliest reason that
//! can apply after the parse. It holds each part as a [`Part`]: missing, behind something that is
//! not an object, or found as raw JSON text; the checks of `validate.rs` then run reason by
//! reason over the parts in their order, so the first failing part in that order is the one a
//! detail names, by its path in the message (`valueQuantity.value`, `header.user_id`).
//!
//! What the formats' own rules decide, and SPEC leaves to this module, is also here: the FHIR
//! code, status and unit, and the Open mHealth unit, schema and statistic, whose failure is
//! `unsupported_observation` ([`Document::unsupported`]); the activity of an Open mHealth point;
//! the device of a FHIR Observation. docs/MESSAGES.md has the mapping as a table.

use serde_json::value::RawValue;

use super::accepted::IgnoredField;
use super::detail::Echo;
use super::fields::{device_id_text, string_text, Raw};
use super::parse::{nested, Fields, Top};
use crate::domain::reading::Activity;

/// A part of the reading as the message has it.
#[derive(Clone, Copy)]
pub(super) enum Part<'a> {
    /// Absent (`null: false`) or JSON null. `also` names the alternatives that were looked for
    /// too, for the detail (`effectiveInstant` after `effectiveDateTime`).
    Missing {
        path: &'static str,
        null: bool,
        also: &'static str,
    },
    /// An enclosing value at `path` that should be an object and is not: `wrong_type`.
    NotAnObject {
        path: &'static str,
        raw: &'a RawValue,
    },
    Found {
        path: &'static str,
        raw: &'a RawValue,
    },
}

impl<'a> Part<'a> {
    /// A part read at the top level of the message.
    fn top(raw: Option<&'a RawValue>, path: &'static str) -> Part<'a> {
        match raw {
            None => Part::Missing {
                path,
                null: false,
                also: "",
            },
            Some(raw) if raw.get() == "null" => Part::Missing {
                path,
                null: true,
                also: "",
            },
            Some(raw) => Part::Found { path, raw },
        }
    }

    /// The same part, naming alternatives that were looked for too when it is missing.
    fn or_also(self, also: &'static str) -> Part<'a> {
        match self {
            Part::Missing { path, null, .. } => Part::Missing { path, null, also },
            other => other,
        }
    }

    pub(super) fn path(&self) -> &'static str {
        match self {
            Part::Missing { path, .. }
            | Part::NotAnObject { path, .. }
            | Part::Found { path, .. } => path,
        }
    }

    pub(super) fn found(&self) -> Option<&'a RawValue> {
        match self {
            Part::Found { raw, .. } => Some(raw),
            _ => None,
        }
    }
}

/// A value that should be an object, with the keys of it a format reads.
enum Node<'a, const N: usize> {
    Missing,
    NotAnObject {
        path: &'static str,
        raw: &'a RawValue,
    },
    Object(Fields<'a, N>),
}

impl<'a, const N: usize> Node<'a, N> {
    /// The value `raw` found at `path`, walked for `keys`; `Err` names a repeated key.
    fn new(
        raw: Option<&'a RawValue>,
        path: &'static str,
        keys: &'static [&'static str; N],
    ) -> Result<Node<'a, N>, String> {
        let Some(raw) = raw.filter(|raw| raw.get() != "null") else {
            return Ok(Node::Missing);
        };
        match nested(raw, keys) {
            Ok(Some(fields)) => Ok(Node::Object(fields)),
            Ok(None) => Ok(Node::NotAnObject { path, raw }),
            Err(key) => Err(format!("{path}.{key}")),
        }
    }

    /// The member `keys[index]`, as the part at `path`.
    fn part(&self, index: usize, path: &'static str) -> Part<'a> {
        match self {
            Node::Missing => Part::Missing {
                path,
                null: false,
                also: "",
            },
            Node::NotAnObject { path, raw } => Part::NotAnObject { path, raw },
            Node::Object(fields) => Part::top(fields.at(index), path),
        }
    }

    /// The member `keys[index]` when this is an object that has it, not null.
    fn member(&self, index: usize) -> Option<&'a RawValue> {
        match self {
            Node::Object(fields) => fields.at(index).filter(|raw| raw.get() != "null"),
            _ => None,
        }
    }

    /// The member `keys[index]`, walked as an object itself.
    fn child<const M: usize>(
        &self,
        index: usize,
        path: &'static str,
        keys: &'static [&'static str; M],
    ) -> Result<Node<'a, M>, String> {
        match self {
            Node::Object(fields) => Node::new(fields.at(index), path, keys),
            Node::NotAnObject { path, raw } => Ok(Node::NotAnObject { path, raw }),
            Node::Missing => Ok(Node::Missing),
        }
    }
}

/// The JSON type a part must have.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// A string, or a JSON integer literal (SPEC's customer id).
    StringOrInteger,
    String,
    Number,
    Array,
}

impl Kind {
    pub(super) fn admits(self, raw: &RawValue) -> bool {
        matches!(
            (self, Raw::classify(raw)),
            (Kind::StringOrInteger, Raw::String(_) | Raw::Integer(_))
                | (Kind::String, Raw::String(_))
                | (Kind::Number, Raw::Integer(_) | Raw::Float)
                | (Kind::Array, Raw::Array)
        )
    }

    pub(super) fn expected(self) -> &'static str {
        match self {
            Kind::StringOrInteger => "a string or a JSON integer",
            Kind::String => "a string",
            Kind::Number => "a JSON number",
            Kind::Array => "an array",
        }
    }
}

/// How the event id part becomes the reading's event id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum EventIdRule {
    /// Native `event_id`: optional; when given, a UUID (else `invalid_event_id`).
    Optional,
    /// FHIR `id`: optional; used when it is a UUID, else the id is derived.
    IfUuid,
    /// Open mHealth `header.id`: required, and a UUID.
    Required,
}

/// How the customer part becomes the customer id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CustomerRule {
    /// A string id or a JSON integer (native `customer_id`, Open mHealth `header.user_id`).
    Direct,
    /// FHIR `subject.reference`: `Patient/<id>`.
    PatientReference,
}

impl CustomerRule {
    /// The JSON type the customer part must have.
    pub(super) fn kind(self) -> Kind {
        match self {
            CustomerRule::Direct => Kind::StringOrInteger,
            CustomerRule::PatientReference => Kind::String,
        }
    }
}

/// A record's parts, found by its format's rules.
pub(super) struct Document<'a> {
    /// Why the observation is not one of a heart rate, when it is not: the detail of
    /// `unsupported_observation`.
    pub(super) unsupported: Option<String>,
    pub(super) customer: Part<'a>,
    pub(super) customer_rule: CustomerRule,
    pub(super) timestamp: Part<'a>,
    pub(super) heart_rate: Part<'a>,
    pub(super) event_id: Part<'a>,
    pub(super) event_id_rule: EventIdRule,
    /// Further parts checked for presence (when required) and type only, in detail order.
    pub(super) others: [Option<(Part<'a>, Kind, bool)>; 2],
    /// The activity: `Err` when a value was there but not understood (counted, then unknown).
    pub(super) activity: Result<Option<Activity>, IgnoredField>,
    /// The device: as for the activity.
    pub(super) device: Result<Option<String>, IgnoredField>,
    /// For a native message missing its customer id: what made it look like another format.
    pub(super) hint: &'static str,
}

impl<'a> Document<'a> {
    /// The record's parts by its format. `Err` names a repeated key in a nested object read.
    pub(super) fn new(fields: &Fields<'a, 18>) -> Result<Document<'a>, String> {
        let is_object = |key| {
            fields
                .get(key)
                .is_some_and(|raw| raw.get().starts_with('{'))
        };
        let resource_type = fields.get(Top::ResourceType).and_then(string_text);
        if resource_type.as_deref() == Some("Observation") {
            fhir(fields)
        } else if is_object(Top::Header) && is_object(Top::Body) {
            omh(fields)
        } else {
            let hint = if resource_type.is_some() {
                " (a FHIR resource other than an Observation is read as a native message: send \
                 one Observation per record)"
            } else if fields.get(Top::Header).is_some() || fields.get(Top::Body).is_some() {
                " (an Open mHealth data point needs both a header and a body object)"
            } else {
                ""
            };
            Ok(native(fields, hint))
        }
    }

    /// The parts in detail order, each with its kind and whether it is required.
    pub(super) fn parts(&self) -> impl Iterator<Item = (Part<'a>, Kind, bool)> + '_ {
        [
            Some((self.customer, self.customer_rule.kind(), true)),
            Some((self.timestamp, Kind::String, true)),
            Some((self.heart_rate, Kind::Number, true)),
            Some((
                self.event_id,
                Kind::String,
                self.event_id_rule == EventIdRule::Required,
            )),
        ]
        .into_iter()
        .chain(self.others)
        .flatten()
    }
}

fn native<'a>(fields: &Fields<'a, 18>, hint: &'static str) -> Document<'a> {
    Document {
        unsupported: None,
        customer: Part::top(fields.get(Top::CustomerId), "customer_id"),
        customer_rule: CustomerRule::Direct,
        timestamp: Part::top(fields.get(Top::Timestamp), "timestamp"),
        heart_rate: Part::top(fields.get(Top::HeartRate), "heart_rate"),
        event_id: Part::top(fields.get(Top::EventId), "event_id"),
        event_id_rule: EventIdRule::Optional,
        others: [None, None],
        activity: optional(
            fields.get(Top::Activity),
            IgnoredField::Activity,
            Activity::from_word,
        ),
        device: optional(
            fields.get(Top::DeviceId),
            IgnoredField::DeviceId,
            device_id_text,
        ),
        hint,
    }
}

/// The LOINC code of a heart rate, the one coding a FHIR Observation must hold.
const LOINC: &str = "http://loinc.org";
const HEART_RATE_CODE: &str = "8867-4";
/// The units of `valueQuantity.unit` or `.code` that are beats per minute (SPEC section 4).
const FHIR_UNITS: [&str; 4] = ["/min", "{beats}/min", "beats/min", "bpm"];

const CODE_KEYS: [&str; 1] = ["coding"];
const CODING_KEYS: [&str; 2] = ["system", "code"];
const REFERENCE_KEYS: [&str; 1] = ["reference"];
const PERIOD_KEYS: [&str; 1] = ["start"];
const QUANTITY_KEYS: [&str; 3] = ["value", "unit", "code"];

fn fhir<'a>(fields: &Fields<'a, 18>) -> Result<Document<'a>, String> {
    let code = Node::new(fields.get(Top::Code), "code", &CODE_KEYS)?;
    let coding = code.part(0, "code.coding");
    let subject = Node::new(fields.get(Top::Subject), "subject", &REFERENCE_KEYS)?;
    let device = Node::new(fields.get(Top::Device), "device", &REFERENCE_KEYS)?;
    let period = Node::new(
        fields.get(Top::EffectivePeriod),
        "effectivePeriod",
        &PERIOD_KEYS,
    )?;
    let quantity = Node::new(
        fields.get(Top::ValueQuantity),
        "valueQuantity",
        &QUANTITY_KEYS,
    )?;
    let status = Part::top(fields.get(Top::Status), "status");

    // The codings, walked now: a repeated key in one is malformed, which outranks the rest.
    let codings = match coding.found().map(|raw| (raw, Raw::classify(raw))) {
        Some((raw, Raw::Array)) => Some((raw, has_heart_rate_coding(raw)?)),
        _ => None,
    };
    let unsupported = codings
        .and_then(|(raw, heart_rate)| {
            (!heart_rate).then(|| {
                format!(
                    "code.coding: no coding of system {LOINC} and code {HEART_RATE_CODE} \
                     (heart rate), got {}",
                    Echo(raw.get())
                )
            })
        })
        .or_else(|| fhir_status_unsupported(status))
        .or_else(|| fhir_unit_unsupported(&quantity));

    // effectiveDateTime, else effectiveInstant, else effectivePeriod.start; null counts as absent.
    let timestamp = match (
        Part::top(fields.get(Top::EffectiveDateTime), "effectiveDateTime"),
        Part::top(fields.get(Top::EffectiveInstant), "effectiveInstant"),
    ) {
        (found @ Part::Found { .. }, _) | (_, found @ Part::Found { .. }) => found,
        (missing, _) => match period.part(0, "effectivePeriod.start") {
            Part::Missing { .. } => missing,
            other => other,
        },
    }
    .or_also(" (and so are effectiveInstant and effectivePeriod.start)");

    Ok(Document {
        unsupported,
        customer: subject.part(0, "subject.reference"),
        customer_rule: CustomerRule::PatientReference,
        timestamp,
        heart_rate: quantity.part(0, "valueQuantity.value"),
        event_id: Part::top(fields.get(Top::Id), "id"),
        event_id_rule: EventIdRule::IfUuid,
        others: [
            Some((coding, Kind::Array, true)),
            Some((status, Kind::String, false)),
        ],
        activity: Ok(None),
        device: fhir_device(&device),
        hint: "",
    })
}

/// Whether the array of codings at `raw` holds LOINC's heart rate. `Err` names a key repeated
/// in one of them.
fn has_heart_rate_coding(raw: &RawValue) -> Result<bool, String> {
    let Ok(codings) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
        return Ok(false);
    };
    let mut found = false;
    for coding in codings {
        let Some(fields) =
            nested(coding, &CODING_KEYS).map_err(|key| format!("code.coding.{key}"))?
        else {
            continue;
        };
        found |= string_is(fields.at(0), LOINC) && string_is(fields.at(1), HEART_RATE_CODE);
    }
    Ok(found)
}

/// Whether `raw` is a JSON string whose text is `expected`.
fn string_is(raw: Option<&RawValue>, expected: &str) -> bool {
    raw.and_then(string_text).as_deref() == Some(expected)
}

fn fhir_status_unsupported(status: Part<'_>) -> Option<String> {
    let raw = status.found()?;
    match string_text(raw).as_deref() {
        Some(status @ ("cancelled" | "entered-in-error")) => Some(format!(
            "status: an observation that is {status} is not a reading"
        )),
        _ => None,
    }
}

/// `valueQuantity.unit` and `.code`, when the quantity is an object: one of them must be a unit
/// of beats per minute. A missing or mistyped quantity is judged later, as its value's path.
fn fhir_unit_unsupported(quantity: &Node<'_, 3>) -> Option<String> {
    let Node::Object(_) = quantity else {
        return None;
    };
    let (unit, code) = (quantity.member(1), quantity.member(2));
    let is_rate = |raw: Option<&RawValue>| {
        raw.and_then(string_text)
            .is_some_and(|text| FHIR_UNITS.contains(&text.as_ref()))
    };
    if is_rate(unit) || is_rate(code) {
        return None;
    }
    let shown =
        |raw: Option<&RawValue>| raw.map_or("absent".to_owned(), |raw| Echo(raw.get()).to_string());
    Some(format!(
        "valueQuantity: neither unit {} nor code {} is one of /min, {{beats}}/min, beats/min, bpm",
        shown(unit),
        shown(code)
    ))
}

/// FHIR `device.reference` `Device/<id>`: the id, when it is a device id.
fn fhir_device(device: &Node<'_, 1>) -> Result<Option<String>, IgnoredField> {
    match device {
        Node::Missing => Ok(None),
        Node::NotAnObject { .. } => Err(IgnoredField::DeviceId),
        Node::Object(_) => device
            .member(0)
            .and_then(string_text)
            .as_deref()
            .and_then(|reference| reference.strip_prefix("Device/"))
            .and_then(device_id_text)
            .map(Some)
            .ok_or(IgnoredField::DeviceId),
    }
}

const HEADER_KEYS: [&str; 3] = ["id", "user_id", "schema_id"];
const SCHEMA_KEYS: [&str; 1] = ["name"];
const BODY_KEYS: [&str; 5] = [
    "heart_rate",
    "effective_time_frame",
    "descriptive_statistic",
    "temporal_relationship_to_sleep",
    "temporal_relationship_to_physical_activity",
];
const UNIT_VALUE_KEYS: [&str; 2] = ["value", "unit"];
const TIME_FRAME_KEYS: [&str; 2] = ["date_time", "time_interval"];
const INTERVAL_KEYS: [&str; 1] = ["start_date_time"];
/// Open mHealth's one unit of a heart rate (`omh:heart-rate`, every version).
const OMH_UNIT: &str = "beats/min";

fn omh<'a>(fields: &Fields<'a, 18>) -> Result<Document<'a>, String> {
    let header = Node::new(fields.get(Top::Header), "header", &HEADER_KEYS)?;
    let schema = header.child(2, "header.schema_id", &SCHEMA_KEYS)?;
    let body = Node::new(fields.get(Top::Body), "body", &BODY_KEYS)?;
    let heart_rate = body.child(0, "body.heart_rate", &UNIT_VALUE_KEYS)?;
    let frame = body.child(1, "body.effective_time_frame", &TIME_FRAME_KEYS)?;
    let interval = frame.child(1, "body.effective_time_frame.time_interval", &INTERVAL_KEYS)?;
    let unit = heart_rate.part(1, "body.heart_rate.unit");

    let unsupported = schema.member(0).and_then(string_text)
        .filter(|name| name != "heart-rate")
        .map(|name| {
            format!(
                "header.schema_id.name: a data point of schema {} is not a heart rate",
                Echo(&name)
            )
        })
        .or_else(|| {
            unit.found().and_then(string_text)
                .filter(|text| text != OMH_UNIT)
                .map(|_| {
                    format!(
                        "body.heart_rate.unit: expected {OMH_UNIT}, got {}",
                        Echo(unit.found().map_or("", |raw| raw.get()))
                    )
                })
        })
        .or_else(|| {
            body.member(2).map(|raw| {
                format!(
                    "body.descriptive_statistic: a statistic ({}) of many readings is not a reading",
                    Echo(raw.get())
                )
            })
        });

    // date_time, else time_interval.start_date_time.
    let timestamp = match frame.part(0, "body.effective_time_frame.date_time") {
        found @ (Part::Found { .. } | Part::NotAnObject { .. }) => found,
        missing => {
            match interval.part(0, "body.effective_time_frame.time_interval.start_date_time") {
                Part::Missing { .. } => missing,
                other => other,
            }
        }
    }
    .or_also(" (and so is body.effective_time_frame.time_interval.start_date_time)");

    Ok(Document {
        unsupported,
        customer: header.part(1, "header.user_id"),
        customer_rule: CustomerRule::Direct,
        timestamp,
        heart_rate: heart_rate.part(0, "body.heart_rate.value"),
        event_id: header.part(0, "header.id"),
        event_id_rule: EventIdRule::Required,
        others: [Some((unit, Kind::String, true)), None],
        activity: omh_activity(body.member(3), body.member(4)),
        device: Ok(None),
        hint: "",
    })
}

/// The activity of an Open mHealth point (SPEC section 4): `during sleep` is sleep; otherwise
/// the relation to physical activity decides. `on waking` and `before sleeping` say nothing of
/// the activity. A value outside either schema's words is ignored, and counted.
fn omh_activity(
    sleep: Option<&RawValue>,
    physical: Option<&RawValue>,
) -> Result<Option<Activity>, IgnoredField> {
    match sleep.map(string_text) {
        Some(Some(text)) if text == "during sleep" => return Ok(Some(Activity::Sleep)),
        Some(Some(text)) if text == "on waking" || text == "before sleeping" => {}
        Some(_) => return Err(IgnoredField::Activity),
        None => {}
    }
    let Some(raw) = physical else {
        return Ok(None);
    };
    match string_text(raw).as_deref() {
        Some("at rest" | "before exercise") => Ok(Some(Activity::Rest)),
        Some("active" | "after exercise") => Ok(Some(Activity::Active)),
        Some("during exercise") => Ok(Some(Activity::Exercise)),
        _ => Err(IgnoredField::Activity),
    }
}

/// An optional native field (`activity`, `device_id`): `Ok(None)` when absent or null (unknown,
/// and nothing to count), `Ok(Some(_))` for a string `read` understands, `Err(field)` (ignored,
/// so unknown too) for any other string or type. The string is compared decoded, as keys are,
/// so `"\u0072est"` is `rest`.
fn optional<T>(
    raw: Option<&RawValue>,
    field: IgnoredField,
    read: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, IgnoredField> {
    let Some(raw) = raw.filter(|raw| raw.get() != "null") else {
        return Ok(None);
    };
    string_text(raw)
        .as_deref()
        .and_then(read)
        .map(Some)
        .ok_or(field)
}
