//! `rampart-edge`: parse the configuration, read the origin secret, build the
//! runtime, serve until told to stop.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use edge_gateway::config::EdgeConfig;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// mimalloc's per-thread heaps suit the edge's one-runtime-per-thread
/// workers: +7–10 % requests per second over glibc's malloc in
/// `bench/run edge` (docs/performance.md). Its `secure` mode measured no
/// faster than glibc, so it is not used: the edge's own code has no `unsafe`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log filter: `RUST_LOG`, or `info`. rustls warns about every client
/// whose SNI is malformed (an IP address, say), which would let anyone fill
/// the log with one line per handshake; its warnings are off unless
/// `RUST_LOG` names rustls itself.
fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    let wanted = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let directives = if wanted.contains("rustls") {
        wanted.to_owned()
    } else {
        format!("{wanted},rustls=error")
    };
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info,rustls=error"))
}

/// Log fields as the default formatter writes them without colours
/// (`name=value`, the message bare), without passing each name through a
/// colour style that is off anyway: that was a third of the cost of the
/// per-request log line (docs/performance.md).
fn plain_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| match field.name() {
        "message" => write!(w, "{value:?}"),
        name => write!(w, "{name}={value:?}"),
    })
    .delimited(" ")
}

/// Exit status for a configuration the edge refuses (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let config = EdgeConfig::parse();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logger = tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if ansi {
        logger.init();
    } else {
        logger.fmt_fields(plain_fields()).init();
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::fmt::{FormatFields, MakeWriter};

    use super::plain_fields;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    fn logged(fields: impl for<'w> FormatFields<'w> + Send + Sync + 'static) -> String {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let peer: std::net::SocketAddr = "198.18.0.9:443".parse().unwrap();
            tracing::info!(request_id = "r-1", %peer, operation = "users.create", status = 201u16, "request");
            tracing::warn!(error = %"a \"quoted\" reason", "the {} failed", "hop");
        });
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plain_fields_write_what_the_default_writes_without_colour() {
        let plain = logged(plain_fields());
        assert!(
            plain.contains(r#"request request_id="r-1" peer=198.18.0.9:443 operation="users.create" status=201"#),
            "{plain}"
        );
        assert_eq!(plain, logged(DefaultFields::new()));
    }
}
