//! The tunnel processes: one `rampart-tunnel` per running VPN server,
//! driven over its control socket ([`schemas::tunnel`]).
//!
//! The database says what each tunnel should be; a supervisor task per
//! running server makes it so:
//! - it starts the process, sends `setup` and then every peer from the
//!   database (batches of [`PEER_BATCH`]);
//! - after a change commits, handlers call [`Tunnels::touch`] with the
//!   (server, device key) pairs the change touched (the store reads them in
//!   the change's own transaction). The supervisor looks those keys up again
//!   and upserts or removes just them: one change costs one indexed lookup
//!   per key, never a rescan of the server's peers;
//! - it polls `stats` every [`STATS_EVERY`] and keeps the latest answer for
//!   `GET /api/v1/servers/{id}/sessions`;
//! - when the process dies it starts a new one after a pause (0.5 s
//!   doubling to 30 s) and rebuilds everything from the database, so no
//!   change is lost while it was down.
//!
//! `control` is the framing; `supervise` is the per-server task.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use schemas::api::ServerSessions;
use schemas::tunnel::PEER_BATCH;
use schemas::values::{ServerId, WgKey};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::sealed::HostKey;
use crate::store::{Store, Touched};

mod control;
mod launcher;
mod supervise;

pub use launcher::Launcher;

/// How often a live tunnel is asked for its counters.
pub const STATS_EVERY: Duration = Duration::from_secs(2);
/// How long `POST .../start` waits for the tunnel's first `ready` and peers.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long `POST .../stop` waits for the supervisor to finish.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How the core starts tunnels.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// The `rampart-tunnel` executable.
    pub program: PathBuf,
    /// A network namespace (`/run/netns/NAME`) the tunnels work in.
    pub netns: Option<String>,
    /// Start tunnels with `--danger-no-sandbox`.
    pub danger_no_sandbox: bool,
    /// Ask `rampart serve` to start them (it decides program, user and
    /// namespace; the fields above are then unused).
    pub launcher: Option<Launcher>,
}

/// What a supervisor is asked to do.
#[derive(Debug)]
enum Msg {
    /// Look these keys up in the database and make the tunnel match.
    Reconcile {
        keys: Vec<WgKey>,
        /// When the change was handed over (just after its commit).
        queued: Instant,
    },
    /// Stop and start again (the server's port or networks changed).
    Restart,
    /// Stop the tunnel and end; answer when done.
    Stop(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    sessions: Arc<RwLock<ServerSessions>>,
}

/// The running tunnels. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tunnels {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    host_key: HostKey,
    clock: Clock,
    /// Unset: this core runs no tunnels (start and stop only record the
    /// wanted state).
    config: OnceLock<TunnelConfig>,
    running: Mutex<HashMap<ServerId, Handle>>,
}

fn empty_sessions() -> ServerSessions {
    ServerSessions {
        items: Vec::new(),
        polled_at: None,
    }
}

impl Tunnels {
    /// No tunnels until [`Tunnels::enable`].
    pub fn new(store: Store, host_key: HostKey, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                host_key,
                clock,
                config: OnceLock::new(),
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Lets this core run tunnels; only the first call counts.
    pub fn enable(&self, config: TunnelConfig) {
        let _ = self.inner.config.set(config);
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<ServerId, Handle>> {
        // The map stays consistent whatever panicked while holding it.
        self.inner.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the tunnel of `id` unless it runs, and waits (boundedly) for
    /// its first `ready` and peer load. The error is the first attempt's;
    /// the supervisor keeps trying either way.
    pub async fn start(&self, id: ServerId) -> Result<(), String> {
        let Some(config) = self.inner.config.get() else {
            tracing::info!(server = %id, "tunnels are disabled on this core (--no-tunnels): state recorded only");
            return Ok(());
        };
        let (first_tx, first_rx) = oneshot::channel();
        {
            let mut running = self.running();
            if running.get(&id).is_some_and(|h| !h.tx.is_closed()) {
                return Ok(());
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let sessions = Arc::new(RwLock::new(empty_sessions()));
            let sup = supervise::Supervisor {
                id,
                config: config.clone(),
                store: self.inner.store.clone(),
                host_key: self.inner.host_key.clone(),
                clock: self.inner.clock.clone(),
                sessions: Arc::clone(&sessions),
                known: HashMap::new(),
            };
            tokio::spawn(sup.run(rx, first_tx));
            running.insert(id, Handle { tx, sessions });
        }
        match tokio::time::timeout(START_WAIT, first_rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err("the supervisor ended before the tunnel was ready".into()),
            Err(_) => Err(format!("not ready within {START_WAIT:?}; still trying")),
        }
    }

    /// Stops the tunnel of `id` if it runs: `shutdown`, then a kill if it
    /// lingers. The interface goes with the process.
    pub async fn stop(&self, id: ServerId) {
        let handle = self.running().remove(&id);
        if let Some(handle) = handle {
            let (ack_tx, ack_rx) = oneshot::channel();
            if handle.tx.send(Msg::Stop(ack_tx)).is_ok() && tokio::time::timeout(STOP_WAIT, ack_rx).await.is_err() {
                tracing::warn!(server = %id, "the tunnel supervisor did not stop within {STOP_WAIT:?}");
            }
        }
    }

    /// Restarts the tunnel of `id` if it runs (its interface settings
    /// changed).
    pub fn restart(&self, id: ServerId) {
        if let Some(handle) = self.running().get(&id) {
            let _ = handle.tx.send(Msg::Restart);
        }
    }

    /// Hands the pairs a committed change touched to their servers'
    /// supervisors. Never waits: the API answers at once and the tunnel
    /// follows within milliseconds.
    pub fn touch(&self, touched: Touched) {
        if touched.is_empty() {
            return;
        }
        let queued = Instant::now();
        let mut by_server: HashMap<ServerId, Vec<WgKey>> = HashMap::new();
        for (server, key) in touched {
            by_server.entry(server).or_default().push(key);
        }
        let running = self.running();
        for (server, keys) in by_server {
            if let Some(handle) = running.get(&server) {
                for chunk in keys.chunks(PEER_BATCH) {
                    let _ = handle.tx.send(Msg::Reconcile {
                        keys: chunk.to_vec(),
                        queued,
                    });
                }
            }
        }
    }

    /// The latest sessions of `id` (empty when it does not run).
    pub fn sessions(&self, id: ServerId) -> ServerSessions {
        match self.running().get(&id) {
            Some(handle) => handle.sessions.read().unwrap_or_else(PoisonError::into_inner).clone(),
            None => empty_sessions(),
        }
    }

    /// Starts every server whose wanted state is running (at core start).
    pub async fn start_running(&self) -> Result<(), crate::store::StoreError> {
        if self.inner.config.get().is_none() {
            return Ok(());
        }
        for id in self.inner.store.running_servers().await? {
            let this = self.clone();
            // Concurrently: one slow tunnel must not hold up the others.
            tokio::spawn(async move {
                if let Err(e) = this.start(id).await {
                    tracing::warn!(server = %id, error = %e, "tunnel did not start at once; retrying");
                }
            });
        }
        Ok(())
    }

    /// Stops every tunnel (core shutdown).
    pub async fn stop_all(&self) {
        let ids: Vec<ServerId> = self.running().keys().copied().collect();
        let stops = ids.into_iter().map(|id| {
            let this = self.clone();
            tokio::spawn(async move { this.stop(id).await })
        });
        for stop in stops.collect::<Vec<_>>() {
            let _ = stop.await;
        }
    }
}
