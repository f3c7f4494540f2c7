//! The process configuration: flags, each also an environment variable.

use std::fs;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::secret::{OriginSecret, SecretError};

/// `rampart-core`: Rampart's loopback-only control plane.
#[derive(Debug, Clone, Parser)]
#[command(name = "rampart-core", version, about)]
pub struct Config {
    /// Address to listen on. Must be a loopback address (127.0.0.0/8 or
    /// ::1): only the edge may reach the core.
    #[arg(long, env = "RAMPART_CORE_ADDR", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,

    /// The data directory. The core keeps its database in `DIR/core/` and
    /// writes the first-admin setup token to `DIR/setup-token`.
    #[arg(long, env = "RAMPART_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Where to read the origin secret (64 hex digits) from; `-` reads the
    /// first line of standard input and then treats end-of-file on standard
    /// input as the supervisor's death, and shuts down.
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub origin_secret_file: PathBuf,

    /// ACME: a name to get a certificate for (repeat for more). When any
    /// `--acme-*` flag is given, the given ones overwrite the stored
    /// settings at start (audited as `system`).
    #[arg(long = "acme-domain", env = "RAMPART_ACME_DOMAINS", value_delimiter = ',')]
    pub acme_domains: Vec<schemas::acme::DomainName>,

    /// ACME: the contact address given to the CA.
    #[arg(long, env = "RAMPART_ACME_EMAIL")]
    pub acme_email: Option<schemas::values::Email>,

    /// ACME: the CA's directory URL, or `letsencrypt`, `letsencrypt-staging`.
    #[arg(long, env = "RAMPART_ACME_DIRECTORY")]
    pub acme_directory: Option<schemas::acme::DirectoryUrl>,

    /// ACME: `http-01` (default), `tls-alpn-01` or `dns-01`.
    #[arg(long, env = "RAMPART_ACME_CHALLENGE")]
    pub acme_challenge: Option<schemas::acme::ChallengeKind>,

    /// ACME DNS-01: a command called as `CMD set|clear <domain> <txt-value>`
    /// to set or remove the TXT record `_acme-challenge.<domain>`.
    #[arg(long, env = "RAMPART_ACME_DNS_HOOK")]
    pub acme_dns_hook: Option<String>,

    /// The `rampart-tunnel` executable; default: `rampart-tunnel` next to
    /// this executable.
    #[arg(long, env = "RAMPART_TUNNEL_BIN", value_name = "PATH")]
    pub tunnel_bin: Option<PathBuf>,

    /// Run the tunnels in this network namespace (`/run/netns/NAME`)
    /// instead of the core's own.
    #[arg(long, env = "RAMPART_TUNNEL_NETNS", value_name = "NAME")]
    pub tunnel_netns: Option<String>,

    /// Run no tunnels: start and stop only record the wanted state. For a
    /// host that serves the API but no VPN traffic, and for tests that
    /// must not create interfaces.
    #[arg(long, env = "RAMPART_NO_TUNNELS")]
    pub no_tunnels: bool,

    /// Start tunnels without their sandbox (`--danger-no-sandbox`). For
    /// debugging only.
    #[arg(long)]
    pub danger_tunnel_no_sandbox: bool,

    /// Standard input is a socket to `rampart serve`, which starts the
    /// tunnels for this core (it holds no capability to do so itself);
    /// needs the origin secret on standard input. `rampart serve` passes it
    /// when it runs as root.
    #[arg(long)]
    pub tunnel_launcher: bool,

    /// TCP ports the DNS hook may connect to: it runs inside the core's
    /// sandbox. Default with a hook: 443.
    #[arg(long, env = "RAMPART_HOOK_CONNECT_PORTS", value_delimiter = ',')]
    pub hook_connect_port: Vec<u16>,

    /// Run without the Landlock sandbox. The core refuses to start when the
    /// kernel cannot enforce it; this flag starts it anyway, loudly.
    #[arg(long, env = "RAMPART_DANGER_NO_SANDBOX")]
    pub danger_no_sandbox: bool,

    /// Test aid: after sandboxing, try the comma-separated attempts
    /// (`read=PATH`, `connect=ADDR`, `bind=ADDR`, `exec=PATH`, `signal=PID`),
    /// print one JSON line each and exit.
    #[arg(long, hide = true)]
    pub probe_sandbox: Option<String>,
}

