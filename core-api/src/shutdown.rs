//! What ends the process: SIGTERM, SIGINT, or end-of-file on standard input.
//!
//! The supervisor hands the origin secret over a pipe and keeps the pipe
//! open; if the supervisor dies, however it dies, the pipe closes and the
//! core reads end-of-file. That replaces `PR_SET_PDEATHSIG`, which would need
//! `unsafe`.

use std::io::Read;

use tokio::sync::oneshot;

/// Completes when standard input reaches end-of-file (or fails).
///
/// Reading happens on a plain thread: it blocks for the life of the process,
/// which would pin a runtime blocking-pool thread just the same, and a plain
/// thread does not hold up runtime shutdown.
pub fn stdin_closed() -> impl Future<Output = ()> + Send + 'static {
    let (tx, rx) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new().name("stdin-watch".into()).spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    async move {
        match spawned {
            // Err from rx means the thread died without sending: treat as EOF.
            Ok(_) => {
                let _ = rx.await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch standard input; stopping");
            }
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn terminate_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; only end-of-file on standard input stops the core");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
