//! Per-customer alert rules (SPEC section 5, `alert_rules`): what a customer's own thresholds and
//! mute are, and the checks `heartbeat-pipeline rules` holds every change to before anything is
//! written.
//!
//! Accepts the command's words as given (a threshold's text, a duration, an RFC 3339 time, a
//! note, a customer id), the row stored so far and the [`Limits`] of the configuration. Emits the
//! merged [`Thresholds`], a mute's end or a [`Refused`] that lists every problem at once, each
//! naming its flag and the rule it breaks. Nothing here reads the clock or the database: the
//! caller passes `now` and the stored row.
//!
//! The rules:
//! - a threshold is a whole number of bpm within `validation.min_heart_rate` ..=
//!   `validation.max_heart_rate`, or the word `fleet`: back to the fleet band;
//! - the thresholds are in order, critical_low_below <= low_below < high_above <=
//!   critical_high_above, where an unset one counts as its fleet band (`detector.bands.*`): the
//!   order is checked on the bands the detector would apply. Two fleet bands are never judged
//!   against each other (the configuration's check owns them);
//! - a duration is one or more `<whole number><unit>` with the units `s`, `m`, `h`, `d` (`90m`,
//!   `2h`, `1h30m`, `1d`), above zero and at most [`MAX_MUTE`]; `--until` is an RFC 3339 time
//!   after now and at most [`MAX_MUTE`] ahead;
//! - a customer id follows the reading message's `customer_id` rule (SPEC section 4): 1 to 64
//!   characters from `A-Z a-z 0-9 _ - . :`;
//! - a note has at most [`MAX_NOTE_CHARS`] characters; an empty one removes the note.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::classification::Bands;

/// The longest mute: a year. A mute silences a person's alerts, so it must end; one that lasted
/// longer would be forgotten rather than meant (renew it, or use thresholds of the customer's
/// own for a lasting change).
pub const MAX_MUTE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The longest note, in characters: room for a sentence or two on why (and a ticket), not a file.
pub const MAX_NOTE_CHARS: usize = 1000;

/// The longest customer id, as in the reading message (SPEC section 4).
const MAX_CUSTOMER_ID_CHARS: usize = 64;

/// The word that puts a threshold back to its fleet band.
pub const FLEET: &str = "fleet";

/// The four thresholds, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdKey {
    CriticalLowBelow,
    LowBelow,
    HighAbove,
    CriticalHighAbove,
}

impl ThresholdKey {
    pub const ALL: [ThresholdKey; 4] = [
        ThresholdKey::CriticalLowBelow,
        ThresholdKey::LowBelow,
        ThresholdKey::HighAbove,
        ThresholdKey::CriticalHighAbove,
    ];

    /// The column of `alert_rules` and the key under `detector.bands`.
    pub fn name(self) -> &'static str {
        match self {
            ThresholdKey::CriticalLowBelow => "critical_low_below",
            ThresholdKey::LowBelow => "low_below",
            ThresholdKey::HighAbove => "high_above",
            ThresholdKey::CriticalHighAbove => "critical_high_above",
        }
    }

    /// The flag of `rules set`.
    pub fn flag(self) -> &'static str {
        match self {
            ThresholdKey::CriticalLowBelow => "--critical-low-below",
            ThresholdKey::LowBelow => "--low-below",
            ThresholdKey::HighAbove => "--high-above",
            ThresholdKey::CriticalHighAbove => "--critical-high-above",
        }
    }

    fn fleet(self, bands: &Bands) -> i64 {
        match self {
            ThresholdKey::CriticalLowBelow => bands.critical_low_below,
            ThresholdKey::LowBelow => bands.low_below,
            ThresholdKey::HighAbove => bands.high_above,
            ThresholdKey::CriticalHighAbove => bands.critical_high_above,
        }
    }
}

/// A customer's own thresholds in bpm; `None` = the fleet band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub critical_low_below: Option<i64>,
    pub low_below: Option<i64>,
    pub high_above: Option<i64>,
    pub critical_high_above: Option<i64>,
}

impl Thresholds {
    pub fn get(&self, key: ThresholdKey) -> Option<i64> {
        match key {
            ThresholdKey::CriticalLowBelow => self.critical_low_below,
            ThresholdKey::LowBelow => self.low_below,
            ThresholdKey::HighAbove => self.high_above,
            ThresholdKey::CriticalHighAbove => self.critical_high_above,
        }
    }

    fn set(&mut self, key: ThresholdKey, value: Option<i64>) {
        let slot = match key {
            ThresholdKey::CriticalLowBelow => &mut self.critical_low_below,
            ThresholdKey::LowBelow => &mut self.low_below,
            ThresholdKey::HighAbove => &mut self.high_above,
            ThresholdKey::CriticalHighAbove => &mut self.critical_high_above,
        };
        *slot = value;
    }

