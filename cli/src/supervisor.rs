//! Runs the core and the edge as two child processes.
//!
//! Each child's standard input is a Unix stream socket to the supervisor.
//! The first line on it is the origin secret; the supervisor keeps its end
//! open: if the supervisor dies, however it dies, the children read
//! end-of-file and stop, so no orphaned listener outlives it. With
//! privilege separation the edge's listeners travel with that line, and
//! the core's socket then carries its requests to start tunnels
//! ([`crate::launcher`]).
//!
//! A child that exits is restarted after a delay that doubles with each
//! quick failure (0.5 s up to 30 s) and resets once it has run for a minute.
//! A child that exits with status 64 refused its configuration; restarting
//! would not help, so everything stops with that status.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::launcher::TunnelLauncher;
use crate::privsep::Ids;

/// Exit status of a child that refused its configuration.
pub const EXIT_USAGE: i32 = 64;

const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);
const STABLE_AFTER: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start one child.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Its name in logs: `core`, `edge`.
    pub name: &'static str,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Run as this user (the supervisor runs as root), or as ourselves.
    pub user: Option<Ids>,
    /// What else goes over its standard input.
    pub handoff: Handoff,
}

/// What a child gets over its standard input besides the secret.
#[derive(Debug, Clone, Default)]
pub enum Handoff {
    /// Nothing.
    #[default]
    None,
    /// Listeners bound here, sent with the secret's line (the edge).
    Listeners(Arc<Listeners>),
    /// Requests to start tunnels, served on the socket (the core).
    Launcher(Arc<TunnelLauncher>),
}

/// The edge's listeners, bound by the supervisor before any privilege is
/// dropped and kept across edge restarts.
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP.
    pub http: std::net::TcpListener,
    /// HTTPS.
    pub https: std::net::TcpListener,
}

/// Our end of a child's standard input, kept open while it runs.
#[derive(Debug)]
enum Held {
    /// Only kept open; nothing more is said on it.
    Socket {
        _open: UnixStream,
    },
    Launcher(JoinHandle<()>),
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Self::Launcher(task) = self {
            // Dropping the task drops the socket: the child reads
            // end-of-file.
            task.abort();
        }
    }
}

/// Why supervision ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// SIGTERM or SIGINT; both children were stopped.
    Signalled,
    /// A child refused its configuration (exit status 64).
    ConfigRefused(&'static str),
}

/// One supervised child and its restart state.
#[derive(Debug)]
pub struct Supervised {
    spec: ChildSpec,
    secret: String,
    running: Option<(Child, Held, Instant)>,
    restart_at: Option<Instant>,
    quick_failures: u32,
}

enum Event {
    Exited(std::io::Result<ExitStatus>),
    RestartDue,
}

impl Supervised {
    /// Starts `spec`, handing it `secret`.
    pub async fn start(spec: ChildSpec, secret: String) -> std::io::Result<Self> {
        let mut this = Self {
            spec,
            secret,
            running: None,
            restart_at: None,
            quick_failures: 0,
        };
        this.spawn().await?;
        Ok(this)
    }

