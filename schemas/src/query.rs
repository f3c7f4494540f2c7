//! Query parameters: each route lists the ones it accepts and their types.
//!
//! The edge parses the query string against that list, refuses anything
//! else with a 400 naming `query.<name>`, and forwards a query string it
//! re-encoded itself.

use crate::problem::FieldError;
use crate::values::parse_canonical_uuid;

/// The type of a query parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// A page size, 1..=500.
    Limit,
    /// An opaque cursor from a previous page: up to 256 URL-safe characters.
    Cursor,
    /// Free text up to the given number of characters, no control characters.
    Text(usize),
    /// An RFC 3339 timestamp.
    Timestamp,
    /// A canonical UUID.
    Uuid,
}

/// One accepted query parameter.
#[derive(Debug, Clone, Copy)]
pub struct QueryParam {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: QueryKind,
    /// What it does, for the OpenAPI document.
    pub doc: &'static str,
}

/// `?limit=&cursor=`, accepted by every list.
pub const PAGING: [QueryParam; 2] = [
    QueryParam {
        name: "limit",
        kind: QueryKind::Limit,
        doc: "Page size, 1 to 500 (default 50).",
    },
    QueryParam {
        name: "cursor",
        kind: QueryKind::Cursor,
        doc: "The `next_cursor` of the previous page.",
    },
];

/// The longest query string the edge looks at.
pub const MAX_QUERY_LEN: usize = 2048;

impl QueryKind {
    fn check(self, value: &str) -> Result<(), &'static str> {
        match self {
            QueryKind::Limit => match value.parse::<u32>() {
                Ok(1..=500) => Ok(()),
                _ => Err("must be a whole number from 1 to 500"),
            },
            QueryKind::Cursor => {
                let ok = !value.is_empty()
                    && value.len() <= 256
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok {
                    Ok(())
                } else {
                    Err("must be a cursor from a previous page")
                }
            }
            QueryKind::Text(max) => {
                if value.chars().count() > max || value.chars().any(char::is_control) {
                    Err("is too long or has control characters")
                } else {
                    Ok(())
                }
            }
            QueryKind::Timestamp => match value.parse::<jiff::Timestamp>() {
                Ok(_) => Ok(()),
                Err(_) => Err("must be an RFC 3339 timestamp"),
            },
            QueryKind::Uuid => match parse_canonical_uuid(value) {
                Some(_) => Ok(()),
                None => Err("must be a UUID"),
            },
        }
    }

    /// The OpenAPI schema of the value.
    pub fn schema(self) -> serde_json::Value {
        use serde_json::json;
        match self {
            QueryKind::Limit => json!({"type": "integer", "minimum": 1, "maximum": 500}),
            QueryKind::Cursor => {
                json!({"type": "string", "maxLength": 256, "pattern": "^[A-Za-z0-9_-]+$"})
            }
            QueryKind::Text(max) => json!({"type": "string", "maxLength": max}),
            QueryKind::Timestamp => json!({"type": "string", "format": "date-time"}),
            QueryKind::Uuid => json!({"type": "string", "format": "uuid"}),
        }
    }
}

/// Checks `raw` (the query string without `?`) against `allowed` and returns
/// it re-encoded, or the fields at fault.
pub fn check_query(raw: &str, allowed: &[QueryParam]) -> Result<String, Vec<FieldError>> {
    if raw.len() > MAX_QUERY_LEN {
        return Err(vec![FieldError::new("query", "query string is too long")]);
    }
    let mut errors = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        let Some(param) = allowed.iter().find(|p| p.name == name) else {
            let shown: String = name.chars().take(64).collect();
            errors.push(FieldError::new(format!("query.{shown}"), "unknown query parameter"));
            continue;
        };
        if seen.contains(&param.name) {
            errors.push(FieldError::new(format!("query.{}", param.name), "given more than once"));
            continue;
        }
        seen.push(param.name);
        match param.kind.check(&value) {
            Ok(()) => {
                out.append_pair(param.name, &value);
            }
            Err(message) => errors.push(FieldError::new(format!("query.{}", param.name), message)),
        }
    }
    if errors.is_empty() {
        Ok(out.finish())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_and_reencodes() {
        assert_eq!(
            check_query("limit=5&cursor=abc", &PAGING).unwrap(),
            "limit=5&cursor=abc"
        );
        assert_eq!(check_query("", &PAGING).unwrap(), "");
    }

    #[test]
    fn refuses_unknown_duplicate_and_bad() {
        let fields = |q| {
            check_query(q, &PAGING)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields("x=1"), ["query.x"]);
        assert_eq!(fields("limit=1&limit=2"), ["query.limit"]);
        assert_eq!(fields("limit=0"), ["query.limit"]);
        assert_eq!(fields("limit=501"), ["query.limit"]);
        assert_eq!(fields("cursor=a%20b"), ["query.cursor"]);
    }
}
