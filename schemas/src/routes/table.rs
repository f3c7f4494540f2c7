//! Every route Rampart answers. A request that matches none of these is
//! answered by the edge and never forwarded.

use super::{Access, Method, Response, Route, ServedBy};
use crate::api::{
    Admin, AuditPage, Device, DeviceCreate, DeviceCreated, DevicePage, Health, Link, LinkCreate, LoginRequest,
    LoginResponse, Org, OrgCreate, OrgPage, OrgPatch, Ready, Server, ServerCreate, ServerPage, ServerPatch,
    SetupRequest, User, UserCreate, UserPage, UserPatch,
};
use crate::codec::{Payload, RequestBody, ResponseBody, TextBody};
use crate::query::{PAGING, QueryKind, QueryParam};

const KIB: usize = 1024;

const PAGING_ONLY: &[QueryParam] = &PAGING;

const ORG_QUERY: &[QueryParam] = &[
    PAGING[0],
    PAGING[1],
    QueryParam {
        name: "search",
        kind: QueryKind::Text(64),
        doc: "Only organizations whose name contains this.",
    },
];

const USER_QUERY: &[QueryParam] = &[
    PAGING[0],
    PAGING[1],
    QueryParam {
        name: "search",
        kind: QueryKind::Text(64),
        doc: "Only users whose name or email contains this.",
    },
];

const PROFILE_QUERY: &[QueryParam] = &[QueryParam {
    name: "server",
    kind: QueryKind::Uuid,
    doc: "The server the profile is for (required).",
}];

/// A wg-quick profile.
const PROFILE: TextBody = TextBody {
    content_type: "text/plain; charset=utf-8",
    max_len: 16 * KIB,
};
/// A profile as a QR code.
const QR: TextBody = TextBody {
    content_type: "image/svg+xml",
    max_len: 512 * KIB,
};
/// The key link page: every profile of a user, with QR codes.
const KEY_PAGE: TextBody = TextBody {
    content_type: "text/html; charset=utf-8",
    max_len: 8 * 1024 * KIB,
};

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
        body: Some(Payload::Json(body)),
        doc,
    }
}

/// Shorthand for an answer that is text of a media type.
const fn text(body: TextBody, doc: &'static str) -> Response {
    Response {
        status: 200,
        body: Some(Payload::Text(body)),
        doc,
    }
}