/// A configuration the core refuses (exit status 64).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The listen address is reachable from the network.
    #[error("--listen {0} is not a loopback address: the core must only listen on loopback (127.0.0.0/8 or ::1)")]
    NotLoopback(SocketAddr),
    /// `--tunnel-launcher` without the secret on standard input.
    #[error("--tunnel-launcher needs --origin-secret-file - (standard input is the supervisor's socket)")]
    LauncherNeedsStdin,
    /// The origin secret could not be read or is malformed.
    #[error("origin secret from {from}")]
    Secret {
        /// `standard input` or the file's path.
        from: String,
        /// Why.
        #[source]
        source: SecretError,
    },
}

impl Config {
    /// The ACME settings the flags set, if any flag was given.
    pub fn acme_change(&self) -> Option<crate::store::AcmeSettingsChange> {
        let given = !self.acme_domains.is_empty()
            || self.acme_email.is_some()
            || self.acme_directory.is_some()
            || self.acme_challenge.is_some();
        given.then(|| crate::store::AcmeSettingsChange {
            public_address: None,
            domains: (!self.acme_domains.is_empty()).then(|| self.acme_domains.clone()),
            email: self.acme_email.clone(),
            directory: self.acme_directory.clone(),
            challenge: self.acme_challenge,
        })
    }

    /// How to start tunnels, or `None` with `--no-tunnels`.
    pub fn tunnels(&self) -> Option<crate::tunnels::TunnelConfig> {
        if self.no_tunnels {
            return None;
        }
        let program = self.tunnel_bin.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join("rampart-tunnel")))
                .unwrap_or_else(|| PathBuf::from("rampart-tunnel"))
        });
        Some(crate::tunnels::TunnelConfig {
            program,
            netns: self.tunnel_netns.clone(),
            danger_no_sandbox: self.danger_tunnel_no_sandbox,
            launcher: None,
        })
    }

    /// Checks what can be checked without touching anything.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.listen.ip().is_loopback() {
            return Err(ConfigError::NotLoopback(self.listen));
        }
        if self.tunnel_launcher && !self.secret_from_stdin() {
            return Err(ConfigError::LauncherNeedsStdin);
        }
        Ok(())
    }

    /// Whether the secret comes from standard input.
    pub fn secret_from_stdin(&self) -> bool {
        self.origin_secret_file.as_os_str() == "-"
    }

    /// Reads the origin secret: the first line of standard input, or of the
    /// file. Standard input is left open after that line for
    /// [`crate::shutdown::stdin_closed`] to watch.
    pub fn read_origin_secret(&self) -> Result<OriginSecret, ConfigError> {
        if self.secret_from_stdin() {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            return OriginSecret::read_line(&mut lock).map_err(|source| ConfigError::Secret {
                from: "standard input".into(),
                source,
            });
        }
        let from = self.origin_secret_file.display().to_string();
        let file = fs::File::open(&self.origin_secret_file).map_err(|e| ConfigError::Secret {
            from: from.clone(),
            source: SecretError::Io(e),
        })?;
        OriginSecret::read_line(&mut std::io::BufReader::new(file).take_first_line())
            .map_err(|source| ConfigError::Secret { from, source })
    }
}

/// Reads at most one line's worth (a secret line is 65 bytes), so a huge
/// file given by mistake is not read whole.
trait TakeFirstLine: BufRead + Sized {
    fn take_first_line(self) -> std::io::Take<Self> {
        std::io::Read::take(self, 4096)
    }
}

impl<R: BufRead> TakeFirstLine for R {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("rampart-core").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_and_loopback_rule() {
        let c = parse(&["--data-dir", "/tmp/x"]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:7878");
        assert!(c.secret_from_stdin());
        assert!(c.check().is_ok());
        for addr in ["0.0.0.0:7878", "[::]:7878", "198.18.0.1:7878"] {
            let c = parse(&["--data-dir", "/tmp/x", "--listen", addr]);
            assert!(matches!(c.check(), Err(ConfigError::NotLoopback(_))), "{addr}");
        }
        assert!(parse(&["--data-dir", "/tmp/x", "--listen", "[::1]:1"]).check().is_ok());
    }

    #[test]
    fn reads_the_secret_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let secret = OriginSecret::random();
        fs::write(&path, format!("{}\n", secret.to_hex())).unwrap();
        let c = parse(&["--data-dir", "/tmp/x", "--origin-secret-file", path.to_str().unwrap()]);
        assert!(c.read_origin_secret().unwrap().verify(secret.to_hex().as_bytes()));
        fs::write(&path, "nope").unwrap();
        assert!(c.read_origin_secret().is_err());
    }
}