    /// The child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().and_then(|(child, _, _)| child.id())
    }

    async fn spawn(&mut self) -> std::io::Result<()> {
        let (ours, theirs) = UnixStream::pair()?;
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(user) = self.spec.user {
            // As root, std also clears the supplementary groups.
            cmd.uid(user.uid).gid(user.gid);
        }
        let spawned = cmd.spawn();
        // Our copy of the child's end must go: its closing is how each side
        // learns the other is gone.
        drop(cmd);
        let child = spawned
            .map_err(|e| std::io::Error::new(e.kind(), format!("starting {}: {e}", self.spec.program.display())))?;
        let line = format!("{}\n", self.secret);
        let sent = match &self.spec.handoff {
            Handoff::Listeners(l) => {
                confine::handoff::send(&ours, line.as_bytes(), &[l.http.as_fd(), l.https.as_fd()])?
            }
            _ => 0,
        };
        (&ours).write_all(&line.as_bytes()[sent..])?;
        let held = match &self.spec.handoff {
            Handoff::Launcher(launcher) => {
                ours.set_nonblocking(true)?;
                let socket = tokio::net::UnixStream::from_std(ours)?;
                Held::Launcher(tokio::spawn(Arc::clone(launcher).serve(socket)))
            }
            _ => Held::Socket { _open: ours },
        };
        info!(child = self.spec.name, pid = child.id(), user = ?self.spec.user.map(|u| u.uid), "started");
        self.running = Some((child, held, Instant::now()));
        self.restart_at = None;
        Ok(())
    }

    async fn next_event(&mut self) -> Event {
        match (&mut self.running, self.restart_at) {
            (Some((child, _, _)), _) => Event::Exited(child.wait().await),
            (None, Some(at)) => {
                tokio::time::sleep_until(at).await;
                Event::RestartDue
            }
            (None, None) => std::future::pending().await,
        }
    }

    /// Handles an exit: schedules the restart, or says the configuration was
    /// refused.
    fn exited(&mut self, status: std::io::Result<ExitStatus>) -> Result<(), Ending> {
        let ran = self
            .running
            .take()
            .map_or(Duration::ZERO, |(_, _, started)| started.elapsed());
        match &status {
            Ok(s) if s.code() == Some(EXIT_USAGE) => {
                error!(
                    child = self.spec.name,
                    "refused its configuration (exit status 64); stopping"
                );
                return Err(Ending::ConfigRefused(self.spec.name));
            }
            Ok(s) => {
                warn!(child = self.spec.name, status = %s, ran_ms = ran.as_millis() as u64, "exited")
            }
            Err(e) => warn!(child = self.spec.name, error = %e, "wait failed"),
        }
        if ran >= STABLE_AFTER {
            self.quick_failures = 0;
        }
        let delay = backoff(self.quick_failures);
        self.quick_failures = self.quick_failures.saturating_add(1);
        warn!(
            child = self.spec.name,
            delay_ms = delay.as_millis() as u64,
            "restarting after delay"
        );
        self.restart_at = Some(Instant::now() + delay);
        Ok(())
    }

    async fn restart(&mut self) {
        if let Err(e) = self.spawn().await {
            error!(child = self.spec.name, error = %e, "restart failed");
            let delay = backoff(self.quick_failures);
            self.quick_failures = self.quick_failures.saturating_add(1);
            self.restart_at = Some(Instant::now() + delay);
        }
    }

    /// Asks the child to stop (SIGTERM, and its stdin closed), and kills it
    /// if it has not stopped within the grace period.
    pub async fn stop(&mut self) {
        self.restart_at = None;
        let Some((mut child, stdin, _)) = self.running.take() else {
            return;
        };
        drop(stdin);
        if let Some(pid) = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(Ok(status)) => info!(child = self.spec.name, %status, "stopped"),
            Ok(Err(e)) => warn!(child = self.spec.name, error = %e, "wait failed"),
            Err(_) => {
                warn!(child = self.spec.name, "did not stop in time; killing");
                let _ = child.kill().await;
            }
        }
    }
}

/// The delay before restart number `failures + 1`.
pub fn backoff(failures: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX))
        .min(MAX_DELAY)
}

/// Supervises `children` until SIGTERM/SIGINT or a refused configuration,
/// then stops them all (in reverse order of start).
pub async fn supervise(mut children: Vec<Supervised>) -> std::io::Result<Ending> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let ending = loop {
        let events = children
            .iter_mut()
            .enumerate()
            .map(|(i, c)| Box::pin(async move { (i, c.next_event().await) }));
        let next = futures_select_all(events);
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: stopping"); break Ending::Signalled; }
            _ = int.recv() => { info!("SIGINT: stopping"); break Ending::Signalled; }
            (index, event) = next => {
                let child = &mut children[index];
                match event {
                    Event::Exited(status) => {
                        if let Err(ending) = child.exited(status) {
                            break ending;
                        }
                    }
                    Event::RestartDue => child.restart().await,
                }
            }
        }
    };
    for child in children.iter_mut().rev() {
        child.stop().await;
    }
    Ok(ending)
}

/// Waits for the first of `futures`; a tiny stand-in for `select_all`.
async fn futures_select_all<F, T>(futures: impl Iterator<Item = F>) -> T
where
    F: std::future::Future<Output = T> + Unpin,
{
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for f in &mut futures {
            if let std::task::Poll::Ready(out) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(out);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(10), MAX_DELAY);
        assert_eq!(backoff(u32::MAX), MAX_DELAY);
    }
}
