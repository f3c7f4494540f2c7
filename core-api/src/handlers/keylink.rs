//! `GET /k/{token}`: the public page behind a key link.
//!
//! The token is the only credential, so the page is answered only while
//! the link is unexpired and has uses left; each answer counts one use and
//! is audited (with the user as target, never the token). Refusals are
//! audited too: someone trying tokens shows up in the log.

use axum::extract::{Path, State};
use axum::response::Response;
use schemas::api::Outcome;

use super::text;
use crate::context::RequestCtx;
use crate::crypto::sha256_hex;
use crate::error::{ApiError, InternalError};
use crate::profile;
use crate::state::AppState;

pub(super) async fn open(
    State(state): State<AppState>,
    ctx: RequestCtx,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    ctx.set_actor("key-link".to_owned());
    let now = state.clock().now();
    let record_ctx = ctx.clone();
    let opened = state
        .store()
        .open_link(sha256_hex(&token), now, state.host_key().clone(), move |user| {
            record_ctx.set_target(format!("user:{user}"));
            record_ctx.record(now, Outcome::Success, None)
        })
        .await;
    let (user, profiles) = match opened {
        Ok(found) => found,
        Err(e) => {
            let err = ApiError::from(e);
            let outcome = if matches!(err, ApiError::Internal(_)) {
                Outcome::Error
            } else {
                Outcome::Denied
            };
            let record = ctx.record(now, outcome, Some(err.to_string()));
            if let Err(e) = state.store().append_audit(record).await {
                tracing::error!(error = %crate::error::Chain(&e), "could not audit a refused key link");
            }
            return Err(err);
        }
    };
    let page =
        profile::key_page(user.name.as_str(), &profiles).map_err(|e| ApiError::Internal(InternalError::Qr(e)))?;
    Ok(text("text/html; charset=utf-8", page))
}
