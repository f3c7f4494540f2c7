//! VPN servers: their settings, state and attached organizations.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use schemas::api::{Outcome, Server, ServerCreate, ServerPage, ServerPatch, ServerSessions, ServerState};
use schemas::values::{OrgId, ServerId};

use super::{decode, path_id};
use crate::context::RequestCtx;
use crate::error::ApiError;
use crate::keys::{KeyPair, server_context};
use crate::paging::{Params, page};
use crate::state::AppState;
use crate::store::{NewServer, ServerQuery};

fn target(id: &str) -> String {
    format!("server:{id}")
}

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    RawQuery(raw): RawQuery,
) -> Result<Json<ServerPage>, ApiError> {
    let params = Params::parse(&ctx, raw.as_deref())?;
    let query = ServerQuery {
        after: params.cursor::<ServerId>()?,
        limit: params.limit()?,
    };
    let listed = state.store().list_servers(query).await?;
    Ok(Json(page(listed, |item| item.id.to_string())))
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    body: Bytes,
) -> Result<(StatusCode, Json<Server>), ApiError> {
    let request: ServerCreate = decode(&body)?;
    let id = ServerId::new();
    ctx.set_target(target(&id.to_string()));
    // Each server has its own key pair; the private half is stored only
    // sealed, bound to this server's row.
    let pair = KeyPair::generate();
    let sealed = state
        .host_key()
        .seal(pair.private.as_slice(), &server_context(&id.to_string()));
    let now = state.clock().now();
    let server = Server {
        id,
        name: request.name,
        network: request.network,
        network6: request.network6,
        port: request.port,
        dns: request.dns.unwrap_or_default(),
        routes: request.routes.unwrap_or_default(),
        state: ServerState::Stopped,
        orgs: Vec::new(),
        public_key: pair.public.clone(),
        created_at: now,
    };
    let record = ctx.record(now, Outcome::Success, None);
    let new = NewServer {
        server: server.clone(),
        private_key_sealed: sealed,
    };
    state.store().create_server(new, record).await?;
    ctx.mark_written();
    Ok((StatusCode::CREATED, Json(server)))
}

pub(super) async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Server>, ApiError> {
    Ok(Json(state.store().server(path_id(&id)?).await?))
}

pub(super) async fn update(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Server>, ApiError> {
    ctx.set_target(target(&id));
    let id: ServerId = path_id(&id)?;
    let patch: ServerPatch = decode(&body)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    // The tunnel is set up with these; the rest only reaches profiles.
    let restart = patch.network.is_some() || patch.network6.is_some() || patch.port.is_some();
    let server = state
        .store()
        .update_server(
            id,
            move |s| {
                if let Some(name) = patch.name {
                    s.name = name;
                }
                if let Some(network) = patch.network {
                    s.network = network;
                }
                if let Some(network6) = patch.network6 {
                    s.network6 = Some(network6);
                }
                if let Some(port) = patch.port {
                    s.port = port;
                }
                if let Some(dns) = patch.dns {
                    s.dns = dns;
                }
                if let Some(routes) = patch.routes {
                    s.routes = routes;
                }
                Ok(())
            },
            record,
        )
        .await?;
    ctx.mark_written();
    if restart && server.state == ServerState::Running {
        state.tunnels().restart(id);
    }
    Ok(Json(server))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.set_target(target(&id));
    let id: ServerId = path_id(&id)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    state.store().delete_server(id, record).await?;
    ctx.mark_written();
    state.tunnels().stop(id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Records the wanted state (audited), then makes the tunnel follow it.
/// A tunnel that fails to start answers 502 with the tunnel's reason (a port
/// in use, say), so the operator sees it at once; the wanted state stays
/// "running" and the supervisor keeps retrying until someone stops the
/// server.
async fn set_state(
    state: &AppState,
    ctx: &RequestCtx,
    id: &str,
    wanted: ServerState,
) -> Result<Json<Server>, ApiError> {
    ctx.set_target(target(id));
    let id: ServerId = path_id(id)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let server = state
        .store()
        .update_server(
            id,
            move |s| {
                s.state = wanted;
                Ok(())
            },
            record,
        )
        .await?;
    ctx.mark_written();
    match wanted {
        ServerState::Running => {
            if let Err(e) = state.tunnels().start(id).await {
                tracing::warn!(server = %id, error = %e, "tunnel did not start at once; its supervisor keeps trying");
                return Err(ApiError::Upstream(format!(
                    "the tunnel did not start: {e}. The server stays wanted running and is retried with backoff; \
                     stop it to give up"
                )));
            }
        }
        ServerState::Stopped => state.tunnels().stop(id).await,
    }
    Ok(Json(server))
}

/// `GET /api/v1/servers/{id}/sessions`: the tunnel's latest counters.
pub(super) async fn sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ServerSessions>, ApiError> {
    let id: ServerId = path_id(&id)?;
    // An unknown server is a 404, not an empty list.
    state.store().server(id).await?;
    Ok(Json(state.tunnels().sessions(id)))
}

pub(super) async fn start(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<Json<Server>, ApiError> {
    set_state(&state, &ctx, &id, ServerState::Running).await
}

pub(super) async fn stop(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<Json<Server>, ApiError> {
    set_state(&state, &ctx, &id, ServerState::Stopped).await
}

pub(super) async fn attach(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path((id, org)): Path<(String, String)>,
) -> Result<Json<Server>, ApiError> {
    ctx.set_target(format!("server:{id}:org:{org}"));
    let id: ServerId = path_id(&id)?;
    let org: OrgId = path_id(&org)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let (server, touched) = state
        .store()
        .attach_org(id, org, state.host_key().clone(), record)
        .await?;
    ctx.mark_written();
    state.tunnels().touch(touched);
    Ok(Json(server))
}

pub(super) async fn detach(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path((id, org)): Path<(String, String)>,
) -> Result<Json<Server>, ApiError> {
    ctx.set_target(format!("server:{id}:org:{org}"));
    let id: ServerId = path_id(&id)?;
    let org: OrgId = path_id(&org)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let (server, touched) = state.store().detach_org(id, org, record).await?;
    ctx.mark_written();
    state.tunnels().touch(touched);
    Ok(Json(server))
}
