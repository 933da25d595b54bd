//! Properties: arbitrary bytes and arbitrary objects get a verdict within the contract.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use uuid::Uuid;

use super::*;
use crate::domain::reading::{derive_event_id, Activity, Reading};
use crate::domain::validation::fields::is_customer_id_byte;

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
        4 => prop_oneof![Just("customer_id"), Just("timestamp"), Just("heart_rate"), Just("event_id"), Just("activity"), Just("device_id")].prop_map(str::to_owned),
        1 => prop_oneof![Just("resourceType"), Just("header"), Just("body"), Just("subject"), Just("valueQuantity"), Just("code"), Just("effectiveDateTime")].prop_map(str::to_owned),
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
fn assert_within_contract(validated: &Validated, rules: &ValidationRules) {
    let reading = &validated.reading;
    // An ignored activity is an unknown one.
    if validated.ignored.contains(IgnoredField::Activity) {
        assert_eq!(reading.activity, None);
    }
    assert!((1..=64).contains(&reading.customer_id.len()));
    assert!(reading.customer_id.bytes().all(is_customer_id_byte));
    assert!((rules.min_heart_rate..=rules.max_heart_rate).contains(&i64::from(reading.heart_rate)));
    assert_eq!(reading.recorded_at.timestamp_subsec_nanos() % 1_000, 0);
    assert!(reading.recorded_at <= reference() + TimeDelta::milliseconds(rules.max_future_skew_ms));
}

