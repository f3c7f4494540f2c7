//! Organizations: CRUD, conflicts, pagination, search.

use axum::http::StatusCode;
use schemas::api::Outcome;
use serde_json::json;

use crate::support::App;

#[tokio::test]
async fn create_read_rename_delete() {
    let app = App::new().await;
    let s = app.admin().await;
    let r = app
        .call("POST", "/api/v1/orgs", Some(json!({"name": "Acme"})), Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let org: schemas::api::Org = serde_json::from_value(r.body.clone()).unwrap();
    assert_eq!(org.id.0.get_version_num(), 7, "v7 ids");
    let path = format!("/api/v1/orgs/{}", org.id);
    let last = app.last_audit().await;
    assert_eq!((last.action.as_str(), last.outcome), ("org.create", Outcome::Success));
    assert_eq!(last.target, Some(format!("org:{}", org.id)));
    assert_eq!(last.actor, "admin:alice");

    let r = app.call("GET", &path, None, Some(&s)).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!(org)));

    let r = app
        .call("PATCH", &path, Some(json!({"name": "Acme Corp"})), Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Acme Corp");
    assert_eq!(r.body["created_at"], json!(org.created_at));
    assert_eq!(app.last_audit().await.action, "org.update");

    let r = app.call("DELETE", &path, None, Some(&s)).await;
    assert_eq!((r.status, r.body), (StatusCode::NO_CONTENT, serde_json::Value::Null));
    assert_eq!(app.last_audit().await.action, "org.delete");

    for (method, body) in [("GET", None), ("PATCH", Some(json!({"name": "Z"}))), ("DELETE", None)] {
        let r = app.call(method, &path, body, Some(&s)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(r.body["status"], 404);
    }
    let last = app.last_audit().await;
    assert_eq!((last.action.as_str(), last.outcome), ("org.delete", Outcome::Denied));
    assert_eq!(last.target, Some(format!("org:{}", org.id)));
}

#[tokio::test]
async fn names_are_unique_ignoring_case() {
    let app = App::new().await;
    let s = app.admin().await;
    app.call("POST", "/api/v1/orgs", Some(json!({"name": "Ærø"})), Some(&s))
        .await;
    let globex = app
        .call("POST", "/api/v1/orgs", Some(json!({"name": "Globex"})), Some(&s))
        .await;
    let r = app
        .call("POST", "/api/v1/orgs", Some(json!({"name": "æRØ"})), Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.body["errors"],
        json!([{"field": "name", "message": "is already taken"}])
    );
    let last = app.last_audit().await;
    assert_eq!((last.action.as_str(), last.outcome), ("org.create", Outcome::Denied));
    assert_eq!(last.detail.as_deref(), Some("name is already taken"));

    let path = format!("/api/v1/orgs/{}", globex.body["id"].as_str().unwrap());
    let r = app.call("PATCH", &path, Some(json!({"name": "ærø"})), Some(&s)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Renaming to itself in another case is fine.
    let r = app
        .call("PATCH", &path, Some(json!({"name": "GLOBEX"})), Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn pages_follow_creation_order_with_cursors() {
    let app = App::new().await;
    let s = app.admin().await;
    let names: Vec<String> = (0..7).map(|i| format!("org {i}")).collect();
    for name in &names {
        let r = app
            .call("POST", "/api/v1/orgs", Some(json!({"name": name})), Some(&s))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/orgs?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let r = app.call("GET", &path, None, Some(&s)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        pages += 1;
        for item in r.body["items"].as_array().unwrap() {
            seen.push(item["name"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/orgs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, names);

    let r = app.call("GET", "/api/v1/orgs", None, Some(&s)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 7);
    assert_eq!(r.body["next_cursor"], serde_json::Value::Null);

    let r = app
        .call("GET", "/api/v1/orgs?cursor=bm90LWEtdXVpZA", None, Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"][0]["field"], "query.cursor");
    let r = app.call("GET", "/api/v1/orgs?limit=0", None, Some(&s)).await;
    assert_eq!(r.body["errors"][0]["field"], "query.limit");
    let r = app.call("GET", "/api/v1/orgs?colour=red", None, Some(&s)).await;
    assert_eq!(r.body["errors"][0]["field"], "query.colour");
}

#[tokio::test]
async fn search_is_a_case_insensitive_literal_substring() {
    let app = App::new().await;
    let s = app.admin().await;
    for name in ["Acme", "ACME Labs", "Globex", "50% Off", "500 Club", "a_b", "axb"] {
        app.call("POST", "/api/v1/orgs", Some(json!({"name": name})), Some(&s))
            .await;
    }
    let search = |q: &'static str| {
        let app = &app;
        let s = &s;
        async move {
            let r = app
                .call("GET", &format!("/api/v1/orgs?search={q}"), None, Some(s))
                .await;
            assert_eq!(r.status, StatusCode::OK);
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("acme").await, ["Acme", "ACME Labs"]);
    assert_eq!(search("50%25").await, ["50% Off"], "% is literal");
    assert_eq!(search("a_b").await, ["a_b"], "_ is literal");
    assert!(search("zzz").await.is_empty());
}

#[tokio::test]
async fn roles_and_credentials_are_enforced() {
    let app = App::new().await;
    let admin = app.admin().await;
    let auditor = app.session_with_role("audrey", schemas::values::Role::Auditor).await;
    let operator = app.session_with_role("otto", schemas::values::Role::Operator).await;

    let body = || Some(json!({"name": "Initech"}));
    let r = app.call("POST", "/api/v1/orgs", body(), Some(&auditor)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let last = app.last_audit().await;
    assert_eq!((last.actor.as_str(), last.outcome), ("admin:audrey", Outcome::Denied));
    assert_eq!(
        app.call("GET", "/api/v1/orgs", None, Some(&auditor)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("POST", "/api/v1/orgs", body(), Some(&operator)).await.status,
        StatusCode::CREATED
    );

    // No credential at all: 401, and audited as anonymous.
    let r = app.call("POST", "/api/v1/orgs", body(), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let last = app.last_audit().await;
    assert_eq!(
        (last.actor.as_str(), last.action.as_str(), last.outcome),
        ("anonymous", "org.create", Outcome::Denied)
    );

    // The audit log is for admins and auditors.
    assert_eq!(
        app.call("GET", "/api/v1/audit", None, Some(&operator)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call("GET", "/api/v1/audit", None, Some(&auditor)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", "/api/v1/audit", None, Some(&admin)).await.status,
        StatusCode::OK
    );
}
