//! One server's supervisor task: start the process, set it up, load its
//! peers, apply changes, poll counters, restart it when it dies.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use schemas::api::{ServerSessions, Session};
use schemas::tunnel::{Command, IfAddr, PEER_BATCH, PeerSpec, PeerStats, Reply, Setup};
use schemas::values::{Cidr, Ipv4Net, Ipv6Net, ServerId, WgKey};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};

use super::control::{Control, ControlError};
use super::launcher::{self, Launcher};
use super::{Msg, STATS_EVERY, TunnelConfig};
use crate::clock::Clock;
use crate::sealed::HostKey;
use crate::store::{Store, StoreError, TunnelPeer, TunnelServer};

/// The first pause after a failure; it doubles per failure up to
/// [`BACKOFF_MAX`].
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest pause between restarts.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A tunnel that served this long before it died starts over at
/// [`BACKOFF_MIN`]: it was a crash, not a crash loop.
const HEALTHY: Duration = Duration::from_secs(60);
/// The tunnel's MTU: 1500 minus the outer IPv6, UDP and WireGuard headers.
const MTU: u16 = 1420;
/// Setup creates an interface and sockets; allow for a slow, busy machine.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Any other request; a stats answer for 100k peers included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a tunnel gets to exit after `shutdown` before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(3);
/// The longest log line forwarded from a tunnel.
const MAX_LOG_LINE: usize = 4096;

/// Why one run of the tunnel ended.
#[derive(Debug)]
enum Ended {
    /// Asked to stop (the answer goes to whoever asked).
    Stopped(Option<oneshot::Sender<()>>),
    /// Asked to restart.
    Restart,
    /// It failed; start again after a pause.
    Failed(Failure),
}

/// What went wrong with one run.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the supervisor could not start the tunnel: {0}")]
    Launch(String),
    #[error("database")]
    Store(#[from] StoreError),
    #[error("control")]
    Control(#[from] ControlError),
    #[error("the tunnel answered setup with {0}")]
    NotReady(String),
    #[error("the tunnel exited ({0})")]
    Exited(String),
}

/// A running tunnel process: our child, or one `rampart serve` started for
/// us (then only its control socket tells us it is gone).
enum Process {
    Child(Child),
    Launched { pid: u32, launcher: Launcher },
}

impl Process {
    /// Completes when the process has exited; how, as far as we know.
    async fn exited(&mut self, control: &Control<UnixStream>) -> String {
        match self {
            Self::Child(child) => child.wait().await.map_or_else(|e| e.to_string(), |s| s.to_string()),
            Self::Launched { pid, .. } => {
                launcher::closed(control.stream()).await;
                format!("process {pid} closed its control socket")
            }
        }
    }

    /// Ends it, whatever state it is in.
    async fn kill(&mut self) {
        match self {
            Self::Child(child) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            Self::Launched { pid, launcher } => {
                if let Err(e) = launcher.kill(*pid).await {
                    tracing::warn!(pid, error = %e, "could not have the tunnel killed");
                }
            }
        }
    }
}

/// The state of one server's supervision.
pub(super) struct Supervisor {
    pub(super) id: ServerId,
    pub(super) config: TunnelConfig,
    pub(super) store: Store,
    pub(super) host_key: HostKey,
    pub(super) clock: Clock,
    pub(super) sessions: Arc<RwLock<ServerSessions>>,
    /// The peers the live tunnel has, as last sent: what a removal needs
    /// and what sessions are named by.
    pub(super) known: HashMap<WgKey, TunnelPeer>,
}

/// The pause after `failures` consecutive failures (1 for the first).
pub(super) fn backoff(failures: u32) -> Duration {
    let doubled = BACKOFF_MIN.saturating_mul(1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX));
    doubled.min(BACKOFF_MAX)
}

/// The interface name of a server: stable, at most 15 bytes, and unlikely
/// to clash (a digest of the id, not its time-ordered first digits).
pub(super) fn interface_name(id: ServerId) -> String {
    let digest = Sha256::digest(id.to_string().as_bytes());
    let mut name = String::from("rp");
    name.push_str(&hex::encode(&digest[..7])[..13]);
    name
}

