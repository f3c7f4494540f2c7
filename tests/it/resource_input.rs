//! Bad input on every route of users, devices, servers and key links: a
//! 400 naming the field, a 404 for a malformed id, a 405 for a wrong
//! method, and an edge that never forwards any of it.

use harness::Rampart;
use harness::api::Session;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ID: &str = "0192f0c4-8c3e-7a6b-9a8b-0123456789ab";

fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

async fn bad(s: &Session, method: Method, path: &str, body: Value) -> (StatusCode, Vec<String>) {
    let (status, problem) = s.send(method, path, body).await;
    (status, fields(&problem))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_route_refuses_bad_input_by_field() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let (_, org) = s.send(Method::POST, "/api/v1/orgs", json!({"name": "Acme"})).await;
    let org = org["id"].as_str().unwrap().to_owned();
    let (_, user) = s
        .send(
            Method::POST,
            &format!("/api/v1/orgs/{org}/users"),
            json!({"name": "Bob"}),
        )
        .await;
    let user = user["id"].as_str().unwrap().to_owned();
    let (_, before) = s.get("/api/v1/audit?limit=500").await;
    let audited_before = before["items"].as_array().unwrap().len();

    let users = format!("/api/v1/orgs/{org}/users");
    let one_user = format!("/api/v1/users/{user}");
    let devices = format!("/api/v1/users/{user}/devices");
    let links = format!("/api/v1/users/{user}/links");
    let key = "A".repeat(43) + "=";
    let cases: Vec<(Method, &str, Value, &str)> = vec![
        (Method::POST, &users, json!({}), "name"),
        (Method::POST, &users, json!({"name": ""}), "name"),
        (
            Method::POST,
            &users,
            json!({"name": "x", "email": "not-an-address"}),
            "email",
        ),
        (Method::POST, &users, json!({"name": "x", "admin": true}), "admin"),
        (Method::PATCH, &one_user, json!({}), "body"),
        (Method::PATCH, &one_user, json!({"disabled": "yes"}), "disabled"),
        (
            Method::POST,
            &devices,
            json!({"name": "d", "public_key": "abc"}),
            "public_key",
        ),
        (
            Method::POST,
            &devices,
            json!({"name": "d", "public_key": &key[..43]}),
            "public_key",
        ),
        (
            Method::POST,
            &devices,
            json!({"name": "d", "public_key": key.replace('A', "-")}),
            "public_key",
        ),
        (
            Method::POST,
            &devices,
            json!({"name": "d", "private_key": key}),
            "private_key",
        ),
        (
            Method::POST,
            &links,
            json!({"expires_in": 59, "max_uses": 1}),
            "expires_in",
        ),
        (
            Method::POST,
            &links,
            json!({"expires_in": 2_592_001, "max_uses": 1}),
            "expires_in",
        ),
        (
            Method::POST,
            &links,
            json!({"expires_in": 60, "max_uses": 0}),
            "max_uses",
        ),
        (
            Method::POST,
            &links,
            json!({"expires_in": 60, "max_uses": 101}),
            "max_uses",
        ),
    ];
    let server = |patch: Value| {
        let mut body = json!({"name": "s", "network": "198.18.9.0/24", "port": 51820});
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let server_cases = [
        (json!({"network": "198.18.0.1/24"}), "network"),
        (json!({"network": "198.18.9.0/31"}), "network"),
        (json!({"network": "0.0.0.0/0"}), "network"),
        (json!({"network": "198.18.9.0"}), "network"),
        (json!({"network": "2001:db8::/64"}), "network"),
        (json!({"network6": "2001:db8::1/64"}), "network6"),
        (json!({"network6": "2001:db8::/127"}), "network6"),
        (json!({"port": 0}), "port"),
        (json!({"port": 65536}), "port"),
        (json!({"dns": ["not-an-ip"]}), "dns"),
        (json!({"routes": ["198.18.0.1/8"]}), "routes"),
        (json!({"state": "running"}), "state"),
    ];
    for (method, path, body, field) in cases {
        let (status, got) = bad(&s, method.clone(), path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path} {body}");
        assert!(
            got.iter().any(|f| f.starts_with(field)),
            "{body}: {got:?} lacks {field}"
        );
    }
    for (patch, field) in server_cases {
        let body = server(patch);
        let (status, got) = bad(&s, Method::POST, "/api/v1/servers", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            got.iter().any(|f| f.starts_with(field)),
            "{body}: {got:?} lacks {field}"
        );
    }
    let (status, got) = bad(&s, Method::PATCH, &format!("/api/v1/servers/{ID}"), json!({})).await;
    assert_eq!((status, got), (StatusCode::BAD_REQUEST, vec!["body".to_owned()]));

    // Query parameters: the profile needs a well-formed server id.
    for (query, field) in [
        ("", "query.server"),
        ("?server=nope", "query.server"),
        ("?srv=1", "query.srv"),
    ] {
        let (status, problem) = s.get(&format!("/api/v1/devices/{ID}/config{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert_eq!(fields(&problem), [field], "{query}");
    }
    let (status, _) = s.get(&format!("/api/v1/orgs/{org}/users?limit=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Malformed ids match no route; unknown ones are 404 from the core.
    for path in [
        "/api/v1/users/123",
        "/api/v1/devices/xyz",
        "/api/v1/servers/1",
        "/api/v1/orgs/1/users",
        "/api/v1/users/1/devices",
        "/api/v1/servers/1/orgs/2",
        "/k/short",
        "/k/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ] {
        let (status, _) = s.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        format!("/api/v1/users/{ID}"),
        format!("/api/v1/devices/{ID}"),
        format!("/api/v1/servers/{ID}"),
        format!("/api/v1/orgs/{ID}/users"),
        format!("/api/v1/users/{ID}/devices"),
    ] {
        let (status, _) = s.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }

    // Wrong methods: 405 with Allow.
    for (method, path, allow) in [
        (Method::PUT, "/api/v1/servers".to_owned(), "GET, POST"),
        (Method::PUT, format!("/api/v1/devices/{ID}"), "GET, DELETE"),
        (Method::GET, format!("/api/v1/servers/{ID}/start"), "POST"),
        (Method::GET, format!("/api/v1/users/{ID}/links"), "POST"),
        (Method::POST, format!("/api/v1/devices/{ID}/config"), "GET"),
        (Method::POST, format!("/k/{}", "A".repeat(43)), "GET"),
    ] {
        let r = s.request(method.clone(), &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{path}");
    }

    // No refused change reached the core: the audit log did not grow.
    let (_, after) = s.get("/api/v1/audit?limit=500").await;
    assert_eq!(after["items"].as_array().unwrap().len(), audited_before);
}
