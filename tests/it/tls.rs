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
