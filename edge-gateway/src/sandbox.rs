//! What the edge may touch once it is running, as a Landlock policy: its
//! own state directory, and outbound TCP only to the core and the ACME CA.
//!
//! Two things outside the state directory stay readable, because the ACME
//! client needs them after start: the files the system resolver reads (to
//! find the CA's address) and the CA roots it trusts (the system's, or the
//! `--acme-ca-root` file). Both are read-only; nothing else on disk is
//! reachable, and nothing can be executed.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::config::EdgeConfig;

/// The edge's Landlock policy for `config`. Creates the state directory
/// (mode 0700) if it is missing: a rule needs the directory to exist.
pub fn policy(config: &EdgeConfig) -> std::io::Result<confine::Policy> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.state_dir)?;
    let mut read_only: Vec<PathBuf> = Vec::new();
    if let Some(root) = &config.acme_ca_root {
        read_only.push(root.clone());
    }
    let mut read_if_present = confine::resolver_files();
    read_if_present.extend(confine::ca_dirs());
    let mut connect_tcp = vec![config.core_addr.port()];
    connect_tcp.extend(&config.acme_connect_port);
    connect_tcp.sort_unstable();
    connect_tcp.dedup();
    Ok(confine::Policy {
        read_write: vec![config.state_dir.clone()],
        read_only,
        read_if_present,
        bind_tcp: vec![config.http_addr.port(), config.https_addr.port()],
        connect_tcp,
        ..confine::Policy::default()
    })
}
