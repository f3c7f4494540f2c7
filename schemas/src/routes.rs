//! The route table and the matcher the edge runs on every request.
//!
//! A route's path is a template whose parameters carry their type:
//! `/api/v1/orgs/{id:uuid}`. A request whose path segment does not parse as
//! that type does not match the route, so a malformed id is a 404 that never
//! reaches the core. The table itself is in [`table`].

use std::sync::LazyLock;

use crate::codec::{Payload, RequestBody};
use crate::query::QueryParam;
use crate::values::{Role, parse_canonical_uuid};

pub mod matrix;
mod table;
pub use table::ROUTES;

/// The HTTP methods routes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method's name as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Parses a method name; anything else matches no route.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }

    /// Whether requests with this method change state (and so need CSRF
    /// protection and an audit entry).
    pub fn is_mutation(self) -> bool {
        !matches!(self, Method::Get)
    }
}

/// Who may call a route. The core enforces it; the table documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no credential.
    Public,
    /// Any signed-in admin or API token, whatever its role.
    AnyRole,
    /// `admin` or `operator`.
    Manage,
    /// `admin` or `auditor`.
    Audit,
    /// `admin` only.
    AdminOnly,
    /// `admin` on anyone; any role on itself, when the route's `{id}` is
    /// the caller's own admin id (password change, TOTP enrolment). The
    /// self part needs a signed-in session: an API token cannot change its
    /// creator's credentials.
    SelfOrAdmin,
}

impl Access {
    /// Whether `role` may call a route with this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::AnyRole => true,
            Access::Manage => matches!(role, Role::Admin | Role::Operator),
            Access::Audit => matches!(role, Role::Admin | Role::Auditor),
            Access::AdminOnly | Access::SelfOrAdmin => role == Role::Admin,
        }
    }

    /// Whether `role` may call a route with this access on its own admin
    /// record (`is_self`): only [`Access::SelfOrAdmin`] differs from
    /// [`Access::allows`].
    pub fn allows_on(self, role: Role, is_self: bool) -> bool {
        self.allows(role) || (self == Access::SelfOrAdmin && is_self)
    }

    /// Short name, for the OpenAPI document.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::AnyRole => "any-role",
            Access::Manage => "admin-or-operator",
            Access::Audit => "admin-or-auditor",
            Access::AdminOnly => "admin",
            Access::SelfOrAdmin => "admin-or-self",
        }
    }
}

/// Which process answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedBy {
    /// The edge answers itself; nothing is forwarded.
    Edge,
    /// The edge validates and forwards to the core.
    Core,
    /// A static file embedded in the edge (the console's pages and assets).
    Asset {
        /// Its media type.
        content_type: &'static str,
    },
}

/// One documented answer of a route.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    /// The status.
    pub status: u16,
    /// The body: JSON of a type, text of a media type, or `None` for an
    /// empty body.
    pub body: Option<Payload>,
    /// What it means.
    pub doc: &'static str,
}

/// One entry of the route table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The OpenAPI operationId, also used in logs.
    pub operation: &'static str,
    /// The method.
    pub method: Method,
    /// The path template, with typed parameters: `{id:uuid}`, `{token:token}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The query parameters it accepts; anything else is a 400.
    pub query: &'static [QueryParam],
    /// The body type; `None` means the route takes no body.
    pub body: Option<RequestBody>,
    /// The largest body accepted, in bytes; over it is a 413.
    pub body_limit: usize,
    /// The successful answers; errors are always problem documents.
    pub responses: &'static [Response],
    /// Which process answers.
    pub served_by: ServedBy,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
}

/// The type of a path parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A canonical hyphenated UUID.
    Uuid,
    /// A 256-bit base64url token (43 characters).
    Token,
}

impl ParamKind {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "uuid" => Some(ParamKind::Uuid),
            "token" => Some(ParamKind::Token),
            _ => None,
        }
    }

    /// Returns the canonical form of `segment`, or `None` if it is not one.
    fn canonical(self, segment: &str) -> Option<String> {
        match self {
            ParamKind::Uuid => parse_canonical_uuid(segment)
                .map(|u| u.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()),
            ParamKind::Token => {
                let ok = segment.len() == 43
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                ok.then(|| segment.to_owned())
            }
        }
    }

    /// The OpenAPI schema of the value.
    pub fn schema(self) -> serde_json::Value {
        match self {
            ParamKind::Uuid => serde_json::json!({"type": "string", "format": "uuid"}),
            ParamKind::Token => {
                serde_json::json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"})
            }
        }
    }
}

