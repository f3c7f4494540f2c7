//! The request pipeline on the HTTPS listener.
//!
//! Every request goes through the same steps, and the first one that fails
//! answers it; only a request that passes them all reaches the core:
//!
//! 1. match method and path against the route table (404, 405 + `Allow`),
//! 2. check the query against the route's parameters (400),
//! 3. throttle sign-in and setup per client address (429),
//! 4. check the body's media type (415) and size (413), read it within the
//!    body timeout (408), parse, validate and re-encode it (400),
//! 5. forward the canonical request, then check the core's answer against
//!    the route's response types (502 if it says anything undeclared).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Either;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use schemas::codec::{EVENT_STREAM, Payload, ResponseBody};
use schemas::problem::{Kind, Problem};
use schemas::query::check_query;
use schemas::routes::{Match, Route, ServedBy, match_route};
use schemas::wire;
use tracing::{error, info, warn};

use crate::addr::Addr;
use crate::forward::{CoreClient, ForwardError, Provenance, Streamed};
use crate::respond::{self, Body};
use crate::throttle::Throttle;
use crate::tls::CertStore;

/// Everything the pipeline needs, shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    core: CoreClient,
    throttle: Arc<Throttle>,
    certs: Arc<CertStore>,
    openapi: Bytes,
    body_timeout: Duration,
}

impl Gateway {
    /// A gateway forwarding to `core`.
    pub fn new(core: CoreClient, throttle: Throttle, certs: Arc<CertStore>, body_timeout: Duration) -> Self {
        let throttle = Arc::new(throttle);
        let openapi = Bytes::from(schemas::openapi::document_text());
        Self {
            core,
            throttle,
            certs,
            openapi,
            body_timeout,
        }
    }

    /// A gateway for one more worker thread: the same throttle,
    /// certificates and settings, its own pool of connections to the core.
    pub fn for_worker(&self) -> Self {
        Self {
            core: self.core.with_own_pool(),
            throttle: Arc::clone(&self.throttle),
            certs: Arc::clone(&self.certs),
            openapi: self.openapi.clone(),
            body_timeout: self.body_timeout,
        }
    }

