//! What the gate learns about a request and hands to its handler: the
//! request id and client address from the edge, the matched route, the
//! authenticated caller, and the audit slot that makes "exactly one audit
//! entry per state-changing request" hold.
//!
//! A handler that changes state writes its success entry in the same
//! transaction as the change and marks the slot written; whenever a
//! state-changing request ends without a written slot (a refusal anywhere,
//! a fault), the gate writes the entry itself.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jiff::Timestamp;
use schemas::api::{Admin, Outcome};
use schemas::routes::Route;
use schemas::values::TokenId;

use crate::audit::AuditRecord;
use crate::error::{ApiError, InternalError};

/// The context of one request. Cheap to clone; clones share the audit slot.
#[derive(Debug, Clone)]
pub(crate) struct RequestCtx {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    request_id: String,
    client_addr: Option<String>,
    route: Option<&'static Route>,
    action: String,
    slot: Mutex<Slot>,
}

#[derive(Debug)]
struct Slot {
    actor: String,
    target: Option<String>,
    written: bool,
}

/// The actor of requests without a valid credential.
pub(crate) const ANONYMOUS: &str = "anonymous";

impl RequestCtx {
    pub(crate) fn new(
        request_id: String,
        client_addr: Option<String>,
        route: Option<&'static Route>,
        action: String,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                request_id,
                client_addr,
                route,
                action,
                slot: Mutex::new(Slot {
                    actor: ANONYMOUS.to_owned(),
                    target: None,
                    written: false,
                }),
            }),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.inner.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// The matched route (absent only for requests that matched none).
    pub(crate) fn route(&self) -> Option<&'static Route> {
        self.inner.route
    }

    pub(crate) fn set_actor(&self, actor: String) {
        self.slot().actor = actor;
    }

    pub(crate) fn set_target(&self, target: String) {
        self.slot().target = Some(target);
    }

    /// The audit target, once a handler named it.
    pub(crate) fn target(&self) -> Option<String> {
        self.slot().target.clone()
    }

    /// The audit action.
    pub(crate) fn action(&self) -> &str {
        &self.inner.action
    }

    /// The audit record for this request as it stands.
    pub(crate) fn record(&self, time: Timestamp, outcome: Outcome, detail: Option<String>) -> AuditRecord {
        let slot = self.slot();
        AuditRecord {
            time,
            actor: slot.actor.clone(),
            client_addr: self.inner.client_addr.clone(),
            request_id: Some(self.inner.request_id.clone()),
            action: self.inner.action.clone(),
            target: slot.target.clone(),
            outcome,
            detail,
        }
    }

    /// Call once the entry is committed.
    pub(crate) fn mark_written(&self) {
        self.slot().written = true;
    }

    pub(crate) fn written(&self) -> bool {
        self.slot().written
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<RequestCtx>()
            .cloned()
            .ok_or(ApiError::Internal(InternalError::NoContext))
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    /// A session cookie; the digest of its token, to end the session.
    Session { hash: String },
    /// An API token.
    Token { id: TokenId },
}

/// The signed-in admin (or API token) making the request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The admin; for an API token its creator, with the token's role:
    /// that role is what every check uses.
    pub(crate) admin: Admin,
    pub(crate) credential: Credential,
}

impl Caller {
    /// `admin:<username>` for a session, `token:<id>` for an API token.
    pub(crate) fn actor(&self) -> String {
        match &self.credential {
            Credential::Session { .. } => actor_for(&self.admin),
            Credential::Token { id } => format!("token:{id}"),
        }
    }

    /// The session's digest, when signed in with a session.
    pub(crate) fn session_hash(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { hash } => Some(hash),
            Credential::Token { .. } => None,
        }
    }
}

/// `admin:<username>`.
pub(crate) fn actor_for(admin: &Admin) -> String {
    format!("admin:{}", admin.username)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated("sign in first"))
    }
}
