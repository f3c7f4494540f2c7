//! First-admin setup and the setup token file.

use axum::http::StatusCode;
use schemas::api::Outcome;
use serde_json::json;

use crate::support::{ADMIN, App, PASSWORD, mode};

#[tokio::test]
async fn token_file_is_0600_and_core_dir_0700() {
    let app = App::new().await;
    let path = app.state.setup_token_path().unwrap().to_owned();
    assert_eq!(path, app.data_dir().join("setup-token"));
    assert_eq!(core_api::setup_token_path(&app.data_dir()), path);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&app.data_dir().join("core")), 0o700);
    let token = app.setup_token();
    assert!(token.parse::<schemas::values::Token>().is_ok());
}

#[tokio::test]
async fn setup_is_201_then_410_and_removes_the_file() {
    let app = App::new().await;
    let token = app.setup_token();
    let r = app.setup().await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["username"], ADMIN);
    assert_eq!(r.body["role"], "admin");
    assert!(!app.data_dir().join("setup-token").exists());
    assert!(app.state.setup_token_path().is_none());

    let again = json!({"token": token, "username": "bob", "password": PASSWORD});
    let r = app.call("POST", "/api/v1/setup", Some(again), None).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.body["status"], 410);

    let log = app.audit().await;
    assert_eq!(log.len(), 2);
    assert_eq!((log[1].action.as_str(), log[1].outcome), ("setup", Outcome::Success));
    assert_eq!(log[1].actor, "anonymous");
    assert_eq!(log[1].target.as_deref(), Some("admin:alice"));
    assert_eq!((log[0].action.as_str(), log[0].outcome), ("setup", Outcome::Denied));
    assert_eq!(log[0].client_addr.as_deref(), Some(crate::support::CLIENT));
    assert!(log[0].request_id.is_some());

    // The new admin can sign in.
    app.login(ADMIN, PASSWORD).await;
}

#[tokio::test]
async fn wrong_token_is_401_and_changes_nothing() {
    let app = App::new().await;
    let body = json!({"token": "A".repeat(43), "username": ADMIN, "password": PASSWORD});
    let r = app.call("POST", "/api/v1/setup", Some(body), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["detail"], "wrong setup token");
    assert!(app.data_dir().join("setup-token").exists());
    let last = app.last_audit().await;
    assert_eq!((last.action.as_str(), last.outcome), ("setup", Outcome::Denied));
    // The right token still works.
    assert_eq!(app.setup().await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn invalid_body_is_the_same_400_the_edge_gives() {
    let app = App::new().await;
    let body = json!({"token": app.setup_token(), "username": ADMIN, "password": PASSWORD, "role": "admin"});
    let r = app.call("POST", "/api/v1/setup", Some(body), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"], json!([{"field": "role", "message": "unknown field"}]));
    assert_eq!(app.last_audit().await.outcome, Outcome::Denied);
}

#[tokio::test]
async fn a_restart_reuses_a_valid_token_and_replaces_a_bad_one() {
    let app = App::new().await;
    let token = app.setup_token();
    let dir = app.dir;
    drop(app.state);
    let app = App::open_in(dir).await;
    assert_eq!(app.setup_token(), token, "reused");

    let file = app.data_dir().join("setup-token");
    std::fs::write(&file, "B".repeat(43)).unwrap();
    let dir = app.dir;
    let app = App::open_in(dir).await;
    let fresh = app.setup_token();
    assert_ne!(fresh, token);
    assert_ne!(fresh, "B".repeat(43));
    assert_eq!(mode(&file), 0o600);
    assert_eq!(app.setup().await.status, StatusCode::CREATED);

    // Setup done: a restart issues nothing.
    let dir = app.dir;
    let app = App::open_in(dir).await;
    assert!(app.state.setup_token_path().is_none());
    assert!(!app.data_dir().join("setup-token").exists());
}
