//! `rampart serve`: resolve the configuration, prepare the data directory,
//! then hand over to the [`crate::supervisor`].

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Args;

/// Flags of `rampart serve`. Unset values get defaults that depend on
/// whether the command runs as root (a production install) or not (a try-out
/// in the current directory).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where everything is kept. Default: `/var/lib/rampart` as root,
    /// `./rampart-data` otherwise.
    #[arg(long, env = "RAMPART_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Plain-HTTP listener (ACME challenges, redirects). Default: `0.0.0.0:80`
    /// as root, `0.0.0.0:8080` otherwise.
    #[arg(long, env = "RAMPART_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,

    /// HTTPS listener. Default: `0.0.0.0:443` as root, `0.0.0.0:8443` otherwise.
    #[arg(long, env = "RAMPART_HTTPS_ADDR")]
    pub https_addr: Option<SocketAddr>,

    /// The core's listener; must be a loopback address.
    #[arg(long, env = "RAMPART_CORE_ADDR", default_value = "127.0.0.1:7878")]
    pub core_addr: SocketAddr,

    /// Where `rampart-core` and `rampart-edge` are. Default: beside this
    /// program.
    #[arg(long, env = "RAMPART_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// ACME settings, passed on to the core (names, contact, CA, challenge,
    /// DNS hook) and the edge (CA root).
    #[command(flatten)]
    pub acme: AcmeArgs,

    /// Run edge and core without their Landlock sandboxes (they refuse to
    /// start when the kernel cannot enforce them). For debugging only.
    #[arg(long, env = "RAMPART_DANGER_NO_SANDBOX")]
    pub danger_no_sandbox: bool,

    /// As root, keep edge, core and tunnels running as root instead of the
    /// users rampart-edge, rampart-core and rampart-tunnel. For debugging
    /// only.
    #[arg(long, env = "RAMPART_NO_PRIVSEP")]
    pub no_privsep: bool,

    /// Run the tunnels in this network namespace (`/run/netns/NAME`).
    #[arg(long, env = "RAMPART_TUNNEL_NETNS", value_name = "NAME")]
    pub tunnel_netns: Option<String>,
}

/// `--acme-*` flags. Given names, contact, directory and challenge
/// overwrite the stored settings at start; without them the settings from
/// `PATCH /api/v1/settings` stay.
#[derive(Debug, Clone, Default, Args)]
pub struct AcmeArgs {
    /// A name to get a certificate for (repeat for more).
    #[arg(long = "acme-domain", env = "RAMPART_ACME_DOMAINS", value_delimiter = ',')]
    pub domains: Vec<schemas::acme::DomainName>,

    /// The contact address given to the CA.
    #[arg(long = "acme-email", env = "RAMPART_ACME_EMAIL")]
    pub email: Option<schemas::values::Email>,

    /// The CA: an https:// directory URL, `letsencrypt` or `letsencrypt-staging`.
    #[arg(long = "acme-directory", env = "RAMPART_ACME_DIRECTORY")]
    pub directory: Option<schemas::acme::DirectoryUrl>,

    /// A PEM root certificate to trust for the CA (a private or test CA).
    #[arg(long = "acme-ca-root", env = "RAMPART_ACME_CA_ROOT")]
    pub ca_root: Option<PathBuf>,

    /// `http-01` (default), `tls-alpn-01` or `dns-01`.
    #[arg(long = "acme-challenge", env = "RAMPART_ACME_CHALLENGE")]
    pub challenge: Option<schemas::acme::ChallengeKind>,

    /// For dns-01: a command called as `CMD set|clear <domain> <txt-value>`.
    #[arg(long = "acme-dns-hook", env = "RAMPART_ACME_DNS_HOOK")]
    pub dns_hook: Option<String>,

    /// TCP ports the DNS hook may connect to (it runs in the core's
    /// sandbox). Default: 443.
    #[arg(
        long = "acme-dns-hook-port",
        env = "RAMPART_ACME_DNS_HOOK_PORTS",
        value_delimiter = ','
    )]
    pub dns_hook_ports: Vec<u16>,

    /// More TCP ports the edge's ACME client may connect to, for a CA set
    /// later through the API on a port other than 443.
    #[arg(long = "acme-port", env = "RAMPART_ACME_PORTS", value_delimiter = ',')]
    pub ports: Vec<u16>,
}

