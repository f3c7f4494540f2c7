//! Devices, and their profiles as text and as QR codes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use schemas::api::{Device, DeviceCreate, DeviceCreated, DevicePage, Outcome};
use schemas::problem::FieldError;
use schemas::values::{DeviceId, ServerId, UserId};

use super::{decode, path_id, text};
use crate::context::RequestCtx;
use crate::error::{ApiError, InternalError};
use crate::keys::{KeyPair, device_context};
use crate::paging::{Params, page};
use crate::profile;
use crate::state::AppState;
use crate::store::{NewDevice, PeerProfile};

fn target(id: &str) -> String {
    format!("device:{id}")
}

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(user): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<DevicePage>, ApiError> {
    let user: UserId = path_id(&user)?;
    let params = Params::parse(&ctx, raw.as_deref())?;
    let listed = state
        .store()
        .list_devices(user, params.cursor::<DeviceId>()?, params.limit()?)
        .await?;
    Ok(Json(page(listed, |item| item.id.to_string())))
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<DeviceCreated>), ApiError> {
    ctx.set_target(format!("user:{user}"));
    let user_id: UserId = path_id(&user)?;
    let request: DeviceCreate = decode(&body)?;
    let id = DeviceId::new();
    ctx.set_target(target(&id.to_string()));
    // Either the device's own public key, or a pair generated here whose
    // private half is sealed for this device's row and shown once.
    let (public_key, generated) = match request.public_key {
        Some(key) => (key, None),
        None => {
            let pair = KeyPair::generate();
            let sealed = state
                .host_key()
                .seal(pair.private.as_slice(), &device_context(&id.to_string()));
            (pair.public.clone(), Some((pair, sealed)))
        }
    };
    let now = state.clock().now();
    let device = Device {
        id,
        user_id,
        name: request.name,
        public_key,
        key_generated: generated.is_some(),
        created_at: now,
        addresses: Vec::new(),
    };
    let new = NewDevice {
        device: device.clone(),
        private_key_sealed: generated.as_ref().map(|(_, sealed)| sealed.clone()),
    };
    let record = ctx.record(now, Outcome::Success, None);
    let touched = state
        .store()
        .create_device(new, state.host_key().clone(), record)
        .await?;
    ctx.mark_written();
    state.tunnels().touch(touched);
    let private_key = generated.map(|(pair, _)| schemas::values::WgKey::from_bytes(&pair.private));
    // The addresses were allocated in the store; a device deleted in the
    // meantime simply shows none.
    let addresses = match state.store().device(id).await {
        Ok(stored) => stored.addresses,
        Err(e) => {
            tracing::warn!(error = %crate::error::Chain(&e), "could not read back a new device's addresses");
            Vec::new()
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(DeviceCreated {
            id: device.id,
            user_id: device.user_id,
            name: device.name,
            public_key: device.public_key,
            key_generated: device.key_generated,
            created_at: device.created_at,
            addresses,
            private_key,
        }),
    ))
}

pub(super) async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Device>, ApiError> {
    Ok(Json(state.store().device(path_id(&id)?).await?))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.set_target(target(&id));
    let id: DeviceId = path_id(&id)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let touched = state.store().delete_device(id, record).await?;
    ctx.mark_written();
    state.tunnels().touch(touched);
    Ok(StatusCode::NO_CONTENT)
}

/// The profile named by the path and `?server=`.
async fn load(state: &AppState, ctx: &RequestCtx, id: &str, raw: Option<&str>) -> Result<PeerProfile, ApiError> {
    let device: DeviceId = path_id(id)?;
    let params = Params::parse(ctx, raw)?;
    let server: ServerId = params
        .parsed("server", "must be a UUID")?
        .ok_or_else(|| ApiError::Validation(vec![FieldError::new("query.server", "is required")]))?;
    ctx.set_target(target(&device.to_string()));
    let profile = state.store().profile(device, server, state.host_key().clone()).await?;
    // A profile can hold a private key and always holds a preshared key:
    // reading one is recorded like a change, and not answered unrecorded.
    let record = ctx.record(state.clock().now(), Outcome::Success, Some(format!("server:{server}")));
    state.store().append_audit(record).await?;
    ctx.mark_written();
    Ok(profile)
}

pub(super) async fn config(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = load(&state, &ctx, &id, raw.as_deref()).await?;
    Ok(text("text/plain; charset=utf-8", profile::config_text(&p)))
}

pub(super) async fn qr(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = load(&state, &ctx, &id, raw.as_deref()).await?;
    let svg = profile::qr_svg(&profile::config_text(&p)).map_err(|e| ApiError::Internal(InternalError::Qr(e)))?;
    Ok(text("image/svg+xml", svg))
}
