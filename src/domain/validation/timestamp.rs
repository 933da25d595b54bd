//! Timestamps: the grammar SPEC section 4 accepts, parsed by hand.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// Parses `YYYY-MM-DDTHH:MM:SS[.f]` then `Z` or `±HH:MM` (`T` and `Z` in either case, 1 to 9
/// fraction digits, seconds 00-59, year as written 1970 or later) into UTC, truncating the
/// fraction to microseconds. The error says what is wrong, for the detail.
pub(super) fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, &'static str> {
    const SHAPE: &str = "expected YYYY-MM-DDTHH:MM:SS[.f] then Z or +HH:MM";
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied();

    let year = digits(b, 0, 4).ok_or(SHAPE)?;
    let month = (at(4) == Some(b'-'))
        .then(|| digits(b, 5, 2))
        .flatten()
        .ok_or(SHAPE)?;
    let day = (at(7) == Some(b'-'))
        .then(|| digits(b, 8, 2))
        .flatten()
        .ok_or(SHAPE)?;
    if !matches!(at(10), Some(b'T' | b't')) {
        return Err(SHAPE);
    }
    let hour = digits(b, 11, 2).ok_or(SHAPE)?;
    let minute = (at(13) == Some(b':'))
        .then(|| digits(b, 14, 2))
        .flatten()
        .ok_or(SHAPE)?;
    let second = (at(16) == Some(b':'))
        .then(|| digits(b, 17, 2))
        .flatten()
        .ok_or(SHAPE)?;

    let mut pos = 19;
    let mut micros = 0u32;
    if at(pos) == Some(b'.') {
        pos += 1;
        let count = b
            .get(pos..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=9).contains(&count) {
            return Err("the fraction of a second must have 1 to 9 digits");
        }
        // Digits beyond microseconds are dropped, not rounded (SPEC section 4).
        for i in 0..6 {
            let digit = if i < count {
                at(pos + i).map_or(0, |d| d - b'0')
            } else {
                0
            };
            micros = micros * 10 + u32::from(digit);
        }
        pos += count;
    }

    let offset_seconds: i64 = match at(pos) {
        Some(b'Z' | b'z') => {
            pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let hours = digits(b, pos + 1, 2).ok_or(SHAPE)?;
            let minutes = (at(pos + 3) == Some(b':'))
                .then(|| digits(b, pos + 4, 2))
                .flatten()
                .ok_or(SHAPE)?;
            if hours > 23 || minutes > 59 {
                return Err("utc offset out of range");
            }
            pos += 6;
            let magnitude = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        None => return Err("missing utc offset (Z or +HH:MM)"),
        Some(_) => return Err(SHAPE),
    };
    if pos != b.len() {
        return Err("unexpected characters after the utc offset");
    }

    if year < 1970 {
        return Err("year before 1970");
    }
    if hour > 23 || minute > 59 {
        return Err("time of day out of range");
    }
    if second > 59 {
        return Err("seconds out of range (00-59)");
    }
    let date = i32::try_from(year)
        .ok()
        .and_then(|year| NaiveDate::from_ymd_opt(year, month, day))
        .ok_or("not a calendar date")?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
        .ok_or("time of day out of range")?;
    NaiveDateTime::new(date, time)
        .checked_sub_signed(TimeDelta::seconds(offset_seconds))
        .map(|utc| utc.and_utc())
        .ok_or("out of range")
}

/// The number written with exactly `len` ASCII digits at `start`, if there are.
fn digits(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    let field = bytes.get(start..start.checked_add(len)?)?;
    field.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}
