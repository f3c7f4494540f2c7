//! The gate every request passes before (and after) its handler.
//!
//! In order: a span carrying the edge's request id and client address; the
//! origin proof (401, logged, not audited: without the proof it is not a
//! request of the API but a local process knocking); the route, looked up in
//! the `schemas` route table, which also names the access rule; the session
//! or API token (401); the CSRF header on state changes made with a session
//! (403); the route's access rule for the caller's role, and for
//! `SelfOrAdmin` routes whether the path's `{id}` is the caller (403). The
//! handler then runs with a [`RequestCtx`] and [`crate::context::Caller`] in
//! its extensions.
//!
//! Afterwards, a state-changing request whose handler committed its change
//! (and with it its audit entry) is published to the console's change
//! events ([`crate::events`]); one whose handler did not write its audit
//! entry (because something refused or failed) gets one here; and every
//! problem document gets the request id.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use schemas::api::Outcome;
use schemas::problem::{self, Problem};
use schemas::routes::{Access, Match, Method, Route, match_route};
use schemas::wire;
use tracing::Instrument;

use crate::auth;
use crate::context::{Credential, RequestCtx};
use crate::error::{ApiError, Chain, ProblemSent, kind_for};
use crate::state::AppState;

/// The audit action of a route. Actions name the resource in the singular
/// (`org.create`) where the route table's operation ids name the collection
/// (`orgs.create`); everything else uses the operation id as it is.
pub(crate) fn audit_action(operation: &str) -> String {
    match operation.split_once('.') {
        Some((collection, verb)) if collection.len() > 1 && collection.ends_with('s') => {
            format!("{}.{verb}", &collection[..collection.len() - 1])
        }
        _ => operation.to_owned(),
    }
}

/// The action recorded for a state-changing request that matched no route.
/// The edge never forwards those, so one in the log means something other
/// than the edge holds the origin secret, or the two disagree on the table.
const UNMATCHED_ACTION: &str = "request.unmatched";

/// Paths of the internal edge↔core protocol.
const INTERNAL_PREFIX: &str = "/internal/";

/// The request id, as the edge sent it if it looks like one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(wire::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| format!("core-{}", uuid::Uuid::new_v4()), str::to_owned)
}

/// The client address, if it parses as one (never free text in the logs).
fn client_addr(headers: &HeaderMap) -> Option<String> {
    let text = headers.get(wire::CLIENT_ADDR)?.to_str().ok()?;
    match text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr.to_string()),
        Err(_) => text.parse::<IpAddr>().ok().map(|ip| ip.to_string()),
    }
}

/// The middleware function.
pub(crate) async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = request_id(req.headers());
    let client = client_addr(req.headers());
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        client = client.as_deref().unwrap_or("-"),
        method = %req.method(),
        path = %req.uri().path(),
    );
    // The edge polls the internal ACME endpoints every few seconds: their
    // successes are logged at debug, not to drown the log.
    let internal = req.uri().path().starts_with(INTERNAL_PREFIX);
    async move {
        let started = Instant::now();
        let response = pass(&state, req, next, request_id, client).await;
        let (status, ms) = (response.status().as_u16(), started.elapsed().as_millis());
        if internal && response.status().is_success() {
            tracing::debug!(status, ms, "answered");
        } else {
            tracing::info!(status, ms, "answered");
        }
        response
    }
    .instrument(span)
    .await
}