impl AcmeArgs {
    /// The flags for the core.
    pub fn core_args(&self) -> Vec<std::ffi::OsString> {
        let mut out = Vec::new();
        for domain in &self.domains {
            out.extend(["--acme-domain".into(), domain.as_str().into()]);
        }
        if let Some(email) = &self.email {
            out.extend(["--acme-email".into(), email.as_str().into()]);
        }
        if let Some(directory) = &self.directory {
            out.extend(["--acme-directory".into(), directory.as_str().into()]);
        }
        if let Some(challenge) = self.challenge {
            out.extend(["--acme-challenge".into(), challenge.as_str().into()]);
        }
        if let Some(hook) = &self.dns_hook {
            out.extend(["--acme-dns-hook".into(), hook.into()]);
        }
        if !self.dns_hook_ports.is_empty() {
            out.extend(["--hook-connect-port".into(), join(&self.dns_hook_ports).into()]);
        }
        out
    }

    /// The flags for the edge.
    pub fn edge_args(&self) -> Vec<std::ffi::OsString> {
        let mut out = Vec::new();
        if let Some(root) = &self.ca_root {
            out.extend(["--acme-ca-root".into(), root.clone().into_os_string()]);
        }
        // The edge's sandbox lets its ACME client reach these ports only.
        let mut ports = vec![443];
        ports.extend(self.directory.as_ref().map(schemas::acme::DirectoryUrl::port));
        ports.extend(&self.ports);
        ports.sort_unstable();
        ports.dedup();
        out.extend(["--acme-connect-port".into(), join(&ports).into()]);
        out
    }
}

fn join(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// Plain-HTTP listener.
    pub http_addr: SocketAddr,
    /// HTTPS listener.
    pub https_addr: SocketAddr,
    /// The core's loopback listener.
    pub core_addr: SocketAddr,
    /// Where the process binaries are.
    pub bin_dir: PathBuf,
    /// ACME flags for the children.
    pub acme: AcmeArgs,
    /// Start edge and core without their sandboxes.
    pub danger_no_sandbox: bool,
    /// Run edge, core and tunnels as their own unprivileged users (as
    /// root, unless `--no-privsep`).
    pub privsep: bool,
    /// The tunnels' network namespace.
    pub tunnel_netns: Option<String>,
}

/// A configuration `rampart serve` refuses. Exits with status 64.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The core would be reachable from the network.
    #[error("--core-addr {0} is not a loopback address: the core must only listen on loopback (127.0.0.0/8 or ::1)")]
    CoreNotLoopback(SocketAddr),
    /// `--acme-ca-root` does not name a PEM certificate file.
    #[error("--acme-ca-root {0}: not a readable PEM certificate file")]
    AcmeCaRoot(PathBuf),
    /// The current directory or the program's location is unknown.
    #[error("cannot resolve {what}: {source}")]
    Path {
        /// What was being resolved.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl ServeArgs {
    /// Applies the defaults and checks the result.
    pub fn resolve(self, is_root: bool) -> Result<ServeConfig, ConfigError> {
        if !self.core_addr.ip().is_loopback() {
            return Err(ConfigError::CoreNotLoopback(self.core_addr));
        }
        if let Some(root) = &self.acme.ca_root {
            let pem = fs::read_to_string(root).unwrap_or_default();
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(ConfigError::AcmeCaRoot(root.clone()));
            }
        }
        let (dir, http, https) = if is_root {
            ("/var/lib/rampart", 80, 443)
        } else {
            ("rampart-data", 8080, 8443)
        };
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from(dir));
        let data_dir = if data_dir.is_absolute() {
            data_dir
        } else {
            std::env::current_dir()
                .map_err(|source| ConfigError::Path {
                    what: "the current directory",
                    source,
                })?
                .join(data_dir)
        };
        let bin_dir = match self.bin_dir {
            Some(dir) => dir,
            None => std::env::current_exe()
                .map_err(|source| ConfigError::Path {
                    what: "this program's location",
                    source,
                })?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        Ok(ServeConfig {
            data_dir,
            http_addr: self.http_addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], http))),
            https_addr: self
                .https_addr
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], https))),
            core_addr: self.core_addr,
            bin_dir,
            acme: self.acme,
            danger_no_sandbox: self.danger_no_sandbox,
            privsep: is_root && !self.no_privsep,
            tunnel_netns: self.tunnel_netns,
        })
    }
}

