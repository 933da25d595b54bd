//! UTC times as RFC 3339 text, exactly as chrono's `Serialize` writes them (seconds with 0, 3, 6
//! or 9 decimals, whichever shows every non-zero digit, and `Z`), without the `fmt` machinery:
//! through `serde_json` chrono's text goes out a character or two at a time, escaped piece by
//! piece, and each anomaly on the anomalies topic carries two times (callgrind: more than half
//! of the cost of an alert's JSON).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// A `serialize_with` for `DateTime<Utc>` fields: the same text as chrono's own `Serialize`.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match write(t, &mut buf) {
        Some(text) => serializer.serialize_str(text),
        // A leap second or a year outside 0-9999: chrono's own way.
        None => t.serialize(serializer),
    }
}

/// The text of `t` in `buf`, or `None` for what only chrono writes (a leap second, a year
/// outside 0-9999).
fn write<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 30]) -> Option<&'b str> {
    // Once: each accessor of a `DateTime` works out its local time again.
    let t = t.naive_utc();
    let year = t.year();
    let nano = t.nanosecond();
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return None;
    }
    let mut text = Text { buf, len: 0 };
    text.digits(year as u32, 4);
    text.push(b'-');
    text.digits(t.month(), 2);
    text.push(b'-');
    text.digits(t.day(), 2);
    text.push(b'T');
    text.digits(t.hour(), 2);
    text.push(b':');
    text.digits(t.minute(), 2);
    text.push(b':');
    text.digits(t.second(), 2);
    if nano != 0 {
        text.push(b'.');
        if nano % 1_000_000 == 0 {
            text.digits(nano / 1_000_000, 3);
        } else if nano % 1_000 == 0 {
            text.digits(nano / 1_000, 6);
        } else {
            text.digits(nano, 9);
        }
    }
    text.push(b'Z');
    let Text { buf, len } = text;
    std::str::from_utf8(&buf[..len]).ok()
}

/// ASCII written into a buffer long enough for the longest time (30 bytes).
struct Text<'b> {
    buf: &'b mut [u8; 30],
    len: usize,
}

impl Text<'_> {
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `value`'s last `width` decimal digits, zero-padded.
    fn digits(&mut self, mut value: u32, width: usize) {
        for i in (0..width).rev() {
            self.buf[self.len + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn ours(t: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        serialize(t, &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_precision_as_chrono_writes_it() {
        let base = Utc.with_ymd_and_hms(2026, 11, 29, 13, 0, 5).unwrap();
        for (nanos, text) in [
            (0, "\"2026-11-29T13:00:05Z\""),
            (250_000_000, "\"2026-11-29T13:00:05.250Z\""),
            (250_100_000, "\"2026-11-29T13:00:05.250100Z\""),
            (250_100_001, "\"2026-11-29T13:00:05.250100001Z\""),
        ] {
            let t = base + chrono::TimeDelta::nanoseconds(nanos);
            assert_eq!(ours(&t), text);
            assert_eq!(ours(&t), serde_json::to_string(&t).unwrap());
        }
    }

    #[test]
    fn years_outside_0_to_9999_fall_back_to_chrono() {
        for t in [
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        ] {
            assert_eq!(ours(&t), serde_json::to_string(&t).unwrap());
        }
    }

    proptest! {
        #[test]
        fn any_time_is_written_as_chrono_writes_it(
            secs in -70_000_000_000i64..260_000_000_000i64,
            nanos in 0u32..2_000_000_000u32,
            round in 0u32..3,
        ) {
            // Leap seconds (nanos of 1e9 and more) only at :59; round the nanoseconds often, so
            // every precision is met.
            let nanos = match round {
                0 => nanos / 1_000_000 * 1_000_000,
                1 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            let t = DateTime::from_timestamp(secs, nanos % 1_000_000_000).unwrap();
            prop_assert_eq!(ours(&t), serde_json::to_string(&t).unwrap());
            let leap = DateTime::from_timestamp(secs - secs.rem_euclid(60) + 59, nanos);
            if let Some(leap) = leap {
                prop_assert_eq!(ours(&leap), serde_json::to_string(&leap).unwrap());
            }
        }
    }
}
