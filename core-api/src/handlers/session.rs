//! Sign-in, sign-out, who am I.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use schemas::api::{Admin, LoginRequest, LoginResponse, Outcome};

use super::decode;
use crate::auth::{BAD_CREDENTIALS, SESSION_TTL, cleared_cookie, csrf_token, lock_policy, session_cookie};
use crate::context::{Caller, RequestCtx, actor_for};
use crate::crypto::{random_token, sha256_hex, verify_password};
use crate::error::{ApiError, InternalError, WRONG_TOTP};
use crate::state::AppState;
use crate::store::NewSession;
use crate::totp;

/// Whole seconds from `now` until `until`, rounded up, at least 1.
fn seconds_until(now: Timestamp, until: Timestamp) -> u64 {
    let micros = until.as_microsecond().saturating_sub(now.as_microsecond());
    let secs = micros.saturating_add(999_999) / 1_000_000;
    u64::try_from(secs).unwrap_or(0).max(1)
}

pub(super) async fn login(State(state): State<AppState>, ctx: RequestCtx, body: Bytes) -> Result<Response, ApiError> {
    let request: LoginRequest = decode(&body)?;
    let username = request.username.as_str().to_owned();
    ctx.set_target(format!("admin:{username}"));
    let store = state.store();

    let now = state.clock().now();
    if let Some(until) = store.login_locked_until(&username).await?
        && until > now
    {
        // No password check while locked: the lock is what stops guessing.
        return Err(ApiError::TooManyRequests {
            retry_after: seconds_until(now, until),
        });
    }

    let credentials = store.admin_credentials(&username).await?;
    // Unknown names are checked against a dummy hash so that the answer
    // takes as long as for a real account.
    let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let password_ok = verify_password(
        request.password.expose().to_owned(),
        stored_hash,
        state.dummy_hash().to_owned(),
    )
    .await?;

    let now = state.clock().now();
    let (admin, totp_sealed) = match credentials {
        Some(c) if password_ok && !c.disabled => (c.admin, c.totp_sealed),
        other => {
            let reason = match other {
                None => "unknown username",
                Some(c) if c.disabled => "admin is disabled",
                Some(_) => "wrong password",
            };
            let record = ctx.record(now, Outcome::Denied, Some(reason.to_owned()));
            store.login_failed(&username, now, lock_policy, record).await?;
            ctx.mark_written();
            tracing::info!(username, reason, "sign-in refused");
            return Err(ApiError::Unauthenticated(BAD_CREDENTIALS));
        }
    };

    // The second factor, checked only after the password so that a code
    // alone is worth nothing; a wrong code counts towards the lock.
    let totp_step = match totp_sealed {
        None => None,
        Some(sealed) => {
            let Some(code) = &request.totp_code else {
                return Err(ApiError::TotpRequired);
            };
            let seed = state
                .host_key()
                .open(&sealed, &totp::seal_context(admin.id))
                .map_err(|e| ApiError::Internal(InternalError::Seal(e)))?;
            let last = state.store().totp_state(admin.id).await?.last_step;
            match totp::check(&seed, code.as_str(), now, last) {
                Some(step) => Some(step),
                None => {
                    let record = ctx.record(now, Outcome::Denied, Some("wrong TOTP code".to_owned()));
                    store.login_failed(&username, now, lock_policy, record).await?;
                    ctx.mark_written();
                    tracing::info!(username, "sign-in refused: wrong TOTP code");
                    return Err(ApiError::Unauthenticated(WRONG_TOTP));
                }
            }
        }
    };

    let token = random_token();
    let token_hash = sha256_hex(&token);
    let csrf_token = csrf_token(&state, &token_hash);
    let expires_at = now.checked_add(SESSION_TTL).unwrap_or(now);
    let session = NewSession {
        token_hash,
        csrf_hash: sha256_hex(&csrf_token),
        admin_id: admin.id,
        created_at: now,
        expires_at,
    };
    ctx.set_actor(actor_for(&admin));
    let record = ctx.record(now, Outcome::Success, None);
    store.login_succeeded(&username, session, totp_step, record).await?;
    ctx.mark_written();

    let body = LoginResponse {
        csrf_token,
        admin,
        expires_at,
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    if let Some(cookie) = session_cookie(&token) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    // The answer carries a CSRF token: no cache may keep it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub(super) async fn logout(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
) -> Result<Response, ApiError> {
    ctx.set_target(caller.actor());
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    match caller.session_hash() {
        Some(hash) => state.store().logout(hash, record).await?,
        // An API token has no session to end; revoking it is DELETE
        // /api/v1/tokens/{id}. The call is still recorded.
        None => state.store().append_audit(record).await?,
    }
    ctx.mark_written();
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(cookie) = cleared_cookie() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

pub(super) async fn me(caller: Caller) -> Json<Admin> {
    Json(caller.admin)
}

/// The caller's session again, CSRF token included: the console keeps that
/// token only in memory, so after a reload this is where it finds it. A
/// cross-site page cannot read the answer (same-origin policy, and the
/// cookie is `SameSite=Strict`).
pub(super) async fn current(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    // An API token has no session (and no CSRF token to hand out).
    let Some(hash) = caller.session_hash() else {
        return Err(ApiError::NotFound);
    };
    let session = state
        .store()
        .session(hash)
        .await?
        .ok_or(ApiError::Unauthenticated("the session is invalid or has expired"))?;
    let body = LoginResponse {
        csrf_token: csrf_token(&state, hash),
        admin: caller.admin,
        expires_at: session.expires_at,
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        let now = Timestamp::UNIX_EPOCH;
        let at = |micros| Timestamp::from_microsecond(micros).unwrap_or(now);
        assert_eq!(seconds_until(now, at(30_000_000)), 30);
        assert_eq!(seconds_until(now, at(29_000_001)), 30);
        assert_eq!(seconds_until(now, at(1)), 1);
        assert_eq!(seconds_until(now, now), 1);
    }
}
