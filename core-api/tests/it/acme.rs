//! ACME state in the core: the admin settings routes, and the internal
//! edge↔core endpoints (origin proof only, secrets sealed at rest).

use axum::body::Body;
use axum::http::StatusCode;
use schemas::values::Role;
use serde_json::json;

use crate::support::App;

#[tokio::test]
async fn settings_are_admin_only_validated_and_audited() {
    let app = App::new().await;
    let admin = app.admin().await;
    let r = app.call("GET", "/api/v1/settings", None, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["acme_domains"], json!([]));
    assert_eq!(r.body["acme_challenge"], json!("http-01"));
    assert_eq!(r.body["certificate"]["names"], json!([]));

    // ACME off: a renewal request is refused with the reason.
    let r = app
        .call("POST", "/api/v1/settings/acme/renew", None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let patch =
        json!({"acme_domains": ["VPN.Example"], "acme_directory": "letsencrypt-staging", "acme_challenge": "dns-01"});
    let r = app.call("PATCH", "/api/v1/settings", Some(patch), Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["acme_domains"], json!(["vpn.example"]));
    assert_eq!(r.body["acme_directory"], json!(schemas::acme::LETSENCRYPT_STAGING));
    assert_eq!(app.last_audit().await.action, "setting.update");

    for bad in [
        json!({"acme_domains": ["bad_name.example"]}),
        json!({"acme_domains": ["*.example.com"]}),
        json!({"acme_directory": "http://ca.example/dir"}),
        json!({"acme_challenge": "tls-sni-01"}),
        json!({}),
    ] {
        let r = app
            .call("PATCH", "/api/v1/settings", Some(bad.clone()), Some(&admin))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    let r = app
        .call("POST", "/api/v1/settings/acme/renew", None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(app.last_audit().await.action, "setting.acme_renew");

    let operator = app.session_with_role("olga", Role::Operator).await;
    for (method, path) in [("GET", "/api/v1/settings"), ("POST", "/api/v1/settings/acme/renew")] {
        let r = app.call(method, path, None, Some(&operator)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
}

#[tokio::test]
async fn internal_endpoints_need_the_proof_and_seal_secrets() {
    let app = App::new().await;
    let r = app
        .send(
            axum::http::Request::get("/internal/acme/state")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Renewal flag: set by `rampart acme renew`, taken by exactly one edge.
    let r = app.call("POST", "/internal/acme/renew", None, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = app.call("GET", "/internal/acme/state", None, None).await;
    assert_eq!(r.body["renew_requested"], json!(true));
    assert_eq!(r.body["config"], json!(null));
    assert_eq!(
        app.call("POST", "/internal/acme/renew/take", None, None).await.body,
        json!(true)
    );
    assert_eq!(
        app.call("POST", "/internal/acme/renew/take", None, None).await.body,
        json!(false)
    );

    // Challenge answers round-trip; keys are sealed at rest.
    let key_pem = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
    let answer = json!({"value": "CERT", "key_pem": key_pem, "kind": "tls-alpn-01"});
    let path = "/internal/acme/challenges/tls-alpn-01/vpn.example";
    assert_eq!(
        app.call("PUT", path, Some(answer), None).await.status,
        StatusCode::NO_CONTENT
    );
    let r = app.call("GET", path, None, None).await;
    assert_eq!(r.body["key_pem"], json!(key_pem));
    let account = json!({"directory": "https://ca.example/dir", "credentials": "{\"key_pkcs8\":\"c2VjcmV0\"}"});
    let r = app.call("PUT", "/internal/acme/account", Some(account), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            "GET",
            "/internal/acme/account?directory=https%3A%2F%2Fca.example%2Fdir",
            None,
            None,
        )
        .await;
    assert_eq!(r.body["credentials"], json!("{\"key_pkcs8\":\"c2VjcmV0\"}"));
    for file in ["rampart.db", "rampart.db-wal"] {
        let bytes = std::fs::read(app.db_path().with_file_name(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("PRIVATE KEY") && !text.contains("key_pkcs8"), "{file}");
    }
    assert_eq!(
        app.call("DELETE", path, None, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.call("GET", path, None, None).await.status, StatusCode::NOT_FOUND);
    // A key that is not a token or a name is not a path the core answers.
    let r = app
        .call("GET", "/internal/acme/challenges/http-01/a%2Fb", None, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn one_edge_at_a_time_holds_the_ordering_lease() {
    let app = App::new().await;
    let take = |holder: &'static str, seconds: u32| {
        let app = &app;
        async move {
            app.call(
                "POST",
                "/internal/acme/lease",
                Some(json!({"holder": holder, "seconds": seconds})),
                None,
            )
            .await
            .body
        }
    };
    assert_eq!(take("edge-a", 600).await, json!(true));
    assert_eq!(take("edge-b", 600).await, json!(false), "held by another edge");
    assert_eq!(take("edge-a", 600).await, json!(true), "the holder may renew its lease");
    let r = app
        .call(
            "POST",
            "/internal/acme/lease/release",
            Some(json!({"holder": "edge-a"})),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(take("edge-b", 600).await, json!(true));
    // An expired lease (a crashed holder) is free again.
    app.clock.advance(jiff::SignedDuration::from_secs(601));
    assert_eq!(take("edge-a", 600).await, json!(true));
}
