//! Compact JSON for the edge's re-encoding: the same bytes as
//! `serde_json::to_writer`, written faster for the documents the edge
//! handles on every request.
//!
//! Why it exists: serde_json tests every byte of every string it writes
//! (keys, UUIDs and timestamps included) against its escape table one at a
//! time, ~10 instructions a byte; that loop was 7 % of all the edge's
//! instructions per forwarded request (docs/performance.md). Here a string
//! is tested sixteen bytes at a time and its clean runs are copied whole.
//!
//! It covers the part of serde's data model the API's types use: booleans,
//! integers up to 64 bits, strings, options, sequences, structs, maps with
//! string keys and enums. Anything else (floats, byte strings, 128-bit
//! integers, other map keys) is refused with [`Unsupported`], and
//! [`to_vec`] then writes the whole value again with serde_json, so the
//! output is serde_json's in every case: the property tests hold the two
//! to the same bytes.

use std::fmt::{self, Display, Write as _};

use serde::Serialize;
use serde::ser;

/// `value` as compact JSON, in a buffer of at least `capacity` bytes.
pub(super) fn to_vec<T: Serialize + ?Sized>(value: &T, capacity: usize) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    if value.serialize(Writer { out: &mut out }).is_ok() {
        return Ok(out);
    }
    // Not covered here (or the value's own code refused): serde_json
    // writes it, or gives its own error.
    out.clear();
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

/// Why [`Writer`] stopped; [`to_vec`] then asks serde_json.
#[derive(Debug)]
pub(super) struct Unsupported;

impl Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not covered by the compact writer")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: Display>(_: T) -> Self {
        Unsupported
    }
}

/// How many bytes [`needs_escape`] tests at once.
const WORD: usize = 16;

/// Whether any byte of `word` needs an escape in a JSON string: a control
/// character (below 0x20), `"` or `\`. Written without an early exit so
/// that the compiler turns it into a few vector instructions.
fn needs_escape(word: &[u8; WORD]) -> bool {
    word.iter()
        .fold(false, |any, &b| any | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// Appends `s` as the contents of a JSON string, escaped as serde_json
/// escapes: `\"`, `\\`, the short forms `\b \f \n \r \t`, and `\u00xx`
/// (lowercase hex) for the other control characters; nothing else.
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let (words, tail) = bytes.as_chunks::<WORD>();
    // Bytes before `copied` are in `out`; the run from there is clean.
    let mut copied = 0;
    for (n, word) in words.iter().enumerate() {
        if needs_escape(word) {
            copied = escape_bytes(out, bytes, copied, n * WORD..(n + 1) * WORD);
        }
    }
    if !tail.is_empty() {
        // The tail, padded with spaces (which need no escape), as one word.
        let mut word = [b' '; WORD];
        word[..tail.len()].copy_from_slice(tail);
        if needs_escape(&word) {
            copied = escape_bytes(out, bytes, copied, bytes.len() - tail.len()..bytes.len());
        }
    }
    out.extend_from_slice(&bytes[copied..]);
}

/// Escapes what needs it in `bytes[range]`, copying the clean run from
/// `copied` before each escape; returns the new `copied`.
fn escape_bytes(out: &mut Vec<u8>, bytes: &[u8], mut copied: usize, range: std::ops::Range<usize>) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in range {
        let byte = bytes[i];
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..i]);
        if short == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
        copied = i + 1;
    }
    copied
}

fn push_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// `fn name(self, v: T)` writing the integer `v`, for each `name: T`.
macro_rules! integers {
    ($($name:ident: $t:ty),* $(,)?) => {
        $(fn $name(self, v: $t) -> Result<(), Unsupported> {
            self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            Ok(())
        })*
    };
}

/// `fn name(self, _: T)` refusing, for each `name(T)`: [`to_vec`] then
/// asks serde_json.
macro_rules! refuse {
    ($($name:ident($t:ty)),* $(,)?) => {
        $(fn $name(self, _: $t) -> Result<(), Unsupported> {
            Err(Unsupported)
        })*
    };
}

