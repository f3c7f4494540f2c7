//! Users of organizations, and the key links that show them their profiles.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use jiff::SignedDuration;
use schemas::api::{Link, LinkCreate, Outcome, User, UserCreate, UserPage, UserPatch};
use schemas::values::{OrgId, UserId};

use super::{decode, path_id};
use crate::context::RequestCtx;
use crate::crypto::{random_token, sha256_hex};
use crate::error::ApiError;
use crate::paging::{Params, page};
use crate::state::AppState;
use crate::store::{NewLink, UserQuery};

fn target(id: &str) -> String {
    format!("user:{id}")
}

pub(super) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(org): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<UserPage>, ApiError> {
    let org: OrgId = path_id(&org)?;
    let params = Params::parse(&ctx, raw.as_deref())?;
    let query = UserQuery {
        after: params.cursor::<UserId>()?,
        limit: params.limit()?,
        search: params.get("search").map(str::to_owned),
    };
    let listed = state.store().list_users(org, query).await?;
    Ok(Json(page(listed, |item| item.id.to_string())))
}

pub(super) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<User>), ApiError> {
    ctx.set_target(format!("org:{org}"));
    let org_id: OrgId = path_id(&org)?;
    let request: UserCreate = decode(&body)?;
    let now = state.clock().now();
    let user = User {
        id: UserId::new(),
        org_id,
        name: request.name,
        email: request.email,
        disabled: false,
        created_at: now,
    };
    ctx.set_target(target(&user.id.to_string()));
    let record = ctx.record(now, Outcome::Success, None);
    state.store().create_user(user.clone(), record).await?;
    ctx.mark_written();
    Ok((StatusCode::CREATED, Json(user)))
}

pub(super) async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<User>, ApiError> {
    Ok(Json(state.store().user(path_id(&id)?).await?))
}

pub(super) async fn update(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<User>, ApiError> {
    ctx.set_target(target(&id));
    let id: UserId = path_id(&id)?;
    let patch: UserPatch = decode(&body)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let (user, touched) = state
        .store()
        .update_user(
            id,
            move |user| {
                if let Some(name) = patch.name {
                    user.name = name;
                }
                if let Some(email) = patch.email {
                    user.email = Some(email);
                }
                if let Some(disabled) = patch.disabled {
                    user.disabled = disabled;
                }
            },
            record,
        )
        .await?;
    ctx.mark_written();
    state.tunnels().touch(touched);
    Ok(Json(user))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.set_target(target(&id));
    let id: UserId = path_id(&id)?;
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let touched = state.store().delete_user(id, record).await?;
    ctx.mark_written();
    state.tunnels().touch(touched);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{id}/links`. The token appears only in the answer's
/// URL; the database keeps its SHA-256.
pub(super) async fn create_link(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Link>), ApiError> {
    ctx.set_target(target(&id));
    let user_id: UserId = path_id(&id)?;
    let request: LinkCreate = decode(&body)?;
    let now = state.clock().now();
    let expires_at = now
        .checked_add(SignedDuration::from_secs(i64::from(request.expires_in)))
        .map_err(|_| ApiError::Validation(vec![schemas::problem::FieldError::new("expires_in", "is too far away")]))?;
    let token = random_token();
    let link = NewLink {
        token_hash: sha256_hex(&token),
        user_id,
        created_at: now,
        expires_at,
        max_uses: request.max_uses,
    };
    let user = state.store().user(user_id).await?;
    if user.disabled {
        return Err(ApiError::ConflictWith {
            field: "id",
            message: "the user is disabled",
        });
    }
    let host = state.store().public_address().await?;
    let record = ctx.record(now, Outcome::Success, None);
    state.store().create_link(link, record).await?;
    ctx.mark_written();
    Ok((
        StatusCode::CREATED,
        Json(Link {
            url: format!("https://{}/k/{token}", bracket(&host)),
            expires_at,
            max_uses: request.max_uses,
        }),
    ))
}

/// An IPv6 literal in a URL goes in brackets.
fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}
