//! ACME against a real CA (pebble): issuance with each challenge type, a
//! forced renewal swapped in live, the CA going down, a name the CA refuses.
//!
//! Each test starts its own pebble on free ports (the edge's HTTP and HTTPS
//! test ports are pebble's `httpPort` and `tlsPort`), so they run in
//! parallel. Pebble's 5% nonce rejection stays on everywhere: the client's
//! badNonce retry is exercised by every test. Issued chains are verified
//! against the root fetched from pebble's management port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::api::Session;
use harness::pebble::{Pebble, PebbleOptions};
use harness::{Ports, Rampart};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Pebble set up to validate against `ports`, and those ports.
async fn pebble_for(options: PebbleOptions) -> (Pebble, Ports) {
    let ports = Ports::fresh();
    let pebble = Pebble::start(PebbleOptions {
        http_port: ports.http.port(),
        tls_port: ports.https.port(),
        ..options
    })
    .await;
    (pebble, ports)
}

/// `rampart serve` on `ports`, trusting pebble, polling the core every
/// second, retrying failures after a second; plus `extra` flags.
async fn serve(pebble: &Pebble, ports: Ports, extra: &[&str]) -> Rampart {
    let ca = pebble.listener_ca();
    let directory = pebble.directory();
    let cts = pebble.challtestsrv_management.to_string();
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    Rampart::start_on(ports, move |cmd| {
        cmd.arg("--acme-ca-root")
            .arg(ca)
            .arg("--acme-directory")
            .arg(directory)
            .args(extra)
            .env("RAMPART_ACME_POLL", "1s")
            .env("RAMPART_ACME_RETRY", "1s")
            .env("CHALLTESTSRV_ADDR", cts)
            .env("RUST_LOG", "info,edge_gateway::acme=debug");
    })
    .await
}

