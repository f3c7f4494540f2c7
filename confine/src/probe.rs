//! Escape probes: a test aid. A process started with its hidden
//! `--probe-sandbox SPEC` flag applies its sandbox as usual, then tries each
//! thing in SPEC instead of serving, prints one JSON line per attempt and
//! exits. The tests read the lines and assert that what must be denied was
//! denied by the sandbox (`EACCES`/`EPERM`), not merely absent or refused.
//!
//! SPEC is a comma-separated list of `read=PATH`, `write=PATH`,
//! `connect=ADDR`, `bind=ADDR`, `exec=PATH`, `signal=PID` and `chroot=PATH`
//! (a system call the seccomp deny-list refuses).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

/// One thing to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Open a file for reading.
    Read(PathBuf),
    /// Create or open a file for writing.
    Write(PathBuf),
    /// A TCP connection.
    Connect(SocketAddr),
    /// A TCP listener.
    Bind(SocketAddr),
    /// Run a program.
    Exec(PathBuf),
    /// Signal 0 (the permission check of kill(2), nothing delivered).
    Signal(i32),
    /// chroot(2): allowed to root without a filter, refused with one.
    Chroot(PathBuf),
}

/// What happened.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// The attempt, as `kind target`.
    pub probe: String,
    /// It worked.
    pub allowed: bool,
    /// It failed with EACCES or EPERM: a sandbox said no.
    pub denied: bool,
    /// The error, if any.
    pub error: Option<String>,
}

/// Parses a probe spec.
pub fn parse(spec: &str) -> Result<Vec<Attempt>, String> {
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (kind, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected kind=value"))?;
            let addr = || value.parse::<SocketAddr>().map_err(|e| format!("{item:?}: {e}"));
            Ok(match kind {
                "read" => Attempt::Read(value.into()),
                "write" => Attempt::Write(value.into()),
                "connect" => Attempt::Connect(addr()?),
                "bind" => Attempt::Bind(addr()?),
                "exec" => Attempt::Exec(value.into()),
                "signal" => Attempt::Signal(value.parse().map_err(|e| format!("{item:?}: {e}"))?),
                "chroot" => Attempt::Chroot(value.into()),
                other => return Err(format!("unknown probe {other:?}")),
            })
        })
        .collect()
}

/// Tries one thing.
pub fn attempt(a: &Attempt) -> Outcome {
    let (probe, result): (String, std::io::Result<()>) = match a {
        Attempt::Read(p) => (format!("read {}", p.display()), std::fs::File::open(p).map(drop)),
        Attempt::Write(p) => (
            format!("write {}", p.display()),
            std::fs::OpenOptions::new().create(true).append(true).open(p).map(drop),
        ),
        Attempt::Connect(addr) => (
            format!("connect {addr}"),
            TcpStream::connect_timeout(addr, Duration::from_secs(2)).map(drop),
        ),
        Attempt::Bind(addr) => (format!("bind {addr}"), TcpListener::bind(addr).map(drop)),
        Attempt::Exec(p) => (
            format!("exec {}", p.display()),
            Command::new(p)
                .arg("-c")
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(drop),
        ),
        Attempt::Signal(pid) => (format!("signal {pid}"), signal0(*pid)),
        Attempt::Chroot(p) => (format!("chroot {}", p.display()), std::os::unix::fs::chroot(p)),
    };
    let denied = matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied);
    Outcome {
        probe,
        allowed: result.is_ok(),
        denied,
        error: result.err().map(|e| e.to_string()),
    }
}

fn signal0(pid: i32) -> std::io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid 0"))?;
    rustix::process::test_kill_process(pid).map_err(std::io::Error::from)
}

/// Runs every attempt and prints one JSON line each on stdout.
pub fn run_and_print(attempts: &[Attempt]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for a in attempts {
        let line = serde_json::to_string(&attempt(a)).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        let parsed = parse("read=/etc/shadow,connect=127.0.0.1:22,signal=1").unwrap_or_default();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2], Attempt::Signal(1));
        assert!(parse("connect=nowhere").is_err());
        assert!(parse("open=/x").is_err());
        assert!(parse("justtext").is_err());
    }
}