    /// Answers one request from `peer`.
    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let mut id_text = uuid::Uuid::encode_buffer();
        let request_id: &str = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut id_text);
        let method = request.method().clone();
        let (response, operation) = self.dispatch(request, peer, request_id).await;
        let status = response.status().as_u16();
        let micros = started.elapsed().as_micros();
        if response.status().is_server_error() {
            warn!(request_id, peer = %Addr(peer), %method, operation, status, micros, "request failed");
        } else {
            info!(request_id, peer = %Addr(peer), %method, operation, status, micros, "request");
        }
        response
    }

    async fn dispatch(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        request_id: &str,
    ) -> (Response<Body>, &'static str) {
        let (route, canonical_path) = match match_route(request.method().as_str(), request.uri().path()) {
            Match::Found {
                route, canonical_path, ..
            } => (route, canonical_path),
            Match::MethodNotAllowed { allow } => {
                let allow: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
                let mut response = respond::error(
                    Kind::MethodNotAllowed,
                    format!("this path allows {}", allow.join(", ")),
                    request_id,
                );
                if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                return (response, "-");
            }
            Match::NotFound => {
                return (respond::error(Kind::NotFound, "no such route", request_id), "-");
            }
        };
        (
            self.run_route(route, canonical_path, request, peer, request_id).await,
            route.operation,
        )
    }

    async fn run_route(
        &self,
        route: &'static Route,
        path: String,
        request: Request<Incoming>,
        peer: SocketAddr,
        request_id: &str,
    ) -> Response<Body> {
        let query = match check_query(request.uri().query().unwrap_or(""), route.query) {
            Ok(query) => query,
            Err(errors) => return respond::problem(Problem::validation(errors), request_id),
        };

        if matches!(route.operation, "auth.login" | "setup")
            && let Err(wait) = self.throttle.check(peer.ip(), Instant::now())
        {
            warn!(request_id, %peer, operation = route.operation, "throttled by client address");
            return respond::too_many(
                wait.as_secs().saturating_add(1),
                "too many attempts from your address; try again later",
                request_id,
            );
        }

        let (parts, body) = request.into_parts();
        let body = match self.read_body(route, &parts.headers, body).await {
            Ok(body) => body,
            Err(problem) => return respond::problem(problem, request_id),
        };

        match route.served_by {
            ServedBy::Edge => self.serve_locally(route, request_id).await,
            ServedBy::Asset { content_type } => match crate::assets::get(route.path) {
                Some(bytes) => respond::asset(content_type, bytes, request_id),
                None => {
                    error!(request_id, path = route.path, "asset route without an embedded file");
                    respond::error(Kind::NotFound, "no such file", request_id)
                }
            },
            ServedBy::Core => {
                let target = if query.is_empty() {
                    path
                } else {
                    format!("{path}?{query}")
                };
                let from = Provenance {
                    client: peer,
                    request_id,
                };
                if is_event_stream(route) {
                    return self.forward_stream(route, &target, &parts.headers, from).await;
                }
                match self.core.send(parts.method, &target, &parts.headers, body, from).await {
                    Ok(answer) => filter_answer(route, answer.status, &answer.headers, &answer.body, request_id),
                    Err(e) => unanswered(route, &e, request_id),
                }
            }
        }
    }

    /// An event stream is passed on as the core writes it: not buffered,
    /// not held to the size limit, not parsed as JSON (it is not JSON), but
    /// with the same security headers and only the allow-listed response
    /// headers. Anything but a stream (a refusal) goes through the usual
    /// filter.
    async fn forward_stream(
        &self,
        route: &Route,
        target: &str,
        headers: &HeaderMap,
        from: Provenance<'_>,
    ) -> Response<Body> {
        let request_id = from.request_id;
        match self.core.open_stream(target, headers, from).await {
            Ok(Streamed::Open(body)) => {
                let mut response = Response::new(Either::Right(body));
                let h = response.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                // Tells any buffering proxy in front of the edge to pass
                // events on at once.
                h.insert("x-accel-buffering", HeaderValue::from_static("no"));
                respond::finish(h, request_id);
                response
            }
            Ok(Streamed::Whole(answer)) => {
                filter_answer(route, answer.status, &answer.headers, &answer.body, request_id)
            }
            Err(e) => unanswered(route, &e, request_id),
        }
    }

    /// Steps 4: media type, size, timeout, parse, validate, re-encode.
    async fn read_body(&self, route: &Route, headers: &HeaderMap, body: Incoming) -> Result<Option<Bytes>, Problem> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let Some(codec) = route.body else {
            // A route without a body takes none; an empty one is fine.
            if declared.is_some_and(|n| n > 0) {
                return Err(Problem::new(Kind::PayloadTooLarge, "this route takes no body"));
            }
            let bytes = self.collect(body, 0).await?;
            return if bytes.is_empty() {
                Ok(None)
            } else {
                Err(Problem::new(Kind::PayloadTooLarge, "this route takes no body"))
            };
        };
        if !is_json(headers) {
            return Err(Problem::new(
                Kind::UnsupportedMediaType,
                "the body must be sent as Content-Type: application/json",
            ));
        }
        if declared.is_some_and(|n| n > route.body_limit as u64) {
            return Err(Problem::new(
                Kind::PayloadTooLarge,
                format!("the body must be at most {} bytes", route.body_limit),
            ));
        }
        let bytes = self.collect(body, route.body_limit).await?;
        (codec.reencode)(&bytes)
            .map(|b| Some(Bytes::from(b)))
            .map_err(Problem::validation)
    }

    async fn collect(&self, body: Incoming, limit: usize) -> Result<Bytes, Problem> {
        match tokio::time::timeout(self.body_timeout, Limited::new(body, limit).collect()).await {
            Err(_) => Err(Problem::new(Kind::RequestTimeout, "the body did not arrive in time")),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Problem::new(
                Kind::PayloadTooLarge,
                format!("the body must be at most {limit} bytes"),
            )),
            Ok(Err(_)) => Err(Problem::new(Kind::Validation, "the body could not be read")),
        }
    }

    async fn serve_locally(&self, route: &Route, request_id: &str) -> Response<Body> {
        match route.operation {
            "health" => respond::json(StatusCode::OK, &br#"{"status":"ok"}"#[..], request_id),
            "openapi" => respond::json(StatusCode::OK, self.openapi.clone(), request_id),
            "ready" => {
                let core = self.core_ready(request_id).await;
                // A certificate is always loaded once the listener is up;
                // the check stays so that ACME's "no certificate yet" can
                // report itself here.
                let certificate = !self.certs.current().cert.is_empty();
                let ready = core && certificate;
                let body = schemas::api::Ready {
                    status: if ready { "ready" } else { "not-ready" }.into(),
                    core,
                    certificate,
                };
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                respond::json(status, serde_json::to_vec(&body).unwrap_or_default(), request_id)
            }
            other => {
                error!(
                    request_id,
                    operation = other,
                    "route marked edge-served has no local handler"
                );
                respond::error(Kind::Internal, "not implemented", request_id)
            }
        }
    }

    async fn core_ready(&self, request_id: &str) -> bool {
        let from = Provenance {
            client: SocketAddr::from(([127, 0, 0, 1], 0)),
            request_id,
        };
        match self
            .core
            .send(http::Method::GET, "/readyz", &HeaderMap::new(), None, from)
            .await
        {
            Ok(answer) => answer.status == StatusCode::OK,
            Err(_) => false,
        }
    }
}

