//! The web console, in a real browser: `tests/browser/console.test.mjs`
//! (Playwright driving Debian's Chromium) against a real `rampart serve`.
//! Also the events stream and the session route without a browser.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use harness::Rampart;
use harness::api::Session;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_stream::StreamExt;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Fails (never skips) when a tool the test needs is missing.
fn require(path: &str, hint: &str) {
    let found = if path.contains('/') {
        std::path::Path::new(path).exists()
    } else {
        std::process::Command::new(path)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(found, "{path} is missing: {hint}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and node; .ci/run runs it"]
async fn the_console_works_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require(&chromium, "apt-get install chromium (scripts/test-all does)");
    require("node", "apt-get install nodejs (scripts/test-all does)");
    require(
        &browser_dir().join("node_modules/playwright-core").to_string_lossy(),
        "run npm ci in tests/browser (scripts/test-all does)",
    );
    let rampart = Rampart::start().await;
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts/console");
    let mut child = tokio::process::Command::new("node")
        .arg("console.test.mjs")
        .current_dir(browser_dir())
        .env("RAMPART_URL", rampart.url(""))
        .env("RAMPART_SETUP_TOKEN", rampart.setup_token())
        .env("RAMPART_ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = match tokio::time::timeout(Duration::from_secs(240), child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => panic!("the browser test did not finish within 240 s; log:\n{}", rampart.log()),
    };
    assert!(
        status.success(),
        "the browser test failed ({status}); screenshots in {}",
        artifacts.display()
    );
}

/// Reads the stream until a `change` event arrives; `None` when it ends.
async fn next_change<S, B, E>(stream: &mut S, buf: &mut String) -> Option<Value>
where
    S: futures_core::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        const MARK: &str = "event: change\ndata: ";
        if let Some(at) = buf.find(MARK) {
            let rest = &buf[at + MARK.len()..];
            if let Some(end) = rest.find('\n') {
                let event: Value = serde_json::from_str(&rest[..end]).unwrap();
                *buf = rest[end..].to_owned();
                return Some(event);
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("nothing on the stream within 20 s")?
            .unwrap();
        buf.push_str(std::str::from_utf8(chunk.as_ref()).unwrap());
    }
}

/// Changes reach every console through the edge as server-sent events:
/// kind, action and id only; admin-only kinds only to admins; the stream
/// ends when the session does. A reloaded console gets its CSRF token back
/// from `GET /api/v1/auth/session`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_stream_to_consoles_and_the_session_comes_back() {
    let rampart = Rampart::start().await;
    let admin = Session::admin(&rampart).await;

    let (status, again) = admin.get("/api/v1/auth/session").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["csrf_token"], admin.login["csrf_token"]);
    assert_eq!(again["admin"], admin.login["admin"]);
    let auditor = admin.mint_token("watcher", "auditor").await;
    let auditor = harness::api::Bearer::new(&rampart, auditor["token"].as_str().unwrap());
    let (status, _) = auditor.get("/api/v1/auth/session").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an API token has no session");

    let response = admin.request(Method::GET, "/api/v1/events").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'"
    );
    assert!(h.get("content-length").is_none(), "streamed, not buffered");
    let mut admin_stream = response.bytes_stream();
    let watching = auditor.request(Method::GET, "/api/v1/events").send().await.unwrap();
    assert_eq!(watching.status(), StatusCode::OK);
    let mut auditor_stream = watching.bytes_stream();
    let (mut admin_buf, mut auditor_buf) = (String::new(), String::new());

    admin.mint_token("unseen", "operator").await;
    let (status, org) = admin.send(Method::POST, "/api/v1/orgs", json!({"name": "Live"})).await;
    assert_eq!(status, StatusCode::CREATED);

    let first = next_change(&mut admin_stream, &mut admin_buf).await.unwrap();
    assert_eq!(first["kind"], "token");
    let second = next_change(&mut admin_stream, &mut admin_buf).await.unwrap();
    assert_eq!(second, json!({"kind": "org", "action": "org.create", "id": org["id"]}));
    // The auditor never hears of the token.
    let seen = next_change(&mut auditor_stream, &mut auditor_buf).await.unwrap();
    assert_eq!(seen, second);

    // A refused change is not an event.
    let (status, _) = admin.send(Method::POST, "/api/v1/orgs", json!({"name": "Live"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Signing out ends the stream within one keep-alive interval.
    assert_eq!(
        admin.call(Method::POST, "/api/v1/auth/logout").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(next_change(&mut admin_stream, &mut admin_buf).await, None);
}
