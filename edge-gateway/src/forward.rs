//! The loopback hop to the core.
//!
//! The edge builds every forwarded request itself: the canonical path, the
//! re-encoded query and body, the allow-listed client headers and its own
//! three headers (client address, request id, proof of origin). Nothing else
//! the client sent crosses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use schemas::wire;

use crate::addr::Addr;
use crate::loopback::{Loopback, LoopbackError};
use crate::secret::OriginSecret;

/// The largest answer the edge accepts from the core.
const MAX_CORE_RESPONSE: usize = 16 * 1024 * 1024;

/// Why a forwarded request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The core could not be reached, or the connection failed.
    #[error("core unreachable: {0}")]
    Unreachable(String),
    /// The request could not be written (a bug, not client input).
    #[error("the forwarded request: {0}")]
    Request(&'static str),
    /// The core did not answer in time.
    #[error("core did not answer within {0:?}")]
    Timeout(Duration),
    /// The answer could not be read, or was too large.
    #[error("reading the core's answer: {0}")]
    Body(String),
    /// The request could not be built (a bug, not client input).
    #[error("building the request: {0}")]
    Build(#[from] http::Error),
}

/// What the core answered.
#[derive(Debug)]
pub struct CoreAnswer {
    /// The status.
    pub status: StatusCode,
    /// The headers, unfiltered.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// A pooled HTTP/1.1 client for the core. Clones share the pool;
/// [`CoreClient::with_own_pool`] makes one that does not.
#[derive(Debug, Clone)]
pub struct CoreClient {
    /// Whole exchanges.
    loopback: Arc<Loopback>,
    /// Event streams only.
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    batch: usize,
    authority: String,
    proof: HeaderValue,
    timeout: Duration,
}

/// What the edge adds to a forwarded request.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// The request id.
    pub request_id: &'a str,
}

impl CoreClient {
    /// A client for the core at `addr`.
    /// `batch`: the most requests sent together on one connection.
    pub fn new(addr: SocketAddr, secret: &OriginSecret, timeout: Duration, batch: usize) -> Self {
        Self {
            loopback: Arc::new(Loopback::new(addr, batch, timeout)),
            client: pooled_client(),
            addr,
            batch,
            authority: addr.to_string(),
            proof: secret.header_value(),
            timeout,
        }
    }

    /// The same client with a pool of its own. Each HTTPS worker thread
    /// uses one, so that a request and the connection it rides on are
    /// always driven by the same thread, without waking another.
    pub fn with_own_pool(&self) -> Self {
        Self {
            loopback: Arc::new(Loopback::new(self.addr, self.batch, self.timeout)),
            client: pooled_client(),
            ..self.clone()
        }
    }

    /// Sends one request. `path_and_query` must be canonical (built by the
    /// edge); `client_headers` are filtered here.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Option<Bytes>,
        from: Provenance<'_>,
    ) -> Result<CoreAnswer, ForwardError> {
        let request = self.encode(&method, path_and_query, client_headers, body.as_ref(), from)?;
        let exchange = self
            .loopback
            .exchange(&request, method == Method::HEAD, MAX_CORE_RESPONSE);
        let answer = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout(self.timeout))?
            .map_err(|e| match e {
                LoopbackError::Protocol(why) => ForwardError::Body(why),
                // The core may have acted on it: not "unreachable".
                LoopbackError::Abandoned => ForwardError::Body(e.to_string()),
                other => ForwardError::Unreachable(other.to_string()),
            })?;
        Ok(CoreAnswer {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }

    /// The whole HTTP/1.1 request for the loopback hop: the request line,
    /// `host`, the allow-listed client headers, the edge's own three, and
    /// the body. Every header value has passed `HeaderValue`'s checks, and
    /// the target is refused unless it is visible ASCII, so nothing can
    /// split the request.
    fn encode(
        &self,
        method: &Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Option<&Bytes>,
        from: Provenance<'_>,
    ) -> Result<Vec<u8>, ForwardError> {
        // A fold without an early exit: the compiler tests many bytes at once.
        let graphic = path_and_query.bytes().fold(true, |all, b| all & b.is_ascii_graphic());
        if !path_and_query.starts_with('/') || !graphic {
            return Err(ForwardError::Request("the target is not a canonical path"));
        }
        // Built from slices and `itoa`, not `write!` and a header map:
        // this runs for every request, and that way cost 6 000 of the
        // edge's ~72 000 instructions per request (docs/performance.md).
        let body_len = body.map_or(0, Bytes::len);
        let mut out = Vec::with_capacity(512 + body_len);
        let mut numbers = itoa::Buffer::new();
        for part in [
            method.as_str(),
            " ",
            path_and_query,
            " HTTP/1.1\r\nhost: ",
            &self.authority,
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        field(&mut out, wire::CLIENT_ADDR.as_bytes(), b"");
        Addr(from.client).push_to(&mut out);
        field(&mut out, wire::REQUEST_ID.as_bytes(), from.request_id.as_bytes());
        field(&mut out, wire::ORIGIN_PROOF.as_bytes(), self.proof.as_bytes());
        for_each_allowed(client_headers, |name, value| {
            field(&mut out, name.as_str().as_bytes(), value.as_bytes());
        });
        if body.is_some() {
            field(&mut out, b"content-type", b"application/json");
        }
        if body.is_some() || !matches!(*method, Method::GET | Method::HEAD) {
            field(&mut out, b"content-length", numbers.format(body_len).as_bytes());
        }
        out.extend_from_slice(b"\r\n\r\n");
        if let Some(body) = body {
            out.extend_from_slice(body);
        }
        Ok(out)
    }

    /// Opens an event stream: a GET whose successful answer is
    /// `text/event-stream` and never ends by itself. The time limit covers
    /// only the answer's head; the body is handed over unread, to be passed
    /// on as it arrives. Any other answer (a refusal) is read whole like
    /// [`CoreClient::send`]'s.
    pub async fn open_stream(
        &self,
        path_and_query: &str,
        client_headers: &HeaderMap,
        from: Provenance<'_>,
    ) -> Result<Streamed, ForwardError> {
        let request = self.stream_request(path_and_query, client_headers, from)?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ForwardError::Unreachable(e.to_string()))?;
            let is_stream = response.status() == StatusCode::OK
                && response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes() == schemas::codec::EVENT_STREAM.as_bytes());
            if is_stream {
                Ok(Streamed::Open(response.into_body()))
            } else {
                collect(response).await.map(Streamed::Whole)
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout(self.timeout))?
    }

    /// The request that opens an event stream, for hyper: a bodiless GET
    /// with the same headers [`CoreClient::encode`] writes.
    fn stream_request(
        &self,
        path_and_query: &str,
        client_headers: &HeaderMap,
        from: Provenance<'_>,
    ) -> Result<Request<Full<Bytes>>, ForwardError> {
        let uri = format!("http://{}{}", self.authority, path_and_query);
        let mut builder = Request::builder().method(Method::GET).uri(uri);
        let headers = builder
            .headers_mut()
            .ok_or_else(|| ForwardError::Body("request builder failed".into()))?;
        copy_allowed(client_headers, headers);
        headers.insert(wire::ORIGIN_PROOF, self.proof.clone());
        if let Ok(v) = HeaderValue::from_str(&from.client.to_string()) {
            headers.insert(wire::CLIENT_ADDR, v);
        }
        if let Ok(v) = HeaderValue::from_str(from.request_id) {
            headers.insert(wire::REQUEST_ID, v);
        }
        Ok(builder.body(Full::new(Bytes::new()))?)
    }
}

