//! How a log line's timestamp and fields are written when standard error
//! is not a terminal: the text tracing-subscriber's default formatter
//! writes without colours, for a fraction of the cost, and with every
//! control character escaped.
//!
//! The edge's access line of every request went through `core::fmt` field by
//! field, each string through `Debug`'s escaping one character at a time,
//! and each timestamp through a calendar conversion: ~9 000 instructions a
//! line, a seventh of a request's user-space cost (docs/performance.md,
//! "The access log"). Here numbers go through `itoa`, strings that need no
//! escaping are copied, and the date is worked out once a second.
//!
//! Escaping: the default formatter writes the message and `%`-fields
//! (`Display`) as they are but for a few terminal escapes, so an error
//! carrying a client's bytes could start a new, forged line. Here every
//! control character (C0, DEL, C1) in them is written as `\n`, `\x1b`,
//! `\u{85}`, ...: one event, one line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The fields as `message name=value ...`, separated by spaces.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fields;

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Writes the separator and `name=` (nothing for the message); false
    /// when the field is not written at all.
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let name = field.name();
        // tracing-log's metadata fields, which the default formatter skips.
        if name.starts_with("log.") {
            return false;
        }
        if !self.first {
            self.result = self.writer.write_char(' ');
        }
        self.first = false;
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self.result.and_then(|()| {
                self.writer.write_str(name)?;
                self.writer.write_char('=')
            });
        }
        self.result.is_ok()
    }

    fn write_int(&mut self, field: &Field, value: impl itoa::Integer) {
        if self.start(field) {
            self.result = self.writer.write_str(itoa::Buffer::new().format(value));
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.start(field) {
            return;
        }
        self.result = if field.name() == "message" {
            Escaped(&mut self.writer).write_str(value)
        } else if value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            // What `Debug` writes for a string with nothing to escape.
            self.writer.write_char('"').and_then(|()| {
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            })
        } else {
            // `Debug` escapes quotes, backslashes and every control character.
            write!(self.writer, "{value:?}")
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write_int(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write_int(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.write_int(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.write_int(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.start(field) {
            // `%`-fields and messages with arguments arrive here; what
            // they write is theirs, so it is escaped on the way.
            self.result = write!(Escaped(&mut self.writer), "{value:?}");
        }
    }
}

/// Passes text on with its control characters escaped.
struct Escaped<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return self.0.write_str(text);
        }
        let mut rest = text;
        while let Some(at) = rest.find(|c: char| c.is_control()) {
            self.0.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            let c = chars.next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if u32::from(c) < 0x80 => write!(self.0, "\\x{:02x}", u32::from(c))?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

/// UTC timestamps as the default formatter writes them
/// (`2026-11-29T14:37:21.627973Z`), the date and time of day worked out
/// once a second per thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock;

thread_local! {
    /// The second last written and its text up to the decimal point.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        write_time(w, since_epoch)
    }
}

fn write_time(w: &mut impl fmt::Write, since_epoch: std::time::Duration) -> fmt::Result {
    let second = since_epoch.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = i64::try_from(second)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map_or_else(
                    || format!("second {second}."),
                    |t| t.strftime("%Y-%m-%dT%H:%M:%S.").to_string(),
                );
            *cached = (second, text);
        }
        w.write_str(&cached.1)
    })?;
    let micros = since_epoch.subsec_micros();
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros);
    w.write_str(&"000000"[digits.len()..])?;
    w.write_str(digits)?;
    w.write_char('Z')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_read_as_the_default_formatter_writes_them() {
        let mut text = String::new();
        write_time(&mut text, Duration::new(1_795_876_641, 627_973_999)).unwrap();
        assert_eq!(text, "2026-11-28T14:37:21.627973Z");
        text.clear();
        // The cached second, then micros below 100 000 keep their zeros.
        write_time(&mut text, Duration::new(1_795_876_641, 5_000)).unwrap();
        assert_eq!(text, "2026-11-28T14:37:21.000005Z");
        text.clear();
        write_time(&mut text, Duration::new(0, 0)).unwrap();
        assert_eq!(text, "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut text = String::new();
        Escaped(&mut text)
            .write_str("a\nforged line\r\t\x1b[31m\x7f\u{85} é ok")
            .unwrap();
        assert_eq!(text, r"a\nforged line\r\t\x1b[31m\x7f\u{85} é ok");
    }
}