/// The problem answered when the core gave no usable answer.
fn unanswered(route: &Route, e: &ForwardError, request_id: &str) -> Response<Body> {
    error!(request_id, operation = route.operation, error = %e, "forwarding to the core failed");
    let kind = match e {
        ForwardError::Timeout(_) => Kind::GatewayTimeout,
        ForwardError::Unreachable(_) => Kind::Unavailable,
        ForwardError::Body(_) | ForwardError::Build(_) | ForwardError::Request(_) => Kind::BadGateway,
    };
    respond::error(kind, "the control plane did not answer", request_id)
}

/// Whether the route's success is a server-sent event stream.
fn is_event_stream(route: &Route) -> bool {
    route
        .responses
        .iter()
        .any(|r| matches!(r.body, Some(Payload::EventStream)))
}

/// `application/json`, optionally with `charset=utf-8`; nothing else.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let essence_ok = parts.next().is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
    essence_ok && parts.all(|p| p.eq_ignore_ascii_case("charset=utf-8"))
}

/// Step 5: the core's answer must be one the route declares, with a body of
/// the declared type; errors must be problem documents. Anything else is a
/// 502 and an error in the log, and the body is never passed on.
fn filter_answer(
    route: &Route,
    status: StatusCode,
    headers: &HeaderMap,
    body: &Bytes,
    request_id: &str,
) -> Response<Body> {
    match checked_body(route, status, headers, body) {
        Ok((content_type, filtered)) => {
            let mut response = match content_type {
                Some(ct) => respond::bytes(status, ct, filtered, request_id),
                None => {
                    let mut r = Response::new(respond::full(Bytes::new()));
                    *r.status_mut() = status;
                    respond::finish(r.headers_mut(), request_id);
                    r
                }
            };
            // One pass over the core's few headers, rather than a lookup
            // (and a parse of the name) per allowed name.
            for (name, value) in headers {
                if wire::FORWARDED_RESPONSE_HEADERS.contains(&name.as_str()) {
                    response.headers_mut().append(name.clone(), value.clone());
                }
            }
            response
        }
        Err(reason) => {
            error!(
                request_id,
                operation = route.operation,
                status = status.as_u16(),
                reason,
                "the core's answer breaks the contract; withheld"
            );
            respond::error(
                Kind::BadGateway,
                "the control plane gave an answer that could not be checked",
                request_id,
            )
        }
    }
}