/// The server's own tunnel addresses: the first host of each network.
pub(super) fn interface_addresses(server: &TunnelServer) -> Vec<IfAddr> {
    let mut out = vec![IfAddr {
        address: std::net::Ipv4Addr::from(server.network.base().wrapping_add(1)).into(),
        prefix_len: server.network.prefix(),
    }];
    if let Some(net6) = server.network6 {
        out.push(IfAddr {
            address: std::net::Ipv6Addr::from(net6.base().wrapping_add(1)).into(),
            prefix_len: net6.prefix(),
        });
    }
    out
}

fn peer_spec(peer: &TunnelPeer) -> PeerSpec {
    // A /32 and a /128 have no host bits, so these never fail.
    let mut allowed_ips: Vec<Cidr> = Ipv4Net::new(peer.address, 32).ok().map(Cidr::V4).into_iter().collect();
    allowed_ips.extend(peer.address6.and_then(|a| Ipv6Net::new(a, 128).ok()).map(Cidr::V6));
    PeerSpec {
        public_key: peer.public_key.clone(),
        preshared_key: Some(peer.preshared_key.clone()),
        allowed_ips,
        persistent_keepalive: None,
        endpoint: None,
    }
}

fn same_peer(a: &TunnelPeer, b: &TunnelPeer) -> bool {
    a.address == b.address && a.address6 == b.address6 && a.preshared_key == b.preshared_key
}

/// Forwards a tunnel's output to the core's log, line by line.
fn forward_log(id: ServerId, stream: impl AsyncRead + Unpin + Send + 'static) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader)
                .take(MAX_LOG_LINE as u64)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    tracing::info!(target: "rampart_tunnel", server = %id, "{}", text.trim_end());
                }
            }
        }
    });
}

