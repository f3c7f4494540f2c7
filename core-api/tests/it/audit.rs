//! The audit log: one entry per state change, chained, verifiable offline.

use axum::http::StatusCode;
use schemas::api::{AuditVerify, Outcome};
use serde_json::json;

use crate::support::{ADMIN, App, PASSWORD};

/// Runs one of each kind of outcome and answers the log, oldest first.
async fn eventful(app: &App) -> Vec<(String, Outcome)> {
    let s = app.admin().await; // setup + login
    app.login_raw(ADMIN, "not the password").await; // 401
    let org = app
        .call("POST", "/api/v1/orgs", Some(json!({"name": "Acme"})), Some(&s))
        .await;
    app.call("POST", "/api/v1/orgs", Some(json!({"name": "acme"})), Some(&s))
        .await; // 409
    let missing = format!("/api/v1/orgs/{}", uuid::Uuid::now_v7());
    app.call("DELETE", &missing, None, Some(&s)).await; // 404
    let no_csrf = crate::support::Session {
        csrf: String::new(),
        ..s.clone()
    };
    app.call("POST", "/api/v1/orgs", Some(json!({"name": "Other"})), Some(&no_csrf))
        .await; // 403
    app.call("POST", "/api/v1/orgs", Some(json!({"name": "Other"})), None)
        .await; // 401
    let token = json!({"token": "A".repeat(43), "username": "x-admin", "password": PASSWORD});
    app.call("POST", "/api/v1/setup", Some(token), None).await; // 410
    let path = format!("/api/v1/orgs/{}", org.body["id"].as_str().unwrap());
    app.call("PATCH", &path, Some(json!({"name": "Acme 2"})), Some(&s))
        .await;
    // Reads are not audited.
    app.call("GET", "/api/v1/orgs", None, Some(&s)).await;
    app.call("GET", "/api/v1/auth/me", None, Some(&s)).await;

    let mut log: Vec<(String, Outcome)> = app.audit().await.into_iter().map(|e| (e.action, e.outcome)).collect();
    log.reverse();
    log
}

#[tokio::test]
async fn every_state_change_writes_exactly_one_entry() {
    let app = App::new().await;
    let log = eventful(&app).await;
    let expected: Vec<(String, Outcome)> = [
        ("setup", Outcome::Success),
        ("auth.login", Outcome::Success),
        ("auth.login", Outcome::Denied),
        ("org.create", Outcome::Success),
        ("org.create", Outcome::Denied),
        ("org.delete", Outcome::Denied),
        ("org.create", Outcome::Denied),
        ("org.create", Outcome::Denied),
        ("setup", Outcome::Denied),
        ("org.update", Outcome::Success),
    ]
    .into_iter()
    .map(|(a, o)| (a.to_owned(), o))
    .collect();
    assert_eq!(log, expected);
}

#[tokio::test]
async fn the_api_lists_newest_first_with_filters_and_cursor() {
    let app = App::new().await;
    eventful(&app).await;
    let s = app.login(ADMIN, PASSWORD).await;
    let r = app.call("GET", "/api/v1/audit?limit=3", None, Some(&s)).await;
    assert_eq!(r.status, StatusCode::OK);
    let page: schemas::api::AuditPage = serde_json::from_value(r.body).unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.items[0].id > page.items[1].id);
    assert_eq!(page.items[0].prev_hash, page.items[1].hash);
    let cursor = page.next_cursor.unwrap();
    let r = app
        .call("GET", &format!("/api/v1/audit?limit=3&cursor={cursor}"), None, Some(&s))
        .await;
    let next: schemas::api::AuditPage = serde_json::from_value(r.body).unwrap();
    assert_eq!(next.items[0].id, page.items[2].id - 1);

    let r = app.call("GET", "/api/v1/audit?action=org.create", None, Some(&s)).await;
    let items = r.body["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|e| e["action"] == "org.create"));
    let r = app.call("GET", "/api/v1/audit?actor=anonymous", None, Some(&s)).await;
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "anonymous")
    );

    app.clock.advance(jiff::SignedDuration::from_secs(60));
    let since = app.now().to_string();
    app.call("POST", "/api/v1/orgs", Some(json!({"name": "Later"})), Some(&s))
        .await;
    let r = app
        .call("GET", &format!("/api/v1/audit?since={since}"), None, Some(&s))
        .await;
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["action"], "org.create");
}

#[tokio::test]
async fn verify_chain_finds_a_tampered_row() {
    let app = App::new().await;
    eventful(&app).await;
    let entries = app.audit().await.len() as u64;
    let clean = core_api::verify_chain(&app.db_path()).unwrap();
    assert_eq!(
        clean,
        AuditVerify {
            ok: true,
            entries,
            first_bad_id: None
        }
    );
    assert_eq!(app.state.store().verify_chain().await.unwrap(), clean);

    // The table refuses changes from ordinary SQL...
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let refused = conn.execute("UPDATE audit SET actor = 'admin:mallory' WHERE id = 4", []);
    assert!(refused.is_err(), "append-only trigger");
    // ...but someone holding the file can drop the trigger. The chain tells.
    conn.execute_batch("DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'admin:mallory' WHERE id = 4;")
        .unwrap();
    drop(conn);
    let report = core_api::verify_chain(&app.db_path()).unwrap();
    assert_eq!(
        report,
        AuditVerify {
            ok: false,
            entries,
            first_bad_id: Some(4)
        }
    );
}

#[tokio::test]
async fn verify_chain_finds_a_deleted_row() {
    let app = App::new().await;
    eventful(&app).await;
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2;")
        .unwrap();
    drop(conn);
    let report = core_api::verify_chain(&app.db_path()).unwrap();
    assert_eq!(report.first_bad_id, Some(3));
}

#[tokio::test]
async fn verify_chain_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    assert!(core_api::verify_chain(&missing).is_err());
    assert!(!missing.exists(), "the verifier never creates a database");
}
