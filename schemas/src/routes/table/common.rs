//! The building blocks of the table: query parameter lists, text body
//! declarations and shorthands for common route shapes.

use super::super::{Access, Method, Response, Route, ServedBy};
use crate::codec::{Payload, RequestBody, ResponseBody, TextBody};
use crate::query::{PAGING, QueryKind, QueryParam};

pub(super) const KIB: usize = 1024;

pub(super) const PAGING_ONLY: &[QueryParam] = &PAGING;

pub(super) const ORG_QUERY: &[QueryParam] = &[
    PAGING[0],
    PAGING[1],
    QueryParam {
        name: "search",
        kind: QueryKind::Text(64),
        doc: "Only organizations whose name contains this.",
    },
];

pub(super) const USER_QUERY: &[QueryParam] = &[
    PAGING[0],
    PAGING[1],
    QueryParam {
        name: "search",
        kind: QueryKind::Text(64),
        doc: "Only users whose name or email contains this.",
    },
];

pub(super) const PROFILE_QUERY: &[QueryParam] = &[QueryParam {
    name: "server",
    kind: QueryKind::Uuid,
    doc: "The server the profile is for (required).",
}];

/// A wg-quick profile.
pub(super) const PROFILE: TextBody = TextBody {
    content_type: "text/plain; charset=utf-8",
    max_len: 16 * KIB,
};
/// A profile as a QR code.
pub(super) const QR: TextBody = TextBody {
    content_type: "image/svg+xml",
    max_len: 512 * KIB,
};
/// The key link page: every profile of a user, with QR codes.
pub(super) const KEY_PAGE: TextBody = TextBody {
    content_type: "text/html; charset=utf-8",
    max_len: 8 * 1024 * KIB,
};

pub(super) const AUDIT_QUERY: &[QueryParam] = &[
    PAGING[0],
    PAGING[1],
    QueryParam {
        name: "actor",
        kind: QueryKind::Text(128),
        doc: "Only entries by this actor.",
    },
    QueryParam {
        name: "action",
        kind: QueryKind::Text(64),
        doc: "Only entries with this action, e.g. `org.create`.",
    },
    QueryParam {
        name: "since",
        kind: QueryKind::Timestamp,
        doc: "Only entries at or after this time.",
    },
];

pub(super) const ASSET: &[Response] = &[Response {
    status: 200,
    body: None,
    doc: "The file.",
}];

/// A static file served by the edge.
pub(super) const fn asset(
    operation: &'static str,
    path: &'static str,
    content_type: &'static str,
    summary: &'static str,
) -> Route {
    Route {
        operation,
        method: Method::Get,
        path,
        access: Access::Public,
        query: &[],
        body: None,
        body_limit: 0,
        responses: ASSET,
        served_by: ServedBy::Asset { content_type },
        summary,
    }
}

/// One of the console's JavaScript modules.
pub(super) const fn script(operation: &'static str, path: &'static str, summary: &'static str) -> Route {
    asset(operation, path, "text/javascript; charset=utf-8", summary)
}

/// The console's single page (every screen is drawn by its scripts).
pub(super) const fn page(operation: &'static str, path: &'static str, summary: &'static str) -> Route {
    asset(operation, path, "text/html; charset=utf-8", summary)
}

pub(super) const NO_CONTENT: &[Response] = &[Response {
    status: 204,
    body: None,
    doc: "Done.",
}];

/// Shorthand for a route that answers one JSON type with one status.
pub(super) const fn json(status: u16, body: ResponseBody, doc: &'static str) -> Response {
    Response {
        status,
        body: Some(Payload::Json(body)),
        doc,
    }
}

/// Shorthand for an answer that is text of a media type.
pub(super) const fn text(body: TextBody, doc: &'static str) -> Response {
    Response {
        status: 200,
        body: Some(Payload::Text(body)),
        doc,
    }
}

/// A route the core answers.
#[allow(clippy::too_many_arguments)]
pub(super) const fn core(
    operation: &'static str,
    method: Method,
    path: &'static str,
    access: Access,
    query: &'static [QueryParam],
    body: Option<RequestBody>,
    responses: &'static [Response],
    summary: &'static str,
) -> Route {
    Route {
        operation,
        method,
        path,
        access,
        query,
        body,
        body_limit: if body.is_some() { 4 * KIB } else { 0 },
        responses,
        served_by: ServedBy::Core,
        summary,
    }
}
