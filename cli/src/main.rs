//! `rampart`: the command operators type.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_cli::audit::{self, AuditCommand, Verdict};
use rampart_cli::launcher::TunnelLauncher;
use rampart_cli::privsep::{self, Users};
use rampart_cli::serve::{self, ServeArgs, ServeConfig};
use rampart_cli::supervisor::{self, ChildSpec, Ending, Handoff, Listeners, Supervised};
use tracing_subscriber::EnvFilter;

/// Exit status for a refused configuration (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(name = "rampart", version, about = "A security-hardened VPN server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Rampart: the core and the edge, supervised.
    Serve(Box<ServeArgs>),
    /// Check or export the audit log, offline, from the database file.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// ACME certificate commands.
    #[command(subcommand)]
    Acme(AcmeCommand),
    /// Create the system users edge, core and tunnels run as
    /// (rampart-edge, rampart-core, rampart-tunnel). `rampart serve` as
    /// root also creates them when missing.
    Install,
}

#[derive(Debug, Subcommand)]
enum AcmeCommand {
    /// Ask the running instance to renew its certificate now.
    Renew(rampart_cli::acme::RenewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logline::init(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    let is_root = rustix::process::geteuid().is_root();
    match cli.command {
        Command::Audit(AuditCommand::Verify(args)) => match audit::verify(&args, is_root, &mut std::io::stdout()) {
            Ok(Verdict::Intact) => ExitCode::SUCCESS,
            Ok(Verdict::Broken) => ExitCode::FAILURE,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::from(2)
            }
        },
        Command::Audit(AuditCommand::Export { args, output }) => {
            match audit::export(&args, output.as_deref(), is_root, &mut std::io::stdout()) {
                Ok(n) => {
                    tracing::info!(entries = n, "audit log exported");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Acme(AcmeCommand::Renew(args)) => match rampart_cli::acme::renew(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Install => {
            if !is_root {
                tracing::error!("rampart install creates system users: run it as root");
                return ExitCode::FAILURE;
            }
            match privsep::ensure_users() {
                Ok(users) => {
                    for (name, ids) in [
                        (privsep::EDGE_USER, users.edge),
                        (privsep::CORE_USER, users.core),
                        (privsep::TUNNEL_USER, users.tunnel),
                    ] {
                        tracing::info!(user = name, uid = ids.uid, gid = ids.gid, "system user ready");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let config = match (*args).resolve(is_root) {
                Ok(config) => config,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match run_serve(config) {
                Ok(Ending::Signalled) => ExitCode::SUCCESS,
                Ok(Ending::ConfigRefused(_)) => ExitCode::from(EXIT_USAGE),
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run_serve(config: ServeConfig) -> anyhow::Result<Ending> {
    let secret =
        serve::prepare_data_dir(&config).with_context(|| format!("preparing {}", config.data_dir.display()))?;
    let privsep = if config.privsep { Some(separate(&config)?) } else { None };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let core = Supervised::start(core_spec(&config, privsep.as_ref()), secret.clone()).await?;
        wait_for_port(config.core_addr, Duration::from_secs(30)).await;
        let edge = Supervised::start(edge_spec(&config, privsep.as_ref()), secret).await?;
        tracing::info!(url = %config.https_url(), data_dir = %config.data_dir.display(), "rampart is starting");
        serve::print_setup_banner(&config);
        Ok(supervisor::supervise(vec![core, edge]).await?)
    })
}

/// What privilege separation needs before anything starts: the users, the
/// data directory handed to them, and the listeners bound while we are
/// still root.
struct Privsep {
    users: Users,
    listeners: Arc<Listeners>,
}

fn separate(config: &ServeConfig) -> anyhow::Result<Privsep> {
    let users = privsep::ensure_users()?;
    // The tunnel is started as root; these two are executed as their users.
    for (program, user) in [
        ("rampart-core", privsep::CORE_USER),
        ("rampart-edge", privsep::EDGE_USER),
    ] {
        privsep::check_reachable(&config.bin_dir.join(program), user)?;
    }
    privsep::assign_data_dir(&config.data_dir, &config.edge_state_dir(), &users)?;
    let bind = |addr| std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"));
    let listeners = Arc::new(Listeners {
        http: bind(config.http_addr)?,
        https: bind(config.https_addr)?,
    });
    tracing::info!(
        edge_uid = users.edge.uid,
        core_uid = users.core.uid,
        tunnel_uid = users.tunnel.uid,
        http = %config.http_addr,
        https = %config.https_addr,
        "privileges separated: listeners bound as root, each process runs as its own user"
    );
    Ok(Privsep { users, listeners })
}

fn core_spec(config: &ServeConfig, privsep: Option<&Privsep>) -> ChildSpec {
    let mut args = [
        args(&[
            ("--listen", config.core_addr.to_string().into()),
            ("--data-dir", config.data_dir.clone().into()),
        ]),
        config.acme.core_args(),
        danger(config),
    ]
    .concat();
    let handoff = match privsep {
        Some(p) => {
            args.push("--tunnel-launcher".into());
            Handoff::Launcher(Arc::new(TunnelLauncher {
                program: config.bin_dir.join("rampart-tunnel"),
                user: p.users.tunnel,
                netns: config.tunnel_netns.clone(),
                danger_no_sandbox: config.danger_no_sandbox,
            }))
        }
        None => Handoff::None,
    };
    ChildSpec {
        name: "core",
        program: config.bin_dir.join("rampart-core"),
        args,
        user: privsep.map(|p| p.users.core),
        handoff,
    }
}

fn edge_spec(config: &ServeConfig, privsep: Option<&Privsep>) -> ChildSpec {
    let mut args = [
        args(&[
            ("--http-addr", config.http_addr.to_string().into()),
            ("--https-addr", config.https_addr.to_string().into()),
            ("--core-addr", config.core_addr.to_string().into()),
            ("--state-dir", config.edge_state_dir().into()),
        ]),
        config.acme.edge_args(),
        danger(config),
    ]
    .concat();
    let handoff = match privsep {
        Some(p) => {
            args.push("--listeners-from-stdin".into());
            Handoff::Listeners(Arc::clone(&p.listeners))
        }
        None => Handoff::None,
    };
    ChildSpec {
        name: "edge",
        program: config.bin_dir.join("rampart-edge"),
        args,
        user: privsep.map(|p| p.users.edge),
        handoff,
    }
}

fn danger(config: &ServeConfig) -> Vec<OsString> {
    if config.danger_no_sandbox {
        vec!["--danger-no-sandbox".into()]
    } else {
        Vec::new()
    }
}

fn args(pairs: &[(&str, OsString)]) -> Vec<OsString> {
    pairs
        .iter()
        .flat_map(|(flag, value)| [OsString::from(flag), value.clone()])
        .collect()
}

/// Waits until something accepts on `addr`, so the edge's first requests
/// find the core and the setup banner finds the token file.
async fn wait_for_port(addr: std::net::SocketAddr, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(%addr, "the core is not accepting connections yet");
}
