//! API tokens: every role manages its own, with at most its own role; an
//! admin sees and revokes everyone's.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use schemas::api::{Outcome, TOKEN_DEFAULT_SECS, TokenCreate, TokenCreated, TokenInfo, TokenPage};
use schemas::values::{API_TOKEN_PREFIX, AdminId, ApiToken, Role, TokenId};

use super::decode;
use crate::context::{Caller, RequestCtx};
use crate::crypto::{random_token, sha256_hex};
use crate::error::ApiError;
use crate::paging::{Params, page};
use crate::state::AppState;
use crate::store::NewToken;

fn target(id: &str) -> String {
    format!("token:{id}")
}

/// Whose tokens the caller may see and revoke: an admin's scope is
/// everyone's (`None`), anyone else's only their own.
fn scope(caller: &Caller) -> Option<AdminId> {
    (caller.admin.role != Role::Admin).then_some(caller.admin.id)
}

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<TokenPage>, ApiError> {
    let params = Params::parse(&ctx, raw.as_deref())?;
    let listed = state
        .store()
        .list_tokens(scope(&caller), params.cursor::<TokenId>()?, params.limit()?)
        .await?;
    Ok(Json(page(listed, |item| item.id.to_string())))
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: TokenCreate = decode(&body)?;
    if !caller.admin.role.covers(request.role) {
        return Err(ApiError::Forbidden("a token's role cannot exceed your own"));
    }
    let now = state.clock().now();
    let lifetime = SignedDuration::from_secs(i64::from(request.expires_in.unwrap_or(TOKEN_DEFAULT_SECS)));
    let info = TokenInfo {
        id: TokenId::new(),
        name: request.name,
        role: request.role,
        admin_id: caller.admin.id,
        created_at: now,
        expires_at: now.checked_add(lifetime).unwrap_or(now),
    };
    ctx.set_target(target(&info.id.to_string()));
    let token: ApiToken = format!("{API_TOKEN_PREFIX}{}", random_token())
        .parse()
        .map_err(|_| ApiError::Internal(crate::error::InternalError::Generated))?;
    let new = NewToken {
        info: info.clone(),
        token_hash: sha256_hex(token.as_str()),
    };
    let record = ctx.record(now, Outcome::Success, None);
    state.store().create_token(new, record).await?;
    ctx.mark_written();
    let body = TokenCreated {
        id: info.id,
        name: info.name,
        role: info.role,
        token,
        expires_at: info.expires_at,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    // The answer carries the only copy of the token: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub(super) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.set_target(target(&id));
    let id: TokenId = id.parse().map_err(|_| ApiError::NotFound)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    state.store().delete_token(id, scope(&caller), record).await?;
    ctx.mark_written();
    Ok(StatusCode::NO_CONTENT)
}
