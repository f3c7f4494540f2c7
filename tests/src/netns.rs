//! Network namespaces for tests that move packets: created with a unique
//! name, joined by veth pairs, removed on drop. Nothing here touches the
//! host's own namespace: every `ip` call names a namespace this module made.
//!
//! Needs root and `ip`; [`require`] fails the test (never skips it) when a
//! tool is missing.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Fails the test unless every program in `tools` is on `PATH`.
pub fn require(tools: &[&str]) {
    for tool in tools {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
        assert!(
            found,
            "`{tool}` is not installed: this test needs root, iproute2, wireguard-go, wireguard-tools and ping (scripts/test-all installs them)"
        );
    }
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A network namespace that exists until dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
    children: Vec<Child>,
}

impl Netns {
    /// A new namespace named `rt-<tag>-<random>`, with its loopback up.
    pub fn new(tag: &str) -> Self {
        let name = format!("rt-{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let out = output(Command::new("ip").args(["netns", "add", &name]));
        assert!(
            out.status.success(),
            "ip netns add {name} (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Self {
            name,
            children: Vec::new(),
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Its name (as `ip netns` and `--netns` know it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `args` inside the namespace.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `args` inside; answers whether it succeeded.
    pub fn try_run(&self, args: &[&str]) -> bool {
        output(&mut self.cmd(args)).status.success()
    }

    /// Runs `args` inside and answers its standard output; fails the test
    /// when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = output(&mut self.cmd(args));
        assert!(
            out.status.success(),
            "in {}: {args:?} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `args` inside as a long-running process, killed on drop.
    pub fn spawn(&mut self, args: &[&str]) {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?}: {e}"));
        self.children.push(child);
    }

    /// One ping with a one-second wait; whether it was answered.
    pub fn ping(&self, to: &str) -> bool {
        self.try_run(&["ping", "-n", "-q", "-c", "1", "-W", "1", to])
    }

    /// Pings until one is answered, for at most `within`.
    pub fn ping_within(&self, to: &str, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.ping(to) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Pings until one goes unanswered, for at most `within`.
    pub fn ping_fails_within(&self, to: &str, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if !self.ping(to) {
                return true;
            }
        }
        false
    }

    /// The names of its interfaces.
    pub fn links(&self) -> Vec<String> {
        self.run(&["ip", "-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .collect()
    }

    /// Turns on IPv4 and IPv6 forwarding inside (a namespace's own sysctls).
    pub fn forward(&self) {
        self.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        self.run(&["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = output(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Joins `a` and `b` with a veth pair: `a_if` with `a_addr` (CIDR form) in
/// `a`, `b_if` with `b_addr` in `b`, both up.
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    let out = output(Command::new("ip").args([
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]));
    assert!(
        out.status.success(),
        "veth {a_if}/{b_if}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.run(&["ip", "addr", "add", addr, "dev", ifname]);
        ns.run(&["ip", "link", "set", ifname, "up"]);
    }
}