    /// The bands the detector applies to this customer: its own thresholds, the fleet's for the
    /// rest.
    pub fn effective(&self, fleet: &Bands) -> Bands {
        let pick = |key: ThresholdKey| self.get(key).unwrap_or(key.fleet(fleet));
        Bands {
            critical_low_below: pick(ThresholdKey::CriticalLowBelow),
            low_below: pick(ThresholdKey::LowBelow),
            high_above: pick(ThresholdKey::HighAbove),
            critical_high_above: pick(ThresholdKey::CriticalHighAbove),
        }
    }

    /// Whether every threshold is the fleet's.
    pub fn is_fleet(&self) -> bool {
        ThresholdKey::ALL.iter().all(|k| self.get(*k).is_none())
    }
}

/// What the checks need of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `validation.min_heart_rate`, `validation.max_heart_rate`: a threshold outside them could
    /// never be crossed by a stored reading, or would be crossed by every one.
    pub min_heart_rate: i64,
    pub max_heart_rate: i64,
    /// `detector.bands.*`, standing in for the thresholds a customer has not set.
    pub fleet: Bands,
}

/// A change refused: every problem found, each naming its flag (or the customer id) and rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused, nothing written:\n  - {}", .problems.join("\n  - "))]
pub struct Refused {
    pub problems: Vec<String>,
}

impl Refused {
    fn of(problems: Vec<String>) -> Result<(), Refused> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Refused { problems })
        }
    }
}

/// Checks a customer id by the reading message's rule (SPEC section 4).
pub fn check_customer_id(id: &str) -> Result<(), String> {
    let rule = "customer ids are 1 to 64 characters from A-Z a-z 0-9 _ - . : (as in readings)";
    if id.is_empty() {
        return Err(format!("customer id is empty: {rule}"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        return Err(format!(
            "customer id {id:?} has a character not allowed: {rule}"
        ));
    }
    // Every allowed character is one byte, so the byte length is the character count.
    if id.len() > MAX_CUSTOMER_ID_CHARS {
        return Err(format!(
            "customer id {id:?} is longer than 64 characters: {rule}"
        ));
    }
    Ok(())
}

/// Where a threshold's value comes from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Flag,
    Stored,
    Fleet,
}

fn describe(key: ThresholdKey, value: i64, origin: Origin) -> String {
    match origin {
        Origin::Flag => format!("{} {value}", key.flag()),
        Origin::Stored => format!("{} {value} (stored rule)", key.name()),
        Origin::Fleet => format!(
            "{} {value} (fleet band detector.bands.{})",
            key.name(),
            key.name()
        ),
    }
}

/// `stored` with `changes` applied (each a flag of `rules set` and its text: a number, or
/// [`FLEET`]), checked: values within the plausible heart rates, the result in order. Unset flags
/// keep their stored value.
pub fn merge_thresholds(
    stored: &Thresholds,
    changes: &[(ThresholdKey, &str)],
    limits: &Limits,
) -> Result<Thresholds, Refused> {
    let mut problems = Vec::new();
    let mut merged = *stored;
    let mut origin = ThresholdKey::ALL.map(|k| {
        if stored.get(k).is_some() {
            Origin::Stored
        } else {
            Origin::Fleet
        }
    });
    for (key, text) in changes {
        match parse_threshold(*key, text, limits) {
            Ok(value) => {
                merged.set(*key, value);
                origin[*key as usize] = if value.is_some() {
                    Origin::Flag
                } else {
                    Origin::Fleet
                };
            }
            Err(problem) => problems.push(problem),
        }
    }
    // Order is judged only on values that parsed; a refused one already says what is wrong.
    if problems.is_empty() {
        problems.extend(order_problems(&merged, &limits.fleet, |k| {
            origin[k as usize]
        }));
    }
    Refused::of(problems).map(|()| merged)
}

/// What is out of order in `thresholds` with `fleet` for the unset ones (empty when in order):
/// for `rules show` and `list`, whose stored rows may predate a change of the fleet bands.
pub fn out_of_order(thresholds: &Thresholds, fleet: &Bands) -> Vec<String> {
    order_problems(thresholds, fleet, |k| {
        if thresholds.get(k).is_some() {
            Origin::Stored
        } else {
            Origin::Fleet
        }
    })
}

fn order_problems(
    thresholds: &Thresholds,
    fleet: &Bands,
    origin: impl Fn(ThresholdKey) -> Origin,
) -> Vec<String> {
    use ThresholdKey::*;
    let rule = "thresholds must be in order critical_low_below <= low_below < high_above <= \
                critical_high_above (an unset one is its fleet band)";
    let value = |k: ThresholdKey| thresholds.get(k).unwrap_or(k.fleet(fleet));
    let mut problems = Vec::new();
    for (low, high, strict) in [
        (CriticalLowBelow, LowBelow, false),
        (LowBelow, HighAbove, true),
        (HighAbove, CriticalHighAbove, false),
    ] {
        if origin(low) == Origin::Fleet && origin(high) == Origin::Fleet {
            continue;
        }
        let (a, b) = (value(low), value(high));
        let in_order = if strict { a < b } else { a <= b };
        if !in_order {
            problems.push(format!(
                "{rule}: {} is not {} {}",
                describe(low, a, origin(low)),
                if strict { "below" } else { "at or below" },
                describe(high, b, origin(high)),
            ));
        }
    }
    problems
}

/// One threshold's text: `Some(bpm)`, or `None` for [`FLEET`].
pub fn parse_threshold(
    key: ThresholdKey,
    text: &str,
    limits: &Limits,
) -> Result<Option<i64>, String> {
    if text == FLEET {
        return Ok(None);
    }
    let range = format!(
        "validation.min_heart_rate..=validation.max_heart_rate ({}..={})",
        limits.min_heart_rate, limits.max_heart_rate
    );
    let value = text
        .parse::<i64>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!(
                "{} {text:?}: not a whole number of bpm within {range}, nor \"{FLEET}\" (back to \
                 the fleet band)",
                key.flag()
            )
        })?;
    if !(limits.min_heart_rate..=limits.max_heart_rate).contains(&value) {
        return Err(format!(
            "{} {value}: outside the plausible heart rates {range}",
            key.flag()
        ));
    }
    Ok(Some(value))
}