proptest! {
    #![proptest_config(raw_bytes_config())]

    #[test]
    fn any_bytes_get_a_verdict_without_panicking(value in prop::option::of(prop::collection::vec(any::<u8>(), 0..300))) {
        let rules = ValidationRules::default();
        if let Ok(validated) = validate(value.as_deref(), Some(reference()), &rules) {
            assert_within_contract(&validated, &rules);
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
        if let Ok(validated) = validate(Some(&bytes), Some(reference()), &rules) {
            assert_within_contract(&validated, &rules);
        }
    }
}

proptest! {
    #[test]
    fn json_like_objects_get_a_verdict_without_panicking(text in object()) {
        let rules = ValidationRules::default();
        match validate(Some(text.as_bytes()), Some(reference()), &rules) {
            Ok(validated) => assert_within_contract(&validated, &rules),
            Err(rejection) => prop_assert!(!rejection.detail.is_empty()),
        }
    }

    #[test]
    fn a_valid_reading_round_trips_through_its_json(
        customer_id in "[A-Za-z0-9_.:-]{1,64}",
        micros in 0i64..=1_795_000_000_000_000,
        heart_rate in 20i16..=250,
        event_id in any::<u128>(),
        activity in prop::option::of(prop::sample::select(Activity::ALL.to_vec())),
        device_id in prop::option::of("[A-Za-z0-9_.:-]{1,64}"),
    ) {
        // Readings of any age: the age bound has its own cases.
        let rules = ValidationRules { max_age_days: 0, ..ValidationRules::default() };
        let reading = Reading {
            event_id: Uuid::from_u128(event_id),
            customer_id,
            recorded_at: DateTime::from_timestamp_micros(micros).unwrap(),
            heart_rate,
            activity,
            device_id,
        };
        let json = reading.to_json();
        let validated = validate(Some(json.as_bytes()), Some(reference()), &rules);
        prop_assert_eq!(validated, Ok(Validated { reading: reading.clone(), ignored: IgnoredFields::default() }));

        // Without its event id, the same reading gets the derived one.
        let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
        object.remove("event_id");
        let bare = serde_json::to_string(&object).unwrap();
        let derived = validate(Some(bare.as_bytes()), Some(reference()), &rules).unwrap().reading;
        prop_assert_eq!(derived.event_id, derive_event_id(&reading.customer_id, &reading.recorded_at));
        prop_assert_eq!(Reading { event_id: reading.event_id, ..derived }, reading);
    }

    #[test]
    fn no_activity_value_rejects_a_good_reading_or_changes_its_other_fields(value in fragment()) {
        let rules = ValidationRules::default();
        let base = r#"{"customer_id":"CUST-1","timestamp":"2026-11-29T12:00:00Z","heart_rate":72"#;
        let plain = validate(Some(format!("{base}}}").as_bytes()), Some(reference()), &rules).unwrap();
        let with = validate(Some(format!(r#"{base},"activity":{value}}}"#).as_bytes()), Some(reference()), &rules);
        let Ok(with) = with else {
            return Err(TestCaseError::fail(format!("{value} rejected: {with:?}")));
        };
        prop_assert_eq!(&Reading { activity: None, ..with.reading.clone() }, &plain.reading);
        let word = serde_json::from_str::<String>(&value).ok();
        let expected = word.as_deref().and_then(Activity::from_word);
        prop_assert_eq!(with.reading.activity, expected);
        prop_assert_eq!(with.ignored.contains(IgnoredField::Activity), value != "null" && expected.is_none());
    }
}

/// The paths a detail of a FHIR or Open mHealth message may begin with.
const FORMAT_PATHS: [&str; 22] = [
    "subject",
    "effectiveDateTime",
    "effectiveInstant",
    "effectivePeriod",
    "valueQuantity",
    "code",
    "status",
    "id",
    "header.user_id",
    "header.id",
    "header.schema_id.name",
    "body.heart_rate",
    "body.effective_time_frame",
    "body.descriptive_statistic",
    "repeated key",
    "customer_id",
    "timestamp",
    "heart_rate",
    "event_id",
    "value is",
    "expected a JSON object",
    "invalid json",
];

/// A valid reading of any customer, time (1970 to 2026), rate, activity and device.
fn reading() -> impl Strategy<Value = Reading> {
    (
        "[A-Za-z0-9_.:-]{1,64}",
        0i64..=1_795_000_000_000_000,
        20i16..=250,
        any::<u128>(),
        prop::option::of(prop::sample::select(Activity::ALL.to_vec())),
        prop::option::of("[A-Za-z0-9_.:-]{1,64}"),
    )
        .prop_map(
            |(customer_id, micros, heart_rate, id, activity, device_id)| Reading {
                event_id: Uuid::from_u128(id),
                customer_id,
                recorded_at: DateTime::from_timestamp_micros(micros).unwrap(),
                heart_rate,
                activity,
                device_id,
            },
        )
}

/// `json` with the member at the dotted `path` replaced by the raw JSON `fragment` (removed
/// when `None`). Spliced in as text, so fragments serde_json would not build (a lone surrogate,
/// a number beyond an f64) go in as written.
fn replaced(json: &str, path: &str, fragment: Option<&str>) -> String {
    const MARKER: &str = "__fragment__";
    let mut doc: serde_json::Value = serde_json::from_str(json).unwrap();
    let (parents, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let mut node = &mut doc;
    for key in parents.split('.').filter(|k| !k.is_empty()) {
        node = &mut node[key];
    }
    let object = node
        .as_object_mut()
        .expect("the parents of a path are objects");
    object.remove(leaf);
    if fragment.is_some() {
        object.insert(MARKER.to_owned(), 0.into());
    }
    let text = doc.to_string();
    match fragment {
        Some(fragment) => text.replace(
            &format!("\"{MARKER}\":0"),
            &format!("\"{leaf}\":{fragment}"),
        ),
        None => text,
    }
}

proptest! {
    #[test]
    fn a_valid_reading_round_trips_through_fhir_and_open_mhealth(reading in reading()) {
        let rules = ValidationRules { max_age_days: 0, ..ValidationRules::default() };
        let check = |json: String| validate(Some(json.as_bytes()), Some(reference()), &rules).map(|v| v.reading);
        // FHIR carries the device and no activity; Open mHealth the activity and no device.
        prop_assert_eq!(check(reading.to_fhir_json()), Ok(Reading { activity: None, ..reading.clone() }));
        prop_assert_eq!(check(reading.to_omh_json()), Ok(Reading { device_id: None, ..reading.clone() }));
        // The key `produce` gives each is the customer.
        for json in [reading.to_json(), reading.to_fhir_json(), reading.to_omh_json()] {
            prop_assert_eq!(customer_key(json.as_bytes()), Some(reading.customer_id.clone()));
        }
    }

    #[test]
    fn a_fractional_rate_is_rounded_alike_in_every_format(whole in 19i64..252, frac in "[0-9]{1,20}") {
        let literal = format!("{whole}.{frac}");
        // Halves away from zero, on the decimal digits.
        let expected = whole + i64::from(frac.as_bytes()[0] >= b'5');
        let rules = ValidationRules::default();
        let base = Reading {
            event_id: Uuid::from_u128(7),
            customer_id: "CUST-1".to_owned(),
            recorded_at: reference(),
            heart_rate: 72,
            activity: None,
            device_id: None,
        };
        let forms = [
            replaced(&base.to_json(), "heart_rate", Some(&literal)),
            replaced(&base.to_fhir_json(), "valueQuantity.value", Some(&literal)),
            replaced(&base.to_omh_json(), "body.heart_rate.value", Some(&literal)),
        ];
        for json in forms {
            let got = validate(Some(json.as_bytes()), Some(reference()), &rules);
            if (20..=250).contains(&expected) {
                prop_assert_eq!(got.map(|v| i64::from(v.reading.heart_rate)), Ok(expected), "{}", json);
            } else {
                prop_assert_eq!(got.map_err(|r| r.reason), Err(ImplausibleHeartRate), "{}", json);
            }
        }
    }

    #[test]
    fn any_part_of_a_fhir_or_open_mhealth_message_replaced_gets_a_verdict_naming_a_path(
        reading in reading(),
        omh in any::<bool>(),
        at in 0usize..12,
        fragment in prop::option::of(fragment()),
    ) {
        let paths: &[&str] = if omh {
            &["header", "header.id", "header.user_id", "header.schema_id", "body", "body.heart_rate", "body.heart_rate.value", "body.heart_rate.unit", "body.effective_time_frame", "body.effective_time_frame.date_time", "body.descriptive_statistic", "body.temporal_relationship_to_sleep"]
        } else {
            &["subject", "subject.reference", "code", "code.coding", "status", "id", "device", "effectiveDateTime", "effectivePeriod", "valueQuantity", "valueQuantity.value", "valueQuantity.unit"]
        };
        let json = if omh { reading.to_omh_json() } else { reading.to_fhir_json() };
        let json = replaced(&json, paths[at], fragment.as_deref());
        let rules = ValidationRules::default();
        match validate(Some(json.as_bytes()), Some(reference()), &rules) {
            Ok(validated) => assert_within_contract(&validated, &rules),
            Err(rejection) => prop_assert!(
                FORMAT_PATHS.iter().any(|p| rejection.detail.starts_with(p)),
                "{}: {}", json, rejection
            ),
        }
    }
}
