//! Only requests that carry the edge's proof of origin are answered.

use axum::body::Body;
use axum::http::StatusCode;
use schemas::wire;

use crate::support::App;

#[tokio::test]
async fn missing_or_wrong_proof_is_401_everywhere() {
    let app = App::new().await;
    for path in ["/healthz", "/readyz", "/api/v1/auth/me", "/api/v1/orgs", "/nope"] {
        let missing = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let r = app.send(missing).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(r.body["detail"], "request did not come through the edge");

        let wrong = axum::http::Request::get(path)
            .header(wire::ORIGIN_PROOF, core_api::OriginSecret::random().to_hex())
            .header(wire::REQUEST_ID, "req-1")
            .body(Body::empty())
            .unwrap();
        let r = app.send(wrong).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.body["request_id"], "req-1", "problems carry the request id");
    }
    // A request without the proof is not audited: it is not a request of the API.
    let body = Body::from(r#"{"name":"x"}"#);
    let r = app
        .send(axum::http::Request::post("/api/v1/orgs").body(body).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(app.audit().await.is_empty());
}

#[tokio::test]
async fn health_ready_and_openapi_answer_with_the_proof() {
    let app = App::new().await;
    let r = app.call("GET", "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, serde_json::json!({"status": "ok"}));
    let r = app.call("GET", "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ready");
    assert_eq!(r.body["core"], true);
    let r = app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, schemas::openapi::document());
}

#[tokio::test]
async fn unknown_routes_are_problems_with_the_request_id() {
    let app = App::new().await;
    let request = axum::http::Request::get("/api/v1/nothing")
        .header(wire::ORIGIN_PROOF, app.secret.to_hex())
        .header(wire::REQUEST_ID, "abc")
        .body(Body::empty())
        .unwrap();
    let r = app.send(request).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["request_id"], "abc");
    let r = app.call("PUT", "/api/v1/orgs", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET, POST");
    // A state-changing request is audited even when it matches nothing.
    let last = app.last_audit().await;
    assert_eq!(
        (last.action.as_str(), last.outcome),
        ("request.unmatched", schemas::api::Outcome::Denied)
    );
}
