//! A small API client: the setup → login dance and requests that carry the
//! session cookie and CSRF header the way the console does.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::Rampart;

/// The first admin's credentials in every test.
pub const ADMIN: &str = "admin";
/// Their password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-in API session.
#[derive(Debug, Clone)]
pub struct Session {
    client: reqwest::Client,
    base: String,
    cookie: String,
    /// The CSRF token from login.
    pub csrf: String,
    /// The login answer.
    pub login: Value,
}

/// Creates the first admin with the setup token.
pub async fn setup(rampart: &Rampart) -> Response {
    let body = json!({"token": rampart.setup_token(), "username": ADMIN, "password": PASSWORD});
    rampart
        .client()
        .post(rampart.url("/api/v1/setup"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Signs in; returns the raw answer.
pub async fn login_raw(rampart: &Rampart, username: &str, password: &str) -> Response {
    let body = json!({"username": username, "password": password});
    rampart
        .client()
        .post(rampart.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

impl Session {
    /// Runs setup (if needed) and signs in as the first admin.
    pub async fn admin(rampart: &Rampart) -> Self {
        if rampart.data_dir.join("setup-token").exists() {
            let r = setup(rampart).await;
            assert_eq!(
                r.status(),
                StatusCode::CREATED,
                "setup: {}",
                r.text().await.unwrap_or_default()
            );
        }
        Self::login(rampart, ADMIN, PASSWORD).await
    }

    /// Runs setup if needed and signs in as the first admin through
    /// `client` at `base` (e.g. a client that trusts an ACME CA and resolves
    /// the instance's domain name).
    pub async fn admin_via(rampart: &Rampart, client: reqwest::Client, base: &str) -> Self {
        if rampart.data_dir.join("setup-token").exists() {
            let body = json!({"token": rampart.setup_token(), "username": ADMIN, "password": PASSWORD});
            let r = client
                .post(format!("{base}/api/v1/setup"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        let body = json!({"username": ADMIN, "password": PASSWORD});
        let r = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::from_login(r, client, base.to_owned()).await
    }

    /// Signs in as `username`.
    pub async fn login(rampart: &Rampart, username: &str, password: &str) -> Self {
        let r = login_raw(rampart, username, password).await;
        Self::from_login(r, rampart.client(), rampart.url("")).await
    }

    /// The session a successful login answer started.
    pub async fn from_login(r: Response, client: reqwest::Client, base: String) -> Self {
        assert_eq!(r.status(), StatusCode::OK);
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("__Host-rampart_session="))
            .expect("session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let login: Value = r.json().await.unwrap();
        let csrf = login["csrf_token"].as_str().unwrap().to_owned();
        Self {
            client,
            base,
            cookie,
            csrf,
            login,
        }
    }

    /// A request with the session cookie and, for state changes, the CSRF
    /// header.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if method != Method::GET {
            rb = rb.header("x-csrf-token", &self.csrf);
        }
        rb
    }

    /// GET, returning status and JSON.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.request(Method::GET, path).send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// A JSON request, returning status and JSON.
    pub async fn send(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self.request(method, path).json(&body).send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// A bodiless state change (DELETE, logout), returning status.
    pub async fn call(&self, method: Method, path: &str) -> StatusCode {
        self.request(method, path).send().await.unwrap().status()
    }

    /// The raw cookie pair, for tests that replay it.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }
}

/// A client that authenticates with an API token (`Authorization: Bearer`),
/// as scripts do: no cookie, no CSRF header.
#[derive(Debug, Clone)]
pub struct Bearer {
    client: reqwest::Client,
    base: String,
    /// The token.
    pub token: String,
}

impl Bearer {
    /// A client for `token` on `rampart`.
    pub fn new(rampart: &Rampart, token: &str) -> Self {
        Self {
            client: rampart.client(),
            base: rampart.url(""),
            token: token.to_owned(),
        }
    }

    /// A request carrying the token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// GET, returning status and JSON.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.request(Method::GET, path).send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// A JSON request, returning status and JSON.
    pub async fn send(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self.request(method, path).json(&body).send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

impl Session {
    /// Creates an API token with `role` as this session's admin; answers
    /// the creation body (with `token`).
    pub async fn mint_token(&self, name: &str, role: &str) -> Value {
        let (status, body) = self
            .send(Method::POST, "/api/v1/tokens", json!({"name": name, "role": role}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "token: {body}");
        body
    }

    /// Creates an admin with `role`; answers its id.
    pub async fn create_admin(&self, username: &str, role: &str) -> String {
        let (status, body) = self
            .send(
                Method::POST,
                "/api/v1/admins",
                json!({"username": username, "password": PASSWORD, "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "admin: {body}");
        body["id"].as_str().unwrap().to_owned()
    }
}

/// Signs in with a TOTP code; returns the raw answer.
pub async fn login_totp(rampart: &Rampart, username: &str, password: &str, code: Option<&str>) -> Response {
    let mut body = json!({"username": username, "password": password});
    if let Some(code) = code {
        body["totp_code"] = json!(code);
    }
    rampart
        .client()
        .post(rampart.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}