async fn pass(state: &AppState, req: Request, next: Next, request_id: String, client: Option<String>) -> Response {
    let proof = req.headers().get(wire::ORIGIN_PROOF);
    if !proof.is_some_and(|p| state.origin_secret().verify(p.as_bytes())) {
        tracing::warn!(
            proof = if proof.is_some() { "wrong" } else { "missing" },
            "request did not come through the edge"
        );
        return finish(ApiError::NotFromEdge.into_response(), &request_id);
    }

    if req.uri().path().starts_with(INTERNAL_PREFIX) {
        // The loopback-only edge↔core protocol (ACME state): not in the
        // route table, so the edge never forwards a client here; the origin
        // proof above is its credential. Not audited per request: the
        // handlers audit what an admin would care about.
        let response = next.run(req).await;
        return finish(response, &request_id);
    }

    let mutation = Method::parse(req.method().as_str()).is_some_and(Method::is_mutation);
    let found = match_route(req.method().as_str(), req.uri().path());
    let (route, action) = match &found {
        Match::Found { route, .. } => (Some(*route), audit_action(route.operation)),
        _ => (None, UNMATCHED_ACTION.to_owned()),
    };
    let ctx = RequestCtx::new(request_id, client, route, action);

    let result = match found {
        Match::Found { route, params, .. } => admit(state, route, &params, &ctx, req, next).await,
        Match::MethodNotAllowed { allow } => {
            ctx.set_target(truncated_path(&req));
            Err(ApiError::MethodNotAllowed { allow })
        }
        Match::NotFound => {
            ctx.set_target(truncated_path(&req));
            Err(ApiError::NoRoute)
        }
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    if mutation && ctx.written() && response.status().is_success() {
        // The handler wrote its success entry in the change's transaction:
        // the change is committed, so consoles may hear of it.
        state.events().publish(ctx.action(), ctx.target().as_deref());
    }
    if mutation && !ctx.written() {
        // Taken out before awaiting: a response body is not `Sync`, so a
        // reference to it cannot live across an await in a `Send` future.
        let detail = response.extensions().get::<ProblemSent>().map(|p| p.0.detail.clone());
        audit_unwritten(state, &ctx, response.status(), detail).await;
    }
    finish(response, ctx.request_id())
}

fn truncated_path(req: &Request) -> String {
    req.uri().path().chars().take(200).collect()
}

/// Authenticates, checks CSRF and the access rule, and runs the handler.
async fn admit(
    state: &AppState,
    route: &'static Route,
    params: &[(&'static str, String)],
    ctx: &RequestCtx,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(auth) = auth::authenticate(state, req.headers(), route).await? {
        ctx.set_actor(auth.caller.actor());
        if route.method.is_mutation() {
            auth.check_csrf(req.headers())?;
        }
        // The matcher canonicalised the id, so text equality is id equality.
        let own_id = auth.caller.admin.id.to_string();
        let is_self = params.iter().any(|(name, value)| *name == "id" && *value == own_id);
        if !route.access.allows_on(auth.caller.admin.role, is_self) {
            return Err(ApiError::Forbidden("your role does not allow this"));
        }
        let self_service = route.access == Access::SelfOrAdmin && is_self && route.method.is_mutation();
        if self_service && matches!(auth.caller.credential, Credential::Token { .. }) {
            // A leaked token must not be able to change its creator's
            // password or TOTP and so lock the owner out.
            return Err(ApiError::Forbidden(
                "changing your own credentials needs a signed-in session, not an API token",
            ));
        }
        req.extensions_mut().insert(auth.caller);
    }
    req.extensions_mut().insert(ctx.clone());
    Ok(next.run(req).await)
}

/// Writes the audit entry of a state-changing request that ended without
/// one: a refusal (denied) or a fault (error), in a transaction of its own.
async fn audit_unwritten(state: &AppState, ctx: &RequestCtx, status: StatusCode, detail: Option<String>) {
    let outcome = if status.is_server_error() {
        Outcome::Error
    } else if status.is_client_error() {
        Outcome::Denied
    } else {
        // Every handler audits its own success; reaching this is a bug, but
        // the change happened and must not go unrecorded.
        tracing::error!(
            status = status.as_u16(),
            "a state change answered without an audit entry"
        );
        Outcome::Success
    };
    let detail = detail.or_else(|| status.canonical_reason().map(str::to_owned));
    let record = ctx.record(state.clock().now(), outcome, detail);
    match state.store().append_audit(record).await {
        Ok(()) => ctx.mark_written(),
        Err(e) => tracing::error!(error = %Chain(&e), "could not write the audit entry"),
    }
}

/// Puts the request id into a problem document, and turns an error answer
/// that has no document (an extractor's rejection) into one.
fn finish(mut response: Response, request_id: &str) -> Response {
    let status = response.status();
    let problem = match response.extensions_mut().remove::<ProblemSent>() {
        Some(ProblemSent(problem)) => problem,
        None if status.is_client_error() || status.is_server_error() => {
            Problem::new(kind_for(status), status.canonical_reason().unwrap_or("error"))
        }
        None => return response,
    };
    let problem = problem.with_request_id(request_id);
    *response.body_mut() = Body::from(problem.to_bytes());
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(problem::CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_singular() {
        assert_eq!(audit_action("orgs.create"), "org.create");
        assert_eq!(audit_action("orgs.delete"), "org.delete");
        assert_eq!(audit_action("auth.login"), "auth.login");
        assert_eq!(audit_action("setup"), "setup");
    }

    #[test]
    fn request_ids_are_taken_only_when_tidy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            wire::REQUEST_ID,
            HeaderValue::from_static("0192f0c4-8c3e-7a6b-9a8b-0123456789ab"),
        );
        assert_eq!(request_id(&headers), "0192f0c4-8c3e-7a6b-9a8b-0123456789ab");
        headers.insert(wire::REQUEST_ID, HeaderValue::from_static("a b"));
        assert!(request_id(&headers).starts_with("core-"));
        headers.insert(wire::CLIENT_ADDR, HeaderValue::from_static("not an address"));
        assert_eq!(client_addr(&headers), None);
        headers.insert(wire::CLIENT_ADDR, HeaderValue::from_static("[2001:db8::1]:443"));
        assert_eq!(client_addr(&headers).as_deref(), Some("[2001:db8::1]:443"));
    }
}
