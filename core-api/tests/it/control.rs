//! Admins, TOTP and API tokens in the core, with the manual clock: expiry,
//! the TOTP window and replay floor over time, the throttle for wrong codes,
//! and what the database holds.

use axum::body::Body;
use axum::http::{StatusCode, header};
use core_api::totp;
use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::support::{ADMIN, App, PASSWORD, Reply};

async fn bearer(app: &App, method: &str, path: &str, token: &str) -> Reply {
    let request = app
        .request(method, path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

async fn login_code(app: &App, code: Option<&str>) -> Reply {
    let mut body = json!({"username": ADMIN, "password": PASSWORD});
    if let Some(code) = code {
        body["totp_code"] = json!(code);
    }
    app.call("POST", "/api/v1/auth/login", Some(body), None).await
}

#[tokio::test]
async fn tokens_expire_and_follow_their_creator() {
    let app = App::new().await;
    let s = app.admin().await;
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "short", "role": "admin", "expires_in": 60})),
            Some(&s),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        bearer(&app, "GET", "/api/v1/admins", &token).await.status,
        StatusCode::OK
    );
    // A token needs no CSRF header for a state change.
    let r = bearer(&app, "POST", "/api/v1/auth/logout", &token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.clock.advance(SignedDuration::from_secs(61));
    assert_eq!(
        bearer(&app, "GET", "/api/v1/admins", &token).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A demoted creator's admin token stops; its operator token goes on.
    let r = app
        .call(
            "POST",
            "/api/v1/admins",
            Some(json!({"username": "bob", "password": PASSWORD, "role": "admin"})),
            Some(&s),
        )
        .await;
    let bob = r.body["id"].as_str().unwrap().to_owned();
    let b = app.login("bob", PASSWORD).await;
    let mint = |role: &'static str| {
        app.call(
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": role, "role": role})),
            Some(&b),
        )
    };
    let admin_token = mint("admin").await.body["token"].as_str().unwrap().to_owned();
    let op_token = mint("operator").await.body["token"].as_str().unwrap().to_owned();
    let r = app
        .call(
            "PATCH",
            &format!("/api/v1/admins/{bob}"),
            Some(json!({"role": "operator"})),
            Some(&s),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        bearer(&app, "GET", "/api/v1/orgs", &admin_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bearer(&app, "GET", "/api/v1/orgs", &op_token).await.status,
        StatusCode::OK
    );

    // Only hashes are stored.
    let db = std::fs::read(app.db_path()).unwrap();
    assert!(!db.windows(op_token.len()).any(|w| w == op_token.as_bytes()));
}

#[tokio::test]
async fn totp_window_replay_floor_and_throttle_over_time() {
    let app = App::new().await;
    let s = app.admin().await;
    let me: Value = app.call("GET", "/api/v1/auth/me", None, Some(&s)).await.body;
    let id = me["id"].as_str().unwrap().to_owned();
    let r = app
        .call("POST", &format!("/api/v1/admins/{id}/totp"), None, Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let seed = totp::from_base32(r.body["secret"].as_str().unwrap()).unwrap();

    // The seed is stored sealed for this admin only.
    let sealed: String = rusqlite_read(&app, &id);
    assert!(sealed.starts_with("v1."));
    let opened = app
        .state
        .host_key()
        .open(&sealed, &totp::seal_context(id.parse().unwrap()))
        .unwrap();
    assert_eq!(opened.as_slice(), seed.as_slice());

    let step = totp::step_of(app.now());
    let r = app
        .call(
            "POST",
            &format!("/api/v1/admins/{id}/totp/confirm"),
            Some(json!({"code": totp::code_at(&seed, step)})),
            Some(&s),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let r = login_code(&app, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["errors"][0]["field"], "totp_code");
    // Same step as the confirmation: a replay.
    let code = totp::code_at(&seed, step);
    assert_eq!(login_code(&app, Some(&code)).await.status, StatusCode::UNAUTHORIZED);
    let next = totp::code_at(&seed, step + 1);
    assert_eq!(login_code(&app, Some(&next)).await.status, StatusCode::OK);

    // Half a minute on, the step just used is still in the window but refused.
    app.clock.advance(SignedDuration::from_secs(30));
    assert_eq!(login_code(&app, Some(&next)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_code(&app, Some(&totp::code_at(&seed, step + 2))).await.status,
        StatusCode::OK
    );
    // Two steps ahead is outside the window.
    assert_eq!(
        login_code(&app, Some(&totp::code_at(&seed, step + 4))).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Wrong codes count towards the lock like wrong passwords.
    for _ in 0..4 {
        assert_eq!(login_code(&app, Some("000000")).await.status, StatusCode::UNAUTHORIZED);
    }
    let r = login_code(&app, Some(&totp::code_at(&seed, step + 3))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
}

/// The sealed seed column, read straight from the database.
fn rusqlite_read(app: &App, id: &str) -> String {
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.query_row("SELECT totp_pending_sealed FROM admins WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .unwrap()
}