/// A route the core answers.
#[allow(clippy::too_many_arguments)]
const fn core(
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
    // --- users ------------------------------------------------------------
    core(
        "users.list",
        Method::Get,
        "/api/v1/orgs/{id:uuid}/users",
        Access::AnyRole,
        USER_QUERY,
        None,
        &[json(
            200,
            ResponseBody::of::<UserPage>(),
            "A page of the organization's users, oldest first.",
        )],
        "List an organization's users",
    ),
    core(
        "users.create",
        Method::Post,
        "/api/v1/orgs/{id:uuid}/users",
        Access::Manage,
        &[],
        Some(RequestBody::of::<UserCreate>()),
        &[json(201, ResponseBody::of::<User>(), "Created.")],
        "Create a user in an organization",
    ),
    core(
        "users.get",
        Method::Get,
        "/api/v1/users/{id:uuid}",
        Access::AnyRole,
        &[],
        None,
        &[json(200, ResponseBody::of::<User>(), "The user.")],
        "Read a user",
    ),
    core(
        "users.update",
        Method::Patch,
        "/api/v1/users/{id:uuid}",
        Access::Manage,
        &[],
        Some(RequestBody::of::<UserPatch>()),
        &[json(200, ResponseBody::of::<User>(), "Changed.")],
        "Change a user",
    ),
    core(
        "users.delete",
        Method::Delete,
        "/api/v1/users/{id:uuid}",
        Access::Manage,
        &[],
        None,
        NO_CONTENT,
        "Delete a user, their devices and their addresses",
    ),
    core(
        "links.create",
        Method::Post,
        "/api/v1/users/{id:uuid}/links",
        Access::Manage,
        &[],
        Some(RequestBody::of::<LinkCreate>()),
        &[json(
            201,
            ResponseBody::of::<Link>(),
            "Created; the URL is shown only now.",
        )],
        "Create a temporary key link for a user",
    ),
    Route {
        operation: "links.open",
        method: Method::Get,
        path: "/k/{token:token}",
        access: Access::Public,
        query: &[],
        body: None,
        body_limit: 0,
        responses: &[text(KEY_PAGE, "The user's profiles and QR codes; counts one use.")],
        served_by: ServedBy::Core,
        summary: "The self-service page behind a key link (410 once expired or used up)",
    },
    // --- devices ----------------------------------------------------------
    core(
        "devices.list",
        Method::Get,
        "/api/v1/users/{id:uuid}/devices",
        Access::AnyRole,
        PAGING_ONLY,
        None,
        &[json(
            200,
            ResponseBody::of::<DevicePage>(),
            "A page of the user's devices, oldest first.",
        )],
        "List a user's devices",
    ),
    core(
        "devices.create",
        Method::Post,
        "/api/v1/users/{id:uuid}/devices",
        Access::Manage,
        &[],
        Some(RequestBody::of::<DeviceCreate>()),
        &[json(
            201,
            ResponseBody::of::<DeviceCreated>(),
            "Created; a generated private key is shown only now.",
        )],
        "Create a device (bring a public key, or have one generated)",
    ),
    core(
        "devices.get",
        Method::Get,
        "/api/v1/devices/{id:uuid}",
        Access::AnyRole,
        &[],
        None,
        &[json(200, ResponseBody::of::<Device>(), "The device.")],
        "Read a device",
    ),
    core(
        "devices.delete",
        Method::Delete,
        "/api/v1/devices/{id:uuid}",
        Access::Manage,
        &[],
        None,
        NO_CONTENT,
        "Delete a device and free its addresses",
    ),
    core(
        "devices.config",
        Method::Get,
        "/api/v1/devices/{id:uuid}/config",
        Access::Manage,
        PROFILE_QUERY,
        None,
        &[text(PROFILE, "The wg-quick profile.")],
        "A device's wg-quick profile for a server",
    ),
    core(
        "devices.qr",
        Method::Get,
        "/api/v1/devices/{id:uuid}/qr",
        Access::Manage,
        PROFILE_QUERY,
        None,
        &[text(QR, "The profile as an SVG QR code.")],
        "A device's profile for a server as a QR code",
    ),
    // --- servers ----------------------------------------------------------
    core(
        "servers.list",
        Method::Get,
        "/api/v1/servers",
        Access::AnyRole,
        PAGING_ONLY,
        None,
        &[json(
            200,
            ResponseBody::of::<ServerPage>(),
            "A page of servers, oldest first.",
        )],
        "List VPN servers",
    ),
    core(
        "servers.create",
        Method::Post,
        "/api/v1/servers",
        Access::Manage,
        &[],
        Some(RequestBody::of::<ServerCreate>()),
        &[json(201, ResponseBody::of::<Server>(), "Created, stopped.")],
        "Create a VPN server",
    ),
    core(
        "servers.get",
        Method::Get,
        "/api/v1/servers/{id:uuid}",
        Access::AnyRole,
        &[],
        None,
        &[json(200, ResponseBody::of::<Server>(), "The server.")],
        "Read a VPN server",
    ),
    core(
        "servers.update",
        Method::Patch,
        "/api/v1/servers/{id:uuid}",
        Access::Manage,
        &[],
        Some(RequestBody::of::<ServerPatch>()),
        &[json(200, ResponseBody::of::<Server>(), "Changed.")],
        "Change a VPN server (networks only while no device holds an address)",
    ),
    core(
        "servers.delete",
        Method::Delete,
        "/api/v1/servers/{id:uuid}",
        Access::Manage,
        &[],
        None,
        NO_CONTENT,
        "Delete a VPN server and its address allocations",
    ),
    core(
        "servers.start",
        Method::Post,
        "/api/v1/servers/{id:uuid}/start",
        Access::Manage,
        &[],
        None,
        &[json(200, ResponseBody::of::<Server>(), "Running.")],
        "Start a VPN server",
    ),
    core(
        "servers.stop",
        Method::Post,
        "/api/v1/servers/{id:uuid}/stop",
        Access::Manage,
        &[],
        None,
        &[json(200, ResponseBody::of::<Server>(), "Stopped.")],
        "Stop a VPN server",
    ),
    core(
        "servers.attach",
        Method::Put,
        "/api/v1/servers/{id:uuid}/orgs/{org_id:uuid}",
        Access::Manage,
        &[],
        None,
        &[json(
            200,
            ResponseBody::of::<Server>(),
            "Attached; the org's devices have addresses.",
        )],
        "Attach an organization to a server",
    ),
    core(
        "servers.detach",
        Method::Delete,
        "/api/v1/servers/{id:uuid}/orgs/{org_id:uuid}",
        Access::Manage,
        &[],
        None,
        &[json(
            200,
            ResponseBody::of::<Server>(),
            "Detached; the org's addresses are freed.",
        )],
        "Detach an organization from a server",
    ),
];