/// One segment of a compiled path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the request's segment.
    Literal(&'static str),
    /// A typed parameter.
    Param {
        /// Its name.
        name: &'static str,
        /// Its type.
        kind: ParamKind,
    },
}

/// Splits a template into segments. Panics on a malformed template: the table
/// is a compile-time constant and a test walks every entry.
#[allow(clippy::panic)]
pub fn compile(template: &'static str) -> Vec<Segment> {
    let Some(rest) = template.strip_prefix('/') else {
        panic!("route {template} must start with /")
    };
    rest.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(inner) => {
                let (name, kind) = inner
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{template}: parameter needs a type"));
                let kind =
                    ParamKind::parse(kind).unwrap_or_else(|| panic!("{template}: unknown parameter type {kind}"));
                Segment::Param { name, kind }
            }
            None => Segment::Literal(seg),
        })
        .collect()
}

/// The template with types removed, as OpenAPI writes it: `/api/v1/orgs/{id}`.
pub fn openapi_path(template: &'static str) -> String {
    let mut out = String::new();
    for seg in compile(template) {
        out.push('/');
        match seg {
            Segment::Literal(s) => out.push_str(s),
            Segment::Param { name, .. } => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
    }
    out
}

static COMPILED: LazyLock<Vec<Vec<Segment>>> = LazyLock::new(|| ROUTES.iter().map(|r| compile(r.path)).collect());

/// A route with its compiled template.
type Candidate = (&'static Route, &'static [Segment]);

/// The routes with their compiled templates, by number of segments, in
/// table order: a path is compared only with the routes it could match,
/// not with the whole table (a few thousand instructions on every request).
static BY_LEN: LazyLock<Vec<Vec<Candidate>>> = LazyLock::new(|| {
    let mut by_len = vec![Vec::new(); MAX_SEGMENTS + 1];
    for (route, segments) in ROUTES.iter().zip(COMPILED.iter()) {
        if let Some(slot) = by_len.get_mut(segments.len()) {
            slot.push((route, segments.as_slice()));
        }
    }
    by_len
});

/// What the matcher decided.
#[derive(Debug)]
pub enum Match {
    /// A route matched.
    Found {
        /// The route.
        route: &'static Route,
        /// The typed parameters, in template order, canonical.
        params: Vec<(&'static str, String)>,
        /// The path rebuilt from the template and the canonical parameters:
        /// what the edge forwards instead of the client's bytes.
        canonical_path: String,
    },
    /// The path matched, but not with this method.
    MethodNotAllowed {
        /// The methods that would match, for the `Allow` header.
        allow: Vec<Method>,
    },
    /// No route has this path.
    NotFound,
}

/// The most segments a path may have; no route has nearly as many.
const MAX_SEGMENTS: usize = 16;

/// Matches a request's method and path (without the query) against the table.
pub fn match_route(method: &str, path: &str) -> Match {
    let Some(rest) = path.strip_prefix('/') else {
        return Match::NotFound;
    };
    // Split once, on the stack: every route is compared with these.
    let mut split = [""; MAX_SEGMENTS];
    let mut count = 0;
    for part in rest.split('/') {
        let Some(slot) = split.get_mut(count) else {
            return Match::NotFound;
        };
        *slot = part;
        count += 1;
    }
    let parts = &split[..count];
    let method = Method::parse(method);
    let candidates = BY_LEN.get(count).map_or(&[][..], Vec::as_slice);
    // Parameters are checked and made canonical only for a route of the
    // request's method: several routes share a path, and doing it for each
    // on the way to the right one cost more than the rest of the match.
    for &(route, segments) in candidates {
        if Some(route.method) != method || !same_shape(segments, parts) {
            continue;
        }
        if let Some((params, canonical_path)) = match_segments(segments, parts) {
            return Match::Found {
                route,
                params,
                canonical_path,
            };
        }
    }
    // No route of this method takes the path: which methods would?
    let mut allow: Vec<Method> = candidates
        .iter()
        .filter(|(_, segments)| same_shape(segments, parts) && match_segments(segments, parts).is_some())
        .map(|(route, _)| route.method)
        .collect();
    if allow.is_empty() {
        Match::NotFound
    } else {
        allow.sort();
        allow.dedup();
        Match::MethodNotAllowed { allow }
    }
}

/// Whether `parts` has the route's length and literals. Most routes differ
/// from the path in one of them, so this refuses them before anything is
/// allocated.
fn same_shape(segments: &[Segment], parts: &[&str]) -> bool {
    segments.len() == parts.len()
        && segments.iter().zip(parts).all(|(seg, part)| match seg {
            Segment::Literal(lit) => part == lit,
            Segment::Param { .. } => true,
        })
}

/// The route's parameters, checked and canonical, and the canonical path;
/// `None` if a parameter is not of its kind. For a path of the route's
/// shape ([`same_shape`]).
fn match_segments(segments: &[Segment], parts: &[&str]) -> Option<(Vec<(&'static str, String)>, String)> {
    let mut params = Vec::new();
    let mut canonical = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (seg, part) in segments.iter().zip(parts) {
        canonical.push('/');
        match seg {
            Segment::Literal(lit) => canonical.push_str(lit),
            Segment::Param { name, kind } => {
                let value = kind.canonical(part)?;
                canonical.push_str(&value);
                params.push((*name, value));
            }
        }
    }
    Some((params, canonical))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn every_template_compiles_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for route in ROUTES {
            assert!(
                compile(route.path).len() <= MAX_SEGMENTS,
                "{}: too many segments",
                route.path
            );
            assert!(
                seen.insert((route.method, openapi_path(route.path))),
                "duplicate route {} {}",
                route.method.as_str(),
                route.path
            );
            assert!(
                route.body.is_some() || route.body_limit == 0,
                "{}: limit without body",
                route.operation
            );
            assert!(
                route.body.is_none() || route.method.is_mutation(),
                "{}: GET with body",
                route.operation
            );
        }
    }

    #[test]
    fn matches_typed_ids_and_canonicalises() {
        let id = "0192F0C4-8C3E-7A6B-9A8B-0123456789AB";
        match match_route("GET", &format!("/api/v1/orgs/{id}")) {
            Match::Found {
                route,
                params,
                canonical_path,
            } => {
                assert_eq!(route.operation, "orgs.get");
                assert_eq!(params[0].1, id.to_lowercase());
                assert_eq!(canonical_path, format!("/api/v1/orgs/{}", id.to_lowercase()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_id_unknown_path_and_wrong_method() {
        assert!(matches!(match_route("GET", "/api/v1/orgs/123"), Match::NotFound));
        assert!(matches!(match_route("GET", "/api/v1/orgs/"), Match::NotFound));
        assert!(matches!(match_route("GET", "/api/v1/nope"), Match::NotFound));
        assert!(matches!(match_route("GET", "//api/v1/orgs"), Match::NotFound));
        assert!(matches!(match_route("GET", &"/api".repeat(10_000)), Match::NotFound));
        assert!(matches!(match_route("GET", &"/".repeat(10_000)), Match::NotFound));
        match match_route("PUT", "/api/v1/orgs") {
            Match::MethodNotAllowed { allow } => assert_eq!(allow, [Method::Get, Method::Post]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            match_route("BREW", "/api/v1/orgs"),
            Match::MethodNotAllowed { .. }
        ));
        // A path that routes of other methods share: the second route of
        // the path is found, a method none of them has lists theirs, and a
        // parameter not of its kind is refused for every method.
        let id = "0192F0C4-8C3E-7A6B-9A8B-0123456789AB";
        match match_route("POST", &format!("/api/v1/orgs/{id}/users")) {
            Match::Found {
                route, canonical_path, ..
            } => {
                assert_eq!(route.operation, "users.create");
                assert_eq!(canonical_path, format!("/api/v1/orgs/{}/users", id.to_lowercase()));
            }
            other => panic!("{other:?}"),
        }
        match match_route("PUT", &format!("/api/v1/orgs/{id}/users")) {
            Match::MethodNotAllowed { allow } => assert_eq!(allow, [Method::Get, Method::Post]),
            other => panic!("{other:?}"),
        }
        for method in ["GET", "POST", "PUT"] {
            assert!(matches!(match_route(method, "/api/v1/orgs/123/users"), Match::NotFound));
        }
    }
}
