//! Parse, validate, re-encode: the functions a route table entry points at.
//!
//! A static table cannot hold a type, but it can hold a function pointer
//! instantiated for one. [`RequestBody::of`] and [`ResponseBody::of`] do that,
//! so the edge can run "bytes → `T` → checked → canonical bytes" for whatever
//! type a route names, without knowing the type.

mod compact;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::problem::FieldError;

/// Parses, validates and re-encodes a request body, or names the fields at fault.
pub type Reencode = fn(&[u8]) -> Result<Vec<u8>, Vec<FieldError>>;

/// A request body type, type-erased.
#[derive(Clone, Copy)]
pub struct RequestBody {
    /// The Rust type's short name (also its OpenAPI component name).
    pub name: fn() -> Cow<'static, str>,
    /// Parses and validates `bytes` as the type and returns it re-encoded.
    pub reencode: Reencode,
    /// The type's JSON schema (a `$ref` into the generator's definitions).
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

impl RequestBody {
    /// The entry for `T`.
    pub const fn of<T: DeserializeOwned + Serialize + Validate + JsonSchema>() -> Self {
        Self {
            name: T::schema_name,
            reencode: reencode_request::<T>,
            schema: subschema::<T>,
        }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestBody({})", (self.name)())
    }
}

/// A response body type, type-erased.
#[derive(Clone, Copy)]
pub struct ResponseBody {
    /// The Rust type's short name (also its OpenAPI component name).
    pub name: fn() -> Cow<'static, str>,
    /// Parses `bytes` as the type (unknown fields refused) and re-encodes it.
    pub filter: fn(&[u8]) -> Result<Vec<u8>, String>,
    /// The type's JSON schema.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

impl ResponseBody {
    /// The entry for `T`.
    pub const fn of<T: DeserializeOwned + Serialize + JsonSchema>() -> Self {
        Self {
            name: T::schema_name,
            filter: filter_response::<T>,
            schema: subschema::<T>,
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponseBody({})", (self.name)())
    }
}

/// A response body that is not JSON: a profile, an SVG, an HTML page. It
/// cannot be checked field by field, so the edge passes it on only with
/// exactly the declared media type, only as UTF-8 text, and only up to
/// `max_len` bytes.
#[derive(Debug, Clone, Copy)]
pub struct TextBody {
    /// The media type the core must send and the edge answers with.
    pub content_type: &'static str,
    /// The largest body passed on, in bytes.
    pub max_len: usize,
}

impl TextBody {
    /// Checks `content_type` and `bytes` against the declaration.
    pub fn check(&self, content_type: &str, bytes: &[u8]) -> Result<(), String> {
        if !content_type.eq_ignore_ascii_case(self.content_type) {
            return Err(format!(
                "content type {content_type:?} where {:?} is declared",
                self.content_type
            ));
        }
        if bytes.len() > self.max_len {
            return Err(format!(
                "{} bytes where at most {} are declared",
                bytes.len(),
                self.max_len
            ));
        }
        std::str::from_utf8(bytes).map_err(|_| "a text body that is not UTF-8".to_owned())?;
        Ok(())
    }
}

/// What a successful answer carries.
#[derive(Debug, Clone, Copy)]
pub enum Payload {
    /// JSON of a declared type.
    Json(ResponseBody),
    /// Text of a declared media type.
    Text(TextBody),
    /// A stream of server-sent events ([`EVENT_STREAM`]) that stays open:
    /// the edge passes it on as it arrives, unbuffered, instead of reading
    /// it whole and checking it. Each event's `data` is an [`crate::api::ChangeEvent`].
    EventStream,
}

/// The media type of [`Payload::EventStream`].
pub const EVENT_STREAM: &str = "text/event-stream";

fn subschema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Parses `bytes` into `T` (unknown fields refused, trailing bytes refused)
/// and runs its `validator` rules. Errors name the fields at fault.
pub fn decode_request<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, Vec<FieldError>> {
    // serde's derived structs also accept a JSON array of their fields in
    // order; a request body is always an object, so refuse anything else.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    }
    let value: T = parse_whole(
        bytes,
        |e| vec![serde_field_error(&e)],
        |e| vec![FieldError::new("body", strip_position(&e.to_string()))],
    )?;
    value.validate().map_err(|e| {
        let mut out = Vec::new();
        flatten_validation("", &e, &mut out);
        out.sort_by(|a, b| a.field.cmp(&b.field));
        out
    })?;
    Ok(value)
}

fn reencode_request<T: DeserializeOwned + Serialize + Validate>(bytes: &[u8]) -> Result<Vec<u8>, Vec<FieldError>> {
    let value = decode_request::<T>(bytes)?;
    encode(&value, bytes.len()).map_err(|e| vec![FieldError::new("body", e.to_string())])
}

fn filter_response<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let value: T = parse_whole(bytes, |e| format!("{}: {}", e.path(), e.inner()), |e| e.to_string())?;
    encode(&value, bytes.len()).map_err(|e| e.to_string())
}

/// `value` as compact JSON (serde_json's bytes, written by [`compact`]), in
/// a buffer sized for about `hint` bytes (the document it was parsed from),
/// so that it is not regrown on the way.
fn encode<T: Serialize>(value: &T, hint: usize) -> serde_json::Result<Vec<u8>> {
    compact::to_vec(value, hint + hint / 8 + 16)
}

/// Parses all of `bytes` as one `T`. Plain `serde_json` first: tracking the
/// field path costs on every field and only a refusal needs it, so a
/// refused document is parsed again with the path, for `in_field` to
/// describe; `trailing` describes bytes after the document.
///
/// The first parse reads the document as a `str`, checked as UTF-8 in one
/// pass: parsing bytes, serde_json checks each string on its own, which
/// cost more than the whole document's check (docs/performance.md).
fn parse_whole<T: DeserializeOwned, E>(
    bytes: &[u8],
    in_field: impl FnOnce(serde_path_to_error::Error<serde_json::Error>) -> E,
    trailing: impl FnOnce(serde_json::Error) -> E,
) -> Result<T, E> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(value) = serde_json::from_str(text)
    {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(in_field)?;
    de.end().map_err(trailing)?;
    Ok(value)
}

/// Turns a serde error into the field it concerns and a message without
/// serde_json's line/column suffix.
fn serde_field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let inner = e.inner();
    let message = strip_position(&inner.to_string());
    if inner.is_syntax() || inner.is_eof() {
        return FieldError::new("body", format!("malformed JSON: {message}"));
    }
    let path = e.path().to_string();
    let base = if path == "." { String::new() } else { path };
    // serde names the culprit of these two in the message, not in the path.
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(marker)
            && let Some(name) = rest.split('`').next()
        {
            let text = marker.trim_end_matches(" `").trim_end_matches(" field").to_owned() + " field";
            // serde_path_to_error already puts an unknown field in the path.
            let already = base == name || base.ends_with(&format!(".{name}"));
            return FieldError::new(if already { base } else { join(&base, name) }, text);
        }
    }
    let field = if base.is_empty() { "body".to_owned() } else { base };
    FieldError::new(field, message)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}.{name}")
    }
}