/// The serializer: writes into `out`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// `{"variant":` before an enum variant's content.
    fn open_variant(&mut self, variant: &str) {
        self.out.push(b'{');
        push_string(self.out, variant);
        self.out.push(b':');
    }

    /// `{"variant":` and then a compound, which `close` ends with `}`.
    fn variant(mut self, variant: &str, open: u8, close: &'static [u8]) -> Compound<'a> {
        self.open_variant(variant);
        self.compound(open, close)
    }

    fn compound(self, open: u8, close: &'static [u8]) -> Compound<'a> {
        self.out.push(open);
        Compound {
            out: self.out,
            first: true,
            close,
        }
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
    );
    refuse!(serialize_f32(f32), serialize_f64(f64), serialize_bytes(&[u8]));
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        push_string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        push_string(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.open_variant(variant);
        value.serialize(Writer { out: &mut *self.out })?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Unsupported> {
        Ok(self.compound(b'[', b"]"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Unsupported> {
        Ok(self.compound(b'[', b"]"))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Unsupported> {
        Ok(self.compound(b'[', b"]"))
    }
    fn serialize_tuple_variant(self, _: &str, _: u32, v: &'static str, _: usize) -> Result<Compound<'a>, Unsupported> {
        Ok(self.variant(v, b'[', b"]}"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Unsupported> {
        Ok(self.compound(b'{', b"}"))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Compound<'a>, Unsupported> {
        // serde_json writes its raw values (and, with one of its features,
        // its numbers) as a struct with a name of its own, which it writes
        // verbatim instead.
        if name.starts_with("$serde_json::") {
            return Err(Unsupported);
        }
        Ok(self.compound(b'{', b"}"))
    }
    fn serialize_struct_variant(self, _: &str, _: u32, v: &'static str, _: usize) -> Result<Compound<'a>, Unsupported> {
        Ok(self.variant(v, b'{', b"}}"))
    }
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        // Formatted straight into the buffer, escaped piece by piece (a
        // timestamp is written this way), without a String in between.
        struct Escaping<'b>(&'b mut Vec<u8>);
        impl fmt::Write for Escaping<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                push_escaped(self.0, s);
                Ok(())
            }
        }
        self.out.push(b'"');
        write!(Escaping(self.out), "{value}").map_err(|_| Unsupported)?;
        self.out.push(b'"');
        Ok(())
    }
}

/// An array or object being written; `close` ends it (and, for an enum
/// variant, the object around it).
struct Compound<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    close: &'static [u8],
}

impl Compound<'_> {
    fn separate(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.separate();
        value.serialize(Writer { out: &mut *self.out })
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Unsupported> {
        self.separate();
        push_string(self.out, key);
        self.out.push(b':');
        value.serialize(Writer { out: &mut *self.out })
    }

    fn finish(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(self.close);
        Ok(())
    }
}

/// The serde traits whose items are written as array elements.
macro_rules! elements {
    ($($trait:ident::$method:ident),* $(,)?) => {
        $(impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Unsupported;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
                self.element(value)
            }
            fn end(self) -> Result<(), Unsupported> {
                self.finish()
            }
        })*
    };
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

/// The serde traits whose items are written as named object members.
macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Unsupported;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Unsupported> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Unsupported> {
                self.finish()
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.separate();
        let start = self.out.len();
        key.serialize(Writer { out: &mut *self.out })?;
        // A key written as a string is what serde_json writes too; it
        // quotes numbers and booleans, and refuses the rest.
        if self.out.get(start) != Some(&b'"') {
            return Err(Unsupported);
        }
        self.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(Writer { out: &mut *self.out })
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn same(value: &(impl Serialize + ?Sized)) {
        let ours = to_vec(value, 0).expect("serde_json writes it");
        let theirs = serde_json::to_vec(value).expect("serde_json writes it");
        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
    }

    /// Strings made mostly of the bytes that matter: the escapes, their
    /// neighbours, and multi-byte characters, at every alignment.
    fn tricky() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    '"', '\\', '\u{0}', '\u{8}', '\u{c}', '\n', '\r', '\t', '\u{1f}', ' ', '!', '#', '[', ']',
                    '\u{7f}', '\u{80}', 'é', '\u{2028}', '😀', 'a', 'Z'
                ]),
                any::<char>(),
            ],
            0..40,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(s in tricky()) {
            same(&s);
        }

        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(s in any::<String>()) {
            same(&s);
        }

        #[test]
        fn documents_are_written_as_serde_json_writes_them(
            keys in prop::collection::vec(tricky(), 0..6),
            numbers in prop::collection::vec(any::<i64>(), 0..6),
            flag in any::<bool>(),
        ) {
            let object: serde_json::Map<String, Value> =
                keys.iter().cloned().zip(numbers.iter().map(|n| json!(n))).collect();
            same(&json!({"keys": keys, "numbers": numbers, "flag": flag, "object": object, "none": null}));
        }
    }

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(u8, String),
        Struct { a: Option<u32>, b: &'static str },
    }

    #[derive(Serialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum Tagged {
        Add { name: String },
    }

    #[test]
    fn the_data_model_is_written_as_serde_json_writes_it() {
        same(&Shape::Unit);
        same(&Shape::Newtype(7));
        same(&Shape::Tuple(1, "x\"y".into()));
        same(&Shape::Struct {
            a: Some(u32::MAX),
            b: "b",
        });
        same(&Shape::Struct { a: None, b: "" });
        same(&Tagged::Add { name: "n".into() });
        same(&vec![Some(-1i8), None, Some(i8::MIN)]);
        same(&(1u16, 'é', '\n', ()));
        same(&jiff::Timestamp::UNIX_EPOCH);
        same(&uuid::Uuid::nil());
        let keyed: std::collections::BTreeMap<Shape2, u64> = [(Shape2::A, 1), (Shape2::B, u64::MAX)].into();
        same(&keyed);
        let maybe: std::collections::BTreeMap<Option<&str>, u8> = [(Some("k\"ey"), 1)].into();
        same(&maybe);
        let chars: std::collections::BTreeMap<char, u8> = [('\n', 1), ('é', 2)].into();
        same(&chars);
    }

    #[test]
    fn keys_serde_json_refuses_are_refused_with_its_error() {
        let unit: std::collections::BTreeMap<Option<&str>, u8> = [(None, 1)].into();
        let pair: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        for error in [to_vec(&unit, 0).unwrap_err(), to_vec(&pair, 0).unwrap_err()] {
            assert_eq!(error.to_string(), "key must be a string");
        }
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Shape2 {
        A,
        B,
    }

    #[test]
    fn what_is_not_covered_is_written_by_serde_json() {
        same(&json!({"float": 1.5, "after": "x"}));
        same(&[0.1f32, f32::NAN]);
        same(&u128::MAX);
        let numbered: std::collections::BTreeMap<u32, &str> = [(1, "a"), (2, "b")].into();
        same(&numbered);
        let flags: std::collections::BTreeMap<bool, u8> = [(false, 0), (true, 1)].into();
        same(&flags);
        let bytes = serde_bytes_like(&[1, 2, 3]);
        same(&bytes);
        let raw = serde_json::value::RawValue::from_string(r#"{ "as" : "written" }"#.to_owned()).unwrap();
        same(&raw);
        let around: std::collections::BTreeMap<&str, &serde_json::value::RawValue> = [("raw", &*raw)].into();
        same(&around);
    }

    /// A value that serializes as a byte string.
    fn serde_bytes_like(bytes: &[u8]) -> impl Serialize + '_ {
        struct Bytes<'b>(&'b [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(bytes)
    }

    #[test]
    fn an_error_of_the_value_is_serde_jsons_error() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("refused"))
            }
        }
        assert_eq!(to_vec(&Refuses, 0).unwrap_err().to_string(), "refused");
    }

    #[test]
    fn the_word_test_finds_each_escape_at_each_position() {
        for filler in [b'a', b' ', b'!', b']', 0x7f, 0x80, 0xff] {
            for byte in 0..=255u8 {
                for at in 0..WORD {
                    let mut word = [filler; WORD];
                    word[at] = byte;
                    let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                    assert_eq!(needs_escape(&word), expected, "{byte:#x} at {at} in {filler:#x}");
                }
            }
        }
    }
}