impl ServeConfig {
    /// The edge's state directory.
    pub fn edge_state_dir(&self) -> PathBuf {
        self.data_dir.join("edge")
    }

    /// The file the core writes the one-time setup token to.
    pub fn setup_token_file(&self) -> PathBuf {
        self.data_dir.join("setup-token")
    }

    /// A URL for this host's HTTPS listener, for people to open.
    pub fn https_url(&self) -> String {
        let host = if self.https_addr.ip().is_unspecified() || self.https_addr.ip().is_loopback() {
            "localhost".to_owned()
        } else if self.https_addr.is_ipv6() {
            format!("[{}]", self.https_addr.ip())
        } else {
            self.https_addr.ip().to_string()
        };
        match self.https_addr.port() {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    }
}

/// Creates the data directory (mode 0700) and returns the per-install origin
/// secret, creating it (mode 0600) on first start.
pub fn prepare_data_dir(config: &ServeConfig) -> std::io::Result<String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)?;
    fs::set_permissions(&config.data_dir, fs::Permissions::from_mode(0o700))?;
    let path = config.data_dir.join("origin-secret");
    match fs::read_to_string(&path) {
        Ok(text) if text.trim().len() == 64 && hex::decode(text.trim()).is_ok() => {
            return Ok(text.trim().to_owned());
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "origin secret file is malformed; making a new one")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(secret)
}

/// Prints how to create the first admin, if setup is still pending.
#[allow(clippy::print_stdout)]
pub fn print_setup_banner(config: &ServeConfig) {
    let Ok(token) = fs::read_to_string(config.setup_token_file()) else {
        return;
    };
    let token = token.trim();
    let url = config.https_url();
    println!();
    println!("================================================================");
    println!(" Rampart is running. No admin exists yet.");
    println!();
    println!(
        " One-time setup token (also in {}):",
        config.setup_token_file().display()
    );
    println!("   {token}");
    println!();
    println!(" Open this URL to create the first admin:");
    println!("   {url}/setup#token={token}");
    println!();
    println!(" or, from a shell:");
    println!("   curl -k {url}/api/v1/setup -H 'content-type: application/json' \\");
    println!("     -d '{{\"token\":\"{token}\",\"username\":\"admin\",\"password\":\"<12+ characters>\"}}'");
    println!("================================================================");
    println!();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            data_dir: None,
            http_addr: None,
            https_addr: None,
            core_addr: "127.0.0.1:7878".parse().unwrap(),
            bin_dir: None,
            acme: AcmeArgs::default(),
            danger_no_sandbox: false,
            no_privsep: false,
            tunnel_netns: None,
        }
    }

    #[test]
    fn the_edge_may_reach_the_directory_port() {
        let mut a = args();
        a.acme.directory = Some("https://ca.example:14000/dir".to_owned().try_into().unwrap());
        a.acme.ports = vec![8443];
        let edge = a.acme.edge_args();
        let at = edge.iter().position(|f| f == "--acme-connect-port").unwrap();
        assert_eq!(edge[at + 1], "443,8443,14000");
    }

    #[test]
    fn defaults_depend_on_root() {
        let user = args().resolve(false).unwrap();
        assert_eq!(user.https_addr.port(), 8443);
        assert_eq!(user.http_addr.port(), 8080);
        assert!(user.data_dir.ends_with("rampart-data"));
        assert!(!user.privsep, "privileges are separated only by root");
        let root = args().resolve(true).unwrap();
        assert!(root.privsep);
        assert_eq!(root.https_addr.port(), 443);
        assert_eq!(root.data_dir, PathBuf::from("/var/lib/rampart"));
    }

    #[test]
    fn core_must_be_loopback() {
        for addr in ["0.0.0.0:7878", "198.18.0.1:7878", "[::]:7878"] {
            let a = ServeArgs {
                core_addr: addr.parse().unwrap(),
                ..args()
            };
            assert!(
                matches!(a.resolve(false), Err(ConfigError::CoreNotLoopback(_))),
                "{addr}"
            );
        }
        let v6 = ServeArgs {
            core_addr: "[::1]:7878".parse().unwrap(),
            ..args()
        };
        assert!(v6.resolve(false).is_ok());
    }
}
