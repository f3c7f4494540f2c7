//! Building answers: problem documents, JSON, and the headers every answer
//! carries.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use schemas::problem::{self, Kind, Problem};

/// The body type of every answer: whole bytes, or (only for a route that
/// declares an event stream) the core's body passed on as it arrives.
pub type Body = Either<Full<Bytes>, Incoming>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// The content security policy of every answer. `default-src 'self'` with
/// no `unsafe-*`: no inline script or style, no other origin, no `eval`.
/// Images may also be `blob:` URLs the page made itself (the TOTP QR code
/// arrives as SVG text and is shown as an image, never parsed as markup).
/// `require-trusted-types-for 'script'` makes the browser refuse any
/// string-to-HTML sink (`innerHTML` and kin), so the console can only build
/// its pages from DOM nodes and text. Nothing may frame, post forms
/// elsewhere, embed plugins or rebase relative URLs.
pub const CSP: &str = "default-src 'self'; img-src 'self' blob:; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'";

/// Headers on every answer, whatever produced it.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"),
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// A banner some servers add; never passed on.
const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// Adds the security headers and the request id. Anything that looks like a
/// server banner is removed.
pub fn finish(headers: &mut HeaderMap, request_id: &str) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.remove(header::SERVER);
    headers.remove(X_POWERED_BY);
    insert_request_id(headers, request_id);
}

fn insert_request_id(headers: &mut HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(schemas::wire::PUBLIC_REQUEST_ID, value);
    }
}

/// The security headers and `cache-control`: every answer made here starts
/// from a copy, ~1 000 instructions less than inserting the six one by one
/// (a hash and a probe each; docs/performance.md).
static BASE_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = HeaderMap::with_capacity(16);
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers
});

/// [`BASE_HEADERS`] with the content type of almost every answer already in.
static JSON_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = BASE_HEADERS.clone();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers
});

const JSON: &str = "application/json";

/// An answer with `body` of `content_type`: [`finish`]'s headers and
/// `cache-control: no-store`.
pub fn bytes(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
    request_id: &str,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if content_type == JSON {
        *headers = JSON_HEADERS.clone();
    } else {
        *headers = BASE_HEADERS.clone();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    insert_request_id(headers, request_id);
    response
}

/// A JSON answer.
pub fn json(status: StatusCode, body: impl Into<Bytes>, request_id: &str) -> Response<Body> {
    bytes(status, JSON, body, request_id)
}

/// A problem document answer.
pub fn problem(problem: Problem, request_id: &str) -> Response<Body> {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = problem.with_request_id(request_id).to_bytes();
    bytes(status, problem::CONTENT_TYPE, body, request_id)
}

/// A problem of `kind` with `detail`.
pub fn error(kind: Kind, detail: impl Into<String>, request_id: &str) -> Response<Body> {
    problem(Problem::new(kind, detail), request_id)
}

/// A 429 with `Retry-After`.
pub fn too_many(retry_after_secs: u64, detail: impl Into<String>, request_id: &str) -> Response<Body> {
    let mut response = error(Kind::TooManyRequests, detail, request_id);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
    response
}
