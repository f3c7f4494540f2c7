//! The edge's configuration: one typed struct, from flags or `RAMPART_*`
//! environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// `rampart-edge`: terminates TLS, validates every request against the
/// route table and forwards what passes to the core over loopback.
#[derive(Debug, Clone, Parser)]
#[command(name = "rampart-edge", version)]
pub struct EdgeConfig {
    /// Plain-HTTP listener: ACME challenges and redirects to HTTPS.
    #[arg(long, env = "RAMPART_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// HTTPS listener.
    #[arg(long, env = "RAMPART_HTTPS_ADDR", default_value = "0.0.0.0:8443")]
    pub https_addr: SocketAddr,

    /// The core's loopback address.
    #[arg(long, env = "RAMPART_CORE_ADDR", default_value = "127.0.0.1:7878")]
    pub core_addr: SocketAddr,

    /// The edge's own state: its certificate and key.
    #[arg(long, env = "RAMPART_EDGE_STATE_DIR")]
    pub state_dir: PathBuf,

    /// File holding the per-install origin secret (64 hex characters); `-`
    /// reads it from standard input and then treats end of input as the
    /// supervisor's death, and shuts down.
    #[arg(long, env = "RAMPART_ORIGIN_SECRET_FILE", default_value = "-")]
    pub origin_secret_file: String,

    /// The HTTP and HTTPS listeners come already bound, as two descriptors
    /// sent with the secret's line on standard input (`rampart serve` binds
    /// :80 and :443 as root, so the edge needs no capability);
    /// `--http-addr`/`--https-addr` then only name them in logs.
    #[arg(long)]
    pub listeners_from_stdin: bool,

    /// The port in redirects to HTTPS, when the public port differs from the
    /// listener's (e.g. behind port forwarding). Defaults to the listener's.
    #[arg(long, env = "RAMPART_PUBLIC_HTTPS_PORT")]
    pub public_https_port: Option<u16>,

    /// Most simultaneous client connections; further ones wait in the
    /// kernel's accept queue.
    #[arg(long, env = "RAMPART_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// HTTPS worker threads, each with its own event loop, connections and
    /// pool of connections to the core. 0: one per CPU.
    #[arg(long, env = "RAMPART_EDGE_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Most requests sent together on one connection to the core, as an
    /// HTTP/1.1 pipeline: requests made in the same turn of a worker share
    /// one write (docs/performance.md). 1 sends each on its own connection.
    #[arg(long, env = "RAMPART_CORE_BATCH", default_value_t = crate::loopback::DEFAULT_BATCH,
          value_parser = parse_batch)]
    pub core_batch: usize,

    /// Largest request head (request line and headers), in bytes.
    #[arg(long, env = "RAMPART_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Time allowed for the TLS handshake and for a request's headers.
    #[arg(long, env = "RAMPART_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time allowed to receive a request body.
    #[arg(long, env = "RAMPART_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Time allowed for the core to answer.
    #[arg(long, env = "RAMPART_CORE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub core_timeout: Duration,

    /// Sign-in and setup attempts allowed per client address per minute.
    #[arg(long, env = "RAMPART_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 10)]
    pub login_attempts_per_minute: u32,

    /// How often the edge asks the core for ACME news (settings, renewal
    /// requests, a certificate another host stored).
    #[arg(long, env = "RAMPART_ACME_POLL", default_value = "5s", value_parser = parse_duration)]
    pub acme_poll: Duration,

    /// The wait after a failed ACME attempt; doubles per consecutive
    /// failure, up to 6 hours.
    #[arg(long, env = "RAMPART_ACME_RETRY", default_value = "1m", value_parser = parse_duration)]
    pub acme_retry: Duration,

    /// A PEM file with the root certificate to trust for the ACME directory
    /// (a private or test CA). Default: the system's roots.
    #[arg(long, env = "RAMPART_ACME_CA_ROOT")]
    pub acme_ca_root: Option<PathBuf>,

    /// TCP ports the ACME client may connect to (the sandbox refuses all
    /// others; the core's port is always allowed). Add the port of a CA
    /// whose directory URL is not on 443.
    #[arg(
        long,
        env = "RAMPART_ACME_CONNECT_PORTS",
        value_delimiter = ',',
        default_value = "443"
    )]
    pub acme_connect_port: Vec<u16>,

    /// Run without the Landlock sandbox and the seccomp filter. The edge
    /// refuses to start when the kernel cannot enforce them; this flag
    /// starts it anyway, loudly.
    #[arg(long, env = "RAMPART_DANGER_NO_SANDBOX")]
    pub danger_no_sandbox: bool,

    /// Test aid: after sandboxing, try the comma-separated attempts
    /// (`read=PATH`, `connect=ADDR`, `bind=ADDR`, `exec=PATH`, `signal=PID`),
    /// print one JSON line each and exit.
    #[arg(long, hide = true)]
    pub probe_sandbox: Option<String>,
}

/// A batch size from 1 to 256.
fn parse_batch(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 1..=256) => Ok(n),
        _ => Err(format!("{text:?} is not a number from 1 to 256")),
    }
}

/// Parses `500ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{text:?}: unit must be ms, s or m")),
    }
}
