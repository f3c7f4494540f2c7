//! An in-process core on a temporary data directory, with a manual clock,
//! driven through its router the way the edge drives it.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use core_api::clock::ManualClock;
use core_api::store::NewAdmin;
use core_api::{AppState, Clock, OriginSecret};
use jiff::Timestamp;
use schemas::api::{Admin, AuditEntry};
use schemas::values::{AdminId, Role, Username};
use schemas::wire;
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";
pub const CLIENT: &str = "203.0.113.7:50123";

/// One core.
pub struct App {
    pub state: AppState,
    pub clock: ManualClock,
    pub secret: OriginSecret,
    pub dir: tempfile::TempDir,
    router: Router,
}

/// An answer, with its body parsed as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A signed-in session as a browser holds it.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl App {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::open_in(dir).await
    }

    /// Opens a core on an existing directory (a restart).
    pub async fn open_in(dir: tempfile::TempDir) -> Self {
        let (clock, handle) = Clock::manual("2030-01-01T00:00:00Z".parse().unwrap());
        let secret = OriginSecret::random();
        let state = AppState::open_with_clock(dir.path().join("data"), secret.clone(), clock)
            .await
            .unwrap();
        let router = core_api::router(state.clone());
        Self {
            state,
            clock: handle,
            secret,
            dir,
            router,
        }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        core_api::database_path(&self.data_dir())
    }

    /// A request as the edge forwards it: proof, client address, request id.
    pub fn request(&self, method: &str, path: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(wire::ORIGIN_PROOF, self.secret.to_hex())
            .header(wire::CLIENT_ADDR, CLIENT)
            .header(wire::REQUEST_ID, uuid::Uuid::new_v4().to_string())
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        // An event stream never ends: its status and headers are the answer.
        if headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
        {
            return Reply {
                status,
                headers,
                body: Value::Null,
            };
        }
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply { status, headers, body }
    }

    /// A call with an optional JSON body and session (cookie + CSRF header).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, session: Option<&Session>) -> Reply {
        let mut builder = self.request(method, path);
        if let Some(s) = session {
            builder = builder.header(header::COOKIE, &s.cookie).header(wire::CSRF, &s.csrf);
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("setup-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Runs first-admin setup as [`ADMIN`].
    pub async fn setup(&self) -> Reply {
        let body = serde_json::json!({"token": self.setup_token(), "username": ADMIN, "password": PASSWORD});
        self.call("POST", "/api/v1/setup", Some(body), None).await
    }

    pub async fn login_raw(&self, username: &str, password: &str) -> Reply {
        let body = serde_json::json!({"username": username, "password": password});
        self.call("POST", "/api/v1/auth/login", Some(body), None).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Session {
        let r = self.login_raw(username, password).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let set_cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        Session {
            cookie,
            csrf: r.body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Setup, then sign in as the first admin.
    pub async fn admin(&self) -> Session {
        assert_eq!(self.setup().await.status, StatusCode::CREATED);
        self.login(ADMIN, PASSWORD).await
    }

    /// Creates an admin with `role` directly in the store (the admins API
    /// comes later) and signs in as them.
    pub async fn session_with_role(&self, username: &str, role: Role) -> Session {
        let admin = Admin {
            id: AdminId::new(),
            username: Username::try_from(username.to_owned()).unwrap(),
            role,
        };
        let new = NewAdmin {
            admin,
            password_hash: core_api::crypto::hash_password(PASSWORD.into()).await.unwrap(),
            created_at: self.now(),
        };
        let record = core_api::audit::AuditRecord {
            time: self.now(),
            actor: "system".into(),
            client_addr: None,
            request_id: None,
            action: "admin.create".into(),
            target: Some(format!("admin:{username}")),
            outcome: schemas::api::Outcome::Success,
            detail: None,
        };
        self.state.store().create_admin(new, record).await.unwrap();
        self.login(username, PASSWORD).await
    }

    pub fn now(&self) -> Timestamp {
        self.state.clock().now()
    }

    /// The whole audit log, newest first.
    pub async fn audit(&self) -> Vec<AuditEntry> {
        let query = core_api::store::AuditQuery {
            limit: 500,
            ..Default::default()
        };
        self.state.store().list_audit(query).await.unwrap().items
    }

    /// The newest audit entry.
    pub async fn last_audit(&self) -> AuditEntry {
        self.audit().await.into_iter().next().unwrap()
    }
}

/// The mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
