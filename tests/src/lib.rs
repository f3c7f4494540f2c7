//! The end-to-end test harness: starts the real `rampart` binaries on
//! free loopback ports in a temporary data directory and talks to them
//! as a client would.
//!
//! The binaries must be built first (`cargo build --bins`, same profile as
//! the tests); `RAMPART_BIN_DIR` overrides where they are looked for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failure should stop the test loudly"
)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod api;
pub mod netns;
pub mod pebble;

/// Where the binaries under test are.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RAMPART_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // The test binary is target/<profile>/deps/e2e-<hash>.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    for name in ["rampart", "rampart-core", "rampart-edge"] {
        assert!(
            dir.join(name).exists(),
            "{} is missing: build the binaries first (cargo build --bins, same profile as the tests) or set RAMPART_BIN_DIR",
            dir.join(name).display()
        );
    }
    dir
}

/// A path to one of the binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A free TCP port on loopback. The port is released before it is used, so
/// another process could take it in between; a clash fails the test loudly
/// rather than silently.
pub fn free_port() -> u16 {
    hold_port().local_addr().unwrap().port()
}

/// A listener on a free loopback port below the kernel's ephemeral range.
///
/// `bind(0)` hands out ports from the ephemeral range, where every outgoing
/// connection also takes its source port: a port the harness released for
/// a process to bind could be taken by any test's client connection in
/// between (it was: the core of one test could not bind its port for a
/// minute). Ports below that range are only ever taken by an explicit
/// bind. Each test process starts at a random port, so parallel tests
/// rarely even try the same one, and a port in use is skipped.
fn hold_port() -> TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_low <= LOWEST + 1_000 {
        return TcpListener::bind("127.0.0.1:0").unwrap();
    }
    let span = ephemeral_low - LOWEST;
    let _ = NEXT.compare_exchange(0, rand::random_range(1..=span), Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..span {
        let port = LOWEST + NEXT.fetch_add(1, Ordering::Relaxed) % span;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", u16::try_from(port).unwrap())) {
            return listener;
        }
    }
    panic!("no free loopback port from {LOWEST} to {ephemeral_low}");
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory.
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Addresses of one running instance.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Plain HTTP.
    pub http: SocketAddr,
    /// HTTPS.
    pub https: SocketAddr,
    /// The core (loopback).
    pub core: SocketAddr,
}

impl Ports {
    /// Three fresh loopback ports.
    pub fn fresh() -> Self {
        // All three held at once: one after another, the kernel may hand
        // out the same port twice (it did: core and HTTPS collided).
        let held: [TcpListener; 3] = std::array::from_fn(|_| hold_port());
        let [http, https, core] = held.map(|l| l.local_addr().unwrap());
        Self { http, https, core }
    }
}

/// A running `rampart serve`.
#[derive(Debug)]
pub struct Rampart {
    child: Option<Child>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where it listens.
    pub ports: Ports,
    log: PathBuf,
    _tmp: Option<TempDir>,
}

impl Rampart {
    /// Starts an instance in a new temporary data directory and waits until
    /// it is ready.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`Rampart::start`], letting the test add environment or flags.
    pub async fn start_with(configure: impl FnOnce(&mut Command)) -> Self {
        Self::start_on(Ports::fresh(), configure).await
    }

    /// Like [`Rampart::start_with`], on chosen ports (e.g. ports an ACME
    /// test CA was told to validate on).
    pub async fn start_on(ports: Ports, configure: impl FnOnce(&mut Command)) -> Self {
        let tmp = TempDir::new("rampart-e2e");
        let data_dir = tmp.path().join("data");
        let mut this = Self::spawn(&data_dir, ports, configure, tmp.path().join("serve.log"));
        this._tmp = Some(tmp);
        this.wait_ready().await;
        this
    }

    /// Starts an instance on an existing data directory (a restart).
    pub async fn restart_on(data_dir: &Path, ports: Ports, log: PathBuf) -> Self {
        Self::restart_with(data_dir, ports, log, |_| {}).await
    }

    /// Like [`Rampart::restart_on`], letting the test add environment or
    /// flags (the same as its first start, usually).
    pub async fn restart_with(
        data_dir: &Path,
        ports: Ports,
        log: PathBuf,
        configure: impl FnOnce(&mut Command),
    ) -> Self {
        let this = Self::spawn(data_dir, ports, configure, log);
        this.wait_ready().await;
        this
    }

    fn spawn(data_dir: &Path, ports: Ports, configure: impl FnOnce(&mut Command), log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(bin("rampart"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-addr")
            .arg(ports.http.to_string())
            .arg("--https-addr")
            .arg(ports.https.to_string())
            .arg("--core-addr")
            .arg(ports.core.to_string())
            .env("RUST_LOG", "info")
            // Starting a server must not create interfaces in the host's
            // network namespace; the tunnel tests remove this and give the
            // core a namespace of their own (`netns`).
            .env("RAMPART_NO_TUNNELS", "true")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        configure(&mut cmd);
        let child = cmd.spawn().unwrap();
        Self {
            child: Some(child),
            data_dir: data_dir.to_owned(),
            ports,
            log,
            _tmp: None,
        }
    }

    /// Waits until `/readyz` through the edge says ready.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = insecure_client_for(self.ports.https);
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "not ready within 60 s; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An HTTPS URL on the edge.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.ports.https.port())
    }

    /// A client that trusts this instance's certificate and resolves
    /// `localhost` to the edge's loopback address.
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.data_dir.join("edge/tls/cert.pem")).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .resolve("localhost", self.ports.https)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// The setup token the core wrote.
    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("setup-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Everything the instance printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The pid of the running child whose program is `name`
    /// (`rampart-core`, `rampart-edge`).
    pub fn child_pid(&self, name: &str) -> Option<u32> {
        children_of(self.pid())
            .into_iter()
            .find(|(_, comm)| comm == name)
            .map(|(pid, _)| pid)
    }

    /// Sends SIGTERM and waits for the supervisor to exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        signal(child.id(), rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rampart did not stop within 20 s of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rampart {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Live children of `parent`: `(pid, command name)`, from /proc.
pub fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses and may contain spaces; fields after it are fixed.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        let state = rest.first().copied().unwrap_or("");
        let ppid = rest.get(1).and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(parent) && state != "Z" {
            out.push((pid, comm));
        }
    }
    out
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// A client that accepts any certificate: only for probing whether
/// something answers at all (readiness), never for assertions about TLS.
pub fn insecure_client_for(https: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .resolve("localhost", https)
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}
