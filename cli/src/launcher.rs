//! The supervisor's side of the launcher protocol
//! ([`schemas::launcher`]): starts `rampart-tunnel` processes for the core,
//! which holds no capability to do it.
//!
//! Each tunnel starts as root so that it can enter its network namespace,
//! then becomes the tunnel user keeping only CAP_NET_ADMIN (and
//! CAP_NET_BIND_SERVICE) for setup, and drops those in its sandbox
//! (`--run-as`). What runs is decided here, never by the core: the request
//! carries only the control socket.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use schemas::launcher::{LaunchReply, LaunchRequest, MAX_LINE, encode_line};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::privsep::Ids;

/// How tunnels are started.
#[derive(Debug, Clone)]
pub struct TunnelLauncher {
    /// The `rampart-tunnel` binary.
    pub program: PathBuf,
    /// The user the tunnels become.
    pub user: Ids,
    /// A network namespace (`/run/netns/NAME`) for the tunnels.
    pub netns: Option<String>,
    /// Start them with `--danger-no-sandbox`.
    pub danger_no_sandbox: bool,
}

/// Tunnels started for this core: pid → how to kill it.
type Live = Arc<Mutex<HashMap<u32, oneshot::Sender<()>>>>;

impl TunnelLauncher {
    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--run-as".into(), format!("{}:{}", self.user.uid, self.user.gid).into()];
        if let Some(ns) = &self.netns {
            args.extend(["--netns".into(), ns.into()]);
        }
        if self.danger_no_sandbox {
            args.push("--danger-no-sandbox".into());
        }
        args
    }

    /// Serves one core's requests until it closes the socket (it exited) or
    /// breaks the protocol. Tunnels still running then end on their own:
    /// their control sockets close with the core.
    pub async fn serve(self: Arc<Self>, socket: UnixStream) {
        let live: Live = Arc::default();
        loop {
            let (line, fds) = match confine::handoff::recv_line_async(&socket, MAX_LINE).await {
                Ok(Some(read)) => read,
                Ok(None) => return,
                Err(e) => {
                    warn!(error = %e, "the core's launcher socket failed; no more tunnels for it");
                    return;
                }
            };
            let reply = match serde_json::from_slice::<LaunchRequest>(&line) {
                Ok(LaunchRequest::Start {}) => match <[OwnedFd; 1]>::try_from(fds) {
                    Ok([control]) => self.start(control, &live),
                    Err(fds) => LaunchReply::Error {
                        message: format!("start needs exactly one descriptor, got {}", fds.len()),
                    },
                },
                Ok(LaunchRequest::Kill { pid }) => kill(pid, &live),
                Err(e) => LaunchReply::Error {
                    message: format!("malformed request: {e}"),
                },
            };
            if let Err(e) = confine::handoff::send_line_async(&socket, &encode_line(&reply), &[]).await {
                warn!(error = %e, "cannot answer the core");
                return;
            }
        }
    }

    fn start(&self, control: OwnedFd, live: &Live) -> LaunchReply {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(self.args())
            .stdin(Stdio::from(control))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let spawned = cmd.spawn();
        // Our copy of the control socket must close now: the socket is how
        // the core learns the tunnel is gone.
        drop(cmd);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return LaunchReply::Error {
                    message: format!("cannot start {}: {e}", self.program.display()),
                };
            }
        };
        let Some(pid) = child.id() else {
            return LaunchReply::Error {
                message: "the tunnel exited at once".into(),
            };
        };
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        live.lock().unwrap_or_else(PoisonError::into_inner).insert(pid, kill_tx);
        let live = Arc::clone(live);
        tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => match status {
                    Ok(status) => info!(pid, %status, "tunnel exited"),
                    Err(e) => warn!(pid, error = %e, "waiting for a tunnel failed"),
                },
                asked = kill_rx => {
                    match asked {
                        Ok(()) => warn!(pid, "killing a tunnel at the core's request"),
                        Err(_) => info!(pid, "the core is gone; ending its tunnel"),
                    }
                    let _ = child.kill().await;
                }
            }
            live.lock().unwrap_or_else(PoisonError::into_inner).remove(&pid);
        });
        info!(pid, program = %self.program.display(), "tunnel started for the core");
        LaunchReply::Started { pid }
    }
}

/// Only tunnels this launcher started, and only while they run.
fn kill(pid: u32, live: &Live) -> LaunchReply {
    match live.lock().unwrap_or_else(PoisonError::into_inner).remove(&pid) {
        Some(kill) => {
            let _ = kill.send(());
            LaunchReply::Done
        }
        None => LaunchReply::Error {
            message: format!("process {pid} is not a running tunnel of this core"),
        },
    }
}
