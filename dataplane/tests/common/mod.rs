//! A little lab for the tunnel: two network namespaces joined by a veth
//! pair, `rampart-tunnel` in one, stock wireguard-go in the other. Everything
//! is created per test, named uniquely, and removed on drop; addresses are
//! from 198.18.0.0/15 and 2001:db8::/32 only.
#![allow(clippy::expect_used, clippy::unwrap_used, dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemas::tunnel::{Command as Cmd, IfAddr, PeerSpec, Reply, Request, Setup, encode_frame, frame_len};
use schemas::values::WgKey;

pub const SERVER_VETH: &str = "198.18.1.1";
pub const CLIENT_VETH: &str = "198.18.1.2";
pub const SERVER_TUN: &str = "198.18.100.1";
pub const CLIENT_TUN: &str = "198.18.100.2";
pub const SERVER_TUN6: &str = "2001:db8:100::1";
pub const CLIENT_TUN6: &str = "2001:db8:100::2";
pub const PORT: u16 = 51820;

/// Runs a command; panics with its output if it fails.
pub fn run(args: &[&str]) -> String {
    let out = output(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and returns what happened. A missing tool is a failure,
/// never a skip.
pub fn output(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (is it installed? .ci/run installs it): {e}", args[0]))
}

/// A namespace that is deleted (with everything in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rpdp-{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// `ip netns exec NAME args...`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    pub fn ping(&self, to: &str, count: u32) -> bool {
        self.cmd(&["ping", "-c", &count.to_string(), "-W", "1", "-i", "0.2", to])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("ping runs")
            .success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A server namespace and a client namespace on one veth link.
pub struct Lab {
    pub server: Netns,
    pub client: Netns,
}

impl Lab {
    pub fn new() -> Lab {
        let server = Netns::new("s");
        let client = Netns::new("c");
        run(&[
            "ip",
            "link",
            "add",
            "v0",
            "netns",
            &server.name,
            "type",
            "veth",
            "peer",
            "name",
            "v1",
            "netns",
            &client.name,
        ]);
        run(&[
            "ip",
            "-n",
            &server.name,
            "addr",
            "add",
            &format!("{SERVER_VETH}/30"),
            "dev",
            "v0",
        ]);
        run(&[
            "ip",
            "-n",
            &client.name,
            "addr",
            "add",
            &format!("{CLIENT_VETH}/30"),
            "dev",
            "v1",
        ]);
        run(&["ip", "-n", &server.name, "link", "set", "v0", "up"]);
        run(&["ip", "-n", &client.name, "link", "set", "v1", "up"]);
        Lab { server, client }
    }
}

/// A key pair made by `wg`, the stock tool.
pub struct Keys {
    pub private: WgKey,
    pub public: WgKey,
}

impl Keys {
    pub fn generate() -> Keys {
        let private = run(&["wg", "genkey"]).trim().to_string();
        let mut child = Command::new("wg")
            .arg("pubkey")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("wg pubkey");
        child.stdin.take().unwrap().write_all(private.as_bytes()).unwrap();
        let public = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
        Keys {
            private: private.parse().unwrap(),
            public: public.trim().parse().unwrap(),
        }
    }
}

/// A running `rampart-tunnel` and the core's end of its control socket.
pub struct Tunnel {
    pub child: Child,
    control: UnixStream,
    next_id: u64,
    /// Its log so far (stderr, also passed on to the test's).
    log: Arc<Mutex<String>>,
}

impl Tunnel {
    /// Starts the tunnel in `ns` with extra flags; sends nothing yet.
    pub fn spawn(ns: &Netns, flags: &[&str]) -> Tunnel {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let child = Command::new(env!("CARGO_BIN_EXE_rampart-tunnel"))
            .args(["--netns", &ns.name])
            .args(flags)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rampart-tunnel");
        ours.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut child = child;
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        // Ends when the tunnel does (its stderr closes).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Tunnel {
            child,
            control: ours,
            next_id: 1,
            log,
        }
    }

    /// What the tunnel has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The offload counters from the log line each `stats` request writes:
    /// (segmented, segments out, coalesced, segments in, malformed).
    pub fn offload_counters(&mut self) -> [u64; 5] {
        const MARK: &str = "offload counters";
        let before = self.log().matches(MARK).count();
        let _ = self.stats();
        let names = [
            "segmented=",
            "segments_out=",
            "coalesced=",
            "segments_in=",
            "malformed=",
        ];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let log = self.log();
            // The line this request wrote, not an earlier one still in the
            // log while the reader thread catches up.
            if log.matches(MARK).count() > before
                && let Some(line) = log.lines().rev().find(|l| l.contains(MARK))
            {
                return names.map(|name| {
                    let at = line.find(name).expect(name) + name.len();
                    line[at..].split_whitespace().next().unwrap().parse().unwrap()
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no offload counters in the log");
    }

    /// Starts the tunnel and sets it up as the lab's server.
    pub fn start(ns: &Netns, key: &Keys) -> Tunnel {
        let mut t = Tunnel::spawn(ns, &[]);
        match t.request(Cmd::Setup(setup(key))) {
            Reply::Ready { .. } => t,
            other => panic!("setup failed: {other:?}"),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.control.write_all(bytes).expect("write control");
    }

    pub fn request(&mut self, command: Cmd) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        self.send_raw(&encode_frame(&Request { id, command }).unwrap());
        self.read_reply()
    }

    pub fn read_reply(&mut self) -> Reply {
        let mut header = [0u8; 4];
        self.control.read_exact(&mut header).expect("reply header");
        let mut body = vec![0u8; frame_len(header).expect("frame size")];
        self.control.read_exact(&mut body).expect("reply body");
        serde_json::from_slice(&body).expect("reply json")
    }

    pub fn upsert(&mut self, peers: Vec<PeerSpec>) {
        assert!(matches!(self.request(Cmd::UpsertPeers { peers }), Reply::Done { .. }));
    }

    pub fn stats(&mut self) -> (Vec<schemas::tunnel::PeerStats>, schemas::tunnel::Totals) {
        match self.request(Cmd::Stats) {
            Reply::Stats { peers, totals, .. } => (peers, totals),
            other => panic!("stats: {other:?}"),
        }
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn setup(key: &Keys) -> Setup {
    Setup {
        interface: "rp0".into(),
        private_key: key.private.clone(),
        listen_port: PORT,
        addresses: vec![
            IfAddr {
                address: SERVER_TUN.parse().unwrap(),
                prefix_len: 24,
            },
            IfAddr {
                address: SERVER_TUN6.parse().unwrap(),
                prefix_len: 64,
            },
        ],
        mtu: 1420,
        workers: 0,
        socket_buffer: 4 << 20,
    }
}

pub fn client_peer(key: &Keys) -> PeerSpec {
    PeerSpec {
        public_key: key.public.clone(),
        preshared_key: None,
        allowed_ips: vec![
            format!("{CLIENT_TUN}/32").parse().unwrap(),
            format!("{CLIENT_TUN6}/128").parse().unwrap(),
        ],
        persistent_keepalive: None,
        endpoint: None,
    }
}

/// Stock wireguard-go in the foreground, killed on drop.
pub struct WgGo {
    child: Child,
    /// The interface name. Unique across tests: wireguard-go's control
    /// socket lives in the shared `/var/run/wireguard/NAME.sock`.
    pub name: String,
}

impl WgGo {
    /// Brings up a wireguard-go interface in the client namespace, peered
    /// with the server.
    pub fn start(ns: &Netns, client: &Keys, server: &WgKey) -> WgGo {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("w{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let child = ns
            .cmd(&["wireguard-go", "-f", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wireguard-go (is it installed? .ci/run installs it)");
        let wg = WgGo {
            child,
            name: name.clone(),
        };
        let start = Instant::now();
        while ns
            .cmd(&["ip", "link", "show", &name])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "wireguard-go did not create {name}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, client.private.as_str()).unwrap();
        ns.run(&[
            "wg",
            "set",
            &name,
            "private-key",
            key_file.to_str().unwrap(),
            "peer",
            server.as_str(),
            "endpoint",
            &format!("{SERVER_VETH}:{PORT}"),
            "allowed-ips",
            "198.18.100.0/24,2001:db8:100::/64",
        ]);
        ns.run(&["ip", "addr", "add", &format!("{CLIENT_TUN}/24"), "dev", &name]);
        ns.run(&["ip", "addr", "add", &format!("{CLIENT_TUN6}/64"), "dev", &name, "nodad"]);
        ns.run(&["ip", "link", "set", &name, "up"]);
        wg
    }
}

impl Drop for WgGo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
