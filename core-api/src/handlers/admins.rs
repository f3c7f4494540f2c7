//! Admins: list, create, read, change, delete, and TOTP enrolment.
//!
//! The gate has already applied the route's access rule: `AdminOnly`
//! routes reach here only for admins, `SelfOrAdmin` ones also for any role
//! acting on itself with a session. What remains here is what depends on
//! the body: a non-admin on itself may only change its password, and a
//! password change on oneself needs the current password.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemas::api::{Admin, AdminCreate, AdminDetail, AdminPage, AdminPatch, Outcome, TotpConfirm, TotpEnrolment};
use schemas::problem::FieldError;
use schemas::values::{AdminId, Role};

use super::decode;
use crate::context::{Caller, RequestCtx};
use crate::crypto::{hash_password, verify_password};
use crate::error::{ApiError, InternalError};
use crate::paging::{Params, page};
use crate::state::AppState;
use crate::store::{AdminChange, NewAdmin};
use crate::totp;

/// The id from the path; the edge forwards only canonical UUIDs.
fn admin_id(raw: &str) -> Result<AdminId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

fn target(id: &str) -> String {
    format!("admin:{id}")
}

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    RawQuery(raw): RawQuery,
) -> Result<Json<AdminPage>, ApiError> {
    let params = Params::parse(&ctx, raw.as_deref())?;
    let listed = state
        .store()
        .list_admins(params.cursor::<AdminId>()?, params.limit()?)
        .await?;
    Ok(Json(page(listed, |item| item.id.to_string())))
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    body: Bytes,
) -> Result<(StatusCode, Json<AdminDetail>), ApiError> {
    let request: AdminCreate = decode(&body)?;
    let now = state.clock().now();
    let admin = Admin {
        id: AdminId::new(),
        username: request.username,
        role: request.role,
    };
    ctx.set_target(target(&admin.id.to_string()));
    let password_hash = hash_password(request.password.expose().to_owned()).await?;
    let record = ctx.record(now, Outcome::Success, None);
    let new = NewAdmin {
        admin: admin.clone(),
        password_hash,
        created_at: now,
    };
    state.store().create_admin(new, record).await?;
    ctx.mark_written();
    let detail = AdminDetail {
        id: admin.id,
        username: admin.username,
        role: admin.role,
        disabled: false,
        totp_enabled: false,
        created_at: now,
    };
    Ok((StatusCode::CREATED, Json(detail)))
}

pub(super) async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<AdminDetail>, ApiError> {
    Ok(Json(state.store().admin(admin_id(&id)?).await?))
}

pub(super) async fn update(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AdminDetail>, ApiError> {
    ctx.set_target(target(&id));
    let id = admin_id(&id)?;
    let patch: AdminPatch = decode(&body)?;
    let is_self = caller.admin.id == id;
    if caller.admin.role != Role::Admin && (patch.role.is_some() || patch.disabled.is_some()) {
        // Reached only on oneself (the gate let a non-admin through for that).
        return Err(ApiError::Forbidden("only an admin may change roles or disable admins"));
    }
    let password_hash = match &patch.password {
        None => None,
        Some(new) => {
            let target = state.store().admin(id).await?;
            if new.expose().to_lowercase().contains(target.username.as_str()) {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "password",
                    "must not contain the username",
                )]));
            }
            if is_self {
                check_current_password(&state, id, patch.current_password.as_ref()).await?;
            }
            Some(hash_password(new.expose().to_owned()).await?)
        }
    };
    let change = AdminChange {
        role: patch.role,
        password_hash,
        disabled: patch.disabled,
        keep_session: if is_self {
            caller.session_hash().map(str::to_owned)
        } else {
            None
        },
    };
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let detail = state.store().update_admin(id, change, record).await?;
    ctx.mark_written();
    Ok(Json(detail))
}

/// Changing one's own password proves knowledge of the current one, so a
/// session left open on a shared screen cannot be turned into a takeover.
async fn check_current_password(
    state: &AppState,
    id: AdminId,
    current: Option<&schemas::values::LoginPassword>,
) -> Result<(), ApiError> {
    let Some(current) = current else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "current_password",
            "is required to change your own password",
        )]));
    };
    let stored = state.store().admin_password_hash(id).await?;
    let ok = verify_password(current.expose().to_owned(), Some(stored), state.dummy_hash().to_owned()).await?;
    if !ok {
        return Err(ApiError::Forbidden("current_password is wrong"));
    }
    Ok(())
}

pub(super) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.set_target(target(&id));
    let id = admin_id(&id)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    state.store().delete_admin(id, record).await?;
    ctx.mark_written();
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn totp_enrol(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.set_target(target(&id));
    let id = admin_id(&id)?;
    let admin = state.store().admin(id).await?;
    let seed = totp::new_seed();
    let sealed = state.host_key().seal(&seed, &totp::seal_context(id));
    let uri = totp::otpauth_uri(admin.username.as_str(), &seed);
    let qr_svg = crate::profile::qr_svg(&uri).map_err(|e| ApiError::Internal(InternalError::Qr(e)))?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    state.store().set_totp_pending(id, sealed, record).await?;
    ctx.mark_written();
    let body = TotpEnrolment {
        otpauth_uri: uri,
        secret: totp::base32(&seed),
        qr_svg,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    // The answer carries the seed: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub(super) async fn totp_reset(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.set_target(target(&id));
    let id = admin_id(&id)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    state.store().reset_totp(id, record).await?;
    ctx.mark_written();
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AdminDetail>, ApiError> {
    ctx.set_target(target(&id));
    let id = admin_id(&id)?;
    let request: TotpConfirm = decode(&body)?;
    let current = state.store().totp_state(id).await?;
    let Some(pending) = current.pending else {
        return Err(ApiError::from(crate::store::StoreError::NoPendingTotp));
    };
    let seed = state
        .host_key()
        .open(&pending, &totp::seal_context(id))
        .map_err(|e| ApiError::Internal(InternalError::Seal(e)))?;
    // A new seed starts a new sequence, but a code of the old one for the
    // same step must not count twice: keep the replay floor.
    let now = state.clock().now();
    let Some(step) = totp::check(&seed, request.code.as_str(), now, current.last_step) else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "code",
            "is not the current code of the pending enrolment",
        )]));
    };
    let record = ctx.record(now, Outcome::Success, None);
    let detail = state.store().confirm_totp(id, pending, step, record).await?;
    ctx.mark_written();
    Ok(Json(detail))
}
