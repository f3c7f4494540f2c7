//! `rampart-core`: parse the configuration, refuse a bad one with status 64
//! before anything is created or bound, then hand over to [`core_api::run`].

use std::os::fd::AsFd;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use core_api::config::Config;
use core_api::{AppState, OriginSecret, shutdown};
use tracing_subscriber::EnvFilter;

/// `EX_USAGE` from sysexits.h: the configuration was refused.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    logline::init(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));

    let secret = match config.check().and_then(|()| config.read_origin_secret()) {
        Ok(secret) => secret,
        Err(e) => {
            eprintln!("rampart-core: {}", error_chain(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };

    // Before any thread exists: Landlock below ABI 8 restricts only the
    // calling thread and those it starts afterwards.
    if let Err(e) = sandbox(&config) {
        tracing::error!(error = format!("{e:#}"), "rampart-core failed");
        return ExitCode::FAILURE;
    }
    if let Some(spec) = &config.probe_sandbox {
        let attempts = match confine::probe::parse(spec) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("rampart-core: --probe-sandbox: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        return match confine::probe::run_and_print(&attempts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }

    match serve(&config, secret) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "rampart-core failed");
            ExitCode::FAILURE
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn sandbox(config: &Config) -> anyhow::Result<()> {
    if config.danger_no_sandbox {
        tracing::warn!("running WITHOUT the Landlock sandbox (--danger-no-sandbox)");
        return Ok(());
    }
    let policy = core_api::sandbox::policy(config).context("preparing the sandbox")?;
    let report =
        confine::apply(&policy).context("the core will not run unsandboxed; --danger-no-sandbox overrides this")?;
    tracing::info!(%report, "sandboxed");
    Ok(())
}

fn serve(config: &Config, secret: OriginSecret) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let state = AppState::open(&config.data_dir, secret)
            .await
            .with_context(|| format!("failed to open the data directory {}", config.data_dir.display()))?;
        if let Some(hook) = &config.acme_dns_hook {
            state.set_acme_dns_hook(hook.clone());
        }
        if let Some(change) = config.acme_change() {
            let record = core_api::audit::AuditRecord {
                time: state.clock().now(),
                actor: "system".into(),
                client_addr: None,
                request_id: None,
                action: "setting.update".into(),
                target: Some("settings (--acme-* flags)".into()),
                outcome: schemas::api::Outcome::Success,
                detail: None,
            };
            state
                .store()
                .update_acme_settings(change, record)
                .await
                .context("failed to store the --acme-* settings")?;
        }
        // With `--tunnel-launcher`, standard input is the supervisor's
        // socket: the launcher owns it, and its end-of-file is what stops
        // the core when the supervisor dies.
        let mut supervisor_gone = None;
        let launcher = if config.tunnel_launcher {
            let socket = std::os::unix::net::UnixStream::from(
                std::io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .context("standard input is not the supervisor's socket")?,
            );
            let (launcher, gone) = core_api::tunnels::Launcher::new(socket)
                .context("standard input is not the supervisor's socket")?;
            supervisor_gone = Some(gone);
            Some(launcher)
        } else {
            None
        };
        match config.tunnels() {
            Some(tunnels) => {
                let tunnels = core_api::tunnels::TunnelConfig { launcher, ..tunnels };
                if tunnels.launcher.is_some() {
                    tracing::info!("tunnels enabled; the supervisor starts them");
                } else {
                    tracing::info!(program = %tunnels.program.display(), netns = ?tunnels.netns, "tunnels enabled");
                }
                state.tunnels().enable(tunnels);
                state
                    .tunnels()
                    .start_running()
                    .await
                    .context("failed to list the running servers")?;
            }
            None => tracing::warn!("--no-tunnels: servers' start and stop only record the wanted state"),
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("failed to listen on {}", config.listen))?;
        let watch_stdin = config.secret_from_stdin();
        let stop = async move {
            if let Some(gone) = supervisor_gone {
                tokio::select! {
                    () = shutdown::terminate_signal() => {}
                    () = gone => tracing::info!("the supervisor is gone; shutting down"),
                }
            } else if watch_stdin {
                tokio::select! {
                    () = shutdown::terminate_signal() => {}
                    () = shutdown::stdin_closed() => tracing::info!("standard input closed: the supervisor is gone; shutting down"),
                }
            } else {
                shutdown::terminate_signal().await;
            }
        };
        let served = core_api::run(listener, state.clone(), stop).await;
        // The tunnels would stop by themselves when their sockets close;
        // stopping them here is orderly and logged.
        state.tunnels().stop_all().await;
        served.context("the core stopped with an error")
    })?;
    // The stdin watcher thread may still be blocked in read(); don't wait
    // for it.
    runtime.shutdown_background();
    Ok(())
}
