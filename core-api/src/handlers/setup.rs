//! `POST /api/v1/setup`: the first admin, with the one-time token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use schemas::api::{Admin, Outcome, SetupRequest};
use schemas::values::{AdminId, Role};

use super::decode;
use crate::context::RequestCtx;
use crate::crypto::{hash_password, sha256_hex};
use crate::error::{ApiError, SETUP_DONE};
use crate::state::AppState;
use crate::store::NewAdmin;

pub(super) async fn setup(
    State(state): State<AppState>,
    ctx: RequestCtx,
    body: Bytes,
) -> Result<(StatusCode, Json<Admin>), ApiError> {
    let request: SetupRequest = decode(&body)?;
    ctx.set_target(format!("admin:{}", request.username));
    // Answer 410 before spending an argon2 hash on a request that cannot
    // succeed; the store checks again inside the transaction.
    if state.store().setup_state().await?.is_done() {
        return Err(ApiError::Gone(SETUP_DONE));
    }
    let password_hash = hash_password(request.password.expose().to_owned()).await?;
    let admin = Admin {
        id: AdminId::new(),
        username: request.username,
        role: Role::Admin,
    };
    let now = state.clock().now();
    let new = NewAdmin {
        admin: admin.clone(),
        password_hash,
        created_at: now,
    };
    let record = ctx.record(now, Outcome::Success, None);
    state
        .store()
        .complete_setup(sha256_hex(request.token.as_str()), new, record)
        .await?;
    ctx.mark_written();
    state.setup_done();
    tracing::info!(admin = %admin.username, "first admin created");
    Ok((StatusCode::CREATED, Json(admin)))
}
