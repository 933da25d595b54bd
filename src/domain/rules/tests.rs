//! Table tests of the per-customer rule checks.

use super::*;
use chrono::TimeZone;

const LIMITS: Limits = Limits {
    min_heart_rate: 20,
    max_heart_rate: 250,
    fleet: Bands::DEFAULT,
};

fn t(cl: Option<i64>, l: Option<i64>, h: Option<i64>, ch: Option<i64>) -> Thresholds {
    Thresholds {
        critical_low_below: cl,
        low_below: l,
        high_above: h,
        critical_high_above: ch,
    }
}

#[test]
fn customer_ids_follow_the_reading_rule() {
    let long = "a".repeat(65);
    for (id, ok) in [
        ("CUST-00042", true),
        ("a:b.c_d-e", true),
        ("42", true),
        (&"a".repeat(64), true),
        ("", false),
        ("a b", false),
        ("x'; DROP TABLE alert_rules;--", false),
        ("é", false),
        (&long, false),
    ] {
        assert_eq!(check_customer_id(id).is_ok(), ok, "{id:?}");
    }
    assert!(check_customer_id("a b")
        .unwrap_err()
        .contains("1 to 64 characters"));
}

#[test]
fn the_customer_id_rule_is_the_validators() {
    use crate::domain::validation::{validate, ValidationRules};
    for id in [
        "CUST-1",
        "a:b.c",
        "",
        "a b",
        "a/b",
        "é",
        "Z_9-.:",
        &"b".repeat(64),
        &"b".repeat(65),
    ] {
        let record = format!(
            r#"{{"customer_id":{},"timestamp":"2026-12-02T03:00:00Z","heart_rate":70}}"#,
            serde_json::to_string(id).unwrap()
        );
        let validator = validate(Some(record.as_bytes()), None, &ValidationRules::default());
        assert_eq!(check_customer_id(id).is_ok(), validator.is_ok(), "{id:?}");
    }
}

