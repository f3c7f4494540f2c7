//! `run` on a real listener, and the `rampart-core` binary's exits.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use core_api::{AppState, OriginSecret};
use schemas::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_rampart-core");

/// One HTTP/1.1 exchange, by hand: the answer's status line and body.
async fn get(addr: SocketAddr, path: &str, proof: Option<&str>) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let proof = proof
        .map(|p| format!("{}: {p}\r\n", wire::ORIGIN_PROOF))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nhost: core\r\n{proof}connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn run_serves_on_loopback_and_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let secret = OriginSecret::random();
    let state = AppState::open(dir.path(), secret.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(core_api::run(listener, state, async {
        let _ = stopped.await;
    }));

    let (status, body) = get(addr, "/healthz", Some(&secret.to_hex())).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, r#"{"status":"ok"}"#);
    let (status, _) = get(addr, "/healthz", None).await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");

    stop.send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "port closed");
}

#[test]
fn a_non_loopback_address_is_refused_with_64_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for addr in ["0.0.0.0:7878", "[::]:7878", "198.18.0.1:7878"] {
        let out = Command::new(BIN)
            .args(["--listen", addr, "--data-dir"])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{addr}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a loopback address"), "{stderr}");
    }
    assert!(!data.exists());
}

#[test]
fn bad_configuration_is_64() {
    let dir = tempfile::tempdir().unwrap();
    // No data directory.
    let out = Command::new(BIN).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    // A malformed secret.
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"not-hex\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));
    // Help is not an error.
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test]
async fn the_binary_serves_and_stops_when_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let secret = OriginSecret::random();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &addr.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{}\n", secret.to_hex()).as_bytes()).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the core did not start listening");
        assert!(child.try_wait().unwrap().is_none(), "the core exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(addr, "/readyz", Some(&secret.to_hex())).await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(crate::support::mode(&dir.path().join("setup-token")), 0o600);

    // The supervisor "dies": its end of the pipe closes.
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the core outlived its stdin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
