//! `rampart acme renew`: asks the running instance to renew its certificate.
//!
//! It sets the core's "renew requested" flag through the core's loopback
//! port, with the origin proof read from `DATA_DIR/origin-secret` (only
//! someone who can read that file can do this); the edge picks the request
//! up at its next poll. The outcome shows in `GET /api/v1/settings` and in
//! the edge's log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Flags of `rampart acme renew`.
#[derive(Debug, Clone, Args)]
pub struct RenewArgs {
    /// The running instance's data directory.
    #[arg(long, env = "RAMPART_DATA_DIR")]
    pub data_dir: PathBuf,

    /// The core's loopback address.
    #[arg(long, env = "RAMPART_CORE_ADDR", default_value = "127.0.0.1:7878")]
    pub core_addr: SocketAddr,
}

/// Sends the request; fails unless the core accepted it.
pub fn renew(args: &RenewArgs) -> anyhow::Result<()> {
    if !args.core_addr.ip().is_loopback() {
        bail!("--core-addr {} is not a loopback address", args.core_addr);
    }
    let path = args.data_dir.join("origin-secret");
    let secret = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let secret = secret.trim();
    if secret.len() != 64 || hex::decode(secret).is_err() {
        bail!("{} is not an origin secret", path.display());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let status =
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), post(args.core_addr, secret)).await });
    let status = status.context("the core did not answer within 10 s")??;
    if status != 202 {
        bail!("the core answered {status}");
    }
    tracing::info!("renewal requested; the edge starts it within seconds (see GET /api/v1/settings)");
    Ok(())
}

async fn post(addr: SocketAddr, secret: &str) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the core at {addr}"))?;
    let request = format!(
        "POST /internal/acme/renew HTTP/1.1\r\nhost: {addr}\r\n{}: {secret}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        schemas::wire::ORIGIN_PROOF
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer).await?;
    let head = String::from_utf8_lossy(&answer);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .context("the core's answer is not HTTP")?;
    Ok(status)
}
