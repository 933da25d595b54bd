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
use crate::domain::validation::{customer_id_fault, CustomerIdFault};

/// The longest mute: a year. A mute silences a person's alerts, so it must end; one that lasted
/// longer would be forgotten rather than meant (renew it, or use thresholds of the customer's
/// own for a lasting change).
pub const MAX_MUTE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The longest note, in characters: room for a sentence or two on why (and a ticket), not a file.
pub const MAX_NOTE_CHARS: usize = 1000;

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
    match customer_id_fault(id) {
        None => Ok(()),
        Some(CustomerIdFault::Empty) => Err(format!("customer id is empty: {rule}")),
        Some(CustomerIdFault::Character) => Err(format!(
            "customer id {id:?} has a character not allowed: {rule}"
        )),
        Some(CustomerIdFault::TooLong) => Err(format!(
            "customer id {id:?} is longer than 64 characters: {rule}"
        )),
    }
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
mod tests;
