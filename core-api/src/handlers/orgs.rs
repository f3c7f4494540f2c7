//! Organizations.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use schemas::api::{Org, OrgCreate, OrgPage, OrgPatch, Outcome};
use schemas::values::OrgId;

use super::decode;
use crate::context::RequestCtx;
use crate::error::ApiError;
use crate::paging::{Params, page};
use crate::state::AppState;
use crate::store::OrgQuery;

/// The id from the path. The edge forwards only canonical UUIDs; anything
/// else cannot name an organization.
fn org_id(raw: &str) -> Result<OrgId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

fn target(id: OrgId) -> String {
    format!("org:{id}")
}

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    RawQuery(raw): RawQuery,
) -> Result<Json<OrgPage>, ApiError> {
    let params = Params::parse(&ctx, raw.as_deref())?;
    let query = OrgQuery {
        after: params.cursor::<OrgId>()?,
        limit: params.limit()?,
        search: params.get("search").map(str::to_owned),
    };
    let listed = state.store().list_orgs(query).await?;
    Ok(Json(page(listed, |item| item.id.to_string())))
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    body: Bytes,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    let request: OrgCreate = decode(&body)?;
    let now = state.clock().now();
    let org = Org {
        id: OrgId::new(),
        name: request.name,
        created_at: now,
    };
    ctx.set_target(target(org.id));
    let record = ctx.record(now, Outcome::Success, None);
    state.store().create_org(org.clone(), record).await?;
    ctx.mark_written();
    Ok((StatusCode::CREATED, Json(org)))
}

pub(super) async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Org>, ApiError> {
    Ok(Json(state.store().org(org_id(&id)?).await?))
}

pub(super) async fn update(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Org>, ApiError> {
    ctx.set_target(format!("org:{id}"));
    let id = org_id(&id)?;
    let patch: OrgPatch = decode(&body)?;
    let Some(name) = patch.name else {
        // OrgPatch's own rule refuses an empty patch; keep the compiler honest.
        return Err(ApiError::Validation(vec![schemas::problem::FieldError::new(
            "name",
            "nothing to change: give at least one field",
        )]));
    };
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let org = state.store().rename_org(id, name, record).await?;
    ctx.mark_written();
    Ok(Json(org))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.set_target(format!("org:{id}"));
    let id = org_id(&id)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let touched = state.store().delete_org(id, record).await?;
    ctx.mark_written();
    state.tunnels().touch(touched);
    Ok(StatusCode::NO_CONTENT)
}
