//! Details: input quoted into a rejection's detail, short and printable.

use std::fmt;

/// The most bytes of input a detail quotes: enough to recognise the offending value, small
/// enough that a detail stays one short line in a Kafka header and a log line whatever the input.
const ECHO_BYTES: usize = 100;

/// Input quoted into a detail: at most [`ECHO_BYTES`] bytes, cut on a character boundary and
/// marked with `...`, control characters escaped (a detail lands in a `text` column, which takes
/// no NUL, and in a Kafka header and a log line).
pub(super) struct Echo<'a>(pub(super) &'a str);

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut used = 0;
        for c in self.0.chars() {
            let width = if c.is_control() {
                c.escape_default().count()
            } else {
                c.len_utf8()
            };
            if used + width > ECHO_BYTES {
                return f.write_str("...");
            }
            used += width;
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}
