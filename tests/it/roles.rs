//! The roles matrix, end to end: for every route in the table itself
//! (`schemas::routes::ROUTES`) and every role, a well-formed request through
//! the edge with an API token of that role is let through or refused with
//! 403 exactly as `Access::allows` says; a session without its CSRF header
//! is refused on every state change; no credential is a 401.
//!
//! Routes need ids and bodies. [`sample`] makes them, per operation: add an
//! arm there for a new route. An operation without one fails the test with
//! its name, so a route cannot join the table without joining this test.

use std::sync::atomic::{AtomicU32, Ordering};

use harness::Rampart;
use harness::api::{ADMIN, Bearer, PASSWORD, Session};
use reqwest::{Method, StatusCode};
use schemas::routes::{Access, ROUTES, Route, ServedBy};
use schemas::values::Role;
use serde_json::{Value, json};

/// What a request to one route needs: the values of the path's parameters
/// and the body.
#[derive(Debug, Default)]
struct Sample {
    params: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Sample {
    fn none() -> Option<Self> {
        Some(Self::default())
    }
    fn body(body: Value) -> Option<Self> {
        Some(Self {
            params: Vec::new(),
            body: Some(body),
        })
    }
    fn id(id: String) -> Option<Self> {
        Some(Self {
            params: vec![("id", id)],
            body: None,
        })
    }
    fn params(params: Vec<(&'static str, String)>) -> Option<Self> {
        Some(Self { params, body: None })
    }
    fn id_body(id: String, body: Value) -> Option<Self> {
        Some(Self {
            params: vec![("id", id)],
            body: Some(body),
        })
    }
}

/// The instance and an admin session that makes fixtures.
struct World {
    rampart: Rampart,
    admin: Session,
    counter: AtomicU32,
    /// Numbers the servers' networks and ports, which must not overlap.
    servers: AtomicU32,
}

impl World {
    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    async fn org(&self) -> String {
        let (status, org) = self
            .admin
            .send(Method::POST, "/api/v1/orgs", json!({"name": self.unique("Org ")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        org["id"].as_str().unwrap().to_owned()
    }

    /// A fresh admin other than the callers, so deleting or demoting it
    /// never touches the first admin.
    async fn other_admin(&self) -> String {
        self.admin.create_admin(&self.unique("target"), "admin").await
    }

    async fn create(&self, path: &str, body: Value) -> String {
        let (status, created) = self.admin.send(Method::POST, path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {created}");
        created["id"].as_str().unwrap().to_owned()
    }

    async fn user(&self) -> String {
        let org = self.org().await;
        self.create(
            &format!("/api/v1/orgs/{org}/users"),
            json!({"name": self.unique("User ")}),
        )
        .await
    }

    async fn device(&self) -> String {
        let user = self.user().await;
        self.create(
            &format!("/api/v1/users/{user}/devices"),
            json!({"name": self.unique("Device ")}),
        )
        .await
    }

    /// A server on its own /24 of 198.18.0.0/15 and its own port.
    fn server_body(&self) -> Value {
        let n = self.servers.fetch_add(1, Ordering::Relaxed);
        json!({
            "name": self.unique("Server "),
            "network": format!("198.{}.{}.0/24", 18 + n / 256, n % 256),
            "port": 40000 + n,
        })
    }

    async fn server(&self) -> String {
        self.create("/api/v1/servers", self.server_body()).await
    }

    async fn token_id(&self) -> String {
        let body = self.admin.mint_token(&self.unique("fixture "), "auditor").await;
        body["id"].as_str().unwrap().to_owned()
    }
}

/// A well-formed request for `operation`, made fresh for each call (so
/// deleting routes have something to delete), as `role` would send it.
/// `None`: no fixture yet for this operation.
async fn sample(w: &World, operation: &str, role: Role) -> Option<Sample> {
    match operation {
        "health" | "ready" | "openapi" => Sample::none(),
        // The console's page and files (served by the edge, public).
        op if op.starts_with("page.") || op.starts_with("asset.") => Sample::none(),
        "auth.session" | "events" => Sample::none(),
        "setup" => Sample::body(json!({"token": "A".repeat(43), "username": "late", "password": PASSWORD})),
        "auth.login" => Sample::body(json!({"username": ADMIN, "password": PASSWORD})),
        "auth.logout" | "auth.me" => Sample::none(),
        "orgs.list" => Sample::none(),
        "orgs.create" => Sample::body(json!({"name": w.unique("New ")})),
        "orgs.get" | "orgs.delete" => Sample::id(w.org().await),
        "orgs.update" => Sample::id_body(w.org().await, json!({"name": w.unique("Renamed ")})),
        "audit.list" | "audit.verify" => Sample::none(),
        "admins.list" => Sample::none(),
        "admins.create" => Sample::body(json!({"username": w.unique("new"), "password": PASSWORD, "role": "operator"})),
        "admins.get" | "admins.delete" | "admins.totp_enrol" | "admins.totp_reset" => Sample::id(w.other_admin().await),
        "admins.update" => Sample::id_body(w.other_admin().await, json!({"role": "auditor"})),
        "admins.totp_confirm" => {
            let id = w.other_admin().await;
            let r = w
                .admin
                .request(Method::POST, &format!("/api/v1/admins/{id}/totp"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            Sample::id_body(id, json!({"code": "000000"}))
        }
        "tokens.list" => Sample::none(),
        "tokens.create" => Sample::body(json!({"name": w.unique("tok "), "role": role.as_str()})),
        "tokens.delete" => Sample::id(w.token_id().await),
        "users.list" => Sample::id(w.org().await),
        "users.create" => Sample::id_body(w.org().await, json!({"name": w.unique("User ")})),
        "users.get" | "users.delete" | "devices.list" => Sample::id(w.user().await),
        "users.update" => Sample::id_body(w.user().await, json!({"name": w.unique("Renamed ")})),
        "links.create" => Sample::id_body(w.user().await, json!({"expires_in": 3600, "max_uses": 1})),
        "links.open" => Sample::params(vec![("token", "A".repeat(43))]),
        "devices.create" => Sample::id_body(w.user().await, json!({"name": w.unique("Device ")})),
        "devices.get" | "devices.delete" | "devices.config" | "devices.qr" => Sample::id(w.device().await),
        "servers.list" => Sample::none(),
        "servers.create" => Sample::body(w.server_body()),
        "servers.get" | "servers.delete" | "servers.start" | "servers.stop" | "servers.sessions" => {
            Sample::id(w.server().await)
        }
        "servers.update" => Sample::id_body(w.server().await, json!({"name": w.unique("Renamed ")})),
        "servers.attach" | "servers.detach" => {
            Sample::params(vec![("id", w.server().await), ("org_id", w.org().await)])
        }
        "settings.get" | "settings.acme_renew" => Sample::none(),
        "settings.update" => Sample::body(json!({"acme_email": "ops@example.com"})),
        _ => None,
    }
}

/// The route's path with the sample's parameters filled in.
fn fill(route: &Route, sample: &Sample) -> String {
    let mut path = String::new();
    for segment in route.path.trim_start_matches('/').split('/') {
        path.push('/');
        match segment.strip_prefix('{').and_then(|s| s.split_once(':')) {
            Some((name, _)) => {
                let value = sample
                    .params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("{}: the sample has no `{name}`", route.operation));
                path.push_str(&value.1);
            }
            None => path.push_str(segment),
        }
    }
    path
}

fn method(route: &Route) -> Method {
    Method::from_bytes(route.method.as_str().as_bytes()).unwrap()
}

async fn send(rb: reqwest::RequestBuilder, sample: &Sample) -> (StatusCode, String) {
    let rb = match &sample.body {
        Some(body) => rb.json(body),
        None => rb,
    };
    let r = rb.send().await.unwrap();
    // An event stream never ends: its status is the answer.
    let streaming = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return (r.status(), String::new());
    }
    (r.status(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_access_for_every_role() {
    let rampart = Rampart::start().await;
    let admin = Session::admin(&rampart).await;
    let w = World {
        rampart,
        admin,
        counter: AtomicU32::new(0),
        servers: AtomicU32::new(0),
    };
    let mut callers = Vec::new();
    for role in Role::ALL {
        let token = w
            .admin
            .mint_token(&format!("matrix {}", role.as_str()), role.as_str())
            .await;
        callers.push((role, Bearer::new(&w.rampart, token["token"].as_str().unwrap())));
    }

    let missing: Vec<&str> = {
        let mut missing = Vec::new();
        for route in ROUTES {
            if sample(&w, route.operation, Role::Admin).await.is_none() {
                missing.push(route.operation);
            }
        }
        missing
    };
    assert!(
        missing.is_empty(),
        "no fixture for {missing:?}: add an arm to `sample` in tests/it/roles.rs"
    );

    let mut failures = Vec::new();
    for route in ROUTES {
        for (role, caller) in &callers {
            let sample = sample(&w, route.operation, *role).await.unwrap();
            let path = fill(route, &sample);
            let (status, body) = send(caller.request(method(route), &path), &sample).await;
            let allowed = route.access.allows(*role);
            let ok = if allowed {
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN
            } else {
                status == StatusCode::FORBIDDEN
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {}: {status} (expected {}) {body}",
                    route.method.as_str(),
                    path,
                    role.as_str(),
                    if allowed { "allowed" } else { "403" }
                ));
            }
        }

        // Without a credential: 401 unless public.
        let sample = sample(&w, route.operation, Role::Admin).await.unwrap();
        let path = fill(route, &sample);
        let client = w.rampart.client();
        let (status, body) = send(client.request(method(route), w.rampart.url(&path)), &sample).await;
        let public = route.access == Access::Public;
        if public == (status == StatusCode::UNAUTHORIZED) {
            failures.push(format!(
                "{} {path} without credential: {status} {body}",
                route.method.as_str()
            ));
        }

        // A session without the CSRF header changes nothing.
        if route.method.is_mutation() && !public && route.served_by == ServedBy::Core {
            let rb = client
                .request(method(route), w.rampart.url(&path))
                .header("cookie", w.admin.cookie());
            let (status, body) = send(rb, &sample).await;
            if status != StatusCode::FORBIDDEN {
                failures.push(format!(
                    "{} {path} without CSRF: {status} {body}",
                    route.method.as_str()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "roles matrix broken:\n{}", failures.join("\n"));
}

/// `SelfOrAdmin` routes: every role may use them on itself with a session,
/// not on another admin (unless it is an admin), and never on itself with
/// an API token for a change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_service_is_for_oneself_with_a_session() {
    let rampart = Rampart::start().await;
    let admin = Session::admin(&rampart).await;
    let other = admin.create_admin("someone", "admin").await;
    let self_routes: Vec<&Route> = ROUTES.iter().filter(|r| r.access == Access::SelfOrAdmin).collect();
    assert!(!self_routes.is_empty());

    for role in Role::ALL {
        let name = format!("self{}", role.as_str());
        let id = admin.create_admin(&name, role.as_str()).await;
        let me = Session::login(&rampart, &name, PASSWORD).await;
        // Only admins make tokens, so only an admin can hold one of its own.
        let bearer = if role == Role::Admin {
            let token = me.mint_token("self", role.as_str()).await;
            Some(Bearer::new(&rampart, token["token"].as_str().unwrap()))
        } else {
            None
        };
        for route in &self_routes {
            let body = match route.operation {
                "admins.update" => Some(json!({"password": PASSWORD, "current_password": PASSWORD})),
                "admins.totp_confirm" => Some(json!({"code": "000000"})),
                _ => None,
            };
            let on = |target: &str| Sample {
                params: vec![("id", target.to_owned())],
                body: body.clone(),
            };
            let mine = on(&id);
            let (status, text) = send(me.request(method(route), &fill(route, &mine)), &mine).await;
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{} on itself as {}: {status} {text}",
                route.operation,
                role.as_str()
            );
            let theirs = on(&other);
            let (status, text) = send(me.request(method(route), &fill(route, &theirs)), &theirs).await;
            let expected_forbidden = !route.access.allows(role);
            assert_eq!(
                status == StatusCode::FORBIDDEN,
                expected_forbidden,
                "{} on another as {}: {status} {text}",
                route.operation,
                role.as_str()
            );
            let Some(bearer) = &bearer else { continue };
            let (status, text) = send(bearer.request(method(route), &fill(route, &mine)), &mine).await;
            if route.method.is_mutation() {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} by token on itself: {text}",
                    route.operation
                );
            } else {
                assert_eq!(status, StatusCode::OK, "{} by token on itself: {text}", route.operation);
            }
        }
    }
}