impl Supervisor {
    /// Supervises until asked to stop (or every sender is gone).
    /// `first` learns the outcome of the first attempt.
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        first: oneshot::Sender<Result<(), String>>,
    ) {
        let mut first = Some(first);
        let mut failures = 0u32;
        loop {
            // Changes queued until now are covered by the full load below.
            loop {
                match rx.try_recv() {
                    Ok(Msg::Stop(ack)) => {
                        let _ = ack.send(());
                        return;
                    }
                    Ok(_) => {}
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            let started = Instant::now();
            let ended = self.run_once(&mut rx, &mut first).await;
            self.known.clear();
            *self.sessions.write().unwrap_or_else(PoisonError::into_inner) = super::empty_sessions();
            let failure = match ended {
                Ended::Stopped(ack) => {
                    tracing::info!(server = %self.id, "tunnel stopped");
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                    return;
                }
                Ended::Restart => {
                    tracing::info!(server = %self.id, "tunnel restarting with new settings");
                    failures = 0;
                    continue;
                }
                Ended::Failed(failure) => failure,
            };
            if started.elapsed() >= HEALTHY {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let pause = backoff(failures);
            tracing::warn!(
                server = %self.id,
                error = %crate::error::Chain(&failure),
                retry_in_ms = pause.as_millis(),
                "tunnel failed; it will be restarted and rebuilt from the database"
            );
            if let Some(first) = first.take() {
                let _ = first.send(Err(crate::error::Chain(&failure).to_string()));
            }
            let sleep = tokio::time::sleep(pause);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    msg = rx.recv() => match msg {
                        Some(Msg::Stop(ack)) => {
                            let _ = ack.send(());
                            return;
                        }
                        None => return,
                        // Superseded by the rebuild.
                        Some(_) => {}
                    },
                }
            }
        }
    }

    async fn run_once(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
        first: &mut Option<oneshot::Sender<Result<(), String>>>,
    ) -> Ended {
        let server = match self.store.tunnel_server(self.id, self.host_key.clone()).await {
            Ok(server) => server,
            // Deleted meanwhile: nothing to run.
            Err(StoreError::NotFound) => return Ended::Stopped(None),
            Err(e) => return Ended::Failed(e.into()),
        };
        let (mut process, stream) = match self.spawn().await {
            Ok(spawned) => spawned,
            Err(e) => return Ended::Failed(e),
        };
        let mut control = Control::new(stream);
        let result = self.serve(&server, &mut process, &mut control, rx, first).await;
        match result {
            Ok(ended) => ended,
            Err(failure) => {
                // Whatever state it is in, this process is done.
                process.kill().await;
                Ended::Failed(failure)
            }
        }
    }

    async fn spawn(&self) -> Result<(Process, UnixStream), Failure> {
        let spawn_error = |source| Failure::Spawn {
            program: self.config.program.display().to_string(),
            source,
        };
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(spawn_error)?;
        if let Some(launcher) = &self.config.launcher {
            // Our copy of the tunnel's end goes with the request.
            let pid = launcher.start(OwnedFd::from(theirs)).await.map_err(Failure::Launch)?;
            tracing::info!(server = %self.id, pid, "the supervisor started the tunnel");
            ours.set_nonblocking(true).map_err(spawn_error)?;
            let ours = UnixStream::from_std(ours).map_err(spawn_error)?;
            let launcher = launcher.clone();
            return Ok((Process::Launched { pid, launcher }, ours));
        }
        let mut cmd = tokio::process::Command::new(&self.config.program);
        if let Some(ns) = &self.config.netns {
            cmd.arg("--netns").arg(ns);
        }
        if self.config.danger_no_sandbox {
            cmd.arg("--danger-no-sandbox");
        }
        cmd.stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(spawn_error)?;
        // Our copy of the tunnel's end must go now: the socket is how each
        // side learns the other is gone.
        drop(cmd);
        if let Some(out) = child.stdout.take() {
            forward_log(self.id, out);
        }
        if let Some(err) = child.stderr.take() {
            forward_log(self.id, err);
        }
        ours.set_nonblocking(true).map_err(spawn_error)?;
        let ours = UnixStream::from_std(ours).map_err(spawn_error)?;
        Ok((Process::Child(child), ours))
    }

    async fn serve(
        &mut self,
        server: &TunnelServer,
        process: &mut Process,
        control: &mut Control<UnixStream>,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
        first: &mut Option<oneshot::Sender<Result<(), String>>>,
    ) -> Result<Ended, Failure> {
        let began = Instant::now();
        let setup = Setup {
            interface: interface_name(self.id),
            private_key: server.private_key.clone(),
            listen_port: server.port,
            addresses: interface_addresses(server),
            mtu: MTU,
            workers: 0,
            socket_buffer: 0,
        };
        let interface = setup.interface.clone();
        match control.call(Command::Setup(setup), SETUP_TIMEOUT).await? {
            Reply::Ready {
                ifindex,
                workers,
                sandbox,
                ..
            } => tracing::info!(server = %self.id, %interface, ifindex, workers, sandbox, "tunnel ready"),
            other => return Err(Failure::NotReady(format!("{other:?}"))),
        }
        let peers = self.store.tunnel_peers(self.id, self.host_key.clone()).await?;
        let count = peers.len();
        for batch in peers.chunks(PEER_BATCH) {
            let specs = batch.iter().map(peer_spec).collect();
            control
                .call(Command::UpsertPeers { peers: specs }, CALL_TIMEOUT)
                .await?;
        }
        self.known = peers.into_iter().map(|p| (p.public_key.clone(), p)).collect();
        tracing::info!(
            server = %self.id,
            peers = count,
            elapsed_ms = began.elapsed().as_millis(),
            "tunnel loaded from the database"
        );
        if let Some(first) = first.take() {
            let _ = first.send(Ok(()));
        }
        let mut stats = tokio::time::interval(STATS_EVERY);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                status = process.exited(control) => return Err(Failure::Exited(status)),
                msg = rx.recv() => match msg {
                    Some(Msg::Reconcile { keys, queued }) => match self.reconcile(control, keys, queued).await {
                        // The tunnel refused and kept its state: a restart
                        // would only send the same peers again.
                        Err(Failure::Control(ControlError::Refused(why))) => {
                            tracing::error!(server = %self.id, error = %why, "the tunnel refused a peer change");
                        }
                        other => other?,
                    },
                    Some(Msg::Restart) => {
                        shutdown(self.id, control, process).await;
                        return Ok(Ended::Restart);
                    }
                    Some(Msg::Stop(ack)) => {
                        shutdown(self.id, control, process).await;
                        return Ok(Ended::Stopped(Some(ack)));
                    }
                    None => {
                        shutdown(self.id, control, process).await;
                        return Ok(Ended::Stopped(None));
                    }
                },
                _ = stats.tick() => self.poll_stats(control).await?,
            }
        }
    }

    /// Makes the tunnel's peers for `keys` what the database says now.
    async fn reconcile(
        &mut self,
        control: &mut Control<UnixStream>,
        keys: Vec<WgKey>,
        queued: Instant,
    ) -> Result<(), Failure> {
        let wanted = self
            .store
            .tunnel_peers_by_key(self.id, keys.clone(), self.host_key.clone())
            .await?;
        let mut wanted: HashMap<WgKey, TunnelPeer> = wanted.into_iter().map(|p| (p.public_key.clone(), p)).collect();
        let mut upsert = Vec::new();
        let mut remove = Vec::new();
        for key in keys {
            match (wanted.remove(&key), self.known.contains_key(&key)) {
                (Some(peer), _) => {
                    if self.known.get(&key).is_none_or(|old| !same_peer(old, &peer)) {
                        upsert.push(peer);
                    }
                }
                (None, true) => remove.push(key),
                (None, false) => {}
            }
        }
        let (upserted, removed) = (upsert.len(), remove.len());
        if !upsert.is_empty() {
            let specs = upsert.iter().map(peer_spec).collect();
            control
                .call(Command::UpsertPeers { peers: specs }, CALL_TIMEOUT)
                .await?;
            self.known.extend(upsert.into_iter().map(|p| (p.public_key.clone(), p)));
        }
        if !remove.is_empty() {
            for key in &remove {
                self.known.remove(key);
            }
            control
                .call(Command::RemovePeers { keys: remove }, CALL_TIMEOUT)
                .await?;
        }
        if upserted + removed > 0 {
            // The number the 50 ms target is about: from the change being
            // handed over (right after its commit, as the API answers) to the
            // tunnel acknowledging it.
            tracing::info!(
                server = %self.id,
                upserted,
                removed,
                live_after_us = queued.elapsed().as_micros(),
                "tunnel peers changed"
            );
        }
        Ok(())
    }

    async fn poll_stats(&mut self, control: &mut Control<UnixStream>) -> Result<(), Failure> {
        let Reply::Stats { peers, .. } = control.call(Command::Stats, CALL_TIMEOUT).await? else {
            return Err(Failure::Control(ControlError::Refused(
                "stats answered with another reply".into(),
            )));
        };
        let mut items: Vec<Session> = peers.iter().filter_map(|s| self.session(s)).collect();
        items.sort_by_key(|s| s.device_id);
        *self.sessions.write().unwrap_or_else(PoisonError::into_inner) = ServerSessions {
            items,
            polled_at: Some(self.clock.now()),
        };
        Ok(())
    }

    /// A tunnel's counters for one key, named by the device it belongs to;
    /// `None` for a key the core did not give it (a peer removed since).
    fn session(&self, stats: &PeerStats) -> Option<Session> {
        let peer = self.known.get(&stats.public_key)?;
        Some(Session {
            device_id: peer.device_id,
            user_id: peer.user_id,
            address: peer.address,
            address6: peer.address6,
            endpoint: stats.endpoint,
            last_handshake: stats
                .last_handshake
                .and_then(|s| i64::try_from(s).ok())
                .and_then(|s| Timestamp::from_second(s).ok()),
            rx_bytes: stats.rx_bytes,
            tx_bytes: stats.tx_bytes,
            dropped_source: stats.dropped_source,
        })
    }
}

