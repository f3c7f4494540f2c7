//! The two-process model: loopback-only core, restarts, clean stops.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::api::{ADMIN, PASSWORD, Session};
use harness::{Rampart, TempDir, alive, bin, free_port, signal};
use rustix::process::Signal;

fn run_refused(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_non_loopback_core_address_is_refused_with_status_64() {
    let tmp = TempDir::new("rampart-refuse");
    for addr in ["0.0.0.0", "198.18.0.1", "[::]"] {
        let core = format!("{addr}:{}", free_port());
        let stderr = run_refused(
            Command::new(bin("rampart"))
                .args(["serve", "--core-addr", &core])
                .arg("--data-dir")
                .arg(tmp.path()),
        );
        assert!(stderr.contains("loopback"), "{stderr}");
        let stderr = run_refused(
            Command::new(bin("rampart-core"))
                .args(["--listen", &core])
                .arg("--data-dir")
                .arg(tmp.path()),
        );
        assert!(stderr.contains("loopback"), "{stderr}");
        let stderr = run_refused(
            Command::new(bin("rampart-edge"))
                .args(["--core-addr", &core])
                .arg("--state-dir")
                .arg(tmp.path()),
        );
        assert!(stderr.contains("loopback"), "{stderr}");
    }
    // An --acme-ca-root that is not a certificate file is refused too.
    let stderr = run_refused(
        Command::new(bin("rampart"))
            .args(["serve", "--acme-ca-root", "/nonexistent/root.pem"])
            .arg("--data-dir")
            .arg(tmp.path()),
    );
    assert!(stderr.contains("--acme-ca-root"), "{stderr}");
    let stderr = run_refused(
        Command::new(bin("rampart-edge"))
            .args(["--acme-ca-root", "/nonexistent/root.pem"])
            .arg("--state-dir")
            .arg(tmp.path()),
    );
    assert!(stderr.contains("--acme-ca-root"), "{stderr}");
    // Refused before anything was created or bound.
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing written"
    );
    // Also through the environment.
    let stderr = run_refused(
        Command::new(bin("rampart"))
            .arg("serve")
            .arg("--data-dir")
            .arg(tmp.path())
            .env("RAMPART_CORE_ADDR", "0.0.0.0:7878"),
    );
    assert!(stderr.contains("loopback"));
}

async fn wait_for_new_pid(rampart: &Rampart, name: &str, old: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = rampart.child_pid(name)
            && pid != old
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{name} was not restarted; log:\n{}",
            rampart.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_child_is_restarted_and_state_survives() {
    let rampart = Rampart::start().await;
    Session::admin(&rampart).await;
    for name in ["rampart-core", "rampart-edge"] {
        let old = rampart.child_pid(name).unwrap_or_else(|| panic!("{name} not running"));
        signal(old, Signal::KILL);
        let new = wait_for_new_pid(&rampart, name, old).await;
        assert!(!alive(old));
        rampart.wait_ready().await;
        // The restarted process serves the same data.
        let s = Session::login(&rampart, ADMIN, PASSWORD).await;
        let (status, _) = s.get("/api/v1/auth/me").await;
        assert_eq!(status, 200, "after restarting {name} (pid {new})");
    }
    assert!(rampart.log().contains("restarting after delay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_both_cleanly() {
    let mut rampart = Rampart::start().await;
    let core = rampart.child_pid("rampart-core").unwrap();
    let edge = rampart.child_pid("rampart-edge").unwrap();
    let status = rampart.stop();
    assert!(status.success(), "{status:?}\n{}", rampart.log());
    assert!(!alive(core) && !alive(edge));
    assert!(
        std::net::TcpStream::connect(rampart.ports.https).is_err(),
        "edge port closed"
    );
    assert!(
        std::net::TcpStream::connect(rampart.ports.core).is_err(),
        "core port closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_exit_when_the_supervisor_dies() {
    let rampart = Rampart::start().await;
    let core = rampart.child_pid("rampart-core").unwrap();
    let edge = rampart.child_pid("rampart-edge").unwrap();
    signal(rampart.pid(), Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(core) || alive(edge) {
        assert!(Instant::now() < deadline, "children outlived the supervisor");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
