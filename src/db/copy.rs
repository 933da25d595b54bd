//! PostgreSQL's binary `COPY` format, written straight from the writer's rows.
//!
//! Why not diesel's `copy_from(..).from_insertable(..)`: it encodes every column through the
//! generic `ToSql` path into a buffer per row, and hands libpq one CopyData message per row,
//! which PostgreSQL then receives one by one. Here a batch's rows are encoded into one buffer and
//! sent in messages of [`MESSAGE_BYTES`], as `psql`'s `\copy` sends a file. Callgrind counted
//! about 2,500 instructions per reading from diesel's COPY of the readings and their anomalies to
//! libpq, and about 650 here; PostgreSQL, handed 64 KiB messages instead of one per row, spent
//! less as well (docs/PERFORMANCE.md, "Where the time goes").
//!
//! The format (<https://www.postgresql.org/docs/current/sql-copy.html>, "Binary Format"): a
//! header, then per row the number of columns (i16) and per column its length in bytes (i32, -1
//! for null) and the value in the type's binary form (`typsend`), then a trailer (-1, i16).

use std::io::Write;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use uuid::Uuid;

/// The signature, the flags (no OIDs) and the length of the header extension (none).
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The most bytes handed to libpq at once: one CopyData message each.
pub const MESSAGE_BYTES: usize = 64 * 1024;

/// Rows in PostgreSQL's binary COPY format, one buffer for a whole batch.
#[derive(Debug)]
pub struct BinaryRows {
    buf: Vec<u8>,
}

impl BinaryRows {
    /// Room for about `bytes` of rows.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER.len() + bytes + 2);
        buf.extend_from_slice(HEADER);
        BinaryRows { buf }
    }

    /// Starts a row of `columns` columns: exactly that many column values must follow.
    pub fn row(&mut self, columns: i16) {
        self.buf.extend_from_slice(&columns.to_be_bytes());
    }

    fn value(&mut self, bytes: &[u8]) {
        // A column is at most 1 GB in PostgreSQL; a value here is a few hundred bytes at most.
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    pub fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub fn int2(&mut self, v: i16) {
        self.value(&v.to_be_bytes());
    }

    pub fn int4(&mut self, v: i32) {
        self.value(&v.to_be_bytes());
    }

    pub fn int8(&mut self, v: i64) {
        self.value(&v.to_be_bytes());
    }

    pub fn uuid(&mut self, v: &Uuid) {
        self.value(v.as_bytes());
    }

    pub fn text(&mut self, v: &str) {
        self.value(v.as_bytes());
    }

    /// A `timestamptz`: microseconds since 2000-01-01 00:00:00 UTC, truncated toward that
    /// instant as diesel's own `ToSql` does, so both paths store the same value.
    pub fn timestamptz(&mut self, v: DateTime<Utc>) {
        let since = v.signed_duration_since(pg_epoch());
        // Within chrono's range of years (about ±262,000), microseconds fit an i64.
        let micros = since.num_microseconds().unwrap_or(i64::MAX);
        self.int8(micros);
    }

    /// A `jsonb`: the version byte (1) and the JSON text of `v`.
    pub fn jsonb(&mut self, v: &impl Serialize) -> serde_json::Result<()> {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.push(1);
        serde_json::to_writer(&mut self.buf, v)?;
        let len = i32::try_from(self.buf.len() - at - 4).unwrap_or(i32::MAX);
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    pub fn opt_int2(&mut self, v: Option<i16>) {
        match v {
            Some(v) => self.int2(v),
            None => self.null(),
        }
    }

    pub fn opt_uuid(&mut self, v: Option<&Uuid>) {
        match v {
            Some(v) => self.uuid(v),
            None => self.null(),
        }
    }

    pub fn opt_text(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// The rows with the trailer, ready to send.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

/// PostgreSQL's epoch for dates and times.
fn pg_epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Hands `data` to a COPY in messages of at most [`MESSAGE_BYTES`].
pub fn send(out: &mut dyn Write, data: &[u8]) -> Result<(), diesel::result::Error> {
    for message in data.chunks(MESSAGE_BYTES) {
        out.write_all(message)
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_its_column_count_then_each_length_and_value() {
        let mut rows = BinaryRows::with_capacity(0);
        rows.row(4);
        rows.int2(72);
        rows.text("CUST-1");
        rows.null();
        rows.timestamptz(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 1).unwrap());
        let data = rows.finish();
        let mut want = HEADER.to_vec();
        want.extend_from_slice(&[0, 4]);
        want.extend_from_slice(&[0, 0, 0, 2, 0, 72]);
        want.extend_from_slice(&[0, 0, 0, 6]);
        want.extend_from_slice(b"CUST-1");
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 8]);
        want.extend_from_slice(&1_000_000i64.to_be_bytes());
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(data, want);
    }

    #[test]
    fn times_before_2000_and_below_a_microsecond_truncate_toward_2000() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let micros = |t| {
            let mut rows = BinaryRows::with_capacity(0);
            rows.timestamptz(t);
            let data = rows.finish();
            i64::from_be_bytes(
                data[HEADER.len() + 4..HEADER.len() + 12]
                    .try_into()
                    .unwrap(),
            )
        };
        assert_eq!(micros(at("2000-01-01T00:00:00.0000019Z")), 1);
        assert_eq!(micros(at("1999-12-31T23:59:59.9999981Z")), -1);
        assert_eq!(micros(at("2026-11-29T13:00:00.25Z")), 849_272_400_250_000);
    }

    #[test]
    fn jsonb_is_the_version_byte_and_the_text() {
        let mut rows = BinaryRows::with_capacity(0);
        rows.jsonb(&serde_json::json!({"class": "low"})).unwrap();
        let data = rows.finish();
        let text = br#"{"class":"low"}"#;
        let len = (text.len() + 1) as i32;
        assert_eq!(&data[HEADER.len()..HEADER.len() + 4], &len.to_be_bytes());
        assert_eq!(data[HEADER.len() + 4], 1);
        assert_eq!(&data[HEADER.len() + 5..data.len() - 2], text);
    }

    #[test]
    fn a_large_batch_goes_in_messages_of_at_most_64_kib() {
        struct Sink(Vec<usize>);
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.push(buf.len());
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Sink(Vec::new());
        send(&mut sink, &vec![0; MESSAGE_BYTES * 2 + 10]).unwrap();
        assert_eq!(sink.0, vec![MESSAGE_BYTES, MESSAGE_BYTES, 10]);
    }
}
