//! Escape probes: the edge and the core, started as they run in production
//! (same flags, same data directory, beside a running instance), apply their
//! Landlock sandbox and then, instead of serving, try what they must not do.
//! Every attempt that must fail has to fail with EACCES/EPERM — a sandbox
//! saying no, not a missing file or a closed port — and a few allowed
//! attempts must succeed, so a probe that fails at everything proves nothing.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::Command;

use harness::{Rampart, TempDir, bin, free_port};

/// Runs `program args --probe-sandbox spec` and returns outcome by probe.
fn probe(program: &str, args: &[String], spec: &[String]) -> HashMap<String, serde_json::Value> {
    let out = Command::new(bin(program))
        .args(args)
        .arg("--probe-sandbox")
        .arg(spec.join(","))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} probe run failed: {stderr}");
    assert!(
        stderr.contains("sandboxed") && stderr.contains("Landlock ABI"),
        "logs what it enforces: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["probe"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

fn assert_denied(results: &HashMap<String, serde_json::Value>, probe: &str) {
    let r = results
        .get(probe)
        .unwrap_or_else(|| panic!("probe {probe} ran: {results:?}"));
    assert_eq!(r["denied"], true, "{probe} must be denied by the sandbox: {r}");
}

fn assert_allowed(results: &HashMap<String, serde_json::Value>, probe: &str) {
    let r = results
        .get(probe)
        .unwrap_or_else(|| panic!("probe {probe} ran: {results:?}"));
    assert_eq!(r["allowed"], true, "{probe} must work: {r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_cannot_leave_its_sandbox() {
    let rampart = Rampart::start().await;
    let data = rampart.data_dir.clone();
    let core_pid = rampart.child_pid("rampart-core").expect("core running");
    // A port that is open (so "denied" cannot be "refused") but not allowed.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    let outside = TempDir::new("rampart-probe");
    let args: Vec<String> = [
        "--http-addr",
        &format!("127.0.0.1:{}", free_port()),
        "--https-addr",
        &format!("127.0.0.1:{}", free_port()),
        "--core-addr",
        &rampart.ports.core.to_string(),
        "--state-dir",
        data.join("edge").to_str().unwrap(),
        "--origin-secret-file",
        data.join("origin-secret").to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let spec = vec![
        "read=/etc/shadow".to_owned(),
        format!("read={}", data.join("core/rampart.db").display()),
        format!("read={}", data.join("host-key").display()),
        format!("write={}", outside.path().join("dropped").display()),
        format!("connect={other_addr}"),
        format!("bind=127.0.0.1:{}", free_port()),
        "exec=/bin/sh".to_owned(),
        format!("signal={core_pid}"),
        // Refused by the seccomp deny-list (root could otherwise).
        "chroot=/".to_owned(),
        // Controls: what the edge needs still works.
        format!("read={}", data.join("edge/tls/cert.pem").display()),
        format!("connect={}", rampart.ports.core),
    ];
    let r = probe("rampart-edge", &args, &spec);
    assert_denied(&r, "read /etc/shadow");
    assert_denied(&r, &format!("read {}", data.join("core/rampart.db").display()));
    assert_denied(&r, &format!("read {}", data.join("host-key").display()));
    assert_denied(&r, &format!("write {}", outside.path().join("dropped").display()));
    assert_denied(&r, &format!("connect {other_addr}"));
    assert!(r.keys().any(|k| k.starts_with("bind ")));
    for (k, v) in &r {
        if k.starts_with("bind ") {
            assert_eq!(v["denied"], true, "{k}: {v}");
        }
    }
    assert_denied(&r, "exec /bin/sh");
    assert_denied(&r, &format!("signal {core_pid}"));
    assert_denied(&r, "chroot /");
    assert_allowed(&r, &format!("read {}", data.join("edge/tls/cert.pem").display()));
    assert_allowed(&r, &format!("connect {}", rampart.ports.core));
    assert!(!outside.path().join("dropped").exists());

    // The control for chroot: as root and without the sandbox the same
    // attempt works, so the denial above is the seccomp filter's.
    if rustix::process::geteuid().is_root() {
        let out = Command::new(bin("rampart-edge"))
            .args(&args)
            .args(["--danger-no-sandbox", "--probe-sandbox", "chroot=/"])
            .output()
            .unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["allowed"], true, "unsandboxed chroot as root: {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_core_cannot_leave_its_sandbox() {
    let rampart = Rampart::start().await;
    let data = rampart.data_dir.clone();
    let edge_pid = rampart.child_pid("rampart-edge").expect("edge running");
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    let outside = TempDir::new("rampart-probe");
    std::fs::write(outside.path().join("secret"), "another program's data").unwrap();
    let listen = free_port();
    let args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "--data-dir",
        data.to_str().unwrap(),
        "--origin-secret-file",
        data.join("origin-secret").to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let spec = vec![
        "read=/etc/shadow".to_owned(),
        format!("read={}", outside.path().join("secret").display()),
        format!("write={}", outside.path().join("dropped").display()),
        format!("connect={other_addr}"),
        format!("bind=127.0.0.1:{}", free_port()),
        "exec=/bin/sh".to_owned(),
        format!("signal={edge_pid}"),
        // Controls.
        format!("read={}", data.join("host-key").display()),
        format!("bind=127.0.0.1:{listen}"),
        format!("exec={}", bin("rampart-tunnel").display()),
    ];
    let r = probe("rampart-core", &args, &spec);
    assert_denied(&r, "read /etc/shadow");
    assert_denied(&r, &format!("read {}", outside.path().join("secret").display()));
    assert_denied(&r, &format!("write {}", outside.path().join("dropped").display()));
    assert_denied(&r, &format!("connect {other_addr}"));
    assert_denied(&r, "exec /bin/sh");
    assert_denied(&r, &format!("signal {edge_pid}"));
    let binds: Vec<_> = r.iter().filter(|(k, _)| k.starts_with("bind ")).collect();
    assert_eq!(binds.len(), 2);
    for (k, v) in binds {
        let own = k.ends_with(&format!(":{listen}"));
        assert_eq!(v[if own { "allowed" } else { "denied" }], true, "{k}: {v}");
    }
    assert_allowed(&r, &format!("read {}", data.join("host-key").display()));
    assert_allowed(&r, &format!("exec {}", bin("rampart-tunnel").display()));
}
