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

/// The content security policy of the console's files (its page, scripts,
/// styles and images). `default-src 'self'` with no `unsafe-*`: no inline
/// script or style, no other origin, no `eval`. Images may also be `blob:`
/// URLs the page made itself (the TOTP QR code arrives as SVG text and is
/// shown as an image, never parsed as markup). `require-trusted-types-for
/// 'script'` makes the browser refuse any string-to-HTML sink (`innerHTML`
/// and kin), so the console can only build its pages from DOM nodes and
/// text. Nothing may frame, post forms elsewhere, embed plugins or rebase
/// relative URLs.
pub const CSP: &str = "default-src 'self'; img-src 'self' blob:; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'";

/// The content security policy of every answer but a page or one of the
/// console's files: the API's JSON, problem documents, profiles,
/// redirects, event streams. It is the policy the request-path issue
/// names for every answer, word for word: nothing from another origin,
/// framed by nothing. A browser applies it only when such an answer is
/// opened as a page of its own, and such a document (JSON, text, served
/// with `nosniff`) runs nothing anyway. (The console fetches these; its
/// own page's policy governs what it does with them.) Every API client
/// also parses this header on every answer, and it is ~115 bytes shorter
/// than the console's.
pub const API_CSP: &str = "default-src 'self'; frame-ancestors 'none'";

/// Headers on every answer, whatever produced it, with the policy `csp`.
const fn security_headers(csp: &'static str) -> [(HeaderName, &'static str); 5] {
    [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"),
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ]
}

/// A banner some servers add; never passed on.
const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// The request id's header, as a name made once: inserting by `&str`
/// parses the name and, for a name `http` does not know, copies it into a
/// new allocation on every answer (~430 instructions; docs/performance.md).
const PUBLIC_REQUEST_ID: HeaderName = HeaderName::from_static(schemas::wire::PUBLIC_REQUEST_ID);

/// Adds the security headers (with the API's policy: the answers finished
/// here are never pages) and the request id. Anything that looks like a
/// server banner is removed.
pub fn finish(headers: &mut HeaderMap, request_id: &str) {
    for (name, value) in security_headers(API_CSP) {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.remove(header::SERVER);
    headers.remove(X_POWERED_BY);
    insert_request_id(headers, request_id);
}

fn insert_request_id(headers: &mut HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(PUBLIC_REQUEST_ID, value);
    }
}

/// The security headers with `csp`, `cache-control` and, when given, the
/// content type. Every answer made here starts from a copy of one of these,
/// ~1 000 instructions less than inserting them one by one (a hash and a
/// probe each; docs/performance.md).
fn base_headers(csp: &'static str, content_type: Option<&'static str>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(16);
    for (name, value) in security_headers(csp) {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    headers
}

/// Answers that are neither JSON, problems nor pages (profiles, images);
/// the content type is added to each.
static API_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| base_headers(API_CSP, None));
/// JSON: almost every answer.
static JSON_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| base_headers(API_CSP, Some(JSON)));
/// Problem documents.
static PROBLEM_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| base_headers(API_CSP, Some(problem::CONTENT_TYPE)));
/// The console's files; the content type is added to each.
static CONSOLE_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| base_headers(CSP, None));

const JSON: &str = "application/json";

/// An answer with `body` of `content_type`: the security headers (the
/// console's policy for a page, the API's for anything else), the request
/// id and `cache-control: no-store`.
pub fn bytes(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
    request_id: &str,
) -> Response<Body> {
    // By string equality, so that every "application/json" literal takes
    // the prebuilt map, wherever it was written.
    let headers = if content_type == JSON {
        JSON_HEADERS.clone()
    } else if content_type == problem::CONTENT_TYPE {
        PROBLEM_HEADERS.clone()
    } else if content_type.starts_with("text/html") {
        // A page the core makes (the key link's, which uses the console's
        // stylesheet) gets the console's policy.
        with_type(&CONSOLE_HEADERS, content_type)
    } else {
        with_type(&API_HEADERS, content_type)
    };
    answer(status, headers, body.into(), request_id)
}

/// One of the console's files, of `content_type`: as [`bytes`], with the
/// console's policy.
pub fn asset(content_type: &'static str, body: impl Into<Bytes>, request_id: &str) -> Response<Body> {
    let headers = with_type(&CONSOLE_HEADERS, content_type);
    answer(StatusCode::OK, headers, body.into(), request_id)
}

fn with_type(base: &HeaderMap, content_type: &'static str) -> HeaderMap {
    let mut headers = base.clone();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers
}

fn answer(status: StatusCode, headers: HeaderMap, body: Bytes, request_id: &str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    insert_request_id(response.headers_mut(), request_id);
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