/// A client that trusts only pebble's issuing root and reaches `domain` at
/// the edge: a request succeeds only if the edge presents a chain for
/// `domain` that verifies to that root.
fn verified_client(root: &str, domain: &str, https: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .resolve(domain, https)
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn base(domain: &str, rampart: &Rampart) -> String {
    format!("https://{domain}:{}", rampart.ports.https.port())
}

/// The leaf certificate (DER) a request with `client` was answered over.
async fn leaf(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, reqwest::Error> {
    let r = client.get(url).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    Ok(info.peer_certificate().unwrap().to_vec())
}

/// Waits until a fresh verified client gets a leaf other than `not`.
async fn wait_for_leaf(rampart: &Rampart, root: &str, domain: &str, not: Option<&[u8]>) -> Vec<u8> {
    let url = format!("{}/healthz", base(domain, rampart));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let client = verified_client(root, domain, rampart.ports.https);
        match leaf(&client, &url).await {
            Ok(der) if not != Some(der.as_slice()) => return der,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no (new) certificate for {domain} within 90 s; log:\n{}",
            rampart.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `GET /api/v1/settings` satisfies `done`; returns it.
async fn wait_for_settings(session: &Session, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, settings) = session.get("/api/v1/settings").await;
        assert_eq!(status, StatusCode::OK, "{settings}");
        if done(&settings) {
            return settings;
        }
        assert!(Instant::now() < deadline, "settings never showed {what}: {settings}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The status block says what the certificate is, and the leaf the edge
/// presents carries the serial the status names.
fn assert_status_matches(settings: &Value, domain: &str, leaf: &[u8]) {
    let cert = &settings["certificate"];
    assert_eq!(cert["names"], json!([domain]), "{settings}");
    assert!(cert["issuer"].as_str().unwrap().contains("Pebble"), "{settings}");
    assert!(cert["not_after"].is_string(), "{settings}");
    assert!(cert["last_attempt"].is_string(), "{settings}");
    assert!(cert["last_error"].is_null(), "{settings}");
    let serial = hex::decode(cert["serial"].as_str().unwrap()).unwrap();
    assert!(
        contains(leaf, &serial),
        "the presented leaf does not carry serial {}",
        cert["serial"]
    );
}

/// No private key in the clear in the database: account and certificate
/// keys are sealed under the host key.
fn assert_no_plain_keys(rampart: &Rampart) {
    for file in ["core/rampart.db", "core/rampart.db-wal"] {
        let Ok(bytes) = std::fs::read(rampart.data_dir.join(file)) else {
            continue;
        };
        assert!(!contains(&bytes, b"PRIVATE KEY"), "{file} holds a PEM private key");
        assert!(!contains(&bytes, b"key_pkcs8"), "{file} holds the ACME account key");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn http01_from_flags_issues_a_chain_that_verifies_to_the_ca_root() {
    let (pebble, ports) = pebble_for(PebbleOptions::default()).await;
    let rampart = serve(
        &pebble,
        ports,
        &["--acme-domain", "vpn.example", "--acme-email", "ops@example.com"],
    )
    .await;
    let root = pebble.issuing_root().await;
    let der = wait_for_leaf(&rampart, &root, "vpn.example", None).await;
    let client = verified_client(&root, "vpn.example", rampart.ports.https);
    let session = Session::admin_via(&rampart, client, &base("vpn.example", &rampart)).await;
    let settings = wait_for_settings(&session, "the certificate", |s| s["certificate"]["serial"].is_string()).await;
    assert_eq!(settings["acme_domains"], json!(["vpn.example"]));
    assert_eq!(settings["acme_email"], json!("ops@example.com"));
    assert_eq!(settings["acme_challenge"], json!("http-01"));
    assert_status_matches(&settings, "vpn.example", &der);
    assert_no_plain_keys(&rampart);
    // Plain HTTP still redirects everything that is not a live challenge.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain
        .get(format!(
            "http://{}/.well-known/acme-challenge/not-a-token",
            rampart.ports.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn tls_alpn01_configured_through_the_api() {
    let (pebble, ports) = pebble_for(PebbleOptions::default()).await;
    let rampart = serve(&pebble, ports, &[]).await;
    // No ACME yet: the self-signed certificate serves; configure it over
    // the API as an admin would.
    let session = Session::admin(&rampart).await;
    let (status, body) = session
        .send(
            Method::PATCH,
            "/api/v1/settings",
            json!({"acme_domains": ["alpn.example"], "acme_challenge": "tls-alpn-01", "acme_directory": pebble.directory()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acme_challenge"], json!("tls-alpn-01"));
    let root = pebble.issuing_root().await;
    let der = wait_for_leaf(&rampart, &root, "alpn.example", None).await;
    let client = verified_client(&root, "alpn.example", rampart.ports.https);
    let session = Session::admin_via(&rampart, client, &base("alpn.example", &rampart)).await;
    let settings = wait_for_settings(&session, "the certificate", |s| s["certificate"]["serial"].is_string()).await;
    assert_status_matches(&settings, "alpn.example", &der);
    // The change was audited.
    let (_, audit) = session
        .get("/api/v1/audit?action=setting.update&actor=admin:admin")
        .await;
    assert_eq!(audit["items"][0]["outcome"], json!("success"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn dns01_through_the_hook_command() {
    let (pebble, ports) = pebble_for(PebbleOptions::default()).await;
    let hook = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/acme-dns-hooks/pebble-challtestsrv");
    let hook = hook.to_str().unwrap().to_owned();
    // The hook runs inside the core's sandbox: name the port it talks to.
    let hook_port = pebble.challtestsrv_management.port().to_string();
    let rampart = serve(
        &pebble,
        ports,
        &[
            "--acme-domain",
            "dns.example",
            "--acme-challenge",
            "dns-01",
            "--acme-dns-hook",
            &hook,
            "--acme-dns-hook-port",
            &hook_port,
        ],
    )
    .await;
    let root = pebble.issuing_root().await;
    let der = wait_for_leaf(&rampart, &root, "dns.example", None).await;
    let client = verified_client(&root, "dns.example", rampart.ports.https);
    let session = Session::admin_via(&rampart, client, &base("dns.example", &rampart)).await;
    let settings = wait_for_settings(&session, "the certificate", |s| s["certificate"]["serial"].is_string()).await;
    assert_status_matches(&settings, "dns.example", &der);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn forced_renewal_is_swapped_in_live_and_open_connections_stay_usable() {
    let (pebble, ports) = pebble_for(PebbleOptions::default()).await;
    let rampart = serve(&pebble, ports, &["--acme-domain", "renew.example"]).await;
    let root = pebble.issuing_root().await;
    let first = wait_for_leaf(&rampart, &root, "renew.example", None).await;
    let url = format!("{}/healthz", base("renew.example", &rampart));

    // A connection opened before the renewal.
    let old = verified_client(&root, "renew.example", rampart.ports.https);
    assert_eq!(leaf(&old, &url).await.unwrap(), first);

    let session = Session::admin_via(
        &rampart,
        verified_client(&root, "renew.example", rampart.ports.https),
        &base("renew.example", &rampart),
    )
    .await;
    let status = session.call(Method::POST, "/api/v1/settings/acme/renew").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = wait_for_leaf(&rampart, &root, "renew.example", Some(&first)).await;
    let settings = wait_for_settings(&session, "the new serial", |s| {
        s["certificate"]["serial"]
            .as_str()
            .is_some_and(|serial| contains(&second, &hex::decode(serial).unwrap()))
    })
    .await;
    assert_status_matches(&settings, "renew.example", &second);

    // The old connection still works, on the certificate it negotiated.
    assert_eq!(leaf(&old, &url).await.unwrap(), first);

    // `rampart acme renew` does the same from the host.
    let out = std::process::Command::new(harness::bin("rampart"))
        .args(["acme", "renew", "--data-dir"])
        .arg(&rampart.data_dir)
        .arg("--core-addr")
        .arg(rampart.ports.core.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let third = wait_for_leaf(&rampart, &root, "renew.example", Some(&second)).await;
    assert_ne!(third, first);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn with_the_ca_down_the_old_certificate_serves_and_the_error_is_reported() {
    let (mut pebble, ports) = pebble_for(PebbleOptions::default()).await;
    let rampart = serve(&pebble, ports, &["--acme-domain", "down.example"]).await;
    let root = pebble.issuing_root().await;
    let first = wait_for_leaf(&rampart, &root, "down.example", None).await;
    let session = Session::admin_via(
        &rampart,
        verified_client(&root, "down.example", rampart.ports.https),
        &base("down.example", &rampart),
    )
    .await;
    let before = wait_for_settings(&session, "the certificate", |s| s["certificate"]["serial"].is_string()).await;

    pebble.stop();
    let status = session.call(Method::POST, "/api/v1/settings/acme/renew").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let settings = wait_for_settings(&session, "an error", |s| s["certificate"]["last_error"].is_string()).await;
    let error = settings["certificate"]["last_error"].as_str().unwrap();
    // e.g. "restoring the ACME account: client error (Connect): tcp
    // connect error: Connection refused (os error 111)"
    assert!(
        error.contains("ACME") && error.contains("refused"),
        "the error should say what failed and why: {error}"
    );
    assert_eq!(settings["certificate"]["serial"], before["certificate"]["serial"]);

    // The valid certificate keeps serving new connections.
    let url = format!("{}/healthz", base("down.example", &rampart));
    let fresh = verified_client(&root, "down.example", rampart.ports.https);
    assert_eq!(leaf(&fresh, &url).await.unwrap(), first);
    let r = fresh
        .get(format!("{}/readyz", base("down.example", &rampart)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn a_refused_name_is_reported_and_nothing_else_breaks() {
    let (pebble, ports) = pebble_for(PebbleOptions {
        blocklist: vec!["blocked.example".into()],
        ..PebbleOptions::default()
    })
    .await;
    let rampart = serve(&pebble, ports, &["--acme-domain", "blocked.example"]).await;
    // The self-signed certificate keeps serving; the API works.
    let session = Session::admin(&rampart).await;
    let settings = wait_for_settings(&session, "an error", |s| s["certificate"]["last_error"].is_string()).await;
    let error = settings["certificate"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("blocked.example"),
        "the error should name the refused name: {error}"
    );
    assert!(
        error.contains("rejectedIdentifier"),
        "the error should carry the CA's answer: {error}"
    );
    assert!(settings["certificate"]["serial"].is_null(), "{settings}");
    let (status, _) = session.get("/api/v1/orgs").await;
    assert_eq!(status, StatusCode::OK);

    // Fixing the name recovers without a restart.
    let (status, body) = session
        .send(
            Method::PATCH,
            "/api/v1/settings",
            json!({"acme_domains": ["fixed.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let root = pebble.issuing_root().await;
    wait_for_leaf(&rampart, &root, "fixed.example", None).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn a_certificate_is_renewed_by_itself_at_two_thirds_of_its_lifetime() {
    let (pebble, ports) = pebble_for(PebbleOptions {
        validity_secs: Some(30),
        ..PebbleOptions::default()
    })
    .await;
    let rampart = serve(&pebble, ports, &["--acme-domain", "short.example"]).await;
    let root = pebble.issuing_root().await;
    let started = Instant::now();
    let first = wait_for_leaf(&rampart, &root, "short.example", None).await;
    let second = wait_for_leaf(&rampart, &root, "short.example", Some(&first)).await;
    let took = started.elapsed();
    // Due at 20 s (less up to 5% jitter), not at once and not at expiry.
    assert!(took >= Duration::from_secs(15), "renewed too early: {took:?}");
    assert!(took < Duration::from_secs(29), "renewed too late: {took:?}");
    assert_ne!(first, second);
    assert!(rampart.log().contains("two thirds of the lifetime passed"));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn a_failed_challenge_names_the_challenge_and_what_the_ca_answered() {
    // Pebble validates HTTP-01 on a port where nothing listens.
    let ports = Ports::fresh();
    let pebble = Pebble::start(PebbleOptions {
        http_port: harness::free_port(),
        tls_port: ports.https.port(),
        ..PebbleOptions::default()
    })
    .await;
    let rampart = serve(&pebble, ports, &["--acme-domain", "unreachable.example"]).await;
    let session = Session::admin(&rampart).await;
    let settings = wait_for_settings(&session, "an error", |s| s["certificate"]["last_error"].is_string()).await;
    let error = settings["certificate"]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("http-01 challenge for unreachable.example failed: the CA answered:"),
        "{error}"
    );
    assert!(
        error.contains("urn:ietf:params:acme:error:"),
        "the CA's problem type: {error}"
    );
    assert!(
        rampart
            .log()
            .contains("http-01 challenge for unreachable.example failed")
    );
}

/// Cluster: a second edge on the same core (database). The CA validates at
/// the second edge's port while the first edge's order is running; the
/// second answers from the database, and then presents the certificate the
/// first stored. (The second cannot order itself: it does not trust
/// pebble's listener, so its attempts fail and the lease passes to the first.)
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn a_second_host_answers_the_challenge_and_presents_the_certificate() {
    let (a, b) = (Ports::fresh(), Ports::fresh());
    let pebble = Pebble::start(PebbleOptions {
        http_port: b.http.port(),
        tls_port: b.https.port(),
        ..PebbleOptions::default()
    })
    .await;
    let rampart = serve(&pebble, a, &["--acme-domain", "cluster.example"]).await;
    let state = harness::TempDir::new("rampart-edge-b");
    let mut edge_b = std::process::Command::new(harness::bin("rampart-edge"))
        .arg("--state-dir")
        .arg(state.path())
        .arg("--origin-secret-file")
        .arg(rampart.data_dir.join("origin-secret"))
        .args(["--core-addr", &rampart.ports.core.to_string()])
        .args(["--http-addr", &b.http.to_string(), "--https-addr", &b.https.to_string()])
        .env("RAMPART_ACME_POLL", "1s")
        .env("RAMPART_ACME_RETRY", "1s")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let root = pebble.issuing_root().await;
    let from_a = wait_for_leaf(&rampart, &root, "cluster.example", None).await;
    // Edge B presents the same certificate, chained to the CA's root.
    let url = format!("https://cluster.example:{}/healthz", b.https.port());
    let deadline = Instant::now() + Duration::from_secs(30);
    let from_b = loop {
        if let Ok(der) = leaf(&verified_client(&root, "cluster.example", b.https), &url).await {
            break der;
        }
        assert!(Instant::now() < deadline, "edge B never presented the certificate");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = edge_b.kill();
    let _ = edge_b.wait();
    assert_eq!(from_a, from_b);
    assert!(
        rampart.log().contains("ACME: new certificate in use"),
        "edge A ordered it"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs pebble; .ci/run runs it"]
async fn a_failing_dns_hook_is_reported_with_its_output() {
    let (pebble, ports) = pebble_for(PebbleOptions::default()).await;
    let dir = harness::TempDir::new("rampart-hook");
    let hook = dir.path().join("hook");
    std::fs::write(&hook, "#!/bin/sh\necho \"no API token for $2\" >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let rampart = serve(
        &pebble,
        ports,
        &[
            "--acme-domain",
            "hook.example",
            "--acme-challenge",
            "dns-01",
            "--acme-dns-hook",
            hook.to_str().unwrap(),
        ],
    )
    .await;
    let session = Session::admin(&rampart).await;
    let settings = wait_for_settings(&session, "an error", |s| s["certificate"]["last_error"].is_string()).await;
    let error = settings["certificate"]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("dns-01 challenge for hook.example: setting the TXT record failed:"),
        "{error}"
    );
    assert!(
        error.contains("no API token for hook.example"),
        "the hook's own words: {error}"
    );
}
