//! The state every request shares: the store, the origin secret, the clock,
//! and what first start prepared.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::Clock;
use crate::events::Events;
use crate::sealed::HostKey;
use crate::secret::OriginSecret;
use crate::store::Store;
use crate::tunnels::Tunnels;
use crate::{Error, crypto, setup_token};

/// The core's directory inside the data directory.
pub const CORE_DIR: &str = "core";
/// The database's file name inside [`CORE_DIR`].
pub const DB_FILE: &str = "rampart.db";

/// Where the database of `data_dir` is: `DATA_DIR/core/rampart.db`.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CORE_DIR).join(DB_FILE)
}

/// Shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    origin_secret: OriginSecret,
    host_key: HostKey,
    clock: Clock,
    dummy_hash: String,
    setup_token_file: PathBuf,
    setup_pending: AtomicBool,
    openapi: Vec<u8>,
    acme_dns_hook: std::sync::OnceLock<String>,
    events: Events,
    tunnels: Tunnels,
}

impl AppState {
    /// Opens the core's part of `data_dir` with the system clock: creates
    /// `DATA_DIR/core` (0700), opens and migrates the database, and issues
    /// or checks the setup token.
    pub async fn open(data_dir: impl Into<PathBuf>, origin_secret: OriginSecret) -> Result<Self, Error> {
        Self::open_with_clock(data_dir, origin_secret, Clock::system()).await
    }

    /// [`AppState::open`] with a chosen clock (tests move time with
    /// [`Clock::manual`]).
    pub async fn open_with_clock(
        data_dir: impl Into<PathBuf>,
        origin_secret: OriginSecret,
        clock: Clock,
    ) -> Result<Self, Error> {
        let data_dir = data_dir.into();
        let core_dir = data_dir.join(CORE_DIR);
        let dir_error = |source| Error::DataDir {
            path: core_dir.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&core_dir)
            .map_err(dir_error)?;
        // An existing directory keeps its mode through create; tighten it.
        fs::set_permissions(&core_dir, fs::Permissions::from_mode(0o700)).map_err(dir_error)?;

        let host_key = HostKey::load_or_create(&data_dir)?;
        let store = Store::open(database_path(&data_dir)).await?;
        let setup_token_file = setup_token::path_in(&data_dir);
        let pending = setup_token::prepare(&store, &setup_token_file).await?;
        let dummy_hash = crypto::dummy_hash().await?;
        let openapi = schemas::openapi::document().to_string().into_bytes();
        let tunnels = Tunnels::new(store.clone(), host_key.clone(), clock.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                origin_secret,
                host_key,
                clock,
                dummy_hash,
                setup_token_file,
                setup_pending: AtomicBool::new(pending),
                openapi,
                acme_dns_hook: std::sync::OnceLock::new(),
                events: Events::default(),
                tunnels,
            }),
        })
    }

    /// The setup token file while first-admin setup is pending (so a
    /// supervisor can print it), `None` once setup is done.
    pub fn setup_token_path(&self) -> Option<&Path> {
        self.inner
            .setup_pending
            .load(Ordering::Acquire)
            .then_some(self.inner.setup_token_file.as_path())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The key that seals secrets at rest.
    pub fn host_key(&self) -> &HostKey {
        &self.inner.host_key
    }

    /// Sets the DNS-01 hook command (`--acme-dns-hook`); only the first
    /// call counts.
    pub fn set_acme_dns_hook(&self, command: String) {
        let _ = self.inner.acme_dns_hook.set(command);
    }

    /// The DNS-01 hook command, if configured.
    pub fn acme_dns_hook(&self) -> Option<&str> {
        self.inner.acme_dns_hook.get().map(String::as_str)
    }

    /// The change broadcast for consoles.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// The tunnel processes (disabled until [`Tunnels::enable`]).
    pub fn tunnels(&self) -> &Tunnels {
        &self.inner.tunnels
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub(crate) fn origin_secret(&self) -> &OriginSecret {
        &self.inner.origin_secret
    }

    pub(crate) fn dummy_hash(&self) -> &str {
        &self.inner.dummy_hash
    }

    pub(crate) fn openapi(&self) -> &[u8] {
        &self.inner.openapi
    }

    /// Called after the setup transaction committed.
    pub(crate) fn setup_done(&self) {
        self.inner.setup_pending.store(false, Ordering::Release);
        setup_token::remove(&self.inner.setup_token_file);
    }
}
