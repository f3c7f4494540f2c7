//! Users, devices, servers and key links in the core: roles, audit entries,
//! allocation refusals rolled back whole, cascades that free addresses,
//! link expiry on the clock.

use axum::http::StatusCode;
use jiff::SignedDuration;
use schemas::api::Outcome;
use schemas::values::Role;
use serde_json::{Value, json};

use crate::support::{App, Session};

async fn create(app: &App, s: &Session, path: &str, body: Value) -> String {
    let r = app.call("POST", path, Some(body), Some(s)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

fn address(config: &Value) -> String {
    let text = config.as_str().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Address = "))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn roles_decide_who_changes_and_who_sees_profiles() {
    let app = App::new().await;
    let admin = app.admin().await;
    let server = create(
        &app,
        &admin,
        "/api/v1/servers",
        json!({"name": "hq", "network": "198.18.1.0/24", "port": 51820}),
    )
    .await;
    let auditor = app.session_with_role("audrey", Role::Auditor).await;
    let operator = app.session_with_role("oscar", Role::Operator).await;

    let r = app.call("GET", "/api/v1/servers", None, Some(&auditor)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"][0]["id"], server);
    let r = app
        .call("POST", &format!("/api/v1/servers/{server}/start"), None, Some(&auditor))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let last = app.last_audit().await;
    assert_eq!(
        (last.action.as_str(), last.outcome, last.actor.as_str()),
        ("server.start", Outcome::Denied, "admin:audrey")
    );
    // Profiles carry private keys: not for auditors.
    let r = app
        .call(
            "GET",
            &format!("/api/v1/devices/{server}/config?server={server}"),
            None,
            Some(&auditor),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = app
        .call(
            "POST",
            &format!("/api/v1/servers/{server}/start"),
            None,
            Some(&operator),
        )
        .await;
    assert_eq!((r.status, &r.body["state"]), (StatusCode::OK, &json!("running")));
    let last = app.last_audit().await;
    assert_eq!(
        (last.action.as_str(), last.target),
        ("server.start", Some(format!("server:{server}")))
    );
}

#[tokio::test]
async fn an_exhausted_pool_refuses_the_attachment_whole() {
    let app = App::new().await;
    let s = app.admin().await;
    let org = create(&app, &s, "/api/v1/orgs", json!({"name": "Acme"})).await;
    let user = create(&app, &s, &format!("/api/v1/orgs/{org}/users"), json!({"name": "U"})).await;
    for name in ["a", "b"] {
        create(
            &app,
            &s,
            &format!("/api/v1/users/{user}/devices"),
            json!({"name": name}),
        )
        .await;
    }
    // A /30 holds one device.
    let server = create(
        &app,
        &s,
        "/api/v1/servers",
        json!({"name": "tiny", "network": "192.0.2.0/30", "port": 1}),
    )
    .await;
    let r = app
        .call("PUT", &format!("/api/v1/servers/{server}/orgs/{org}"), None, Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "network");
    assert!(r.body["detail"].as_str().unwrap().contains("exhausted"));
    // Nothing of it stayed: not attached, and the audit says denied.
    let r = app
        .call("GET", &format!("/api/v1/servers/{server}"), None, Some(&s))
        .await;
    assert_eq!(r.body["orgs"], json!([]));
    let last = app.last_audit().await;
    assert_eq!((last.action.as_str(), last.outcome), ("server.attach", Outcome::Denied));

    // Another server may not take its port or overlap its network.
    for (body, field) in [
        (json!({"name": "b", "network": "198.51.100.0/24", "port": 1}), "port"),
        (json!({"name": "c", "network": "192.0.0.0/16", "port": 2}), "network"),
    ] {
        let r = app.call("POST", "/api/v1/servers", Some(body), Some(&s)).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    let r = app
        .call("DELETE", &format!("/api/v1/servers/{server}"), None, Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call("GET", &format!("/api/v1/servers/{server}"), None, Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_an_org_or_user_frees_addresses() {
    let app = App::new().await;
    let s = app.admin().await;
    let server = create(
        &app,
        &s,
        "/api/v1/servers",
        json!({"name": "hq", "network": "198.18.2.0/24", "port": 51820}),
    )
    .await;
    let old = create(&app, &s, "/api/v1/orgs", json!({"name": "Old"})).await;
    let user = create(&app, &s, &format!("/api/v1/orgs/{old}/users"), json!({"name": "U"})).await;
    let r = app
        .call("PUT", &format!("/api/v1/servers/{server}/orgs/{old}"), None, Some(&s))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let device = create(&app, &s, &format!("/api/v1/users/{user}/devices"), json!({"name": "d"})).await;
    let r = app
        .call(
            "GET",
            &format!("/api/v1/devices/{device}/config?server={server}"),
            None,
            Some(&s),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers["content-type"], "text/plain; charset=utf-8",
        "the content type the route table declares"
    );
    assert_eq!(address(&r.body), "198.18.2.2/32");
    let last = app.last_audit().await;
    assert_eq!(
        (last.action.as_str(), last.target, last.detail),
        (
            "device.config",
            Some(format!("device:{device}")),
            Some(format!("server:{server}"))
        )
    );

    let r = app.call("DELETE", &format!("/api/v1/orgs/{old}"), None, Some(&s)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .call("GET", &format!("/api/v1/servers/{server}"), None, Some(&s))
        .await;
    assert_eq!(r.body["orgs"], json!([]));
    let r = app.call("GET", &format!("/api/v1/users/{user}"), None, Some(&s)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let new = create(&app, &s, "/api/v1/orgs", json!({"name": "New"})).await;
    let user = create(&app, &s, &format!("/api/v1/orgs/{new}/users"), json!({"name": "V"})).await;
    let device = create(&app, &s, &format!("/api/v1/users/{user}/devices"), json!({"name": "e"})).await;
    app.call("PUT", &format!("/api/v1/servers/{server}/orgs/{new}"), None, Some(&s))
        .await;
    let r = app
        .call(
            "GET",
            &format!("/api/v1/devices/{device}/config?server={server}"),
            None,
            Some(&s),
        )
        .await;
    assert_eq!(address(&r.body), "198.18.2.2/32", "the freed address is reused");

    // Users page with a cursor.
    create(&app, &s, &format!("/api/v1/orgs/{new}/users"), json!({"name": "W"})).await;
    let r = app
        .call("GET", &format!("/api/v1/orgs/{new}/users?limit=1"), None, Some(&s))
        .await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = app
        .call(
            "GET",
            &format!("/api/v1/orgs/{new}/users?limit=1&cursor={cursor}"),
            None,
            Some(&s),
        )
        .await;
    assert_eq!(r.body["items"][0]["name"], "W");
    assert_eq!(r.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_key_link_expires_on_the_clock() {
    let app = App::new().await;
    let s = app.admin().await;
    let org = create(&app, &s, "/api/v1/orgs", json!({"name": "Acme"})).await;
    let user = create(
        &app,
        &s,
        &format!("/api/v1/orgs/{org}/users"),
        json!({"name": "<script>alert(1)</script> & \"Eve\""}),
    )
    .await;
    let r = app
        .call(
            "POST",
            &format!("/api/v1/users/{user}/links"),
            Some(json!({"expires_in": 60, "max_uses": 5})),
            Some(&s),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let url = r.body["url"].as_str().unwrap();
    let token = url.rsplit("/k/").next().unwrap().to_owned();
    let r = app.call("GET", &format!("/k/{token}"), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["cache-control"], "no-store");
    let page = r.body.as_str().unwrap();
    assert!(page.contains("no device"));
    // The name is shown, escaped: the page carries no markup of its own making.
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Eve&quot;"),
        "{page}"
    );
    assert!(!page.contains("<script"));
    let last = app.last_audit().await;
    assert_eq!(
        (last.action.as_str(), last.outcome, last.target),
        ("link.open", Outcome::Success, Some(format!("user:{user}")))
    );

    app.clock.advance(SignedDuration::from_secs(61));
    let r = app.call("GET", &format!("/k/{token}"), None, None).await;
    assert_eq!(r.status, StatusCode::GONE);
    let last = app.last_audit().await;
    assert_eq!((last.action.as_str(), last.outcome), ("link.open", Outcome::Denied));
}
