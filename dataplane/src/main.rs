//! `rampart-tunnel`: started by the core, one per VPN server. Its standard
//! input is the control socket ([`schemas::tunnel`]); logs go to stderr.
//!
//! Order matters: enter the namespace, read the setup, open the TUN device,
//! drop to the tunnel's user if started as root (`--run-as`, keeping
//! CAP_NET_ADMIN), create the interface and sockets, sandbox, and only then
//! serve packets.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use dataplane::control::{Control, Incoming};
use dataplane::engine::{DEFAULT_HANDSHAKE_LIMIT, Engine};
use dataplane::{control, sandbox, setup, shell, sys};
use schemas::tunnel::{Command, Reply};
use tracing_subscriber::EnvFilter;

/// The Rampart tunnel: a WireGuard-compatible interface driven by the core
/// over the socket on its standard input.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Enter this network namespace (`/run/netns/NAME`) before creating
    /// anything.
    #[arg(long, env = "RAMPART_TUNNEL_NETNS")]
    netns: Option<String>,
    /// `UID:GID`: when started as root, become this user after entering the
    /// namespace, keeping only CAP_NET_ADMIN and CAP_NET_BIND_SERVICE for
    /// setup (`rampart serve` passes it; the sandbox drops those too).
    #[arg(long, value_parser = parse_ids)]
    run_as: Option<(u32, u32)>,
    /// Run without the sandbox (no capability drop, Landlock or seccomp).
    /// For debugging only.
    #[arg(long)]
    danger_no_sandbox: bool,
    /// Test aid: after setup and the sandbox, try what the sandbox must
    /// refuse, print one JSON line per attempt on stdout, and exit.
    #[arg(long, hide = true)]
    probe_sandbox: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logline::init(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(ns) = &args.netns {
        sys::netns::enter(ns).with_context(|| format!("enter network namespace {ns}"))?;
    }
    let stream = UnixStream::from(
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("dup the control socket")?,
    );
    let mut ctl = Control::new(stream);

    let req = match ctl.read().context("read the setup request")? {
        Incoming::Request(req) => req,
        Incoming::Closed => bail!("the control socket closed before setup"),
        Incoming::Malformed(why) => bail!("malformed setup request: {why}"),
    };
    let Command::Setup(config) = req.command else {
        ctl.reply(&Reply::Error {
            id: req.id,
            message: "the first request must be setup".into(),
        })?;
        bail!("the first request was not setup");
    };
    let workers = setup::workers(config.workers);
    // The TUN device may be root-only: open its handles before dropping to
    // the tunnel's user (which keeps CAP_NET_ADMIN for the rest of setup).
    let devices = sys::tun::open_devices(workers).context("open /dev/net/tun")?;
    if let Some((uid, gid)) = args.run_as {
        sandbox::become_user(uid, gid).with_context(|| format!("become uid {uid}, gid {gid}"))?;
        tracing::info!(
            uid,
            gid,
            "running as an unprivileged user with CAP_NET_ADMIN until setup is done"
        );
    }
    let interface = match setup::create(&config, devices) {
        Ok(i) => i,
        Err(e) => {
            ctl.reply(&Reply::Error {
                id: req.id,
                message: e.to_string(),
            })?;
            return Err(e).context("setup");
        }
    };
    let ifindex = interface.ifindex;
    tracing::info!(
        interface = %interface.name, ifindex, port = config.listen_port, workers,
        addresses = %setup::describe(&config), mtu = config.mtu, "interface up"
    );

    let sandbox = if args.danger_no_sandbox {
        tracing::warn!("running WITHOUT the sandbox (--danger-no-sandbox)");
        "none (--danger-no-sandbox)".to_string()
    } else {
        match sandbox::apply() {
            Ok(summary) => summary,
            Err(e) => {
                ctl.reply(&Reply::Error {
                    id: req.id,
                    message: format!("sandbox: {e}"),
                })?;
                return Err(e).context("sandbox");
            }
        }
    };
    tracing::info!(%sandbox, "sandboxed");
    if args.probe_sandbox {
        return probe();
    }

    let engine = Arc::new(Engine::new(config.private_key.to_bytes(), DEFAULT_HANDSHAKE_LIMIT));
    drop(config);
    shell::spawn(engine.clone(), interface).context("start the workers")?;
    let workers = u16::try_from(workers).unwrap_or(u16::MAX);
    ctl.reply(&Reply::Ready {
        id: req.id,
        ifindex,
        workers,
        sandbox,
    })?;
    control::serve(&engine, &mut ctl).context("control socket")?;
    // The workers block in poll; ending the process closes the TUN queues,
    // which removes the interface.
    std::process::exit(0)
}

fn parse_ids(text: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = text.split_once(':').ok_or("expected UID:GID")?;
    let uid: u32 = uid.parse().map_err(|_| format!("not a uid: {uid}"))?;
    let gid: u32 = gid.parse().map_err(|_| format!("not a gid: {gid}"))?;
    if uid == 0 || gid == 0 {
        return Err("--run-as must name an unprivileged user and group, not root".into());
    }
    Ok((uid, gid))
}

/// Tries what the sandbox must refuse; one JSON line per attempt.
fn probe() -> anyhow::Result<()> {
    let attempts: Vec<(&str, io::Result<()>)> = vec![
        ("open /etc/passwd", std::fs::File::open("/etc/passwd").map(drop)),
        ("open /etc/shadow", std::fs::File::open("/etc/shadow").map(drop)),
        (
            "create /tmp file",
            std::fs::File::create("/tmp/rampart-tunnel-probe").map(drop),
        ),
        (
            "tcp connect 127.0.0.1:22",
            std::net::TcpStream::connect("127.0.0.1:22").map(drop),
        ),
        (
            "tcp bind 127.0.0.1:0",
            std::net::TcpListener::bind("127.0.0.1:0").map(drop),
        ),
        ("udp socket", std::net::UdpSocket::bind("127.0.0.1:0").map(drop)),
        (
            "exec /bin/sh",
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg("true")
                .status()
                .map(drop),
        ),
    ];
    let mut out = io::stdout().lock();
    for (what, result) in attempts {
        let line = serde_json::json!({
            "probe": what,
            "denied": result.is_err(),
            "error": result.err().map(|e| e.to_string()),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}
