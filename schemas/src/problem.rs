//! RFC 9457 problem documents: the one shape every error takes on the wire.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldError {
    /// Where the value was: `name`, `admin.username`, `query.limit`, `body`.
    pub field: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// A URI naming the kind of problem; see [`Kind`].
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened to this request, for a person.
    pub detail: String,
    /// The fields at fault, for validation problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id, to find the request in the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The kinds of problem Rampart reports. Each maps to one status and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 400: the body or query did not parse or broke a rule.
    Validation,
    /// 401: no valid credential, or a request that did not come through the edge.
    Unauthenticated,
    /// 403: authenticated but not allowed (role, CSRF).
    Forbidden,
    /// 404: no such resource or route.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 409: the change conflicts with the current state.
    Conflict,
    /// 410: the thing existed but is used up or expired.
    Gone,
    /// 413: the body is over the route's limit.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: the request is well-formed but cannot be carried out.
    Unprocessable,
    /// 429: too many attempts.
    TooManyRequests,
    /// 500: a fault on our side.
    Internal,
    /// 502: the core answered something the contract does not allow.
    BadGateway,
    /// 503: the core is not reachable.
    Unavailable,
    /// 504: the core did not answer in time.
    GatewayTimeout,
}

impl Kind {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Kind::Validation => 400,
            Kind::Unauthenticated => 401,
            Kind::Forbidden => 403,
            Kind::NotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::RequestTimeout => 408,
            Kind::Conflict => 409,
            Kind::Gone => 410,
            Kind::PayloadTooLarge => 413,
            Kind::UnsupportedMediaType => 415,
            Kind::Unprocessable => 422,
            Kind::TooManyRequests => 429,
            Kind::Internal => 500,
            Kind::BadGateway => 502,
            Kind::Unavailable => 503,
            Kind::GatewayTimeout => 504,
        }
    }

    fn slug_and_title(self) -> (&'static str, &'static str) {
        match self {
            Kind::Validation => ("validation", "Invalid request"),
            Kind::Unauthenticated => ("unauthenticated", "Authentication required"),
            Kind::Forbidden => ("forbidden", "Forbidden"),
            Kind::NotFound => ("not-found", "Not found"),
            Kind::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Kind::RequestTimeout => ("request-timeout", "Request timeout"),
            Kind::Conflict => ("conflict", "Conflict"),
            Kind::Gone => ("gone", "Gone"),
            Kind::PayloadTooLarge => ("payload-too-large", "Payload too large"),
            Kind::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Kind::Unprocessable => ("unprocessable", "Unprocessable request"),
            Kind::TooManyRequests => ("too-many-requests", "Too many requests"),
            Kind::Internal => ("internal", "Internal error"),
            Kind::BadGateway => ("bad-gateway", "Bad gateway"),
            Kind::Unavailable => ("unavailable", "Service unavailable"),
            Kind::GatewayTimeout => ("gateway-timeout", "Gateway timeout"),
        }
    }
}

impl Problem {
    /// A problem of `kind` with a detail for the client.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        let (slug, title) = kind.slug_and_title();
        Self {
            kind: format!("urn:rampart:problem:{slug}"),
            title: title.to_owned(),
            status: kind.status(),
            detail: detail.into(),
            errors: Vec::new(),
            request_id: None,
        }
    }

    /// A 400 naming the fields at fault.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Self {
            errors,
            ..Self::new(Kind::Validation, detail)
        }
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// The document as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings and integers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
