//! The one place errors become answers.
//!
//! Every refusal and fault a handler or the gate can produce is an
//! [`ApiError`]; its [`IntoResponse`] picks the status and problem kind, logs
//! faults with their whole source chain (inside the request's span, so with
//! its request id), and shows the client only a generic message for them.
//! The gate then stamps the request id into the problem document.

use std::fmt;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemas::problem::{self, FieldError, Kind, Problem};
use schemas::routes::Method;

use crate::crypto::CryptoError;
use crate::store::StoreError;

/// Everything a request can end in other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The origin proof was missing or wrong.
    #[error("request did not come through the edge")]
    NotFromEdge,
    /// The body or query broke the contract.
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    /// No valid credential.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Authenticated, but not allowed (role, CSRF).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such resource.
    #[error("no such resource")]
    NotFound,
    /// No route has this path (the edge never forwards these).
    #[error("no such route")]
    NoRoute,
    /// The path exists with other methods.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods that would match.
        allow: Vec<Method>,
    },
    /// A unique value is taken.
    #[error("{field} is already taken")]
    Conflict {
        /// The field.
        field: &'static str,
    },
    /// The request conflicts with the state of `field`'s resource.
    #[error("{field}: {message}")]
    ConflictWith {
        /// The field.
        field: &'static str,
        /// Why.
        message: &'static str,
    },
    /// The password was right, but the admin has TOTP and no code came.
    #[error("a TOTP code is needed")]
    TotpRequired,
    /// Used up.
    #[error("{0}")]
    Gone(&'static str),
    /// Locked out for a while.
    #[error("too many failed attempts; try again in {retry_after} s")]
    TooManyRequests {
        /// Seconds until the next attempt can succeed.
        retry_after: u64,
    },
    /// A capacity limit is reached (open event streams); try again later.
    #[error("{0}")]
    Busy(&'static str),
    /// Something this request depends on failed: the DNS-01 hook (the
    /// detail is for the edge, on the internal endpoints), or a tunnel that
    /// did not start (the detail is the tunnel's reason, for the operator).
    #[error("{0}")]
    Upstream(String),
    /// A fault on our side; the client sees only "internal error".
    #[error("internal error")]
    Internal(#[source] InternalError),
}

/// The faults behind [`ApiError::Internal`].
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The database failed.
    #[error("store")]
    Store(#[source] StoreError),
    /// Password hashing failed.
    #[error("crypto")]
    Crypto(#[source] CryptoError),
    /// A handler ran without the context the gate provides.
    #[error("request context missing: the gate did not run")]
    NoContext,
    /// A QR code could not be drawn.
    #[error("qr")]
    Qr(#[source] crate::profile::QrError),
    /// A sealed secret did not open.
    #[error("sealed secret")]
    Seal(#[source] crate::sealed::SealError),
    /// A value we generated did not fit its own type (a bug).
    #[error("generated value out of shape")]
    Generated,
    /// A value could not be serialized.
    #[error("serialization")]
    Json(#[source] serde_json::Error),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Duplicate { field } => ApiError::Conflict { field },
            StoreError::SetupDone => ApiError::Gone(SETUP_DONE),
            StoreError::WrongSetupToken => ApiError::Unauthenticated("wrong setup token"),
            StoreError::Conflict { field, message } => ApiError::ConflictWith { field, message },
            StoreError::Gone(detail) => ApiError::Gone(detail),
            StoreError::LastAdmin { field } => ApiError::ConflictWith {
                field,
                message: "the last active admin must stay an active admin",
            },
            StoreError::NoPendingTotp => ApiError::ConflictWith {
                field: "code",
                message: "no TOTP enrolment is pending: start one first",
            },
            StoreError::TotpReplay => ApiError::Unauthenticated(WRONG_TOTP),
            other => ApiError::Internal(InternalError::Store(other)),
        }
    }
}

impl From<CryptoError> for ApiError {
    fn from(e: CryptoError) -> Self {
        ApiError::Internal(InternalError::Crypto(e))
    }
}

/// The detail of a 401 for a wrong or reused TOTP code.
pub(crate) const WRONG_TOTP: &str = "wrong or already used TOTP code";

/// The detail of a 410 from setup.
pub(crate) const SETUP_DONE: &str = "setup has already been done";

/// Carried in a response's extensions so the gate can add the request id to
/// the document and copy its detail into the audit entry.
#[derive(Debug, Clone)]
pub(crate) struct ProblemSent(pub(crate) Problem);

/// Formats an error with its chain of sources: `a: b: c`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            ApiError::NotFromEdge => Problem::new(Kind::Unauthenticated, self.to_string()),
            ApiError::Validation(errors) => Problem::validation(errors.clone()),
            ApiError::Unauthenticated(detail) => Problem::new(Kind::Unauthenticated, *detail),
            ApiError::Forbidden(detail) => Problem::new(Kind::Forbidden, *detail),
            ApiError::NotFound | ApiError::NoRoute => Problem::new(Kind::NotFound, self.to_string()),
            ApiError::MethodNotAllowed { .. } => Problem::new(Kind::MethodNotAllowed, self.to_string()),
            ApiError::Conflict { field } => {
                let mut p = Problem::new(Kind::Conflict, self.to_string());
                p.errors = vec![FieldError::new(*field, "is already taken")];
                p
            }
            ApiError::ConflictWith { field, message } => {
                let mut p = Problem::new(Kind::Conflict, *message);
                p.errors = vec![FieldError::new(*field, *message)];
                p
            }
            ApiError::TotpRequired => {
                let mut p = Problem::new(Kind::Unauthenticated, self.to_string());
                p.errors = vec![FieldError::new(
                    "totp_code",
                    "is required: this admin signs in with a TOTP code",
                )];
                p
            }
            ApiError::Gone(detail) => Problem::new(Kind::Gone, *detail),
            ApiError::TooManyRequests { .. } => Problem::new(Kind::TooManyRequests, self.to_string()),
            ApiError::Busy(detail) => Problem::new(Kind::Unavailable, *detail),
            ApiError::Upstream(detail) => Problem::new(Kind::BadGateway, detail.clone()),
            ApiError::Internal(_) => Problem::new(Kind::Internal, "internal error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %Chain(e), "request failed");
        }
        let mut response = problem_response(self.problem());
        let headers = response.headers_mut();
        match &self {
            ApiError::TooManyRequests { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::MethodNotAllowed { allow } => {
                let list: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
                if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
                    headers.insert(header::ALLOW, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// A response carrying `problem` as its body (and in its extensions).
pub(crate) fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(problem.to_bytes()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(problem::CONTENT_TYPE));
    response.extensions_mut().insert(ProblemSent(problem));
    response
}

/// The problem kind for an error status that arrived without a document
/// (an extractor's rejection, say).
pub(crate) fn kind_for(status: StatusCode) -> Kind {
    match status.as_u16() {
        401 => Kind::Unauthenticated,
        403 => Kind::Forbidden,
        404 => Kind::NotFound,
        405 => Kind::MethodNotAllowed,
        409 => Kind::Conflict,
        410 => Kind::Gone,
        413 => Kind::PayloadTooLarge,
        415 => Kind::UnsupportedMediaType,
        422 => Kind::Unprocessable,
        429 => Kind::TooManyRequests,
        503 => Kind::Unavailable,
        400..=499 => Kind::Validation,
        _ => Kind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let r = ApiError::TooManyRequests { retry_after: 30 }.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "30");
        assert_eq!(r.headers()[header::CONTENT_TYPE], problem::CONTENT_TYPE);
        let r = ApiError::from(StoreError::Duplicate { field: "name" }).into_response();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let sent = r.extensions().get::<ProblemSent>().map(|p| p.0.errors.clone());
        assert_eq!(sent, Some(vec![FieldError::new("name", "is already taken")]));
        let r = ApiError::from(StoreError::SetupDone).into_response();
        assert_eq!(r.status(), StatusCode::GONE);
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e = ApiError::from(StoreError::Corrupt {
            column: "orgs.name",
            value: "secret-ish".into(),
        });
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = r.extensions().get::<ProblemSent>().map(|p| p.0.detail.clone());
        assert_eq!(detail.as_deref(), Some("internal error"));
    }
}
