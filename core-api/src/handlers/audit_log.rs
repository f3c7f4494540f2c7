//! `GET /api/v1/audit`: the log, newest first; `GET /api/v1/audit/verify`:
//! the hash chain recomputed.

use axum::Json;
use axum::extract::{RawQuery, State};
use jiff::Timestamp;
use schemas::api::{AuditPage, AuditVerify};

use crate::context::RequestCtx;
use crate::error::ApiError;
use crate::paging::{Params, page};
use crate::state::AppState;
use crate::store::AuditQuery;

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let params = Params::parse(&ctx, raw.as_deref())?;
    let query = AuditQuery {
        before: params.cursor::<i64>()?,
        limit: params.limit()?,
        actor: params.get("actor").map(str::to_owned),
        action: params.get("action").map(str::to_owned),
        since: params.parsed::<Timestamp>("since", "must be an RFC 3339 timestamp")?,
    };
    let listed = state.store().list_audit(query).await?;
    Ok(Json(page(listed, |item| item.id.to_string())))
}

pub(super) async fn verify(State(state): State<AppState>) -> Result<Json<AuditVerify>, ApiError> {
    Ok(Json(state.store().verify_chain().await?))
}
