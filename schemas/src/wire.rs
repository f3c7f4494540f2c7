//! Names the edge and the core agree on for the loopback hop.
//!
//! The edge strips every client header that is not on [`FORWARDED_REQUEST_HEADERS`]
//! and then adds the three `x-rampart-*` headers below, so a client can never
//! supply them itself.

/// The client's address as the edge saw it (`ip:port`).
pub const CLIENT_ADDR: &str = "x-rampart-client-addr";
/// The request id the edge assigned; also returned to the client as `x-request-id`.
pub const REQUEST_ID: &str = "x-rampart-request-id";
/// The per-install secret that proves a request came through the edge.
pub const ORIGIN_PROOF: &str = "x-rampart-origin-proof";
/// The request id header the client sees on every answer.
pub const PUBLIC_REQUEST_ID: &str = "x-request-id";
/// The CSRF header required with cookie sessions on state-changing requests.
pub const CSRF: &str = "x-csrf-token";
/// The session cookie. The `__Host-` prefix makes browsers insist on
/// `Secure`, `Path=/` and no `Domain`.
pub const SESSION_COOKIE: &str = "__Host-rampart_session";

/// Client request headers the edge passes to the core (lower case). Everything
/// else is dropped; `content-type` and `content-length` are rewritten by the
/// edge for the re-encoded body.
pub const FORWARDED_REQUEST_HEADERS: &[&str] = &["accept", "authorization", "cookie", CSRF, "user-agent"];

/// Core response headers the edge passes to the client (lower case).
pub const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "cache-control",
    "location",
    "retry-after",
    "set-cookie",
    "www-authenticate",
];
