//! Live change events for the console (`GET /api/v1/events`).
//!
//! The gate publishes one [`ChangeEvent`] after every state-changing
//! request whose handler committed its change (the audit entry is written in
//! the same transaction, so "written and successful" means committed). An
//! event names the kind, the action and the id, never a value: a console
//! that cares reads the resource again, through the usual access checks.
//!
//! Events live in memory on this host only: a subscriber that falls behind
//! by more than [`BACKLOG`] gets a `resync` and reloads what it shows.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use schemas::api::ChangeEvent;
use schemas::values::Role;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::context::{Caller, RequestCtx};
use crate::error::{ApiError, InternalError};
use crate::state::AppState;

/// Events a slow subscriber may fall behind by before it must resync.
const BACKLOG: usize = 256;
/// Open streams at most. Each holds one of the core's connections
/// ([`crate::server::MAX_CONNECTIONS`]) for as long as it is open; the cap
/// keeps consoles from crowding out the API itself.
pub const MAX_STREAMS: usize = 128;
/// How often an idle stream carries a comment, so proxies and browsers keep
/// it open, and how often the caller's credential is checked again.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The broadcast, and the signal that ends every stream at shutdown (a
/// graceful shutdown waits for open answers; these never end by themselves).
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<ChangeEvent>,
    closed: CancellationToken,
    streams: Arc<Semaphore>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::Sender::new(BACKLOG),
            closed: CancellationToken::new(),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }
}

impl Events {
    /// Publishes the change an audit action and target describe, if it is
    /// one a console shows. Nobody listening is fine.
    pub(crate) fn publish(&self, action: &str, target: Option<&str>) {
        if let Some(event) = change_for(action, target) {
            let _ = self.tx.send(event);
        }
    }

    /// Ends every open stream.
    pub fn close(&self) {
        self.closed.cancel();
    }
}

/// The event for an audit action: its resource kind, and the id from the
/// target (`device:<uuid>`, `server:<uuid>:org:<uuid>` name their first id).
/// Sign-in, sign-out and setup change no resource a console lists.
fn change_for(action: &str, target: Option<&str>) -> Option<ChangeEvent> {
    let (kind, _) = action.split_once('.')?;
    if matches!(kind, "auth" | "setup" | "link" | "request") {
        return None;
    }
    let id = target
        .and_then(|t| t.split(':').nth(1))
        .and_then(schemas::values::parse_canonical_uuid)
        .map(|u| u.to_string());
    Some(ChangeEvent {
        kind: kind.to_owned(),
        action: action.to_owned(),
        id,
    })
}

/// Whether `role` may hear of `event`: only admins read admins, tokens and
/// settings, so only they hear that those changed.
fn visible(role: Role, event: &ChangeEvent) -> bool {
    role == Role::Admin || !matches!(event.kind.as_str(), "admin" | "token" | "setting" | "settings")
}

fn frame(event: &ChangeEvent) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_default();
    Bytes::from(format!("event: change\ndata: {data}\n\n"))
}

struct Subscriber {
    state: AppState,
    headers: HeaderMap,
    route: &'static schemas::routes::Route,
    role: Role,
    rx: broadcast::Receiver<ChangeEvent>,
    tick: tokio::time::Interval,
    closed: CancellationToken,
    /// Released when the stream ends (the subscriber is dropped).
    _slot: OwnedSemaphorePermit,
}

impl Subscriber {
    /// The next frame, or `None` when the stream ends: at shutdown, or when
    /// the credential stopped being valid (sign-out, disabled, expired).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            tokio::select! {
                () = self.closed.cancelled() => return None,
                received = self.rx.recv() => match received {
                    Ok(event) if visible(self.role, &event) => return Some(frame(&event)),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return Some(Bytes::from_static(b"event: resync\ndata: {}\n\n")),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.tick.tick() => {
                    // The same check as for a request, so a signed-out or
                    // demoted caller stops hearing within one interval.
                    match auth::authenticate(&self.state, &self.headers, self.route).await {
                        Ok(Some(a)) => self.role = a.caller.admin.role,
                        _ => return None,
                    }
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    }
}

/// `GET /api/v1/events`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let route = ctx.route().ok_or(ApiError::Internal(InternalError::NoContext))?;
    let slot = Arc::clone(&state.events().streams)
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy("too many consoles are following changes; try again later"))?;
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; the stream's opening comment stands in.
    tick.reset();
    let subscriber = Subscriber {
        rx: state.events().tx.subscribe(),
        closed: state.events().closed.clone(),
        state,
        headers,
        route,
        role: caller.admin.role,
        tick,
        _slot: slot,
    };
    // An opening comment, so that both hops flush their headers at once.
    let opening =
        stream::once(async { Ok::<_, std::convert::Infallible>(Bytes::from_static(b": open\nretry: 3000\n\n")) });
    let rest = stream::unfold(
        subscriber,
        |mut s| async move { s.next().await.map(|frame| (Ok(frame), s)) },
    );
    let mut response = Body::from_stream(futures_util::StreamExt::chain(opening, rest)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(schemas::codec::EVENT_STREAM),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_name_kind_action_and_the_first_id() {
        let id = "0192f0c4-8c3e-7a6b-9a8b-0123456789ab";
        let e = change_for("device.create", Some(&format!("device:{id}"))).unwrap();
        assert_eq!(
            (e.kind.as_str(), e.action.as_str(), e.id.as_deref()),
            ("device", "device.create", Some(id))
        );
        let e = change_for("server.attach", Some(&format!("server:{id}:org:{id}"))).unwrap();
        assert_eq!(e.id.as_deref(), Some(id));
        assert_eq!(change_for("setting.update", Some("settings")).unwrap().id, None);
        assert!(change_for("auth.login", Some("admin:alice")).is_none());
        assert!(change_for("setup", None).is_none());
    }

    #[test]
    fn only_admins_hear_of_admin_resources() {
        let e = change_for("token.create", None).unwrap();
        assert!(visible(Role::Admin, &e));
        assert!(!visible(Role::Operator, &e));
        assert!(!visible(Role::Auditor, &e));
        assert!(visible(Role::Auditor, &change_for("org.create", None).unwrap()));
    }
}
