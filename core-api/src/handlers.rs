//! Route handlers and the router that binds them to the route table's paths.
//!
//! Handlers run after the gate, so they can rely on the caller being
//! authenticated and allowed; they decode bodies with the same
//! `schemas::codec` function the edge uses, and a handler that changes state
//! writes its success audit entry in the same store call as the change.

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use schemas::codec::decode_request;
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::error::ApiError;
use crate::gate;
use crate::state::AppState;

mod admins;
mod audit_log;
mod devices;
mod internal_acme;
mod keylink;
mod orgs;
mod servers;
mod session;
pub(crate) mod settings;
mod setup;
mod system;
mod tokens;
mod users;

/// The largest body the core reads. The edge holds each route to its own,
/// smaller limit; this only bounds what a misbehaving peer can make us buffer.
const BODY_LIMIT: usize = 64 * 1024;

/// The core's router, gate included. Paths are the route table's, with
/// axum's `{name}` parameters.
pub fn router(state: AppState) -> Router {
    // The routes sit behind an outer router's fallback so that the gate
    // wraps everything, axum's own 404 and 405 answers included: no request
    // reaches any code without the origin proof having been checked.
    let routes = routes(state.clone());
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(state, gate::gate))
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(system::health))
        .route("/readyz", get(system::ready))
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/api/v1/setup", post(setup::setup))
        .route("/api/v1/auth/login", post(session::login))
        .route("/api/v1/auth/logout", post(session::logout))
        .route("/api/v1/auth/me", get(session::me))
        .route("/api/v1/auth/session", get(session::current))
        .route("/api/v1/events", get(crate::events::stream))
        .route("/api/v1/orgs", get(orgs::list).post(orgs::create))
        .route(
            "/api/v1/orgs/{id}",
            get(orgs::get).patch(orgs::update).delete(orgs::delete),
        )
        .route("/api/v1/orgs/{id}/users", get(users::list).post(users::create))
        .route(
            "/api/v1/users/{id}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        .route("/api/v1/users/{id}/links", post(users::create_link))
        .route("/k/{token}", get(keylink::open))
        .route("/api/v1/users/{id}/devices", get(devices::list).post(devices::create))
        .route("/api/v1/devices/{id}", get(devices::get).delete(devices::delete))
        .route("/api/v1/devices/{id}/config", get(devices::config))
        .route("/api/v1/devices/{id}/qr", get(devices::qr))
        .route("/api/v1/servers", get(servers::list).post(servers::create))
        .route(
            "/api/v1/servers/{id}",
            get(servers::get).patch(servers::update).delete(servers::delete),
        )
        .route("/api/v1/servers/{id}/start", post(servers::start))
        .route("/api/v1/servers/{id}/stop", post(servers::stop))
        .route("/api/v1/servers/{id}/sessions", get(servers::sessions))
        .route(
            "/api/v1/servers/{id}/orgs/{org_id}",
            put(servers::attach).delete(servers::detach),
        )
        .route("/api/v1/audit", get(audit_log::list))
        .route("/api/v1/audit/verify", get(audit_log::verify))
        .route("/api/v1/admins", get(admins::list).post(admins::create))
        .route(
            "/api/v1/admins/{id}",
            get(admins::get).patch(admins::update).delete(admins::delete),
        )
        .route(
            "/api/v1/admins/{id}/totp",
            post(admins::totp_enrol).delete(admins::totp_reset),
        )
        .route("/api/v1/admins/{id}/totp/confirm", post(admins::totp_confirm))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", delete(tokens::delete))
        .route("/api/v1/settings", get(settings::get).patch(settings::update))
        .route("/api/v1/settings/acme/renew", post(settings::renew))
        .route("/internal/acme/state", get(internal_acme::state))
        .route("/internal/acme/renew", post(internal_acme::request_renewal))
        .route("/internal/acme/renew/take", post(internal_acme::take_renewal))
        .route("/internal/acme/attempt", post(internal_acme::attempt))
        .route("/internal/acme/lease", post(internal_acme::acquire_lease))
        .route("/internal/acme/lease/release", post(internal_acme::release_lease))
        .route(
            "/internal/acme/certificate",
            get(internal_acme::get_certificate).put(internal_acme::put_certificate),
        )
        .route(
            "/internal/acme/account",
            get(internal_acme::get_account).put(internal_acme::put_account),
        )
        .route(
            "/internal/acme/challenges/{kind}/{key}",
            put(internal_acme::put_challenge)
                .get(internal_acme::get_challenge)
                .delete(internal_acme::delete_challenge),
        )
        .fallback(|| async { ApiError::NoRoute })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Decodes a JSON body into its contract type: unknown fields refused, rules
/// checked, errors naming the fields, exactly as the edge reports them.
fn decode<T: DeserializeOwned + Validate>(body: &Bytes) -> Result<T, ApiError> {
    decode_request::<T>(body).map_err(ApiError::Validation)
}

/// An id from the path. The edge forwards only canonical UUIDs; anything
/// else cannot name a resource.
fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// A text answer of a media type the route table declares (the edge refuses
/// any other), never cached: profiles hold keys.
fn text(content_type: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
