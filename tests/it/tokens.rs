//! API tokens through the edge: shown once, stored hashed, used without
//! CSRF, capped at the creator's role, revoked at once.

use harness::Rampart;
use harness::api::{Bearer, PASSWORD, Session};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_authenticate_until_revoked_and_never_exceed_their_creator() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;

    let (status, created) = s
        .send(
            Method::POST,
            "/api/v1/tokens",
            json!({"name": "ci", "role": "operator", "expires_in": 3600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("rpt_") && token.len() == 47, "{token}");
    assert_eq!(created["role"], "operator");
    assert!(created["expires_at"].is_string());
    let id = created["id"].as_str().unwrap().to_owned();

    // Listed without the secret.
    let (_, list) = s.get("/api/v1/tokens").await;
    let listed = list["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("token").is_none());
    assert!(!list.to_string().contains(&token));

    // The database holds only its SHA-256.
    let db = std::fs::read(rampart.data_dir.join("core/rampart.db")).unwrap_or_default();
    let wal = std::fs::read(rampart.data_dir.join("core/rampart.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    }

    // Used as a bearer: works without a CSRF header, acts with its role.
    let ci = Bearer::new(&rampart, &token);
    let (status, me) = ci.get("/api/v1/auth/me").await;
    assert_eq!((status, &me["role"]), (StatusCode::OK, &json!("operator")));
    let (status, org) = ci.send(Method::POST, "/api/v1/orgs", json!({"name": "ByToken"})).await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert_eq!(ci.get("/api/v1/admins").await.0, StatusCode::FORBIDDEN);
    // An operator token cannot mint an admin token, only its own role.
    let (status, _) = ci
        .send(Method::POST, "/api/v1/tokens", json!({"name": "up", "role": "admin"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = ci
        .send(
            Method::POST,
            "/api/v1/tokens",
            json!({"name": "side", "role": "auditor"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The audit log names the token as the actor.
    let (_, audit) = s.get("/api/v1/audit?action=org.create").await;
    assert_eq!(audit["items"][0]["actor"], format!("token:{id}"));

    // Operators neither make nor list tokens (API.md: "not admins, tokens or settings").
    s.create_admin("opal", "operator").await;
    let op = Session::login(&rampart, "opal", PASSWORD).await;
    let (status, _) = op
        .send(
            Method::POST,
            "/api/v1/tokens",
            json!({"name": "up", "role": "operator"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(op.get("/api/v1/tokens").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        op.call(Method::DELETE, &format!("/api/v1/tokens/{id}")).await,
        StatusCode::FORBIDDEN
    );

    // Revoked: refused at once.
    assert_eq!(
        s.call(Method::DELETE, &format!("/api/v1/tokens/{id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(ci.get("/api/v1/orgs").await.0, StatusCode::UNAUTHORIZED);
    // A made-up token of the right shape is refused too.
    let fake = Bearer::new(&rampart, &format!("rpt_{}", "A".repeat(43)));
    assert_eq!(fake.get("/api/v1/orgs").await.0, StatusCode::UNAUTHORIZED);
}
