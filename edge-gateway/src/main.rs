//! `rampart-edge`: parse the configuration, read the origin secret, build the
//! runtime, serve until told to stop.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use edge_gateway::config::EdgeConfig;
use tokio_util::sync::CancellationToken;

/// mimalloc's per-thread heaps suit the edge's one-runtime-per-thread
/// workers: +7–10 % requests per second over glibc's malloc in
/// `bench/run edge` (docs/performance.md). Its `secure` mode measured no
/// faster than glibc, so it is not used: the edge's own code has no `unsafe`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a configuration the edge refuses (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let config = EdgeConfig::parse();
    edge_gateway::log::init(std::env::var("RUST_LOG").ok().as_deref());
    if let Some(root) = &config.acme_ca_root
        && let Err(e) = edge_gateway::acme::certs::check_root(root)
    {
        tracing::error!(error = %e, "--acme-ca-root must name a PEM certificate file");
        return ExitCode::from(EXIT_USAGE);
    }
    if !config.core_addr.ip().is_loopback() {
        tracing::error!(core_addr = %config.core_addr, "the core address must be a loopback address");
        return ExitCode::from(EXIT_USAGE);
    }
    // instant-acme's HTTPS client builds its rustls configuration with the
    // process-wide provider: make it the same ring provider as the rest.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: EdgeConfig) -> anyhow::Result<()> {
    let (secret, from_stdin, inherited) = if config.listeners_from_stdin {
        anyhow::ensure!(
            config.origin_secret_file == "-",
            "--listeners-from-stdin needs the secret on standard input"
        );
        let (secret, listeners) = edge_gateway::secret::read_with_listeners()?;
        (secret, true, Some(listeners))
    } else {
        let (secret, from_stdin) = edge_gateway::secret::read(&config.origin_secret_file)?;
        (secret, from_stdin, None)
    };
    // Before any thread exists: Landlock below ABI 8 restricts only the
    // calling thread and those it starts afterwards.
    sandbox(&config)?;
    if let Some(spec) = &config.probe_sandbox {
        let attempts = confine::probe::parse(spec).map_err(anyhow::Error::msg)?;
        confine::probe::run_and_print(&attempts)?;
        return Ok(());
    }
    let shutdown = CancellationToken::new();
    if from_stdin {
        let on_eof = shutdown.clone();
        std::thread::Builder::new()
            .name("parent-watch".into())
            .spawn(move || {
                edge_gateway::secret::watch_stdin(|| {
                    tracing::info!("supervisor gone (stdin closed); shutting down");
                    on_eof.cancel();
                });
            })
            .context("starting the parent watch thread")?;
    }
    // This thread accepts, redirects plain HTTP and runs ACME; the HTTPS
    // connections have worker threads of their own (`edge_gateway::workers`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(async move {
        let edge = edge_gateway::BoundEdge::bind(&config, &secret, inherited).await?;
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signals.cancel();
        });
        edge.serve(shutdown).await;
        Ok(())
    })
}

fn sandbox(config: &EdgeConfig) -> anyhow::Result<()> {
    if config.danger_no_sandbox {
        tracing::warn!("running WITHOUT the Landlock sandbox or the seccomp filter (--danger-no-sandbox)");
        return Ok(());
    }
    let refuse = "the edge will not run unsandboxed; --danger-no-sandbox overrides this";
    let policy = edge_gateway::sandbox::policy(config).context("preparing the sandbox")?;
    let report = confine::apply(&policy).context(refuse)?;
    let refused = confine::seccomp::deny_kernel_surface().context(refuse)?;
    tracing::info!(%report, seccomp_refused_syscalls = refused, "sandboxed");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM; shutting down"),
        _ = int.recv() => tracing::info!("SIGINT; shutting down"),
    }
}
