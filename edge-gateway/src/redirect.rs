//! The plain-HTTP listener: ACME HTTP-01 challenges, and a 308 to HTTPS for
//! everything else. Nothing on it reaches the core.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use schemas::problem::Kind;

use crate::acme::HttpAnswers;
use crate::acme::link::CoreLink;
use crate::respond::{self, Body};

/// The prefix of HTTP-01 challenge paths.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Answers plain-HTTP requests.
#[derive(Debug, Clone)]
pub struct Redirector {
    https_port: u16,
    acme: Option<(CoreLink, Arc<HttpAnswers>)>,
}

impl Redirector {
    /// Redirects to HTTPS on `https_port`; answers HTTP-01 challenges from
    /// `acme` (this host's answers, then the core's).
    pub fn new(https_port: u16, acme: Option<(CoreLink, Arc<HttpAnswers>)>) -> Self {
        Self { https_port, acme }
    }

    /// Answers one request.
    pub async fn handle(&self, request: &Request<Incoming>) -> Response<Body> {
        let request_id = uuid::Uuid::now_v7().to_string();
        let path = request.uri().path();
        if let Some(token) = path.strip_prefix(ACME_CHALLENGE_PREFIX) {
            let answer = match &self.acme {
                Some((link, answers)) => answers.lookup(link, token).await,
                None => None,
            };
            let Some(answer) = answer else {
                return respond::error(Kind::NotFound, "no such challenge", &request_id);
            };
            let mut response = Response::new(respond::full(answer));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            respond::finish(response.headers_mut(), &request_id);
            return response;
        }
        let Some(host) = host_of(request) else {
            return respond::error(Kind::Validation, "a valid Host header is required", &request_id);
        };
        let port = if self.https_port == 443 {
            String::new()
        } else {
            format!(":{}", self.https_port)
        };
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let location = format!("https://{host}{port}{target}");
        let Ok(location) = HeaderValue::from_str(&location) else {
            return respond::error(Kind::Validation, "the request target cannot be redirected", &request_id);
        };
        let mut response = Response::new(respond::full(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        response.headers_mut().insert(header::LOCATION, location);
        respond::finish(response.headers_mut(), &request_id);
        response
    }
}

/// The request's host without its port, if it is a plausible host name or
/// IP literal. Anything else could steer the redirect elsewhere.
fn host_of(request: &Request<Incoming>) -> Option<String> {
    let raw = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?,
        None => request.uri().host()?,
    };
    host_without_port(raw)
}

fn host_without_port(raw: &str) -> Option<String> {
    if let Some(rest) = raw.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok());
        return (port_ok && inner.parse::<std::net::Ipv6Addr>().is_ok()).then(|| format!("[{inner}]"));
    }
    let host = match raw.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        Some(_) => return None,
        None => raw,
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.starts_with(['-', '.']);
    ok.then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_without_port("Example.com:8080").as_deref(), Some("example.com"));
        assert_eq!(host_without_port("vpn.example").as_deref(), Some("vpn.example"));
        assert_eq!(host_without_port("[2001:db8::1]:80").as_deref(), Some("[2001:db8::1]"));
        assert_eq!(host_without_port("evil.com/x"), None);
        assert_eq!(host_without_port("a@b"), None);
        assert_eq!(host_without_port("a:b"), None);
        assert_eq!(host_without_port(""), None);
        assert_eq!(host_without_port("[zz]"), None);
    }
}
