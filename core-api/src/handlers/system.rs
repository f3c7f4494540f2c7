//! `/healthz`, `/readyz`, `/api/v1/openapi.json`: the edge answers these
//! publicly; the core serves them on loopback for the edge's readiness check
//! and for diagnosis.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemas::api::{Health, Ready};

use crate::error::Chain;
use crate::state::AppState;

pub(super) async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Ready when a query on the database works. `certificate` is the edge's to
/// know; the core reports `false` and the edge puts in its own.
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    match state.store().ping().await {
        Ok(()) => Json(Ready {
            status: "ready".into(),
            core: true,
            certificate: false,
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %Chain(&e), "not ready: the database does not answer");
            let body = Ready {
                status: "not-ready".into(),
                core: false,
                certificate: false,
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

pub(super) async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        state.openapi().to_vec(),
    )
        .into_response()
}
