//! Sign-in, the throttle, sessions, CSRF, logout.

use axum::body::Body;
use axum::http::{StatusCode, header};
use jiff::SignedDuration;
use schemas::api::Outcome;
use schemas::values::Role;
use schemas::wire;

use crate::support::{ADMIN, App, PASSWORD};

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_answers_the_admin() {
    let app = App::new().await;
    app.setup().await;
    let r = app.login_raw(ADMIN, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    let (pair, attrs) = cookie.split_once(';').unwrap();
    let token = pair.strip_prefix("__Host-rampart_session=").unwrap();
    assert!(token.parse::<schemas::values::Token>().is_ok(), "43-char token");
    assert_eq!(attrs.trim(), "HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=43200");
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(r.body["admin"]["username"], ADMIN);
    assert_eq!(r.body["admin"]["role"], "admin");
    assert_eq!(r.body["csrf_token"].as_str().unwrap().len(), 43);
    let expires: jiff::Timestamp = r.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires, app.now().checked_add(SignedDuration::from_hours(12)).unwrap());
    // The response type is exactly the contract's (the edge refuses extra fields).
    serde_json::from_value::<schemas::api::LoginResponse>(r.body).unwrap();

    let last = app.last_audit().await;
    assert_eq!((last.action.as_str(), last.outcome), ("auth.login", Outcome::Success));
    assert_eq!(last.actor, "admin:alice");
}

#[tokio::test]
async fn wrong_password_unknown_name_and_disabled_look_the_same() {
    let app = App::new().await;
    app.setup().await;
    let wrong = app.login_raw(ADMIN, "not the password").await;
    let unknown = app.login_raw("mallory", PASSWORD).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());

    let log = app.audit().await;
    assert_eq!(
        (log[0].action.as_str(), log[0].outcome),
        ("auth.login", Outcome::Denied)
    );
    assert_eq!(log[0].actor, "anonymous");
    assert_eq!(log[0].target.as_deref(), Some("admin:mallory"));
    assert_eq!(log[1].target.as_deref(), Some("admin:alice"));
}

#[tokio::test]
async fn five_failures_lock_with_retry_after_doubling_and_success_resets() {
    let app = App::new().await;
    app.setup().await;
    for attempt in 1..=5 {
        let r = app.login_raw(ADMIN, "not the password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // Locked: even the right password waits.
    let r = app.login_raw(ADMIN, PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers[header::RETRY_AFTER], "30");
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.body["status"], 429);
    let last = app.last_audit().await;
    assert_eq!((last.action.as_str(), last.outcome), ("auth.login", Outcome::Denied));

    app.clock.advance(SignedDuration::from_secs(20));
    let r = app.login_raw(ADMIN, PASSWORD).await;
    assert_eq!(r.headers[header::RETRY_AFTER], "10");

    // After the lock, one more failure locks for twice as long.
    app.clock.advance(SignedDuration::from_secs(11));
    assert_eq!(
        app.login_raw(ADMIN, "still wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app.login_raw(ADMIN, PASSWORD).await;
    assert_eq!(r.headers[header::RETRY_AFTER], "60");

    // A success resets the count: the next failure does not lock.
    app.clock.advance(SignedDuration::from_secs(61));
    app.login(ADMIN, PASSWORD).await;
    assert_eq!(
        app.login_raw(ADMIN, "wrong again").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login_raw(ADMIN, PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_names_are_locked_too() {
    let app = App::new().await;
    for _ in 0..5 {
        assert_eq!(
            app.login_raw("nobody", "whatever").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app.login_raw("nobody", "whatever").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn me_needs_a_live_session() {
    let app = App::new().await;
    let s = app.admin().await;
    let r = app.call("GET", "/api/v1/auth/me", None, Some(&s)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["username"], ADMIN);

    assert_eq!(
        app.call("GET", "/api/v1/auth/me", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let forged = crate::support::Session {
        cookie: format!("__Host-rampart_session={}", "A".repeat(43)),
        ..s.clone()
    };
    assert_eq!(
        app.call("GET", "/api/v1/auth/me", None, Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Twelve hours later the session is over.
    app.clock.advance(SignedDuration::from_hours(12));
    let r = app.call("GET", "/api/v1/auth/me", None, Some(&s)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_credentials_are_not_valid_yet() {
    let app = App::new().await;
    let s = app.admin().await;
    let request = app
        .request("GET", "/api/v1/auth/me")
        .header(header::COOKIE, &s.cookie)
        .header(header::AUTHORIZATION, format!("Bearer {}", "A".repeat(43)))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_needs_csrf_ends_the_session_and_clears_the_cookie() {
    let app = App::new().await;
    let s = app.admin().await;
    let no_csrf = app
        .request("POST", "/api/v1/auth/logout")
        .header(header::COOKIE, &s.cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(no_csrf).await.status, StatusCode::FORBIDDEN);

    let r = app.call("POST", "/api/v1/auth/logout", None, Some(&s)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let cleared = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("__Host-rampart_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(
        app.call("GET", "/api/v1/auth/me", None, Some(&s)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let log = app.audit().await;
    assert_eq!(
        (log[0].action.as_str(), log[0].outcome),
        ("auth.logout", Outcome::Success)
    );
    assert_eq!(
        (log[1].action.as_str(), log[1].outcome),
        ("auth.logout", Outcome::Denied)
    );
    assert_eq!(log[1].actor, "admin:alice", "the refused caller is known");
}

#[tokio::test]
async fn wrong_csrf_token_is_403() {
    let app = App::new().await;
    let s = app.admin().await;
    let other = app.session_with_role("bob", Role::Admin).await;
    let mixed = crate::support::Session { csrf: other.csrf, ..s };
    let r = app
        .call(
            "POST",
            "/api/v1/orgs",
            Some(serde_json::json!({"name": "X"})),
            Some(&mixed),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["detail"], "missing or wrong X-CSRF-Token header");
    // Reads need no CSRF token.
    let read = app
        .request("GET", "/api/v1/orgs")
        .header(header::COOKIE, &mixed.cookie)
        .header(wire::CSRF, "x");
    assert_eq!(app.send(read.body(Body::empty()).unwrap()).await.status, StatusCode::OK);
}
