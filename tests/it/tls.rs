//! TLS quality, judged by an outside tool.

use harness::Rampart;

/// Runs testssl.sh against the edge and fails on any finding of severity
/// MEDIUM or worse in its protocol, cipher, server-default, header and
/// vulnerability checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs testssl.sh (Debian package) and ~1 minute; .ci/run runs it"]
async fn testssl_finds_no_vulnerability() {
    let rampart = Rampart::start().await;
    let out = harness::TempDir::new("rampart-testssl");
    let json = out.path().join("testssl.json");
    let status = std::process::Command::new("testssl")
        .args([
            "--quiet",
            "--warnings",
            "off",
            "--color",
            "0",
            "--sneaky",
            "--ip",
            "127.0.0.1",
            "-U",
            "-p",
            "-s",
            "-S",
            "-h",
        ])
        .arg("--jsonfile")
        .arg(&json)
        .arg(format!("localhost:{}", rampart.ports.https.port()))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("testssl must be installed (Debian package testssl.sh)");
    assert!(json.exists(), "testssl wrote no JSON (exit {status:?})");
    let findings: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(findings.len() > 20, "too few checks ran: {}", findings.len());
    let bad: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("MEDIUM" | "HIGH" | "CRITICAL")))
        // A self-signed certificate has, by definition, no chain of trust and
        // no revocation URLs; that is the certificate, not the server. The
        // ACME tests cover a CA-issued chain.
        .filter(|f| !matches!(f["id"].as_str(), Some("cert_chain_of_trust" | "cert_revocation")))
        .collect();
    assert!(bad.is_empty(), "testssl findings: {bad:#?}");
    // Spot checks that the run really looked at the things we claim.
    let id = |name: &str| {
        findings
            .iter()
            .find(|f| f["id"] == name)
            .map(|f| f["finding"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(id("SSLv3").as_deref(), Some("not offered"));
    assert_eq!(id("TLS1").as_deref(), Some("not offered"));
    assert_eq!(id("TLS1_1").as_deref(), Some("not offered"));
    assert!(id("TLS1_3").unwrap_or_default().starts_with("offered"));
    assert!(id("HSTS_time").is_some_and(|f| f.contains("63072000")));
    assert_eq!(
        id("heartbleed").as_deref(),
        Some("not vulnerable, no heartbeat extension")
    );
    assert!(id("ALPN_HTTP2").unwrap_or_default().contains("h2"));
}

/// TLS-ALPN-01 (RFC 8737): a ClientHello offering `acme-tls/1` gets the
/// challenge certificate stored in the database for its name (here put
/// there as another host's order would), never the real certificate, and
/// the edge closes the connection after the handshake. Without a challenge
/// for the name the handshake fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs openssl; .ci/run runs it"]
async fn acme_tls_alpn_handshakes_get_only_the_challenge_certificate_and_are_closed() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let rampart = harness::Rampart::start().await;
    let dir = harness::TempDir::new("rampart-alpn");
    let digest = "ab".repeat(32);
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=alpn-probe.example",
        ])
        .args(["-addext", "subjectAltName=DNS:alpn-probe.example"])
        .args(["-addext", &format!("1.3.6.1.5.5.7.1.31=critical,DER:0420{digest}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cert = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    let secret = std::fs::read_to_string(rampart.data_dir.join("origin-secret")).unwrap();
    let r = reqwest::Client::new()
        .put(format!(
            "http://{}/internal/acme/challenges/tls-alpn-01/alpn-probe.example",
            rampart.ports.core
        ))
        .header("x-rampart-origin-proof", secret.trim())
        .json(&serde_json::json!({"value": cert, "key_pem": key, "kind": "tls-alpn-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let probe = |name: &str| {
        // -ign_eof: s_client exits only when the server closes.
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &rampart.ports.https.to_string(),
                "-servername",
                name,
            ])
            .args(["-alpn", "acme-tls/1", "-ign_eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.as_mut().unwrap().write_all(b"GET / HTTP/1.1\r\n\r\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        let closed = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = child.wait_with_output().unwrap();
        (closed, String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let (closed, text) = probe("alpn-probe.example");
    assert!(text.contains("ALPN protocol: acme-tls/1"), "{text}");
    assert!(
        text.contains("CN = alpn-probe.example") || text.contains("CN=alpn-probe.example"),
        "{text}"
    );
    assert!(
        !text.contains("HTTP/1.1"),
        "no HTTP is spoken on a validation connection: {text}"
    );
    assert!(closed, "the edge must close the connection after the handshake");

    let (_, text) = probe("unknown.example");
    assert!(!text.contains("ALPN protocol: acme-tls/1"), "{text}");
    assert!(
        !text.contains("BEGIN CERTIFICATE"),
        "no certificate without a challenge: {text}"
    );
}

/// rustls warns about every ClientHello whose SNI is an IP address. That is
/// a line in the log per handshake, for anyone who asks; the edge keeps
/// rustls's warnings out of the log even when `RUST_LOG` asks for warnings
/// in general, and still serves the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs openssl; .ci/run runs it"]
async fn clients_cannot_fill_the_log_with_malformed_sni() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let rampart = harness::Rampart::start_with(|cmd| {
        cmd.env("RUST_LOG", "warn");
    })
    .await;
    for _ in 0..5 {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &rampart.ports.https.to_string()])
            .args(["-servername", "127.0.0.1", "-quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    let log = rampart.log();
    assert!(!log.contains("SNI"), "{log}");
}