/// Asks the tunnel to exit, and kills it if it does not in time.
async fn shutdown(id: ServerId, control: &mut Control<UnixStream>, process: &mut Process) {
    // It may exit before answering; either way, wait for the process.
    let _ = control.call(Command::Shutdown, EXIT_WAIT).await;
    if tokio::time::timeout(EXIT_WAIT, process.exited(control)).await.is_err() {
        tracing::warn!(server = %id, "tunnel did not exit after shutdown; killing it");
        process.kill().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_thirty() {
        let got: Vec<u128> = (1..=9).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn interface_names_are_short_stable_and_distinct() {
        let a = ServerId::new();
        let b = ServerId::new();
        assert_eq!(interface_name(a), interface_name(a));
        assert_ne!(interface_name(a), interface_name(b));
        assert_eq!(interface_name(a).len(), 15);
        assert!(interface_name(a).bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn the_server_takes_the_first_host_of_each_network() {
        let server = TunnelServer {
            id: ServerId::new(),
            private_key: WgKey::from_bytes(&[1; 32]),
            port: 51820,
            network: "198.18.4.0/24".parse().unwrap(),
            network6: Some("2001:db8:4::/64".parse().unwrap()),
            state: schemas::api::ServerState::Running,
        };
        let got: Vec<String> = interface_addresses(&server)
            .iter()
            .map(|a| format!("{}/{}", a.address, a.prefix_len))
            .collect();
        assert_eq!(got, ["198.18.4.1/24", "2001:db8:4::1/64"]);
    }
}
