//! Who is calling: the session cookie, the CSRF header, and the sign-in
//! throttle's policy.
//!
//! A session is a random 256-bit token in a `__Host-` cookie; the database
//! holds only its SHA-256, so a leaked database does not leak sessions. The
//! CSRF token is a second random token, returned by login and required in
//! `X-CSRF-Token` on every state change, compared by digest in constant time.
//!
//! An API token (`Authorization: Bearer rpt_…`) is looked up by its SHA-256
//! too. It needs no CSRF header: a browser never attaches it on its own. It
//! works while it has not expired, its creator is enabled, and its role is
//! still within its creator's (a demoted creator's admin token stops).

use axum::http::{HeaderMap, HeaderValue, header};
use jiff::SignedDuration;
use schemas::routes::{Access, Route};
use schemas::values::ApiToken;
use schemas::wire;

use crate::context::{Caller, Credential};
use crate::crypto::{digest_eq, sha256_hex};
use crate::error::ApiError;
use crate::state::AppState;

/// How long a session lasts.
pub(crate) const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);
/// The one message for every failed sign-in, whatever the reason.
pub(crate) const BAD_CREDENTIALS: &str = "wrong username or password";
/// Failures in a row before an account is locked.
const FREE_FAILURES: u32 = 5;
/// The first lock; each further failure doubles it.
const FIRST_LOCK_SECS: i64 = 30;
/// The longest lock.
const MAX_LOCK_SECS: i64 = 15 * 60;

/// How long to lock after `failures` consecutive failures: nothing for the
/// first four, 30 s at the fifth, doubling per further failure up to 15 min.
pub(crate) fn lock_policy(failures: u32) -> Option<SignedDuration> {
    let doublings = failures.checked_sub(FREE_FAILURES)?;
    // 30 s << 5 is already past the cap; don't shift further.
    let secs = FIRST_LOCK_SECS << doublings.min(5);
    Some(SignedDuration::from_secs(secs.min(MAX_LOCK_SECS)))
}

/// The CSRF token of the session whose token has the digest `token_hash`.
///
/// It is derived rather than random so that a reloaded console can be
/// given it again (`GET /api/v1/auth/session`) without the database holding
/// it: a copy of the database has the digest but not the host key. Tabs of
/// one session share it, and it dies with the session.
pub(crate) fn csrf_token(state: &AppState, token_hash: &str) -> String {
    use base64::Engine;
    let mac = state.host_key().mac("session:csrf", token_hash.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
}

/// The `Set-Cookie` value that starts a session.
pub(crate) fn session_cookie(token: &str) -> Option<HeaderValue> {
    let max_age = SESSION_TTL.as_secs();
    HeaderValue::from_str(&format!(
        "{}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}",
        wire::SESSION_COOKIE
    ))
    .ok()
}

/// The `Set-Cookie` value that ends one in the browser.
pub(crate) fn cleared_cookie() -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
        wire::SESSION_COOKIE
    ))
    .ok()
}

/// The session token from the `Cookie` headers, if one is there.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wire::SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// A signed-in caller and the digest of their session's CSRF token (none
/// for an API token).
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub(crate) caller: Caller,
    csrf_hash: Option<String>,
}

/// The token of an `Authorization: Bearer` header, if it has that form.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

const BAD_TOKEN: &str = "this credential is not valid";

async fn authenticate_token(state: &AppState, headers: &HeaderMap) -> Result<Authenticated, ApiError> {
    let token = bearer(headers)
        .and_then(|t| t.parse::<ApiToken>().ok())
        .ok_or(ApiError::Unauthenticated(BAD_TOKEN))?;
    let found = state.store().token_auth(&sha256_hex(token.as_str())).await?;
    let now = state.clock().now();
    match found {
        Some(t) if t.expires_at > now && !t.admin_disabled && t.admin.role.covers(t.role) => Ok(Authenticated {
            caller: Caller {
                admin: schemas::api::Admin {
                    role: t.role,
                    ..t.admin
                },
                credential: Credential::Token { id: t.id },
            },
            csrf_hash: None,
        }),
        _ => Err(ApiError::Unauthenticated(BAD_TOKEN)),
    }
}

/// The caller of a non-public route, or why there is none. Public routes
/// have no caller (a cookie sent with them is ignored).
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    route: &Route,
) -> Result<Option<Authenticated>, ApiError> {
    if route.access == Access::Public {
        return Ok(None);
    }
    if headers.contains_key(header::AUTHORIZATION) {
        // A bearer credential is never ignored in favour of a cookie: a
        // wrong one is a 401 even with a valid session beside it.
        return authenticate_token(state, headers).await.map(Some);
    }
    let Some(token) = cookie_token(headers) else {
        return Err(ApiError::Unauthenticated("sign in first"));
    };
    let token_hash = sha256_hex(token);
    let session = state.store().session(&token_hash).await?;
    let now = state.clock().now();
    match session {
        Some(s) if s.expires_at > now && !s.admin_disabled => Ok(Some(Authenticated {
            caller: Caller {
                admin: s.admin,
                credential: Credential::Session { hash: token_hash },
            },
            csrf_hash: Some(s.csrf_hash),
        })),
        _ => Err(ApiError::Unauthenticated("the session is invalid or has expired")),
    }
}

impl Authenticated {
    /// The CSRF check for a state change: the header's digest must equal the
    /// session's, compared in constant time.
    pub(crate) fn check_csrf(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.csrf_hash else {
            return Ok(());
        };
        let given = headers.get(wire::CSRF).and_then(|v| v.to_str().ok());
        match given {
            Some(token) if digest_eq(expected, &sha256_hex(token)) => Ok(()),
            _ => Err(ApiError::Forbidden("missing or wrong X-CSRF-Token header")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lock_grows_from_30_s_to_15_min() {
        let secs = |n| lock_policy(n).map(|d| d.as_secs());
        assert_eq!(secs(4), None);
        assert_eq!(secs(5), Some(30));
        assert_eq!(secs(6), Some(60));
        assert_eq!(secs(9), Some(480));
        assert_eq!(secs(10), Some(900));
        assert_eq!(secs(u32::MAX), Some(900));
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; __Host-rampart_session=tok; x=y"),
        );
        assert_eq!(cookie_token(&headers), Some("tok"));
        assert_eq!(cookie_token(&HeaderMap::new()), None);
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer rpt_x"));
        assert_eq!(bearer(&headers), Some("rpt_x"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn cookies_are_hardened() {
        let set = session_cookie("t").unwrap();
        let set = set.to_str().unwrap();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(set.contains(attr), "{attr}");
        }
        assert!(cleared_cookie().unwrap().to_str().unwrap().contains("Max-Age=0"));
    }
}