fn flatten_validation(prefix: &str, errors: &ValidationErrors, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = join(prefix, field);
        match kind {
            ValidationErrorsKind::Field(list) => {
                for err in list {
                    let message = err
                        .message
                        .as_ref()
                        .map_or_else(|| err.code.to_string(), ToString::to_string);
                    // Struct-level rules land under `__all__`; ours name their
                    // field in a `field` parameter.
                    let path = if field == "__all__" {
                        match err.params.get("field").and_then(|v| v.as_str()) {
                            Some(name) => join(prefix, name),
                            None if prefix.is_empty() => "body".to_owned(),
                            None => prefix.to_owned(),
                        }
                    } else {
                        path.clone()
                    };
                    out.push(FieldError::new(path, message));
                }
            }
            ValidationErrorsKind::Struct(inner) => flatten_validation(&path, inner, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    flatten_validation(&format!("{path}[{index}]"), inner, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::api::{OrgCreate, SetupRequest};

    fn fields(r: Result<OrgCreate, Vec<FieldError>>) -> Vec<String> {
        r.err().unwrap().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn names_the_unknown_field() {
        let errs = decode_request::<OrgCreate>(br#"{"name":"a","admin":true}"#).unwrap_err();
        assert_eq!(errs, vec![FieldError::new("admin", "unknown field")]);
    }

    #[test]
    fn names_missing_wrong_type_and_bad_value() {
        assert_eq!(fields(decode_request(br"{}")), ["name"]);
        assert_eq!(fields(decode_request(br#"{"name":5}"#)), ["name"]);
        assert_eq!(fields(decode_request(br#"{"name":""}"#)), ["name"]);
        assert_eq!(fields(decode_request(br#"{"name":"a","name":"b"}"#)), ["name"]);
    }

    #[test]
    fn malformed_and_trailing_json_is_the_body() {
        assert_eq!(fields(decode_request(br#"{"name":"#)), ["body"]);
        assert_eq!(fields(decode_request(br#"{"name":"a"} {}"#)), ["body"]);
        assert_eq!(fields(decode_request(b"")), ["body"]);
        assert_eq!(fields(decode_request(br#"[1]"#)), ["body"]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_as_malformed() {
        // Raw bytes that are not UTF-8, in a string and outside one.
        for body in [
            &b"{\"name\":\"a\xff\"}"[..],
            b"{\"name\":\"a\"}\xc3",
            b"{\"name\":\"\xed\xa0\x80\"}",
        ] {
            let errs = decode_request::<OrgCreate>(body).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(errs[0].field, "body", "{errs:?}");
        }
        // The same text as UTF-8 is a name like any other.
        let ok = decode_request::<OrgCreate>("{\"name\":\"a\u{ff}\"}".as_bytes()).unwrap();
        assert_eq!(ok.name.as_str(), "a\u{ff}");
    }

    #[test]
    fn validator_rules_name_their_field() {
        let body = br#"{"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","username":"alice","password":"alice-alice-alice"}"#;
        let errs = decode_request::<SetupRequest>(body).unwrap_err();
        assert_eq!(errs[0].field, "password");
    }

    #[test]
    fn text_bodies_need_their_type_and_size() {
        let t = TextBody {
            content_type: "text/plain; charset=utf-8",
            max_len: 4,
        };
        assert!(t.check("text/plain; charset=utf-8", b"abcd").is_ok());
        assert!(t.check("text/html; charset=utf-8", b"abcd").is_err());
        assert!(t.check("text/plain; charset=utf-8", b"abcde").is_err());
        assert!(t.check("text/plain; charset=utf-8", &[0xff]).is_err());
    }

    #[test]
    fn reencoding_is_canonical() {
        let body = RequestBody::of::<OrgCreate>();
        let out = (body.reencode)(b" {\n \"name\" : \"Acme\" } ").unwrap();
        assert_eq!(out, br#"{"name":"Acme"}"#);
    }
}
