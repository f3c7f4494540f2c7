//! The operator's path: setup → login → organizations → audit, and a restart
//! that keeps everything.

use std::os::unix::fs::PermissionsExt;

use harness::Rampart;
use harness::api::{self, ADMIN, PASSWORD, Session};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_login_orgs_audit_through_the_edge() {
    let rampart = Rampart::start().await;

    // First start: a 0600 token file, printed with a URL that uses it.
    let token_file = rampart.data_dir.join("setup-token");
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = rampart.setup_token();
    assert!(
        rampart.log().contains(&format!("/setup#token={token}")),
        "banner missing:\n{}",
        rampart.log()
    );
    assert!(rampart.log().contains("SELF-SIGNED"), "self-signed warning missing");

    // Setup once; the token is then spent.
    let r = api::setup(&rampart).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let admin: serde_json::Value = r.json().await.unwrap();
    assert_eq!(admin["username"], ADMIN);
    assert_eq!(admin["role"], "admin");
    let again = rampart
        .client()
        .post(rampart.url("/api/v1/setup"))
        .json(&json!({"token": token, "username": "other", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::GONE);

    // Login sets a hardened cookie.
    let r = api::login_raw(&rampart, ADMIN, PASSWORD).await;
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    let s = Session::admin(&rampart).await;
    let (status, me) = s.get("/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], ADMIN);

    // Organizations: create, read, list, rename, conflict, delete.
    let (status, acme) = s.send(Method::POST, "/api/v1/orgs", json!({"name": "Acme"})).await;
    assert_eq!(status, StatusCode::CREATED, "{acme}");
    let id = acme["id"].as_str().unwrap().to_owned();
    let (status, _) = s.send(Method::POST, "/api/v1/orgs", json!({"name": "Globex"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, dup) = s.send(Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");
    assert_eq!(dup["errors"][0]["field"], "name");

    let (status, got) = s.get(&format!("/api/v1/orgs/{id}")).await;
    assert_eq!((status, &got["name"]), (StatusCode::OK, &json!("Acme")));
    let (status, page) = s.get("/api/v1/orgs?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = s.get(&format!("/api/v1/orgs?limit=1&cursor={cursor}")).await;
    assert_eq!(page2["items"][0]["name"], "Globex");
    let (_, found) = s.get("/api/v1/orgs?search=glob").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);

    let (status, renamed) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{id}"),
            json!({"name": "Acme Corp"}),
        )
        .await;
    assert_eq!((status, &renamed["name"]), (StatusCode::OK, &json!("Acme Corp")));
    assert_eq!(
        s.call(Method::DELETE, &format!("/api/v1/orgs/{id}")).await,
        StatusCode::NO_CONTENT
    );
    let (status, gone) = s.get(&format!("/api/v1/orgs/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gone["status"], 404);

    // A state change without the CSRF header is refused, and audited.
    let r = rampart
        .client()
        .post(rampart.url("/api/v1/orgs"))
        .header("cookie", s.cookie())
        .json(&json!({"name": "NoCsrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The audit log has every step, newest first, with who, where and the request id.
    let (status, audit) = s.get("/api/v1/audit?limit=50").await;
    assert_eq!(status, StatusCode::OK);
    let items = audit["items"].as_array().unwrap();
    let actions: Vec<(&str, &str)> = items
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    for expected in [
        ("setup", "success"),
        ("setup", "denied"),
        ("auth.login", "success"),
        ("org.create", "success"),
        ("org.create", "denied"),
        ("org.update", "success"),
        ("org.delete", "success"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} not in {actions:?}");
    }
    assert_eq!(items[0]["action"], "org.create", "newest first: {actions:?}");
    assert_eq!(items[0]["outcome"], "denied");
    let newest = &items[0];
    assert!(newest["client_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(newest["request_id"].as_str().unwrap().len(), 36);
    assert_eq!(items[0]["prev_hash"], items[1]["hash"], "entries are chained");

    // Filters.
    let (_, creates) = s.get("/api/v1/audit?action=org.create").await;
    assert!(
        creates["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "org.create")
    );

    // Logout ends the session on the server, not just in the browser.
    assert_eq!(
        s.call(Method::POST, "/api/v1/auth/logout").await,
        StatusCode::NO_CONTENT
    );
    let (status, _) = s.get("/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_database_certificate_and_secret() {
    let mut rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let (status, _) = s.send(Method::POST, "/api/v1/orgs", json!({"name": "Kept"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let cert = std::fs::read(rampart.data_dir.join("edge/tls/cert.pem")).unwrap();
    let secret = std::fs::read(rampart.data_dir.join("origin-secret")).unwrap();
    assert!(rampart.stop().success());

    let again = Rampart::restart_on(&rampart.data_dir, rampart.ports, rampart.log_path()).await;
    assert_eq!(std::fs::read(again.data_dir.join("edge/tls/cert.pem")).unwrap(), cert);
    assert_eq!(std::fs::read(again.data_dir.join("origin-secret")).unwrap(), secret);
    assert!(!again.data_dir.join("setup-token").exists(), "setup stays done");
    let s = Session::login(&again, ADMIN, PASSWORD).await;
    let (_, orgs) = s.get("/api/v1/orgs").await;
    assert_eq!(orgs["items"][0]["name"], "Kept");
    // Still not settable a second time.
    let r = again
        .client()
        .post(again.url("/api/v1/setup"))
        .json(&json!({"token": "A".repeat(43), "username": "other", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
}