#[test]
fn thresholds_merge_check_range_and_order() {
    use ThresholdKey::*;
    let none = Thresholds::default();
    let athlete = t(None, Some(45), None, None);
    // (stored, changes, merged or the words every problem must contain)
    type Case<'a> = (
        Thresholds,
        Vec<(ThresholdKey, &'a str)>,
        Result<Thresholds, Vec<&'a str>>,
    );
    let cases: Vec<Case> = vec![
        (none, vec![(LowBelow, "45")], Ok(athlete)),
        // Unset flags keep their stored value; `fleet` resets one.
        (athlete, vec![(HighAbove, "110")], Ok(t(None, Some(45), Some(110), None))),
        (athlete, vec![(LowBelow, "fleet")], Ok(none)),
        (none, vec![(CriticalLowBelow, "20"), (CriticalHighAbove, "250")], Ok(t(Some(20), None, None, Some(250)))),
        // Equal critical and ordinary bands are allowed, equal low and high are not.
        (none, vec![(CriticalLowBelow, "60")], Ok(t(Some(60), None, None, None))),
        (none, vec![(LowBelow, "100")], Err(vec!["--low-below 100 is not below high_above 100 (fleet band detector.bands.high_above)"])),
        // Range: validation.min/max_heart_rate, both ends included.
        (none, vec![(LowBelow, "19")], Err(vec!["--low-below 19", "outside", "validation.min_heart_rate..=validation.max_heart_rate (20..=250)"])),
        (none, vec![(CriticalHighAbove, "251")], Err(vec!["--critical-high-above 251", "outside"])),
        (none, vec![(HighAbove, "-5")], Err(vec!["--high-above \"-5\": not a whole number"])),
        (none, vec![(HighAbove, "1e2")], Err(vec!["not a whole number"])),
        (none, vec![(HighAbove, "+100")], Err(vec!["not a whole number"])),
        (none, vec![(HighAbove, "")], Err(vec!["not a whole number"])),
        // Order, against the fleet band of an unset one ...
        (none, vec![(LowBelow, "35")], Err(vec!["critical_low_below 40 (fleet band detector.bands.critical_low_below) is not at or below --low-below 35"])),
        // ... and against a stored one.
        (athlete, vec![(CriticalLowBelow, "50")], Err(vec!["--critical-low-below 50 is not at or below low_below 45 (stored rule)"])),
        (none, vec![(HighAbove, "190")], Err(vec!["--high-above 190 is not at or below critical_high_above 180 (fleet band"])),
        (none, vec![(HighAbove, "50"), (LowBelow, "55")], Err(vec!["--low-below 55 is not below --high-above 50"])),
        // Every problem at once.
        (none, vec![(LowBelow, "5"), (HighAbove, "500")], Err(vec!["--low-below 5", "--high-above 500"])),
    ];
    for (stored, changes, want) in cases {
        let got = merge_thresholds(&stored, &changes, &LIMITS);
        match (&got, &want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{changes:?}"),
            (Err(e), Err(words)) => {
                let text = e.problems.join("\n");
                for w in words {
                    assert!(text.contains(w), "{changes:?}: {text:?} lacks {w:?}");
                }
            }
            _ => panic!("{stored:?} {changes:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn fleet_bands_are_not_judged_against_each_other_but_stored_rows_are() {
    let equal = Bands {
        low_below: 80,
        high_above: 80,
        ..Bands::DEFAULT
    };
    assert!(out_of_order(&Thresholds::default(), &equal).is_empty());
    // A rule stored under older fleet bands that are out of order now.
    let stored = t(None, Some(45), None, None);
    let lower = Bands {
        critical_low_below: 50,
        ..Bands::DEFAULT
    };
    let problems = out_of_order(&stored, &lower);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("low_below 45 (stored rule)"));
    assert_eq!(stored.effective(&lower).low_below, 45);
    assert_eq!(stored.effective(&lower).critical_low_below, 50);
}

#[test]
fn durations_take_whole_numbers_with_units() {
    let h = |n: u64| Duration::from_secs(n * 3600);
    for (text, want) in [
        ("90m", Some(Duration::from_secs(90 * 60))),
        ("2h", Some(h(2))),
        ("30s", Some(Duration::from_secs(30))),
        ("1d", Some(h(24))),
        ("1h30m", Some(Duration::from_secs(90 * 60))),
        ("1d12h", Some(h(36))),
        ("365d", Some(MAX_MUTE)),
        ("366d", None),
        ("99999999999999999999d", None),
        ("18446744073709551615d", None),
        ("0m", None),
        ("90", None),
        ("m", None),
        ("", None),
        ("1.5h", None),
        ("-1h", None),
        ("1 h", None),
        ("2H", None),
        ("1w", None),
        ("1h30", None),
    ] {
        assert_eq!(parse_duration(text).ok(), want, "{text:?}");
    }
    assert!(parse_duration("90x")
        .unwrap_err()
        .contains("--for \"90x\": not a duration"));
    assert!(parse_duration("0s")
        .unwrap_err()
        .contains("longer than zero"));
    assert!(parse_duration("400d").unwrap_err().contains("longest mute"));
}

#[test]
fn a_mute_ends_after_its_duration_or_at_a_future_time_within_a_year() {
    let now = Utc.with_ymd_and_hms(2026, 12, 2, 3, 0, 0).unwrap();
    assert_eq!(
        mute_until(MuteSpec::For("90m"), now),
        Ok(Utc.with_ymd_and_hms(2026, 12, 2, 4, 30, 0).unwrap())
    );
    assert_eq!(
        mute_until(MuteSpec::Until("2026-12-02T06:00:00+01:00"), now),
        Ok(Utc.with_ymd_and_hms(2026, 12, 2, 5, 0, 0).unwrap())
    );
    for (spec, words) in [
        (MuteSpec::Until("2026-12-02T02:59:59Z"), "not in the future"),
        (MuteSpec::Until("2026-12-02T03:00:00Z"), "not in the future"),
        (MuteSpec::Until("2027-12-03T03:00:00Z"), "longest mute"),
        (MuteSpec::Until("2026-12-02 04:00"), "not an RFC 3339 time"),
        (MuteSpec::Until("tomorrow"), "not an RFC 3339 time"),
        (MuteSpec::For("soon"), "not a duration"),
    ] {
        let e = mute_until(spec, now).unwrap_err();
        assert!(e.contains(words), "{spec:?}: {e}");
    }
}

#[test]
fn notes_are_trimmed_bounded_and_an_empty_one_removes_it() {
    assert_eq!(check_note(" athlete "), Ok(Some("athlete".to_owned())));
    assert_eq!(check_note(""), Ok(None));
    assert_eq!(check_note("  "), Ok(None));
    assert!(check_note(&"x".repeat(MAX_NOTE_CHARS)).is_ok());
    assert!(check_note(&"x".repeat(MAX_NOTE_CHARS + 1)).is_err());
    assert!(check_note("a\u{7}b").is_err());
}

#[test]
fn durations_print_for_people() {
    assert_eq!(human_duration(Duration::from_secs(5400)), "1h 30m");
    assert_eq!(
        human_duration(Duration::from_secs(86_400 * 2 + 3601)),
        "2d 1h"
    );
    assert_eq!(human_duration(Duration::from_secs(45)), "45s");
    assert_eq!(human_duration(Duration::ZERO), "0s");
}

proptest::proptest! {
    /// The parsers take any text without panicking, and what they accept keeps its rules.
    #[test]
    fn the_parsers_never_panic_and_keep_their_bounds(text in "\\PC{0,24}", n in 0u64..1_000_000) {
        if let Ok(d) = parse_duration(&text) {
            proptest::prop_assert!(d > Duration::ZERO && d <= MAX_MUTE);
        }
        let _ = check_customer_id(&text);
        let _ = check_note(&text);
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 3, 0, 0).unwrap();
        if let Ok(until) = mute_until(MuteSpec::Until(&text), now) {
            proptest::prop_assert!(until > now);
        }
        let seconds = format!("{n}s");
        proptest::prop_assert_eq!(parse_duration(&seconds).ok(), (n > 0).then(|| Duration::from_secs(n)));
        let merged = merge_thresholds(&Thresholds::default(), &[(ThresholdKey::HighAbove, &text)], &LIMITS);
        if let Ok(t) = merged {
            proptest::prop_assert!(out_of_order(&t, &LIMITS.fleet).is_empty());
        }
    }
}
