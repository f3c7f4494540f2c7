//! The edge's own guarantees: headers, the redirect listener, limits, what
//! crosses to the core, and the response filter.

use std::time::{Duration, Instant};

use harness::api::Session;
use harness::{Rampart, TempDir, bin, free_port};
use reqwest::{Method, StatusCode, Version};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn assert_security_headers(r: &reqwest::Response) {
    let h = r.headers();
    assert_eq!(
        h["strict-transport-security"],
        "max-age=63072000; includeSubDomains",
        "{}",
        r.url()
    );
    // The console's files get the console's policy; every other answer
    // (JSON, problems) the request path's own: same origin, never framed.
    let console = ["text/html", "text/javascript", "text/css"]
        .iter()
        .any(|t| h["content-type"].to_str().unwrap().starts_with(t));
    let csp = if console {
        "default-src 'self'; img-src 'self' blob:; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'"
    } else {
        "default-src 'self'; frame-ancestors 'none'"
    };
    assert_eq!(h["content-security-policy"], csp, "{}", r.url());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.get("server").is_none(), "server banner on {}", r.url());
    assert!(h.get("x-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let c = rampart.client();
    for r in [
        c.get(rampart.url("/healthz")).send().await.unwrap(),
        c.get(rampart.url("/readyz")).send().await.unwrap(),
        c.get(rampart.url("/api/v1/openapi.json")).send().await.unwrap(),
        c.get(rampart.url("/nope")).send().await.unwrap(),
        c.delete(rampart.url("/api/v1/orgs")).send().await.unwrap(),
        c.get(rampart.url("/api/v1/orgs")).send().await.unwrap(),
        s.request(Method::POST, "/api/v1/orgs")
            .json(&json!({"name": "H"}))
            .send()
            .await
            .unwrap(),
        s.request(Method::POST, "/api/v1/orgs")
            .json(&json!({"bad": 1}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_security_headers(&r);
    }
    // Unauthenticated API calls are refused by the core, through the edge.
    let r = c.get(rampart.url("/api/v1/orgs")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_page_is_served_from_the_binary_without_inline_code() {
    let rampart = Rampart::start().await;
    let c = rampart.client();
    // The banner's /setup link opens the console, which draws the setup form.
    for path in ["/setup", "/"] {
        let page = c.get(rampart.url(path)).send().await.unwrap();
        assert_security_headers(&page);
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
        assert!(
            !html.contains("<script>") && !html.contains("onclick") && !html.contains("style="),
            "inline code breaks the CSP"
        );
    }
    let js = c.get(rampart.url("/assets/views/auth.js")).send().await.unwrap();
    assert_security_headers(&js);
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(js.text().await.unwrap().contains("/api/v1/setup"));
    let r = c.get(rampart.url("/assets/../../etc/passwd")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_served_and_matches_the_contract() {
    let rampart = Rampart::start().await;
    let r = rampart
        .client()
        .get(rampart.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc, schemas_document());
}

fn schemas_document() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_http1_both_work() {
    let rampart = Rampart::start().await;
    let r = rampart.client().get(rampart.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), Version::HTTP_2, "ALPN should pick h2");
    let pem = std::fs::read(rampart.data_dir.join("edge/tls/cert.pem")).unwrap();
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("localhost", rampart.ports.https)
        .http1_only()
        .build()
        .unwrap();
    let r = h1.get(rampart.url("/healthz")).send().await.unwrap();
    assert_eq!((r.version(), r.status()), (Version::HTTP_11, StatusCode::OK));
}

/// The connection preface every HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Sends `bytes` over TLS to the edge, offering `alpn`, and returns what
/// comes back before the edge closes the connection (at most 2 s).
async fn tls_exchange(rampart: &Rampart, alpn: &[&[u8]], bytes: &[u8]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(rampart.data_dir.join("edge/tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(rampart.ports.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), tls.read_to_end(&mut reply)).await;
    reply
}

/// HTTP/2 is spoken only where ALPN chose it: the edge does not guess the
/// protocol from a connection's first bytes, on either listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_only_where_alpn_chose_it() {
    let rampart = Rampart::start().await;
    // Offered h2: the preface gets the server's SETTINGS frame (a 9-byte
    // frame header whose fourth byte, the type, is 4).
    let reply = tls_exchange(&rampart, &[b"h2"], H2_PREFACE).await;
    assert!(
        reply.len() >= 9 && reply[3] == 4,
        "no SETTINGS frame after ALPN h2: {reply:?}"
    );
    // No ALPN: HTTP/1.1, which serves a request...
    let get = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    let reply = tls_exchange(&rampart, &[], get).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // ... and refuses the HTTP/2 preface: no HTTP/2 frame comes back.
    let reply = tls_exchange(&rampart, &[], H2_PREFACE).await;
    assert!(reply.is_empty() || reply.starts_with(b"HTTP/1.1 4"), "{reply:?}");
    // The same on the plain-HTTP listener: no HTTP/2 in clear text.
    let mut tcp = TcpStream::connect(rampart.ports.http).await.unwrap();
    tcp.write_all(H2_PREFACE).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut reply)).await;
    assert!(reply.is_empty() || reply.starts_with(b"HTTP/1.1 4"), "{reply:?}");
}

/// The access log is written by each worker when it runs out of work, not
/// line by line: a quiet edge must still have written a request's line by
/// the time its answer is read, and every line must be whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_in_the_access_log_by_the_time_it_is_answered() {
    let rampart = Rampart::start().await;
    let c = rampart.client();
    let mut ids = Vec::new();
    for path in ["/healthz", "/nope", "/api/v1/orgs"] {
        let r = c.get(rampart.url(path)).send().await.unwrap();
        ids.push((
            path,
            r.headers()["x-request-id"].to_str().unwrap().to_owned(),
            r.status().as_u16(),
        ));
        r.bytes().await.unwrap();
    }
    // Written when the worker went idle, microseconds after the answer:
    // allow for a slow machine, never for a line that is only written
    // later by the next request or at shutdown.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let log = rampart.log();
        // The core logs the same request id; the edge's line is wanted.
        let edge_line = |id: &str| {
            log.lines()
                .find(|l| l.contains(id) && l.contains(" edge_gateway::gateway: request "))
        };
        let missing: Vec<_> = ids.iter().filter(|(_, id, _)| edge_line(id).is_none()).collect();
        if missing.is_empty() {
            for (path, id, status) in &ids {
                let line = edge_line(id).unwrap();
                assert!(
                    line.contains(" peer=127.0.0.1:") && line.contains(" method=GET "),
                    "{path}: {line}"
                );
                assert!(line.contains(&format!(" status={status} ")), "{path}: {line}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not in the log 2 s after the answer: {missing:?}\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_and_never_reaches_the_core() {
    let rampart = Rampart::start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{}", rampart.ports.http.port());
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/api/v1/orgs?limit=5"),
        (Method::POST, "/api/v1/setup"),
    ] {
        let r = http
            .request(method, format!("{base}{path}"))
            .header("host", "vpn.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            r.headers()["location"],
            format!("https://vpn.example:{}{path}", rampart.ports.https.port())
        );
        assert!(r.headers().get("server").is_none());
    }
    let r = http
        .get(format!("{base}/.well-known/acme-challenge/unknown-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A Host header that tries to smuggle a path or user info is refused.
    let r = http
        .get(format!("{base}/"))
        .header("host", "evil.example/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Nothing above was audited: the plain listener cannot reach the core.
    let s = Session::admin(&rampart).await;
    let (_, audit) = s.get("/api/v1/audit").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["auth.login", "setup"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_refuses_requests_that_did_not_come_through_the_edge() {
    let rampart = Rampart::start().await;
    let core = format!("http://{}", rampart.ports.core);
    let c = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/api/v1/orgs", "/api/v1/auth/me"] {
        let r = c.get(format!("{core}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let r = c
            .get(format!("{core}{path}"))
            .header("x-rampart-origin-proof", "0".repeat(64))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path} with a wrong proof");
    }
    let body = json!({"token": rampart.setup_token(), "username": "sneaky", "password": "correct horse battery"});
    let r = c.post(format!("{core}/api/v1/setup")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The same call with the real proof works, so the 401s above are the proof check.
    let secret = std::fs::read_to_string(rampart.data_dir.join("origin-secret")).unwrap();
    let r = c
        .get(format!("{core}/healthz"))
        .header("x-rampart-origin-proof", secret.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // And the setup token is still unused.
    assert!(rampart.data_dir.join("setup-token").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_acme_endpoints_are_unreachable_through_the_edge() {
    let rampart = Rampart::start().await;
    let c = rampart.client();
    for (method, path) in [
        (Method::GET, "/internal/acme/state"),
        (Method::GET, "/internal/acme/certificate"),
        (Method::GET, "/internal/acme/account?directory=x"),
        (Method::POST, "/internal/acme/renew"),
        (Method::GET, "/internal/acme/challenges/http-01/token"),
    ] {
        let r = c.request(method.clone(), rampart.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    // The core answers them only with the proof.
    let core = format!("http://{}/internal/acme/certificate", rampart.ports.core);
    let r = reqwest::Client::new().get(core).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// A challenge answer stored in the database by another host's order is
/// served by this host's plain-HTTP listener (the cluster rule: tokens live
/// in the database, not on one host's disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_answers_come_from_the_database() {
    let rampart = Rampart::start().await;
    let secret = std::fs::read_to_string(rampart.data_dir.join("origin-secret")).unwrap();
    let token = "tok_en-FROM-another-host";
    let r = reqwest::Client::new()
        .put(format!(
            "http://{}/internal/acme/challenges/http-01/{token}",
            rampart.ports.core
        ))
        .header("x-rampart-origin-proof", secret.trim())
        .json(&json!({"value": "tok_en-FROM-another-host.thumbprint", "kind": "http-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("http://{}/.well-known/acme-challenge/{token}", rampart.ports.http);
    let r = plain.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "tok_en-FROM-another-host.thumbprint");
    let r = plain
        .get(format!(
            "http://{}/.well-known/acme-challenge/unknown",
            rampart.ports.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_slow_request_heads_are_cut_off() {
    let rampart = Rampart::start_with(|cmd| {
        cmd.env("RAMPART_HEADER_TIMEOUT", "1s");
    })
    .await;
    let r = rampart
        .client()
        .get(rampart.url("/healthz"))
        .header("x-filler", "a".repeat(64 * 1024))
        .send()
        .await;
    match r {
        Ok(r) => assert!(r.status().is_client_error(), "{}", r.status()),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    // A client that never finishes its TLS handshake, or its request head,
    // is disconnected after the header timeout.
    for (addr, first) in [
        (rampart.ports.https, &b""[..]),
        (rampart.ports.http, &b"GET / HTTP/1.1\r\nHost: x\r\n"[..]),
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(first).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(outcome.is_ok(), "{addr}: still open after 10 s");
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "{addr}: closed too early"
        );
    }
}

/// A stand-in core that records the request it got and answers `answer`:
/// the way to see exactly what crosses the loopback hop, and to make the
/// core say something the contract forbids.
async fn fake_core(answer: &'static str) -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = tcp.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if data.len() >= head_end + 4 + len {
                            let _ = tx.send(text).await;
                            let response = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nserver: leaky/1.0\r\nx-internal: secret\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                                answer.len()
                            );
                            let _ = tcp.write_all(response.as_bytes()).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

struct Edge {
    child: std::process::Child,
    https: u16,
    _dir: TempDir,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_edge(core: std::net::SocketAddr, secret: &str) -> Edge {
    start_edge_with(core, secret, &[]).await
}

async fn start_edge_with(core: std::net::SocketAddr, secret: &str, extra: &[&str]) -> Edge {
    let dir = TempDir::new("rampart-edge");
    std::fs::write(dir.path().join("secret"), secret).unwrap();
    let https = free_port();
    let child = std::process::Command::new(bin("rampart-edge"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--origin-secret-file")
        .arg(dir.path().join("secret"))
        .args([
            "--core-addr",
            &core.to_string(),
            "--http-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(["--https-addr", &format!("127.0.0.1:{https}")])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", https)).await.is_err() {
        assert!(Instant::now() < deadline, "edge did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Edge {
        child,
        https,
        _dir: dir,
    }
}

fn edge_client(edge: &Edge) -> reqwest::Client {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], edge.https));
    harness::insecure_client_for(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_by_the_worker_threads_and_stops_cleanly() {
    let (core, _seen) = fake_core("{}").await;
    let mut edge = start_edge_with(core, &"ab".repeat(32), &["--workers", "3"]).await;
    let pid = edge.child.id();
    let mut threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("https-"))
        .collect();
    threads.sort();
    assert_eq!(threads, ["https-0", "https-1", "https-2"]);

    // Connections land on different workers in turn; each one serves
    // several requests.
    let clients: Vec<reqwest::Client> = (0..6).map(|_| edge_client(&edge)).collect();
    for round in 0..3 {
        for client in &clients {
            let r = client
                .get(format!("https://localhost:{}/healthz", edge.https))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "round {round}");
        }
    }

    // SIGTERM with idle keep-alive connections open: the edge drains them
    // and exits 0, well before its 10 s limit.
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = edge.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "edge still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "edge exited with {status}");
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_reencoded_body_and_allowed_headers_cross() {
    let org = r#"{"id":"0192f0c4-8c3e-7a6b-9a8b-0123456789ab","name":"Acme","created_at":"2026-01-01T00:00:00Z"}"#;
    let (core, mut seen) = fake_core(org).await;
    let secret = "ab".repeat(32);
    let edge = start_edge(core, &secret).await;
    let url = format!(
        "https://localhost:{}/api/v1/orgs/0192F0C4-8C3E-7A6B-9A8B-0123456789AB",
        edge.https
    );
    let r = edge_client(&edge)
        .patch(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-rampart-client-addr", "198.18.0.66:1")
        .header("x-rampart-origin-proof", "forged")
        .header("x-forwarded-for", "198.18.0.66")
        .header("x-csrf-token", "t")
        .header("cookie", "__Host-rampart_session=s")
        .body("{ \"name\" :\n \"Acme\" }")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("server").is_none() && r.headers().get("x-internal").is_none());
    assert_eq!(r.text().await.unwrap(), org);

    // The edge's own ACME polls (`/internal/acme/...`) reach the stand-in
    // core too; the client's request is the one that is not one of them.
    let request = loop {
        let request = seen.recv().await.unwrap();
        if !request
            .split(' ')
            .nth(1)
            .is_some_and(|path| path.starts_with("/internal/"))
        {
            break request;
        }
    };
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    let lower = head.to_ascii_lowercase();
    assert!(
        head.starts_with("PATCH /api/v1/orgs/0192f0c4-8c3e-7a6b-9a8b-0123456789ab HTTP/1.1"),
        "path is canonical: {head}"
    );
    assert_eq!(body, r#"{"name":"Acme"}"#, "the body is re-encoded");
    assert!(lower.contains(&format!("x-rampart-origin-proof: {secret}")));
    assert!(
        !lower.contains("forged") && !lower.contains("198.18.0.66") && !lower.contains("x-forwarded-for"),
        "{head}"
    );
    assert!(lower.contains("x-rampart-client-addr: 127.0.0.1:"));
    assert!(lower.contains("x-rampart-request-id: "));
    assert!(lower.contains("x-csrf-token: t") && lower.contains("cookie: __host-rampart_session=s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_field_from_the_core_becomes_a_502() {
    let leaky = r#"{"id":"0192f0c4-8c3e-7a6b-9a8b-0123456789ab","name":"Acme","created_at":"2026-01-01T00:00:00Z","password_hash":"$argon2id$leak"}"#;
    let (core, _seen) = fake_core(leaky).await;
    let edge = start_edge(core, &"cd".repeat(32)).await;
    let r = edge_client(&edge)
        .get(format!(
            "https://localhost:{}/api/v1/orgs/0192f0c4-8c3e-7a6b-9a8b-0123456789ab",
            edge.https
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let text = r.text().await.unwrap();
    assert!(!text.contains("argon2") && !text.contains("password_hash"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_gets_a_408() {
    let rampart = Rampart::start_with(|cmd| {
        cmd.env("RAMPART_BODY_TIMEOUT", "1s");
    })
    .await;
    let s = Session::admin(&rampart).await;
    let first: Result<Vec<u8>, std::io::Error> = Ok(br#"{"name":"#.to_vec());
    let stalled = futures_util_stall(first);
    let started = Instant::now();
    let r = s
        .request(Method::POST, "/api/v1/orgs")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stalled))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A stream that yields `first` and then never ends.
fn futures_util_stall(
    first: Result<Vec<u8>, std::io::Error>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    use tokio_stream::StreamExt;
    tokio_stream::iter([first]).chain(tokio_stream::pending())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let rampart = Rampart::start_with(|cmd| {
        cmd.env("RAMPART_MAX_CONNECTIONS", "1")
            .env("RAMPART_HEADER_TIMEOUT", "30s");
    })
    .await;
    // An idle connection takes the only slot.
    let hog = TcpStream::connect(rampart.ports.https).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = rampart.client();
    let blocked = client
        .get(rampart.url("/healthz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(blocked.is_err(), "a second connection was served: {blocked:?}");
    drop(hog);
    let r = client
        .get(rampart.url("/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// The edge sends requests made at the same moment to the core together,
/// on one connection (an HTTP/1.1 pipeline). Many clients at once, with
/// answers of every kind mixed in (created, found, not found, refused by
/// the edge itself), must each get their own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_requests_each_get_their_own_answer() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let token = s.mint_token("load", "admin").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, org) = s.send(Method::POST, "/api/v1/orgs", json!({"name": "Many"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let org = org["id"].as_str().unwrap().to_owned();

    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..24 {
        // A client (and so a connection) each; HTTP/1.1 like most scripts.
        let api = harness::api::Bearer::new(&rampart, &token);
        let org = org.clone();
        tasks.spawn(async move {
            for round in 0..6 {
                let name = format!("User {client}-{round}");
                let email = format!("u{client}.{round}@example.com");
                let users = format!("/api/v1/orgs/{org}/users");
                let (status, made) = api
                    .send(Method::POST, &users, json!({"name": name, "email": email}))
                    .await;
                assert_eq!(
                    (status, made["name"].as_str()),
                    (StatusCode::CREATED, Some(&*name)),
                    "{made}"
                );
                let id = made["id"].as_str().unwrap();
                let (status, found) = api.get(&format!("/api/v1/users/{id}")).await;
                assert_eq!(
                    (status, found["email"].as_str()),
                    (StatusCode::OK, Some(&*email)),
                    "{found}"
                );
                // An organization that does not exist: the core refuses it.
                let nowhere = format!("/api/v1/orgs/0192f0c4-8c3e-7a6b-9a8b-{client:06}{round:06}/users");
                let (status, refused) = api
                    .send(Method::POST, &nowhere, json!({"name": name, "email": email}))
                    .await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
                let missing = format!("/api/v1/users/0192f0c4-8c3e-7a6b-9a8b-{client:06}{round:06}");
                assert_eq!(api.get(&missing).await.0, StatusCode::NOT_FOUND);
                // Refused by the edge, never forwarded.
                let (status, bad) = api
                    .send(Method::POST, &users, json!({"name": name, "email": "x"}))
                    .await;
                assert_eq!(
                    (status, bad["errors"][0]["field"].as_str()),
                    (StatusCode::BAD_REQUEST, Some("email")),
                    "{bad}"
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let (_, list) = s.get(&format!("/api/v1/orgs/{org}/users?limit=500")).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(24 * 6), "{list}");
    assert!(!rampart.log().contains("talking to the core"), "{}", rampart.log());
}