fn pooled_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
        .build(connector)
}

/// What [`CoreClient::open_stream`] got.
#[derive(Debug)]
pub enum Streamed {
    /// The event stream, still arriving.
    Open(Incoming),
    /// Any other answer, read whole.
    Whole(CoreAnswer),
}

async fn collect(response: http::Response<Incoming>) -> Result<CoreAnswer, ForwardError> {
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_CORE_RESPONSE)
        .collect()
        .await
        .map_err(|e| ForwardError::Body(e.to_string()))?
        .to_bytes();
    Ok(CoreAnswer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Ends the previous line and starts `name: value` (the caller may append
/// more of the value).
fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
}

/// Calls `emit` with each allow-listed client header in the order the
/// client sent them, `cookie` last. HTTP/2 clients may split `cookie` into
/// several fields; HTTP/1.1 wants them joined with `; `. One pass over the
/// client's few headers is cheaper than a lookup per allowed name.
fn for_each_allowed(from: &HeaderMap, mut emit: impl FnMut(&HeaderName, &HeaderValue)) {
    let mut cookies = false;
    for (name, value) in from {
        if name == header::COOKIE {
            cookies = true;
        } else if wire::FORWARDED_REQUEST_HEADERS.contains(&name.as_str()) {
            emit(name, value);
        }
    }
    if cookies {
        let joined: Vec<&str> = from
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !joined.is_empty()
            && let Ok(v) = HeaderValue::from_str(&joined.join("; "))
        {
            emit(&header::COOKIE, &v);
        }
    }
}

/// Copies the allow-listed client headers (see [`for_each_allowed`]).
fn copy_allowed(from: &HeaderMap, to: &mut HeaderMap) {
    for_each_allowed(from, |name, value| {
        to.append(name.clone(), value.clone());
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_allowed_headers_cross_and_cookies_join() {
        let mut from = HeaderMap::new();
        from.append("cookie", HeaderValue::from_static("a=1"));
        from.append("cookie", HeaderValue::from_static("b=2"));
        from.insert("authorization", HeaderValue::from_static("Bearer x"));
        from.insert(wire::ORIGIN_PROOF, HeaderValue::from_static("forged"));
        from.insert(wire::CLIENT_ADDR, HeaderValue::from_static("198.18.0.9:1"));
        from.insert("x-forwarded-for", HeaderValue::from_static("198.18.0.9"));
        from.insert("host", HeaderValue::from_static("evil"));
        let mut to = HeaderMap::new();
        copy_allowed(&from, &mut to);
        assert_eq!(to.get("cookie").unwrap(), "a=1; b=2");
        assert_eq!(to.get("authorization").unwrap(), "Bearer x");
        assert_eq!(to.len(), 2);
    }
}