type Checked = (Option<&'static str>, Bytes);

fn checked_body(route: &Route, status: StatusCode, headers: &HeaderMap, body: &Bytes) -> Result<Checked, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status.is_client_error() || status.is_server_error() {
        if !content_type.starts_with(schemas::problem::CONTENT_TYPE) {
            return Err(format!("error answer with content type {content_type:?}"));
        }
        let filtered = (ResponseBody::of::<Problem>().filter)(body)?;
        return Ok((Some(schemas::problem::CONTENT_TYPE), Bytes::from(filtered)));
    }
    let declared = route
        .responses
        .iter()
        .find(|r| r.status == status.as_u16())
        .ok_or_else(|| format!("undeclared status {status}"))?;
    match declared.body {
        None if body.is_empty() => Ok((None, Bytes::new())),
        None => Err("a body where none is declared".into()),
        Some(Payload::Json(codec)) => {
            if !content_type.starts_with("application/json") {
                return Err(format!("content type {content_type:?} where JSON is declared"));
            }
            Ok((Some("application/json"), Bytes::from((codec.filter)(body)?)))
        }
        // Text cannot be checked field by field: it passes only with exactly
        // the declared media type, as UTF-8 and within the declared size, and
        // the answer carries the table's media type, not the core's bytes.
        Some(Payload::Text(text)) => {
            text.check(content_type, body)?;
            Ok((Some(text.content_type), body.clone()))
        }
        // A stream's success never gets here (`forward_stream` passes it
        // on); a whole body where a stream is declared is a broken contract.
        Some(Payload::EventStream) => Err("a whole body where an event stream is declared".into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use schemas::routes::ROUTES;

    fn route(op: &str) -> &'static Route {
        ROUTES.iter().find(|r| r.operation == op).unwrap()
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h
    }

    #[test]
    fn media_types() {
        let mut h = HeaderMap::new();
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=UTF-8", true),
            ("application/json; charset=latin1", false),
            ("text/plain", false),
            ("application/jsonx", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&h), ok, "{value}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn undeclared_field_is_withheld() {
        let body = Bytes::from_static(br#"{"id":"0192f0c4-8c3e-7a6b-9a8b-0123456789ab","name":"Acme","created_at":"2026-01-01T00:00:00Z","secret":"x"}"#);
        let r = filter_answer(route("orgs.get"), StatusCode::OK, &json_headers(), &body, "rid");
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn declared_answer_passes_reencoded() {
        let body = Bytes::from_static(
            br#"{ "id":"0192f0c4-8c3e-7a6b-9a8b-0123456789ab", "name":"Acme","created_at":"2026-01-01T00:00:00Z"}"#,
        );
        let r = filter_answer(route("orgs.get"), StatusCode::OK, &json_headers(), &body, "rid");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-request-id"], "rid");
        assert!(r.headers().contains_key("strict-transport-security"));
    }

    #[test]
    fn text_answers_pass_only_as_declared() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let body = Bytes::from_static(b"[Interface]\n");
        let r = filter_answer(route("devices.config"), StatusCode::OK, &h, &body, "r");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        // Another media type (the browser would render HTML), JSON where text
        // is declared, and bytes that are not UTF-8 are all withheld.
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        assert_eq!(
            filter_answer(route("devices.config"), StatusCode::OK, &h, &body, "r").status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            filter_answer(route("devices.config"), StatusCode::OK, &json_headers(), &body, "r").status(),
            StatusCode::BAD_GATEWAY
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let binary = Bytes::from_static(&[0xff, 0xfe]);
        assert_eq!(
            filter_answer(route("devices.config"), StatusCode::OK, &h, &binary, "r").status(),
            StatusCode::BAD_GATEWAY
        );
        let huge = Bytes::from(vec![b'a'; 64 * 1024]);
        assert_eq!(
            filter_answer(route("devices.config"), StatusCode::OK, &h, &huge, "r").status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn undeclared_status_and_non_problem_errors_are_withheld() {
        let body = Bytes::from_static(
            br#"{"id":"0192f0c4-8c3e-7a6b-9a8b-0123456789ab","name":"Acme","created_at":"2026-01-01T00:00:00Z"}"#,
        );
        assert_eq!(
            filter_answer(route("orgs.get"), StatusCode::CREATED, &json_headers(), &body, "r").status(),
            StatusCode::BAD_GATEWAY
        );
        let err = Bytes::from_static(b"<html>stack trace</html>");
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        assert_eq!(
            filter_answer(route("orgs.get"), StatusCode::INTERNAL_SERVER_ERROR, &h, &err, "r").status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