/// A duration of `mute --for`: one or more `<whole number><unit>`, units `s`, `m`, `h`, `d`
/// (`90m`, `2h`, `1h30m`, `1d`), above zero and at most [`MAX_MUTE`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "--for {text:?}: not a duration: give whole numbers with a unit s, m, h or d, e.g. \
             90m, 2h, 1h30m, 1d"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        // Past u64 it is past MAX_MUTE anyway: saturate and let the bound refuse it.
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !digits.is_empty() || text.is_empty() {
        return Err(bad());
    }
    if total == 0 {
        return Err(format!("--for {text:?}: a mute must last longer than zero"));
    }
    let duration = Duration::from_secs(total);
    if duration > MAX_MUTE {
        return Err(format!(
            "--for {text:?}: longer than the longest mute, 365d (a mute must end; renew it \
             when it does)"
        ));
    }
    Ok(duration)
}

/// How a mute is given: `--for DURATION` or `--until RFC3339`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuteSpec<'a> {
    For(&'a str),
    Until(&'a str),
}

/// When a mute given at `now` ends.
pub fn mute_until(spec: MuteSpec<'_>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let longest = chrono::Duration::from_std(MAX_MUTE).unwrap_or(chrono::Duration::MAX);
    match spec {
        MuteSpec::For(text) => {
            let d = parse_duration(text)?;
            let d = chrono::Duration::from_std(d).unwrap_or(longest);
            Ok(now + d)
        }
        MuteSpec::Until(text) => {
            let until = DateTime::parse_from_rfc3339(text)
                .map_err(|e| {
                    format!(
                        "--until {text:?}: not an RFC 3339 time ({e}), e.g. 2026-12-24T08:00:00Z"
                    )
                })?
                .with_timezone(&Utc);
            if until <= now {
                return Err(format!(
                    "--until {text:?}: not in the future (now is {})",
                    now.format("%Y-%m-%dT%H:%M:%SZ")
                ));
            }
            if until - now > longest {
                return Err(format!(
                    "--until {text:?}: more than the longest mute, 365 days, ahead (a mute must \
                     end; renew it when it does)"
                ));
            }
            Ok(until)
        }
    }
}

/// A note as stored: `None` removes it.
pub fn check_note(text: &str) -> Result<Option<String>, String> {
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(format!(
            "--note: longer than {MAX_NOTE_CHARS} characters (a sentence or two on why)"
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err("--note: control characters are not allowed".to_owned());
    }
    let trimmed = text.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// A duration for people: `1h 30m`, `2d 3h`, `45s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let parts = [
        (s / 86_400, "d"),
        (s % 86_400 / 3600, "h"),
        (s % 3600 / 60, "m"),
        (s % 60, "s"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if shown.is_empty() {
        "0s".to_owned()
    } else {
        shown.join(" ")
    }
}

impl fmt::Display for ThresholdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
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
}
