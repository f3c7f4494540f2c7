//! What the core may touch once it is running, as a Landlock policy: its
//! data directory, its own port, and what starting a tunnel needs.
//!
//! A tunnel inherits the core's Landlock domain (a child never gets more
//! than its parent), so the core's policy also covers what a tunnel needs
//! before it sandboxes itself further: its binary and libraries, the TUN
//! device and named network namespaces. A DNS-01 hook runs inside this
//! domain too; with one configured, the system's programs become
//! executable and the hook's TCP ports reachable.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The core's Landlock policy for `config`. Creates the data directory
/// (mode 0700) if missing: a rule needs the directory to exist.
pub fn policy(config: &Config) -> std::io::Result<confine::Policy> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)?;
    let mut read_exec = confine::library_dirs();
    // The tunnel the core will start (`--tunnel-bin`, or beside the core),
    // unless `rampart serve` starts them; the tunnel opens the TUN device
    // and a named namespace before it sandboxes itself.
    let tunnel = config.tunnels().filter(|_| !config.tunnel_launcher).map(|t| t.program);
    let mut read_if_present: Vec<PathBuf> = vec!["/etc/ld.so.cache".into()];
    // Spawned processes get /dev/null for unused stdio.
    let mut read_write_if_present: Vec<PathBuf> = vec!["/dev/null".into()];
    if tunnel.is_some() {
        read_if_present.push("/run/netns".into());
        read_write_if_present.push("/dev/net/tun".into());
    }
    read_exec.extend(tunnel.filter(|p| p.exists()));
    let mut read_only = Vec::new();
    let mut connect_tcp = Vec::new();
    if let Some(hook) = &config.acme_dns_hook {
        let hook = Path::new(hook);
        if hook.is_absolute() && hook.exists() {
            read_exec.push(hook.to_path_buf());
        }
        read_exec.extend(
            ["/usr", "/bin", "/sbin"]
                .into_iter()
                .map(PathBuf::from)
                .filter(|p| p.exists()),
        );
        read_only.push(PathBuf::from("/etc"));
        connect_tcp = if config.hook_connect_port.is_empty() {
            vec![443]
        } else {
            config.hook_connect_port.clone()
        };
    }
    Ok(confine::Policy {
        read_write: vec![config.data_dir.clone()],
        read_only,
        read_exec,
        read_if_present,
        read_write_if_present,
        bind_tcp: vec![config.listen.port()],
        connect_tcp,
    })
}
