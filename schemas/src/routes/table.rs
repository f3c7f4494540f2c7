//! Every route Rampart answers. A request that matches none of these is
//! answered by the edge and never forwarded.

use super::{Access, Method, Response, Route, ServedBy};
use crate::acme::{RenewRequested, Settings, SettingsPatch};
use crate::api::{
    Admin, AuditPage, Health, LoginRequest, LoginResponse, Org, OrgCreate, OrgPage, OrgPatch, Ready, SetupRequest,
};
use crate::codec::{RequestBody, ResponseBody};
use crate::query::{PAGING, QueryKind, QueryParam};

const KIB: usize = 1024;

const ORG_QUERY: &[QueryParam] = &[
    PAGING[0],
    PAGING[1],
    QueryParam {
        name: "search",
        kind: QueryKind::Text(64),
        doc: "Only organizations whose name contains this.",
    },
];

const AUDIT_QUERY: &[QueryParam] = &[
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

const ASSET: &[Response] = &[Response {
    status: 200,
    body: None,
    doc: "The file.",
}];

/// A static file served by the edge.
const fn asset(
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

const NO_CONTENT: &[Response] = &[Response {
    status: 204,
    body: None,
    doc: "Done.",
}];

/// Shorthand for a route that answers one JSON type with one status.
const fn json(status: u16, body: ResponseBody, doc: &'static str) -> Response {
    Response {
        status,
        body: Some(body),
        doc,
    }
}

/// The table. Order matters only for readability: the matcher takes the
/// route whose method and path both match.
pub static ROUTES: &[Route] = &[
    Route {
        operation: "health",
        method: Method::Get,
        path: "/healthz",
        access: Access::Public,
        query: &[],
        body: None,
        body_limit: 0,
        responses: &[json(200, ResponseBody::of::<Health>(), "The edge is alive.")],
        served_by: ServedBy::Edge,
        summary: "Edge liveness",
    },
    Route {
        operation: "ready",
        method: Method::Get,
        path: "/readyz",
        access: Access::Public,
        query: &[],
        body: None,
        body_limit: 0,
        responses: &[
            json(
                200,
                ResponseBody::of::<Ready>(),
                "The core answers and a certificate is loaded.",
            ),
            json(503, ResponseBody::of::<Ready>(), "Not ready; the body says which part."),
        ],
        served_by: ServedBy::Edge,
        summary: "Readiness",
    },
    Route {
        operation: "openapi",
        method: Method::Get,
        path: "/api/v1/openapi.json",
        access: Access::Public,
        query: &[],
        body: None,
        body_limit: 0,
        responses: &[json(200, ResponseBody::of::<serde_json::Value>(), "This document.")],
        served_by: ServedBy::Edge,
        summary: "The OpenAPI 3.1 document",
    },
    asset(
        "page.setup",
        "/setup",
        "text/html; charset=utf-8",
        "The first-admin setup page",
    ),
    asset(
        "asset.setup_js",
        "/assets/setup.js",
        "text/javascript; charset=utf-8",
        "Script of the setup page",
    ),
    asset(
        "asset.console_css",
        "/assets/console.css",
        "text/css; charset=utf-8",
        "The console's style sheet",
    ),
    Route {
        operation: "setup",
        method: Method::Post,
        path: "/api/v1/setup",
        access: Access::Public,
        query: &[],
        body: Some(RequestBody::of::<SetupRequest>()),
        body_limit: 4 * KIB,
        responses: &[json(201, ResponseBody::of::<Admin>(), "The first admin was created.")],
        served_by: ServedBy::Core,
        summary: "Create the first admin with the one-time setup token (410 once used)",
    },
    Route {
        operation: "auth.login",
        method: Method::Post,
        path: "/api/v1/auth/login",
        access: Access::Public,
        query: &[],
        body: Some(RequestBody::of::<LoginRequest>()),
        body_limit: 8 * KIB,
        responses: &[json(
            200,
            ResponseBody::of::<LoginResponse>(),
            "Signed in; the session cookie is set.",
        )],
        served_by: ServedBy::Core,
        summary: "Sign in",
    },
    Route {
        operation: "auth.logout",
        method: Method::Post,
        path: "/api/v1/auth/logout",
        access: Access::AnyRole,
        query: &[],
        body: None,
        body_limit: 0,
        responses: NO_CONTENT,
        served_by: ServedBy::Core,
        summary: "End the session",
    },
    Route {
        operation: "auth.me",
        method: Method::Get,
        path: "/api/v1/auth/me",
        access: Access::AnyRole,
        query: &[],
        body: None,
        body_limit: 0,
        responses: &[json(200, ResponseBody::of::<Admin>(), "The caller.")],
        served_by: ServedBy::Core,
        summary: "Who am I",
    },
    Route {
        operation: "orgs.list",
        method: Method::Get,
        path: "/api/v1/orgs",
        access: Access::AnyRole,
        query: ORG_QUERY,
        body: None,
        body_limit: 0,
        responses: &[json(
            200,
            ResponseBody::of::<OrgPage>(),
            "A page of organizations, oldest first.",
        )],
        served_by: ServedBy::Core,
        summary: "List organizations",
    },
    Route {
        operation: "orgs.create",
        method: Method::Post,
        path: "/api/v1/orgs",
        access: Access::Manage,
        query: &[],
        body: Some(RequestBody::of::<OrgCreate>()),
        body_limit: 4 * KIB,
        responses: &[json(201, ResponseBody::of::<Org>(), "Created.")],
        served_by: ServedBy::Core,
        summary: "Create an organization",
    },
    Route {
        operation: "orgs.get",
        method: Method::Get,
        path: "/api/v1/orgs/{id:uuid}",
        access: Access::AnyRole,
        query: &[],
        body: None,
        body_limit: 0,
        responses: &[json(200, ResponseBody::of::<Org>(), "The organization.")],
        served_by: ServedBy::Core,
        summary: "Read an organization",
    },
    Route {
        operation: "orgs.update",
        method: Method::Patch,
        path: "/api/v1/orgs/{id:uuid}",
        access: Access::Manage,
        query: &[],
        body: Some(RequestBody::of::<OrgPatch>()),
        body_limit: 4 * KIB,
        responses: &[json(200, ResponseBody::of::<Org>(), "Changed.")],
        served_by: ServedBy::Core,
        summary: "Change an organization",
    },
    Route {
        operation: "orgs.delete",
        method: Method::Delete,
        path: "/api/v1/orgs/{id:uuid}",
        access: Access::Manage,
        query: &[],
        body: None,
        body_limit: 0,
        responses: NO_CONTENT,
        served_by: ServedBy::Core,
        summary: "Delete an organization",
    },
    Route {
        operation: "audit.list",
        method: Method::Get,
        path: "/api/v1/audit",
        access: Access::Audit,
        query: AUDIT_QUERY,
        body: None,
        body_limit: 0,
        responses: &[json(200, ResponseBody::of::<AuditPage>(), "Entries, newest first.")],
        served_by: ServedBy::Core,
        summary: "Read the audit log",
    },
    Route {
        operation: "settings.get",
        method: Method::Get,
        path: "/api/v1/settings",
        access: Access::AdminOnly,
        query: &[],
        body: None,
        body_limit: 0,
        responses: &[json(
            200,
            ResponseBody::of::<Settings>(),
            "The settings and the certificate's status.",
        )],
        served_by: ServedBy::Core,
        summary: "Read the settings (ACME) and the certificate's status",
    },
    Route {
        operation: "settings.update",
        method: Method::Patch,
        path: "/api/v1/settings",
        access: Access::AdminOnly,
        query: &[],
        body: Some(RequestBody::of::<SettingsPatch>()),
        body_limit: 16 * KIB,
        responses: &[json(200, ResponseBody::of::<Settings>(), "Changed.")],
        served_by: ServedBy::Core,
        summary: "Change the settings; the edge picks ACME changes up within seconds",
    },
    Route {
        operation: "settings.acme_renew",
        method: Method::Post,
        path: "/api/v1/settings/acme/renew",
        access: Access::AdminOnly,
        query: &[],
        body: None,
        body_limit: 0,
        responses: &[json(
            202,
            ResponseBody::of::<RenewRequested>(),
            "Recorded; an edge renews within seconds. Follow it in `GET /api/v1/settings`.",
        )],
        served_by: ServedBy::Core,
        summary: "Renew the certificate now",
    },
];
